"""Whole-ruleset static checks, run before a ruleset may be published or loaded.

- `plan_waves`: the order rules can be matched in. A rule that reads a result must be
  matched after every rule that writes it; the rules are grouped into *waves* (wave 0
  reads only the input, wave n reads results written in waves < n). A cycle is an error.
- `unreachable_rules`: rules whose condition (with their stage's gate) no input can
  satisfy — contradictory bounds, a value excluded twice, a gate that rules it out.
- `conflicting_rules`: two rules of a stage that can fire together and set the same
  result to different values.

Satisfiability is decided on the condition's disjunctive normal form with an exact
domain per field: finite sets for booleans and enums, integer intervals for numbers
(scaled by their decimal places) and dates, prefix/candidate reasoning for strings.
Anything else (list tests, item quantifiers, field-to-field comparisons) is an opaque
atom: only `x and not x` is seen as a contradiction there.
"""
from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from dataclasses import dataclass

from service.errors import Problem
from service.rulesets.model import (
    DECISION_ROOT, RESULT_ROOT, All, Always, AnyOf, Compare, Not, Rule, Ruleset,
    condition_reads,
)
from service.rulesets.operators import OPERATORS, compare
from service.rulesets.types import TypeSpec

MAX_TERMS = 4096


# -- waves ------------------------------------------------------------------------


@dataclass(frozen=True)
class WavePlan:
    waves: tuple[tuple[Rule, ...], ...]  # rules per wave, in document order
    gate_wave: dict[str, int]  # stage id -> wave its gate is matched in (gated stages only)
    rule_wave: dict[str, int]


def rule_reads(rule: Rule) -> list[str]:
    """Everything a rule reads: its condition and the values its effect computes."""
    reads = list(rule.reads)
    for _, source in rule.effect.sets + rule.effect.adds:
        reads += [p for p in source.reads() if p not in reads]
    return reads


def _writers(ruleset: Ruleset):
    writers: dict[str, list[Rule]] = {}
    for rule in ruleset.rules:
        for name in rule.effect.writes():
            writers.setdefault(f"{RESULT_ROOT}.{name}", []).append(rule)
        if rule.effect.outcome:
            writers.setdefault(f"{DECISION_ROOT}.outcome", []).append(rule)
    return writers


def _deps(reads, writers):
    out = []
    for p in reads:
        key = p if not p.startswith(RESULT_ROOT + ".") else ".".join(p.split(".")[:2])
        out += writers.get(key, [])
    return out


def plan_waves(ruleset: Ruleset) -> tuple[WavePlan | None, list[Problem]]:
    writers = _writers(ruleset)
    deps = {r.id: _deps(rule_reads(r), writers) for r in ruleset.rules}
    problems: list[Problem] = []
    wave: dict[str, int] = {}
    state: dict[str, str] = {}

    def visit(rule: Rule, chain: list[str]) -> int | None:
        if state.get(rule.id) == "done":
            return wave[rule.id]
        if state.get(rule.id) == "active":
            cycle = chain[chain.index(rule.id):] + [rule.id]
            problems.append(Problem("rule_cycle", f"rules[{rule.index}]",
                                    f"rules depend on each other's results in a cycle: {' -> '.join(cycle)}"))
            return None
        state[rule.id] = "active"
        level = 0
        for dep in deps[rule.id]:
            sub = visit(dep, chain + [rule.id])
            if sub is None:
                return None
            level = max(level, sub + 1)
        state[rule.id] = "done"
        wave[rule.id] = level
        return level

    for rule in ruleset.rules:
        if visit(rule, []) is None:
            return None, problems[:1]
    gate_wave = {}
    for stage in ruleset.stages:
        if stage.gate is not None:
            gate_wave[stage.id] = max([wave[d.id] + 1 for d in _deps(condition_reads(stage.gate), writers)], default=0)
    count = max(list(wave.values()) + list(gate_wave.values()), default=0) + 1
    waves = tuple(tuple(r for r in ruleset.rules if wave[r.id] == w) for w in range(count))
    return WavePlan(waves=waves, gate_wave=gate_wave, rule_wave=wave), problems


# -- satisfiability -------------------------------------------------------------------


class Inconclusive(Exception):
    """The normal form grew beyond MAX_TERMS; the check cannot decide."""


@dataclass(frozen=True)
class Lit:
    atom: object  # Compare | Quantified
    positive: bool

    @property
    def key(self) -> str:
        return repr(self.atom)


