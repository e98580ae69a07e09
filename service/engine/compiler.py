"""Compile a parsed ruleset into durable_rules' JSON ruleset form, once, at load time.

durable-rules 2.0.28 matches reliably only a narrow shape, so that is all we emit:
every durable rule is a plain conjunction of simple tests on one flat fact —
`{"$and": [{"_w": "<fact kind>"}, test, test, ...]}` — with no `$or`, no `$iany`/`$iall`,
no `$nex`. Measured on this machine (tests/engine/test_durable_hazards.py):
- `$or` or `$and` inside `$iany`/`$iall` gives wrong answers and, nested deeper,
  corrupts the heap (glibc aborts with "free(): invalid size");
- `$nex` fires when the field exists; a `$m` reference to a missing field is true;
- more than 64 alpha branches pending for one fact fails with error 303, more than 255
  properties in one fact with error 302.

So:
- A rule's condition is put in disjunctive normal form over these tests; each term
  becomes one durable rule `r<rule index>_<term>`, and the rule fired when any term did.
- Facts are flat (written by facts.py). Each path has a short key `k<n>`, numbered per
  ruleset version (durable_rules' cost grows with the fact's size); companions carry what the engine cannot ask directly: `<key>___null` (null or not),
  `<key>___pN` (the value's first N characters, for `starts_with`), `<key>___empty` and
  `<key>___hasI` (list emptiness and membership of the enum's I-th value).
  Numbers are integers scaled by their declared decimal places, ordered enums ranks,
  dates yyyymmdd: every comparison is exact.
- `any_item`/`all_items` are matched per item: each list item is asserted as its own
  fact against the rules of the quantifier's item condition, and the existence of a
  match is a boolean `___qN` in the main fact.
- Negation is pushed down to the tests with SQL-like null semantics: every comparison on
  a null value is false, so `not (x < 5)` is `x is null or x >= 5`.
- Each wave's rules are split into sub-waves (one fact each) of at most
  MAX_TERMS_PER_FACT terms and MAX_PROPERTIES_PER_FACT properties.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from service.engine.durable import DurableRuleset
from service.engine.facts import Need, encode_scalar, fact_head, make_piece, make_writer, quantifier_pieces
from service.rulesets.analysis import WavePlan
from service.rulesets.model import All, Always, AnyOf, Compare, Not, Quantified, Rule, Ruleset, Stage
from service.rulesets.operators import OPERATORS
from service.rulesets.types import TypeSpec

MAX_TERMS_PER_RULE = 256
MAX_TERMS_PER_FACT = 60  # < 64 pending alpha branches (error 303): one per term at most
MAX_PROPERTIES_PER_FACT = 200



class CompileError(ValueError):
    """The ruleset cannot be expressed within the engine's limits (a load-time problem)."""


# -- conditions -> DNF of engine tests ----------------------------------------------------
# A term is a tuple of tests; a test is a (json-key, test-dict) pair so duplicates and
# contradictions can be spotted. A condition compiles to a list of terms.

Test = tuple[str, str]  # (canonical json text, used for dedup/ordering)


def _test(d: dict) -> tuple[str, dict]:
    return (json.dumps(d, sort_keys=True, ensure_ascii=False), d)


def _product(a: list, b: list) -> list:
    out = []
    for x in a:
        for y in b:
            merged = dict(x)
            merged.update(y)
            out.append(merged)
            if len(out) > MAX_TERMS_PER_RULE * 4:
                raise CompileError(f"condition expands to more than {MAX_TERMS_PER_RULE} alternatives; split the rule")
    return out


_TRUE = [{}]  # one empty term
_FALSE: list = []


