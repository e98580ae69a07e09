"""Evaluate one validated input against one compiled ruleset version.

The clock is never read here: `as_of` is passed in. One durable_rules session per
evaluation, one fact per wave (see compiler.py); between waves the fired rules'
effects are applied in document order, so later waves see the results of earlier ones
(`in_scope` from the scope stage gates targeting, rating_floor, mode and product).

Output is deterministic: reasons ordered by stage then rule, results in declaration
order with list results in their enum's order, trace in stage then rule order.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from service.engine.compiler import CompiledRuleset
from service.engine.facts import build_item_text
from service.errors import EvaluationError
from service.rulesets import expr
from service.rulesets.model import (
    DECISION_ROOT, PARAMS_ROOT, RESULT_ROOT, SEVERITY, USES_ROOT, Rule, Ruleset, ValueSource,
    condition_reads,
)
from service.rulesets.types import MISSING, check_value

@dataclass
class Evaluation:
    ruleset: Ruleset
    as_of: dt.date
    outcome: str
    reasons: list[dict]
    results: dict
    fired: list[str]  # rule ids, stage then document order
    uses: dict[str, "Evaluation"] = field(default_factory=dict)
    _state: "_State | None" = field(default=None, repr=False, compare=False)
    _record: dict | None = field(default=None, repr=False, compare=False)

    def trace(self, level: str = "full") -> list[dict]:
        """The trace at a level: one entry per rule (`full`) or per fired rule (`fired`)."""
        if level == "none":
            return []
        if level == "fired" and self._record is None:
            return self._state.fired_trace()  # only the values the fired rules read
        return self._state.ev.expand(self.record(), fired_only=level == "fired")

    def record(self) -> dict:
        """The full trace in normalised form, as the decision log keeps it: every value any
        rule's condition read (once), and the effect of every fired rule. With the
        ruleset version (immutable, identified by its sha256) it expands to the full
        trace exactly — see Evaluator.expand — without evaluating anything again."""
        if self._record is None:
            record = self._state.record()
            if self.uses:
                record["uses"] = {alias: {"ruleset": ruleset_ref(u.ruleset), **u.record()} for alias, u in self.uses.items()}
            self._record = record
        return self._record

    def summary(self, trace_level: str = "fired") -> dict:
        """The ruleset-specific part of a decision response."""
        out = {
            "outcome": self.outcome,
            "reasons": self.reasons,
            "results": self.results,
            "trace": self.trace(trace_level),
        }
        if self.uses:
            out["uses"] = {
                alias: {
                    "ruleset": ruleset_ref(u.ruleset),
                    "as_of": u.as_of.isoformat(),
                    "outcome": u.outcome,
                    "reasons": u.reasons,
                    "results": u.results,
                    "trace": u.trace(trace_level),
                }
                for alias, u in self.uses.items()
            }
        return out


def ruleset_ref(ruleset: Ruleset) -> dict:
    return {"name": ruleset.name, "version": ruleset.version, "sha256": ruleset.sha256}


@dataclass(frozen=True)
class _TraceRead:
    display: str
    parts: tuple[str, ...]  # path to the value (to the list, for item reads)
    item_parts: tuple[str, ...] | None  # inside each item, for `list[*].field`


def _trace_reads(rule: Rule) -> tuple[_TraceRead, ...]:
    out = []
    for display in condition_reads(rule.condition):
        if "[*]." in display:
            head, tail = display.split("[*].", 1)
            out.append(_TraceRead(display, tuple(head.split(".")), tuple(tail.split("."))))
        else:
            out.append(_TraceRead(display, tuple(display.split(".")), None))
    return tuple(out)


def declared_effect(rule: Rule) -> dict:
    """What a rule does when it fires, as written (for the trace of rules that did not)."""
    effect = rule.effect
    out: dict = {}
    if effect.outcome:
        out["outcome"] = effect.outcome
        out["reason"] = effect.reason
    if effect.sets:
        out["set"] = {name: src.describe() for name, src in effect.sets}
    if effect.adds:
        out["add"] = {name: src.describe() for name, src in effect.adds}
    return out


class Evaluator:
    """Everything about one compiled version that evaluation needs, prepared once."""

    def __init__(self, compiled: CompiledRuleset):
        self.compiled = compiled
        rs = compiled.ruleset
        self.ruleset = rs
        stage_order = {s.id: s.index for s in rs.stages}
        self.rules_in_order = sorted(rs.rules, key=lambda r: (stage_order[r.stage], r.index))
        self.rule_position = {r.id: i for i, r in enumerate(self.rules_in_order)}
        self.rule_by_id = {r.id: r for r in rs.rules}
        self.trace_reads = {r.id: _trace_reads(r) for r in rs.rules}
        self.read_displays = {rule_id: tuple(read.display for read in reads) for rule_id, reads in self.trace_reads.items()}
        self.all_reads = tuple({read.display: read for reads in self.trace_reads.values() for read in reads}.values())
        self.declared = {r.id: declared_effect(r) for r in rs.rules}
        self.reason_entry = {
            r.id: {"code": r.effect.reason, "rule_id": r.id, "stage": r.stage,
                   "message_zh": (r.effect.message or rs.reasons[r.effect.reason]).zh,
                   "message_en": (r.effect.message or rs.reasons[r.effect.reason]).en}
            for r in rs.rules if r.effect.outcome
        }
        self.params = {name: p.value for name, p in rs.parameters.items()}
        # Results that start with a default when their stage applies.
        self.defaults_by_stage: dict[str, list[tuple[str, object]]] = {}
        for name, f in rs.results.items():
            stage = rs.result_stage(name)
            if stage is not None and f.default is not MISSING:
                self.defaults_by_stage.setdefault(stage, []).append((name, f.default))
        self.ungated = [s.id for s in rs.stages if s.gate is None]
        self.list_order = {
            name: {v: i for i, v in enumerate(f.type.items.values)}
            for name, f in rs.results.items() if f.type.kind == "list"
        }
        self.fired_readers = {rule_id: tuple((read.display, _reader(read)) for read in reads)
                              for rule_id, reads in self.trace_reads.items()}
        # Per wave: a function writing each sub-wave's fact text straight from the state, and
        # which gate / rule (by position) each durable rule name belongs to, so that only the
        # names that fired are looked at, not every rule of the wave.
        self.wave_plans = tuple((wave, tuple(_fact_writer(sub, self.params) for sub in wave.subwaves),
                                 _owners(wave.gates), _owners(wave.rules))
                                for wave in compiled.waves)

    def expand(self, record: dict, *, fired_only: bool = False) -> list[dict]:
        """Trace entries, in stage then rule order, from a normalised trace record."""
        values, fired = record["values"], record["fired"]
        out = []
        for rule in self.rules_in_order:
            was_fired = rule.id in fired
            if fired_only and not was_fired:
                continue
            out.append({
                "rule_id": rule.id,
                "stage": rule.stage,
                "fired": was_fired,
                "inputs": {display: values[display] for display in self.read_displays[rule.id]},
                "effect": fired[rule.id] if was_fired else self.declared[rule.id],
            })
        return out

    def evaluate(self, data: dict, *, as_of: dt.date, uses: dict[str, Evaluation] | None = None) -> Evaluation:
        """`data` must already be validated against the ruleset's input schema."""
        state = _State(self, data, uses or {})
        for stage in self.ungated:
            state.apply_defaults(stage)
        with self.compiled.engine.session() as session:
            for wave, subwaves, gate_of, rule_of in self.wave_plans:
                matched = {q.key: _any_item_matches(session, q, state.lookup(q.list_path)) for q in wave.quantifiers}
                names: set[str] = set()
                for write in subwaves:
                    names |= session.assert_text(write(state, matched))
                if not names:
                    continue
                gates, rules = wave.gates, wave.rules
                for i in sorted({i for name in names for i in gate_of.get(name, ())}):
                    state.apply_defaults(gates[i][0].id)
                for i in sorted({i for name in names for i in rule_of.get(name, ())}):
                    state.fire(rules[i][0])
        return state.finish(as_of)


