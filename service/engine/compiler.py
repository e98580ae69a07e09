"""Compile a parsed ruleset into durable_rules' JSON ruleset form, once, at load time.

Layout of what the engine sees:
- Each rule becomes one durable rule named `r<index>`; each gated stage's gate becomes
  `g<stage index>`. A rule's pattern is `{w: <its wave>} and <its condition>`.
- Each wave is one fact asserted into the evaluation's session. It carries only the
  paths that wave's rules read, encoded exactly (see `encode`): numbers as integers
  scaled by their declared decimal places, ordered enums as ranks, dates as yyyymmdd,
  plus companion keys `<name>__isnull`, `<name>__empty` and `<name>__prefixes` so that
  null, empty lists and prefix tests can be matched — and negated — without relying on
  the engine's handling of missing fields (which is inconsistent: `$nex` misfires).
- Negation is pushed down to the atoms (durable_rules has no `not` on an expression),
  with SQL-like null semantics: every comparison on a null value is false, so
  `not (x < 5)` is `x is null or x >= 5`.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from service.engine.durable import DurableRuleset
from service.rulesets.analysis import WavePlan
from service.rulesets.model import (
    All, Always, AnyOf, Compare, Not, Quantified, Rule, Ruleset, Stage, condition_reads, root_paths,
)
from service.rulesets.types import TypeSpec

NEGATED = {"eq": "$neq", "ne": None, "lt": "$gte", "le": "$gt", "gt": "$lte", "ge": "$lt"}
POSITIVE = {"eq": None, "ne": "$neq", "lt": "$lt", "le": "$lte", "gt": "$gt", "ge": "$gte"}


class EncodingError(TypeError):
    """A value of the wrong Python type reached the engine (input was not validated)."""


# -- values -------------------------------------------------------------------------


def encode_scalar(t: TypeSpec, value):
    """A validated domain value -> the exact JSON value the engine compares."""
    kind = t.kind
    if kind == "boolean":
        if type(value) is not bool:
            raise EncodingError(f"expected a boolean, got {type(value).__name__}")
        return value
    if kind == "integer":
        if type(value) is not int:
            raise EncodingError(f"expected an integer, got {type(value).__name__}")
        return value
    if kind == "decimal":
        if type(value) is int:
            value = Decimal(value)
        if type(value) is not Decimal:
            raise EncodingError(f"expected a decimal, got {type(value).__name__}")
        scaled = value.scaleb(t.scale)
        integral = int(scaled)
        if scaled != integral:
            raise EncodingError(f"{value} has more than {t.scale} decimal places")
        return integral
    if kind == "string":
        if type(value) is not str:
            raise EncodingError(f"expected a string, got {type(value).__name__}")
        return value
    if kind == "enum":
        if type(value) is not str or value not in t.values:
            raise EncodingError(f"{value!r} is not one of {t.values}")
        return t.rank(value) if t.ordered else value
    if kind == "date":
        if type(value) is not dt.date:
            raise EncodingError(f"expected a date, got {type(value).__name__}")
        return value.year * 10000 + value.month * 100 + value.day
    raise EncodingError(f"cannot encode {kind}")


def put(target: dict, key: str, t: TypeSpec, value, prefixes: bool) -> None:
    """Write one value (and its companion keys) into a fact object."""
    if t.kind == "list":
        if value:
            items = t.items
            target[key] = [encode_object(items, v) if items.kind == "object" else encode_scalar(items, v) for v in value]
            target[key + "__empty"] = False
        else:
            target[key + "__empty"] = True
        return
    if value is None:
        target[key + "__isnull"] = True
        return
    target[key + "__isnull"] = False
    if t.kind == "object":
        return
    target[key] = encode_scalar(t, value)
    if prefixes:
        target[key + "__prefixes"] = [value[:i] for i in range(len(value) + 1)]


def encode_object(t: TypeSpec, value: dict) -> dict:
    out: dict = {"__item": True}
    for f in t.fields:
        put(out, f.name, f.type, value.get(f.name), prefixes=f.type.kind == "string" and (f.type.max_length or 999) <= 64)
    return out


# -- conditions ---------------------------------------------------------------------

_TRUE = object()
_FALSE = object()


def _and(parts):
    parts = [p for p in parts if p is not _TRUE]
    if any(p is _FALSE for p in parts):
        return _FALSE
    if not parts:
        return _TRUE
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _or(parts):
    parts = [p for p in parts if p is not _FALSE]
    if any(p is _TRUE for p in parts):
        return _TRUE
    if not parts:
        return _FALSE
    return parts[0] if len(parts) == 1 else {"$or": parts}


class _Encoder:
    """Compiles conditions; `resolve(path)` gives the encoded key for a read path."""

    def __init__(self, item_prefix: str = ""):
        self.prefix = item_prefix

    def key(self, path: str) -> str:
        return self.prefix + path

    def cond(self, c, neg: bool):
        if isinstance(c, Always):
            return _FALSE if neg else _TRUE
        if isinstance(c, Not):
            return self.cond(c.child, not neg)
        if isinstance(c, (All, AnyOf)):
            parts = [self.cond(child, neg) for child in c.children]
            return _and(parts) if isinstance(c, All) != neg else _or(parts)
        if isinstance(c, Quantified):
            return self.quantified(c, neg)
        return self.compare(c, neg)

    def quantified(self, q: Quantified, neg: bool):
        key = self.key(q.path)
        inner = _Encoder("$i.")
        want_any = (q.quantifier == "any") != neg
        body = inner.cond(q.cond, neg)
        if body is _TRUE:
            body = {"$i.__item": True}  # every encoded item carries __item: true
        if want_any:
            # some item satisfies body (under negation: some item violates the condition)
            return {"$iany": {key: body}} if body is not _FALSE else _FALSE
        # every item satisfies body; vacuously true on an empty list
        every = {"$iall": {key: body}} if body is not _FALSE else _FALSE
        return _or([{key + "__empty": True}, every])

    def isnull(self, path: str, is_null: bool):
        return {self.key(path) + "__isnull": is_null}

    def compare(self, c: Compare, neg: bool):
        op, key, t = c.op, self.key(c.path), c.type
        operand = c.operand
        nullable = t.nullable
        if op == "is_null":
            return self.isnull(c.path, operand.value != neg)
        if op == "is_empty":
            return {key + "__empty": operand.value != neg}
        if operand.kind == "field":
            return self.field_compare(c, neg)
        if op in ("contains", "contains_any"):
            values = operand.value if isinstance(operand.value, list) else [operand.value]
            enc = [encode_scalar(t.items, v) for v in values]
            if not neg:
                return {"$iany": {key: _or([{"$i": v} for v in enc])}}
            return _or([{key + "__empty": True}, {"$iall": {key: _and([{"$neq": {"$i": v}} for v in enc])}}])
        if op == "starts_with":
            pkey = key + "__prefixes"
            if not neg:
                return {"$iany": {pkey: _or([{"$i": p} for p in operand.value])}}
            body = {"$iall": {pkey: _and([{"$neq": {"$i": p} } for p in operand.value])}}
            return _or([self.isnull(c.path, True), body]) if nullable else body
        guard_null = self.isnull(c.path, True) if nullable else _FALSE
        not_null = self.isnull(c.path, False) if nullable else _TRUE
        if op in ("in", "not_in"):
            enc = [encode_scalar(t, v) for v in operand.value]
            member = _or([{key: v} for v in enc])
            outside = _and([{"$neq": {key: v}} for v in enc])
            positive = op == "in"
            if positive != neg:  # value is one of them
                return _and([not_null, member])
            return _or([guard_null, outside]) if neg else _and([not_null, outside])
        value = encode_scalar(t, operand.value)
        if not neg:
            test = {key: value} if op == "eq" else {POSITIVE[op]: {key: value}}
            return _and([not_null, test])
        if op == "ne":  # not (x != v)  ==  x is null or x == v
            return _or([guard_null, {key: value}])
        return _or([guard_null, {NEGATED[op]: {key: value}}])

    def field_compare(self, c: Compare, neg: bool):
        op, key, other = c.op, self.key(c.path), c.operand.name
        okey = self.key(other)
        nulls = []
        if c.type.nullable:
            nulls.append(c.path)
        if c.operand.type.nullable:
            nulls.append(other)
        any_null = _or([self.isnull(p, True) for p in nulls])
        none_null = _and([self.isnull(p, False) for p in nulls])
        ref = {"$m": okey}
        if op in ("in", "not_in"):
            member = {"$iany": {okey: {"$i": ref_item(key)}}}
            outside = _or([{okey + "__empty": True}, {"$iall": {okey: {"$neq": {"$i": ref_item(key)}}}}])
            if (op == "in") != neg:
                return _and([none_null, member])
            return _or([any_null, outside]) if neg else _and([none_null, outside])
        if not neg:
            test = {key: ref} if op == "eq" else {POSITIVE[op]: {key: ref}}
            return _and([none_null, test])
        if op == "ne":
            return _or([any_null, {key: ref}])
        return _or([any_null, {NEGATED[op]: {key: ref}}])


def ref_item(key: str) -> dict:
    return {"$m": key}


# -- projection: what each wave's fact carries ------------------------------------------


@dataclass(frozen=True)
class ReadPath:
    path: str  # e.g. applicant.credit_rating, result.segments, uses.size.size_class
    parts: tuple[str, ...]
    type: TypeSpec
    prefixes: bool  # also carry all prefixes (for starts_with)


@dataclass
class CompiledWave:
    index: int
    rules: tuple[tuple[str, Rule], ...]  # (durable name, rule) in document order
    gates: tuple[tuple[str, Stage], ...]  # (durable name, stage) in stage order
    reads: tuple[ReadPath, ...]


@dataclass
class CompiledRuleset:
    ruleset: Ruleset
    plan: WavePlan
    waves: tuple[CompiledWave, ...]
    definition: dict
    engine: DurableRuleset


def _collect_types(cond, out: dict[str, TypeSpec], prefix_paths: set[str]):
    if isinstance(cond, Compare):
        out[cond.path] = cond.type
        if cond.operand.kind == "field":
            out[cond.operand.name] = cond.operand.type
        if cond.op == "starts_with":
            prefix_paths.add(cond.path)
    elif isinstance(cond, Quantified):
        out[cond.path] = cond.type
    elif isinstance(cond, (All, AnyOf)):
        for child in cond.children:
            _collect_types(child, out, prefix_paths)
    elif isinstance(cond, Not):
        _collect_types(cond.child, out, prefix_paths)


def compile_ruleset(ruleset: Ruleset, plan: WavePlan) -> CompiledRuleset:
    definition: dict = {}
    waves = []
    for w, rules in enumerate(plan.waves):
        compiled_rules, types, prefix_paths = [], {}, set()
        for rule in rules:
            name = f"r{rule.index}"
            expression = _Encoder().cond(rule.condition, False)
            definition[name] = _pattern(w, expression)
            compiled_rules.append((name, rule))
            _collect_types(rule.condition, types, prefix_paths)
        gates = []
        for stage in ruleset.stages:
            if stage.gate is not None and plan.gate_wave.get(stage.id) == w:
                name = f"g{stage.index}"
                definition[name] = _pattern(w, _Encoder().cond(stage.gate, False))
                gates.append((name, stage))
                _collect_types(stage.gate, types, prefix_paths)
        reads = tuple(ReadPath(p, tuple(p.split(".")), t, p in prefix_paths) for p, t in types.items())
        waves.append(CompiledWave(w, tuple(compiled_rules), tuple(gates), reads))
    engine = DurableRuleset(ruleset.key, definition)
    return CompiledRuleset(ruleset=ruleset, plan=plan, waves=tuple(waves), definition=definition, engine=engine)


def _pattern(wave: int, expression):
    if expression is _FALSE:
        # Unreachable rules are refused by the static checks; keep the engine happy anyway.
        expression = {"w": -1}
    parts = [{"w": wave}] + ([] if expression is _TRUE else [expression])
    return {"all": [{"m": {"$and": parts} if len(parts) > 1 else parts[0]}]}


def build_fact(wave: CompiledWave, lookup) -> dict:
    """The fact for one wave: every path its rules read, from `lookup(path) -> value`."""
    fact: dict = {"w": wave.index}
    for read in wave.reads:
        target = fact
        for part in read.parts[:-1]:
            target = target.setdefault(part, {})
        put(target, read.parts[-1], read.type, lookup(read.path), read.prefixes)
    return fact


__all__ = ["compile_ruleset", "build_fact", "CompiledRuleset", "CompiledWave", "EncodingError",
           "condition_reads", "root_paths"]