class _Compiler:
    """Compiles conditions of one fact kind; records what the fact needs."""

    def __init__(self, quantifiers: "_Quantifiers", item: bool = False):
        self.needs: dict[str, Need] = {}
        self.quantifiers = quantifiers
        self.item = item

    def need(self, path: str, t: TypeSpec, **what) -> str:
        n = Need(path, t, key=self.quantifiers.key(path))
        for k, v in what.items():
            if isinstance(getattr(n, k), set):
                getattr(n, k).update(v)
            else:
                setattr(n, k, v)
        if path in self.needs:
            self.needs[path].merge(n)
        else:
            self.needs[path] = n
        return n.key

    def cond(self, c, neg: bool) -> list[dict]:
        """DNF: a list of terms, each a dict test-text -> test."""
        if isinstance(c, Always):
            return _FALSE if neg else _TRUE
        if isinstance(c, Not):
            return self.cond(c.child, not neg)
        if isinstance(c, (All, AnyOf)):
            parts = [self.cond(child, neg) for child in c.children]
            if isinstance(c, All) != neg:
                terms = _TRUE
                for part in parts:
                    terms = _simplify(_product(terms, part))
                return terms
            return _simplify([t for part in parts for t in part])
        if isinstance(c, Quantified):
            if self.item:
                raise CompileError("quantifiers cannot be nested")
            qkey = self.quantifiers.add(c)
            # ___qN is "some item matches the quantifier's item condition" (see _Quantifiers)
            want = (c.quantifier == "any") != neg
            return [dict([_test({qkey: want})])]
        return self.compare(c, neg)

    def null_term(self, path, t, is_null: bool) -> dict:
        key = self.need(path, t, null=True)
        return dict([_test({key + "___null": is_null})])

    def compare(self, c: Compare, neg: bool) -> list[dict]:
        op, t, operand = c.op, c.type, c.operand
        path = c.path
        if op == "is_null":
            return [self.null_term(path, t, operand.value != neg)]
        if op == "is_empty":
            key = self.need(path, t, empty=True)
            return [dict([_test({key + "___empty": operand.value != neg})])]
        if op in ("contains", "contains_any"):
            values = operand.value if isinstance(operand.value, list) else [operand.value]
            idx = [t.items.values.index(v) for v in values]
            key = self.need(path, t, has=idx)
            if not neg:
                return [dict([_test({f"{key}___has{i}": True})]) for i in idx]
            return [dict(_test({f"{key}___has{i}": False}) for i in idx)]
        if operand.kind == "field":
            return self.field_compare(c, neg)
        guard_null = [self.null_term(path, t, True)] if t.nullable else _FALSE
        not_null = self.null_term(path, t, False) if t.nullable else {}
        if op == "starts_with":
            tests = []
            for prefix in operand.value:
                key = self.need(path, t, prefixes={len(prefix)})
                tests.append((f"{key}___p{len(prefix)}", prefix))
            if not neg:
                return [dict([*not_null.items(), _test({k: p})]) for k, p in tests]
            return guard_null + [dict([*not_null.items(), *(_test({"$neq": {k: p}}) for k, p in tests)])]
        key = self.need(path, t, value=True)
        if op in ("in", "not_in"):
            encoded = [encode_scalar(t, v) for v in operand.value]
            member = [dict([*not_null.items(), _test({key: v})]) for v in encoded]
            outside = dict([*not_null.items(), *(_test({"$neq": {key: v}}) for v in encoded)])
            if (op == "in") != neg:
                return member
            return (guard_null + [outside]) if neg else [outside]
        value = encode_scalar(t, operand.value)
        test = _durable_test(op, neg, key, value)
        if not neg:
            return [dict([*not_null.items(), _test(test)])]
        # not (x < v)  ==  x is null or x >= v (and not (x != v)  ==  x is null or x == v)
        return guard_null + [dict([*not_null.items(), _test(test)])]

    def field_compare(self, c: Compare, neg: bool) -> list[dict]:
        op, t, other_path, ot = c.op, c.type, c.operand.name, c.operand.type
        guards_null = []
        both_present = {}
        for p, pt in ((c.path, t), (other_path, ot)):
            if pt.nullable:
                guards_null.append(self.null_term(p, pt, True))
                both_present.update(self.null_term(p, pt, False))
        if op in ("in", "not_in"):
            # x in L, x an enum: x has exactly one value v, so test (x == v and v's has-flag).
            values = ot.items.values
            key = self.need(c.path, t, value=True)
            lkey = self.need(other_path, ot, has=range(len(values)))
            want = (op == "in") != neg
            terms = [dict([*both_present.items(), _test({key: encode_scalar(t, v)}), _test({f"{lkey}___has{i}": want})])
                     for i, v in enumerate(values)]
            return ([self.null_term(c.path, t, True)] if neg and t.nullable else []) + terms
        key = self.need(c.path, t, value=True)
        okey = self.need(other_path, ot, value=True)
        test = _durable_test(op, neg, key, {"$m": okey})
        if not neg:
            return [dict([*both_present.items(), _test(test)])]
        return guards_null + [dict([*both_present.items(), _test(test)])]


