"""A plain Python interpreter of a parsed ruleset — the yardstick for the compiler.

It shares nothing with the durable_rules path but the parsed model: conditions are
evaluated directly on the decoded values (no encoding, no waves, no engine), rules are
run on demand — before a rule is evaluated, every rule that writes a result it reads is
evaluated first (memoised). The differential tests require both to agree exactly on
outcome, reasons, results and fired rules, over hundreds of generated inputs per
shipped ruleset. It is also the baseline the benchmark prints beside the engine.
"""
from __future__ import annotations

from decimal import Decimal

from service.errors import EvaluationError
from service.rulesets import expr
from service.rulesets.model import (
    DECISION_ROOT, PARAMS_ROOT, RESULT_ROOT, SEVERITY, USES_ROOT, All, Always, AnyOf, Compare, Not,
    Quantified, Rule, Ruleset, condition_reads,
)
from service.rulesets.operators import compare
from service.rulesets.types import MISSING

_OUTCOMES = {v: k for k, v in SEVERITY.items()}


def holds(cond, value_of) -> bool:
    """Truth of a condition; `value_of(path)` gives decoded values (None for null)."""
    if isinstance(cond, Always):
        return True
    if isinstance(cond, All):
        return all(holds(c, value_of) for c in cond.children)
    if isinstance(cond, AnyOf):
        return any(holds(c, value_of) for c in cond.children)
    if isinstance(cond, Not):
        return not holds(cond.child, value_of)
    if isinstance(cond, Quantified):
        items = value_of(cond.path) or []
        def item_value(item):
            def get(path):
                value = item
                for part in path.split("."):
                    value = None if value is None else value.get(part)
                return value
            return get
        results = [holds(cond.cond, item_value(item)) for item in items]
        return any(results) if cond.quantifier == "any" else all(results)
    return _compare(cond, value_of)


def _compare(c: Compare, value_of) -> bool:
    other = value_of(c.operand.name) if c.operand.kind == "field" else c.operand.value
    return compare(c.op, c.type, value_of(c.path), other)


class ReferenceInterpreter:
    def __init__(self, ruleset: Ruleset):
        self.ruleset = ruleset
        self.writers: dict[str, list[Rule]] = {}
        for rule in ruleset.rules:
            for name in rule.effect.writes():
                self.writers.setdefault(f"{RESULT_ROOT}.{name}", []).append(rule)
            if rule.effect.outcome:
                self.writers.setdefault(f"{DECISION_ROOT}.outcome", []).append(rule)
        self.stage_of_result = {name: ruleset.result_stage(name) for name in ruleset.results}
        self.stage_map = ruleset.stage_map

    def evaluate(self, data: dict, *, uses: dict | None = None) -> dict:
        """Returns {outcome, reasons: [codes...], results, fired: [rule ids]} in the engine's order."""
        run = _Run(self, data, uses or {})
        for rule in self.ruleset.rules:
            run.ensure(rule)
        order = {s.id: s.index for s in self.ruleset.stages}
        fired = sorted((r for r in self.ruleset.rules if run.fired.get(r.id)), key=lambda r: (order[r.stage], r.index))
        results = {}
        for name in self.ruleset.results:
            value = run.result(name)
            if value is not _UNSET:
                results[name] = value
        return {
            "outcome": _OUTCOMES[run.severity],
            "reasons": [r.effect.reason for r in fired if r.effect.outcome],
            "results": results,
            "fired": [r.id for r in fired],
        }


_UNSET = object()


class _Run:
    def __init__(self, interp: ReferenceInterpreter, data, uses):
        self.i = interp
        self.data = data
        self.uses = uses
        self.fired: dict[str, bool] = {}
        self.sets: dict[str, object] = {}
        self.adds: dict[str, set] = {}
        self.severity = 0
        self.gates: dict[str, bool] = {}

    def gate(self, stage_id: str) -> bool:
        if stage_id not in self.gates:
            stage = self.i.stage_map[stage_id]
            if stage.gate is None:
                self.gates[stage_id] = True
            else:
                self._prepare(condition_reads(stage.gate))
                self.gates[stage_id] = holds(stage.gate, self.value)
        return self.gates[stage_id]

    def result(self, name: str):
        """Final value of a result, or _UNSET (all its writers must have run)."""
        for writer in self.i.writers.get(f"{RESULT_ROOT}.{name}", []):
            self.ensure(writer)
        spec = self.i.ruleset.results[name]
        if spec.type.kind == "list":
            if name in self.adds:
                order = {v: k for k, v in enumerate(spec.type.items.values)}
                return sorted(self.adds[name], key=order.__getitem__)
        elif name in self.sets:
            return self.sets[name]
        stage = self.i.stage_of_result.get(name)
        if spec.default is not MISSING and stage is not None and self.gate(stage):
            return list(spec.default) if isinstance(spec.default, list) else spec.default
        return _UNSET

    def _prepare(self, paths):
        for p in paths:
            head = p.split("[*]")[0]
            if head.startswith(DECISION_ROOT + "."):
                for writer in self.i.writers.get(f"{DECISION_ROOT}.outcome", []):
                    self.ensure(writer)
            elif head.startswith(RESULT_ROOT + "."):
                self.result(head.split(".")[1])

    def value(self, path: str):
        parts = path.split(".")
        root = parts[0]
        if root == RESULT_ROOT:
            v = self.result(parts[1])
            return None if v is _UNSET else v
        if root == USES_ROOT:
            used = self.uses[parts[1]]
            return used.outcome if parts[2] == "outcome" else used.results.get(parts[2])
        if root == DECISION_ROOT:
            return _OUTCOMES[self.severity]
        if root == PARAMS_ROOT:
            return self.i.ruleset.parameters[parts[1]].value
        value = self.data
        for part in parts:
            value = None if value is None else value.get(part)
        return value

    def ensure(self, rule: Rule) -> None:
        if rule.id in self.fired:
            return
        self.fired[rule.id] = False  # guards against re-entry; cycles are refused at load
        paths = list(condition_reads(rule.condition))
        for _, source in rule.effect.sets + rule.effect.adds:
            paths += source.reads()
        self._prepare(paths)
        if not holds(rule.condition, self.value):
            return
        self.fired[rule.id] = True
        effect = rule.effect
        if effect.outcome:
            self.severity = max(self.severity, SEVERITY[effect.outcome])
        for name, source in effect.sets:
            value = self._resolve(source)
            spec = self.i.ruleset.results[name].type
            if isinstance(value, (int, Decimal)) and not isinstance(value, bool) and spec.kind == "decimal":
                value = expr.quantize(Decimal(value), spec.scale)
            if isinstance(value, Decimal) and spec.kind == "integer":
                value = int(expr.quantize(value, 0))
            if name in self.sets and self.sets[name] != value:
                raise EvaluationError(f"conflict on {name}")
            self.sets[name] = value
        for name, source in effect.adds:
            values = self._resolve(source)
            self.adds.setdefault(name, set()).update(values if isinstance(values, list) else [values])

    def _resolve(self, source):
        if source.kind in ("literal", "param"):
            return source.value
        if source.kind == "field":
            return self.value(source.name)
        return expr.evaluate(source.node, self.value)


__all__ = ["ReferenceInterpreter", "holds"]