def dnf(cond, negate=False) -> list[tuple[Lit, ...]]:
    """Disjunctive normal form: a list of conjunctions. [] = false, [()] = true."""
    if isinstance(cond, Always):
        return [] if negate else [()]
    if isinstance(cond, Not):
        return dnf(cond.child, not negate)
    if isinstance(cond, (All, AnyOf)):
        conjunctive = isinstance(cond, All) != negate
        parts = [dnf(c, negate) for c in cond.children]
        if conjunctive:
            terms: list[tuple[Lit, ...]] = [()]
            for part in parts:
                terms = [a + b for a in terms for b in part if satisfiable(a + b)]
                if len(terms) > MAX_TERMS:
                    raise Inconclusive()
            return terms
        out = [t for part in parts for t in part]
        if len(out) > MAX_TERMS:
            raise Inconclusive()
        return out
    if isinstance(cond, Compare) and OPERATORS[cond.op].shape.startswith("list") and cond.operand.kind == "literal":
        return _list_dnf(cond, negate)
    return [(Lit(cond, not negate),)]


def _list_dnf(cond: Compare, negate: bool) -> list[tuple[Lit, ...]]:
    """List tests as booleans per list: `empty`, and `has <value>` for each value tested."""
    if cond.op == "is_empty":
        return [(Lit(("empty", cond.path), cond.operand.value != negate),)]
    values = cond.operand.value if isinstance(cond.operand.value, list) else [cond.operand.value]
    lits = [Lit(("has", cond.path, v), not negate) for v in values]
    return [tuple(lits)] if negate else [(lit,) for lit in lits]


def satisfiable(conj: tuple[Lit, ...]) -> bool:
    by_path: dict[str, list[Lit]] = {}
    opaque: dict[str, bool] = {}
    for lit in conj:
        atom = lit.atom
        if isinstance(atom, Compare) and atom.operand.kind != "field" and atom.type.kind not in ("list", "object"):
            by_path.setdefault(atom.path, []).append(lit)
        elif isinstance(atom, Compare) and atom.op == "is_null" and atom.type.kind == "object":
            by_path.setdefault(atom.path, []).append(lit)
        else:
            if opaque.setdefault(lit.key, lit.positive) != lit.positive:
                return False
    # a list that has a value is not empty
    for lit in conj:
        if isinstance(lit.atom, tuple) and lit.atom[0] == "has" and lit.positive:
            if opaque.get(repr(("empty", lit.atom[1]))) is True:
                return False
    cache = _PATH_CACHE
    if cache is None:
        return all(_path_satisfiable(lits) for lits in by_path.values())
    for lits in by_path.values():
        # The atoms are the ruleset's own Compare objects, alive for the whole analysis.
        key = tuple((id(lit.atom), lit.positive) for lit in lits)
        ok = cache.get(key)
        if ok is None:
            ok = cache[key] = _path_satisfiable(lits)
        if not ok:
            return False
    return True


# Memo of _path_satisfiable during one conflicting_rules run (None outside it).
_PATH_CACHE: dict | None = None


def _holds(atom: Compare, value) -> bool:
    """Does `value` (None = null) satisfy the comparison? Comparisons on null are false."""
    return compare(atom.op, atom.type, value, atom.operand.value)


def _path_satisfiable(lits: list[Lit]) -> bool:
    t: TypeSpec = lits[0].atom.type
    def ok(value):
        return all(_holds(lit.atom, value) == lit.positive for lit in lits)

    if t.nullable and ok(None):
        return True
    if t.kind == "object":
        return all(not (lit.atom.op == "is_null" and lit.atom.operand.value == lit.positive) for lit in lits)
    if t.kind == "boolean":
        return ok(True) or ok(False)
    if t.kind == "enum":
        return any(ok(v) for v in t.values)
    if t.kind in ("integer", "decimal", "date"):
        return any(ok(v) for v in _numeric_candidates(t, lits))
    if t.kind == "string":
        return _string_satisfiable(lits, ok)
    return True


def _numeric_candidates(t: TypeSpec, lits):
    """Every boundary value and its neighbours, plus the type's own bounds: enough to decide."""
    step = Decimal(1).scaleb(-t.scale) if t.kind != "date" else dt.timedelta(days=1)
    points = set()
    for lit in lits:
        value = lit.atom.operand.value
        for v in (value if isinstance(value, list) else [value]):
            if v is None or isinstance(v, bool):
                continue
            points.update({v - step, v, v + step})
    if t.kind != "date":
        lo, hi = t.lower_bound(), t.upper_bound()
        for bound in (lo, hi):
            if bound is not None:
                points.update({bound - step, bound, bound + step})
        if not points:
            points.add(Decimal(0))
        candidates = [p for p in points if (t.min is None or p >= t.min) and (t.gt is None or p > t.gt)
                      and (t.max is None or p <= t.max) and (t.lt is None or p < t.lt)]
    else:
        candidates = [p for p in points if (t.min is None or p >= t.min) and (t.max is None or p <= t.max)]
        if not points:
            candidates = [dt.date(2000, 1, 1)]
    return candidates