def _durable_test(op: str, neg: bool, key: str, value) -> dict:
    """The durable_rules test of `key op value` (or of its negation on a non-null value), from the operator table."""
    spec = OPERATORS[op]
    name = spec.durable_negated if neg else spec.durable
    return {key: value} if name is None else {name: {key: value}}


def _simplify(terms: list[dict]) -> list[dict]:
    """Drop terms that test one key for two different equal values, and duplicate terms."""
    out, seen = [], set()
    for term in terms:
        eq: dict[str, object] = {}
        ok = True
        for test in term.values():
            ((k, v),) = test.items()
            if not k.startswith("$"):
                if k in eq and eq[k] != v:
                    ok = False
                    break
                eq[k] = v
        if ok:
            for test in term.values():
                ((k, v),) = test.items()
                if k == "$neq":
                    ((nk, nv),) = v.items()
                    if nk in eq and eq[nk] == nv and not isinstance(nv, dict):
                        ok = False
                        break
        signature = tuple(sorted(term))
        if ok and signature not in seen:
            seen.add(signature)
            out.append(term)
    if len(out) > MAX_TERMS_PER_RULE:
        raise CompileError(f"condition expands to {len(out)} alternatives (at most {MAX_TERMS_PER_RULE}); split the rule")
    return out


# -- quantifiers ---------------------------------------------------------------------------


@dataclass
class CompiledQuantifier:
    index: int
    key: str  # ___qN in the main fact
    list_path: str
    item_type: TypeSpec
    kind: str  # fact kind of its item facts
    needs: dict[str, Need]
    term_names: frozenset[str]
    writers: tuple = ()  # (path parts, dict writer): the reference form
    pieces: tuple = ()  # (path parts, text piece), built once
    head: str = ""

    def __post_init__(self):
        self.writers = tuple((tuple(n.path.split(".")), make_writer(n)) for n in self.needs.values())
        self.pieces = tuple((tuple(n.path.split(".")), make_piece(n)) for n in self.needs.values())
        self.head = fact_head(self.kind)


class _Quantifiers:
    """What every condition compiler of one ruleset shares: the quantifiers, and the fact keys."""

    def __init__(self, definition: dict):
        self.definition = definition
        self.by_text: dict[str, CompiledQuantifier] = {}
        self.in_wave: list[CompiledQuantifier] = []
        self.keys: dict[str, str] = {}

    def key(self, path: str) -> str:
        """The short fact key of a path (item paths share the table: they live in other facts)."""
        key = self.keys.get(path)
        if key is None:
            key = self.keys[path] = f"k{len(self.keys)}"
        return key

    def add(self, q: Quantified) -> str:
        text = repr((q.path, q.quantifier, q.cond))
        existing = self.by_text.get(text)
        if existing is None:
            index = len(self.by_text)
            item_compiler = _Compiler(self, item=True)
            # any_item(c): some item matches c. all_items(c): no item matches not-c.
            terms = item_compiler.cond(q.cond, neg=(q.quantifier == "all"))
            kind = f"q{index}"
            names = []
            for t, term in enumerate(terms):
                name = f"q{index}_{t}"
                self.definition[name] = _pattern(kind, term)
                names.append(name)
            existing = CompiledQuantifier(index, f"___q{index}", q.path, q.type.items, kind,
                                          item_compiler.needs, frozenset(names))
            self.by_text[text] = existing
        if existing not in self.in_wave:
            self.in_wave.append(existing)
        return existing.key


# -- the compiled form -----------------------------------------------------------------------


@dataclass
class SubWave:
    kind: str  # the fact's `_w`
    needs: tuple[Need, ...]
    quantifiers: tuple[str, ...]  # ___qN keys this fact carries
    writers: tuple = ()  # (path parts, dict writer) per need: the reference form
    pieces: tuple = ()  # (path parts, text piece) per need, built once
    head: str = ""
    quantifier_texts: tuple = ()  # (___qN, its text when true, when false)

    def __post_init__(self):
        self.writers = tuple((tuple(n.path.split(".")), make_writer(n)) for n in self.needs)
        self.pieces = tuple((tuple(n.path.split(".")), make_piece(n)) for n in self.needs)
        self.head = fact_head(self.kind)
        self.quantifier_texts = tuple((key, *quantifier_pieces(key)) for key in self.quantifiers)