def _owners(units) -> dict[str, tuple[int, ...]]:
    """durable rule name -> the positions (in `units`, document order) of the gates or rules
    it is a term of."""
    out: dict[str, list[int]] = {}
    for i, (_, terms) in enumerate(units):
        for name in terms:
            out.setdefault(name, []).append(i)
    return {name: tuple(positions) for name, positions in out.items()}


def _any_item_matches(session, q, items) -> bool:
    """Does some item of the list match the quantifier's item condition? (one fact per item)"""
    for item in items or ():
        if session.assert_text(build_item_text(q, item)) & q.term_names:
            return True
    return False


def _reader(read: _TraceRead):
    """state -> the value a trace entry shows for one read (_State.read_value, specialised)."""
    parts, item_parts = read.parts, read.item_parts
    root = parts[0]
    if item_parts is not None or root in (RESULT_ROOT, USES_ROOT, DECISION_ROOT, PARAMS_ROOT) or len(parts) > 2:
        return lambda state: state.read_value(read)
    if len(parts) == 1:
        return lambda state: state.data.get(root)
    leaf = parts[1]

    def two(state):
        value = state.data.get(root)
        return None if value is None else value.get(leaf)
    return two


def _fact_writer(sub, params: dict):
    """write(state, matched) -> the sub-wave's fact text (without its closing brace): one
    straight-line function per sub-wave, generated once when the version loads, reading
    exactly what _State.value reads for each need and writing it with the need's piece
    (facts.make_piece). A parameter's piece is constant text, written in."""
    ns: dict = {"HEAD": sub.head, "OUTCOME": _OUTCOME_BY_SEVERITY}
    lines = ["def write(state, matched):", "    data = state.data", "    results = state.results", "    parts = [HEAD]"]
    for i, (parts, piece) in enumerate(sub.pieces):
        root = parts[0]
        if root == PARAMS_ROOT:
            text = piece(params[parts[1]])
            if text:
                ns[f"C{i}"] = text
                lines.append(f"    parts.append(C{i})")
            continue
        ns[f"P{i}"] = piece
        if root == RESULT_ROOT:
            lines.append(f"    v = results.get({parts[1]!r})")
        elif root == USES_ROOT:
            used = f"state.uses[{parts[1]!r}]"
            lines.append(f"    v = {used}.outcome" if parts[2] == "outcome" else f"    v = {used}.results.get({parts[2]!r})")
        elif root == DECISION_ROOT:
            lines.append("    v = OUTCOME[state.severity]")
        else:
            lines.append(f"    v = data.get({root!r})")
            for part in parts[1:]:
                lines.append(f"    if v is not None: v = v.get({part!r})")
        lines += [f"    t = P{i}(v)", "    if t: parts.append(t)"]
    for j, (key, true_text, false_text) in enumerate(sub.quantifier_texts):
        ns[f"QT{j}"], ns[f"QF{j}"] = true_text, false_text
        lines.append(f"    parts.append(QT{j} if matched[{key!r}] else QF{j})")
    lines.append("    return ', '.join(parts)")
    exec(compile("\n".join(lines), f"<fact writer {sub.kind}>", "exec"), ns)  # noqa: S102 - our own code, from validated names
    return ns["write"]