def _string_satisfiable(lits, ok) -> bool:
    candidates = None
    groups, forbidden = [], []
    for lit in lits:
        atom = lit.atom
        value = atom.operand.value
        fixed = None
        if lit.positive and atom.op == "eq" or (not lit.positive and atom.op == "ne"):
            fixed = {value}
        elif lit.positive and atom.op == "in" or (not lit.positive and atom.op == "not_in"):
            fixed = set(value)
        if fixed is not None:
            candidates = fixed if candidates is None else candidates & fixed
        if atom.op == "starts_with":
            (groups if lit.positive else forbidden).append(list(value))
    if candidates is not None:
        return any(ok(c) for c in candidates)
    forbidden_prefixes = [p for group in forbidden for p in group]
    for combo in itertools.islice(itertools.product(*groups) if groups else [("",)], 10000):
        longest = max(combo, key=len)
        if all(longest.startswith(p) for p in combo) and not any(longest.startswith(f) for f in forbidden_prefixes):
            return True
    return False


def conditions_overlap(a, b) -> bool:
    """Can both conditions hold for one input? (raises Inconclusive when too large)"""
    return bool(dnf(All((a, b))))


def unreachable_rules(ruleset: Ruleset) -> list[Problem]:
    problems = []
    for rule in ruleset.rules:
        try:
            if not dnf(rule.condition):
                problems.append(Problem("unreachable_rule", f"rules[{rule.index}].when",
                                        f"rule {rule.id} can never fire: its condition (with the stage gate) is contradictory"))
        except Inconclusive:
            problems.append(Problem("analysis_inconclusive", f"rules[{rule.index}].when",
                                    f"rule {rule.id}: condition too large to check for reachability", severity="warning"))
    return problems


def conflicting_rules(ruleset: Ruleset) -> list[Problem]:
    global _PATH_CACHE
    _PATH_CACHE = {}
    try:
        return _conflicting_rules(ruleset)
    finally:
        _PATH_CACHE = None


def _conflicting_rules(ruleset: Ruleset) -> list[Problem]:
    problems = []
    setters: dict[str, list[tuple[Rule, object]]] = {}
    for rule in ruleset.rules:
        for name, source in rule.effect.sets:
            setters.setdefault(name, []).append((rule, source))
    dnfs: dict[str, object] = {}  # rule id -> its condition's DNF (or Inconclusive), computed once

    def dnf_of(rule):
        if rule.id not in dnfs:
            try:
                dnfs[rule.id] = dnf(rule.condition)
            except Inconclusive as exc:
                dnfs[rule.id] = exc
        if isinstance(dnfs[rule.id], Inconclusive):
            raise Inconclusive()
        return dnfs[rule.id]

    for name, entries in setters.items():
        for (ra, sa), (rb, sb) in itertools.combinations(entries, 2):
            if sa.kind in ("literal", "param") and sb.kind in ("literal", "param") and sa.value == sb.value:
                continue
            if sa.kind == sb.kind and sa.kind in ("field", "expr") and sa.name == sb.name:
                continue
            try:
                overlap = _terms_overlap(dnf_of(ra), dnf_of(rb))
            except Inconclusive:
                problems.append(Problem("analysis_inconclusive", f"rules[{rb.index}].then.set.{name}",
                                        f"could not prove {ra.id} and {rb.id} exclusive (conditions too large)", severity="warning"))
                continue
            if overlap:
                problems.append(Problem(
                    "conflicting_rules", f"rules[{rb.index}].then.set.{name}",
                    f"rules {ra.id} and {rb.id} can fire together and set result {name!r} to different values "
                    f"({_show(sa)} vs {_show(sb)}); make their conditions exclusive"))
    return problems


def _terms_overlap(a: list, b: list) -> bool:
    """conditions_overlap on the two DNFs already made: dnf(All((a, b))), step for step."""
    terms: list[tuple[Lit, ...]] = [()]
    for part in (a, b):
        terms = [x + y for x in terms for y in part if satisfiable(x + y)]
        if len(terms) > MAX_TERMS:
            raise Inconclusive()
    return bool(terms)


def _show(source):
    d = source.describe()
    return repr(d) if not isinstance(d, dict) else ", ".join(f"{k}: {v}" for k, v in d.items())


def static_check(ruleset: Ruleset) -> tuple[WavePlan | None, list[Problem]]:
    plan, problems = plan_waves(ruleset)
    problems = problems + unreachable_rules(ruleset) + conflicting_rules(ruleset)
    return plan, problems