@dataclass
class CompiledWave:
    index: int
    subwaves: tuple[SubWave, ...]
    rules: tuple[tuple[Rule, frozenset[str]], ...]  # rule, its term names; document order
    gates: tuple[tuple[Stage, frozenset[str]], ...]
    quantifiers: tuple[CompiledQuantifier, ...]


@dataclass
class CompiledRuleset:
    ruleset: Ruleset
    plan: WavePlan
    waves: tuple[CompiledWave, ...]
    definition: dict
    engine: DurableRuleset


def _pattern(kind: str, term: dict) -> dict:
    tests = [{"_w": kind}] + [term[k] for k in sorted(term, key=_test_order)]
    return {"all": [{"m": {"$and": tests}}]}


def _test_order(text: str):
    # null guards first (a `$m` reference must never meet a missing field), then the rest.
    return (0 if "___null" in text else 1, text)


def compile_ruleset(ruleset: Ruleset, plan: WavePlan) -> CompiledRuleset:
    definition: dict = {}
    quantifiers = _Quantifiers(definition)
    waves = []
    for w, rules in enumerate(plan.waves):
        quantifiers.in_wave = []
        units = []  # (owner, terms, needs) for rules and gates of this wave
        for rule in rules:
            c = _Compiler(quantifiers)
            try:
                terms = c.cond(rule.condition, False)
            except CompileError as exc:
                raise CompileError(f"rule {rule.id}: {exc}") from None
            units.append((rule, terms, c.needs))
        for stage in ruleset.stages:
            if stage.gate is not None and plan.gate_wave.get(stage.id) == w:
                c = _Compiler(quantifiers)
                units.append((stage, c.cond(stage.gate, False), c.needs))
        subwaves, names = _split(w, units, definition)
        wave_quantifiers = tuple(quantifiers.in_wave)
        waves.append(CompiledWave(
            index=w,
            subwaves=subwaves,
            rules=tuple((u[0], names[id(u[0])]) for u in units if isinstance(u[0], Rule)),
            gates=tuple((u[0], names[id(u[0])]) for u in units if isinstance(u[0], Stage)),
            quantifiers=wave_quantifiers,
        ))
    engine = DurableRuleset(ruleset.key, definition)
    return CompiledRuleset(ruleset=ruleset, plan=plan, waves=tuple(waves), definition=definition, engine=engine)


def _split(w: int, units, definition) -> tuple[tuple[SubWave, ...], dict[int, frozenset[str]]]:
    """Pack rules into facts of bounded size; register their durable rules."""
    subwaves, names = [], {}
    current: list = []

    def flush():
        if not current:
            return
        kind = f"{w}.{len(subwaves)}"
        needs: dict[str, Need] = {}
        qs = []
        for owner, terms, unit_needs in current:
            prefix = f"r{owner.index}" if isinstance(owner, Rule) else f"g{owner.index}"
            term_names = []
            for t, term in enumerate(terms):
                name = f"{prefix}_{t}"
                definition[name] = _pattern(kind, term)
                term_names.append(name)
                for test in term:
                    if "___q" in test:
                        qkey = test.split('"')[1]
                        qs.append(qkey)
            names[id(owner)] = frozenset(term_names)
            for path, need in unit_needs.items():
                if path in needs:
                    needs[path].merge(need)
                else:
                    needs[path] = need.copy()
        subwaves.append(SubWave(kind, tuple(needs.values()), tuple(dict.fromkeys(qs))))
        current.clear()

    def size(group):
        terms = sum(len(u[1]) for u in group)
        props: dict[str, Need] = {}
        for _, _, unit_needs in group:
            for path, need in unit_needs.items():
                props.setdefault(path, Need(path, need.type)).merge(need)
        return terms, sum(n.property_count() for n in props.values())

    for unit in units:
        terms, props = size([unit])
        if terms > MAX_TERMS_PER_FACT or props > MAX_PROPERTIES_PER_FACT:
            owner = unit[0]
            what = f"rule {owner.id}" if isinstance(owner, Rule) else f"the gate of stage {owner.id}"
            raise CompileError(f"{what} is too large for the engine ({terms} alternatives, {props} properties)")
        t, p = size(current + [unit])
        if current and (t > MAX_TERMS_PER_FACT or p > MAX_PROPERTIES_PER_FACT):
            flush()
        current.append(unit)
    flush()
    return tuple(subwaves), names