class _State:
    """The evolving state of one evaluation."""

    def __init__(self, ev: Evaluator, data: dict, uses: dict[str, Evaluation]):
        self.ev = ev
        self.data = data
        self.uses = uses
        self.results: dict = {}
        self.set_by: dict[str, str] = {}
        self.severity = 0
        self.fired: dict[str, dict] = {}
        self.fired_in_order: list[str] = []  # set by finish()

    # -- reading ----------------------------------------------------------------

    def lookup(self, path: str):
        return self.value(path.split("."))

    def value(self, parts):
        root = parts[0]
        if root == RESULT_ROOT:
            return self.results.get(parts[1])
        if root == USES_ROOT:
            used = self.uses[parts[1]]
            return used.outcome if parts[2] == "outcome" else used.results.get(parts[2])
        if root == DECISION_ROOT:
            return _OUTCOME_BY_SEVERITY[self.severity]
        if root == PARAMS_ROOT:
            return self.ev.params[parts[1]]
        value = self.data
        for part in parts:
            if value is None:
                return None
            value = value.get(part)
        return value

    # -- writing ----------------------------------------------------------------

    def apply_defaults(self, stage_id: str) -> None:
        for name, default in self.ev.defaults_by_stage.get(stage_id, ()):
            self.results.setdefault(name, list(default) if isinstance(default, list) else default)

    def resolve(self, source: ValueSource):
        if source.kind in ("literal", "param"):
            return list(source.value) if isinstance(source.value, list) else source.value
        if source.kind == "field":
            return self.lookup(source.name)
        return expr.evaluate(source.node, self.lookup)

    def fire(self, rule: Rule) -> None:
        effect = rule.effect
        done: dict = {}
        if effect.outcome:
            self.severity = max(self.severity, SEVERITY[effect.outcome])
            done["outcome"] = effect.outcome
            done["reason"] = effect.reason
        if effect.sets:
            done["set"] = {}
            for name, source in effect.sets:
                value = self.coerce(name, self.resolve(source), rule)
                if name in self.set_by and self.results.get(name) != value:
                    raise EvaluationError(
                        f"rules {self.set_by[name]} and {rule.id} set result {name!r} to different values")
                self.results[name] = value
                self.set_by[name] = rule.id
                done["set"][name] = value
        if effect.adds:
            done["add"] = {}
            for name, source in effect.adds:
                values = self.resolve(source)
                values = values if isinstance(values, list) else [values]
                order = self.ev.list_order[name]
                current = self.results.get(name) or []
                merged = set(current) | set(values)
                self.results[name] = sorted(merged, key=order.__getitem__)
                done["add"][name] = values
        self.fired[rule.id] = done

    def coerce(self, name: str, value, rule: Rule):
        spec = self.ev.ruleset.results[name].type
        if value is not None and spec.kind == "decimal" and isinstance(value, (Decimal, int)) and not isinstance(value, bool):
            value = expr.quantize(Decimal(value), spec.scale, result=name)
        elif value is not None and spec.kind == "integer" and isinstance(value, Decimal):
            value = int(expr.quantize(value, 0, result=name))
        ok, checked = check_value(spec, value)
        if not ok:
            raise EvaluationError(f"rule {rule.id} computed {value!r} for result {name!r}: {checked}")
        return checked

    # -- output -----------------------------------------------------------------

    def finish(self, as_of: dt.date) -> Evaluation:
        ev = self.ev
        rs = ev.ruleset
        # Only the fired rules, put in stage then rule order (not a walk over every rule).
        fired_ids = sorted(self.fired, key=ev.rule_position.__getitem__)
        self.fired_in_order = fired_ids
        reason_entry = ev.reason_entry
        reasons = [reason_entry[rule_id] for rule_id in fired_ids if rule_id in reason_entry]
        results = {name: self.results[name] for name in rs.results if name in self.results}
        return Evaluation(ruleset=rs, as_of=as_of, outcome=_OUTCOME_BY_SEVERITY[self.severity], reasons=reasons,
                          results=results, fired=fired_ids, uses=self.uses, _state=self)

    def read_value(self, read: _TraceRead):
        value = self.value(read.parts)
        if read.item_parts is not None:
            value = [_dig(item, read.item_parts) for item in value or ()]
        return value

    def fired_trace(self) -> list[dict]:
        """Evaluator.expand(self.record(), fired_only=True), reading only the fired rules' values."""
        ev = self.ev
        rule_by_id, readers, fired = ev.rule_by_id, ev.fired_readers, self.fired
        return [{"rule_id": rule_id, "stage": rule_by_id[rule_id].stage, "fired": True,
                 "inputs": {display: read(self) for display, read in readers[rule_id]},
                 "effect": fired[rule_id]}
                for rule_id in self.fired_in_order]

    def record(self) -> dict:
        ev = self.ev
        values = {}
        for read in ev.all_reads:
            value = self.value(read.parts)
            if read.item_parts is not None:
                value = [_dig(item, read.item_parts) for item in value or ()]
            values[read.display] = value
        return {"values": values, "fired": {rule_id: self.fired[rule_id] for rule_id in self.fired_in_order}}


def _dig(value, parts):
    for part in parts:
        if value is None:
            return None
        value = value.get(part)
    return value


_OUTCOME_BY_SEVERITY = {v: k for k, v in SEVERITY.items()}
