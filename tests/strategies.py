"""Hypothesis strategies that generate valid inputs from a ruleset's declared input schema.

Numbers and strings are biased towards the values the ruleset's own conditions compare
with (each threshold, one step below and above), so generated cases cross every
boundary instead of wandering in the middle of the range.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import strategies as st

from service.rulesets.formats import CN_PROVINCES, GBT4754_SECTIONS, USCC_ALPHABET, uscc_check_character
from service.rulesets.model import All, AnyOf, Compare, Not, Quantified, Ruleset
from service.rulesets.types import MISSING, TypeSpec


def interesting_values(ruleset: Ruleset) -> dict[str, set]:
    """path -> literal/parameter values conditions compare it with (item paths as list[*].x)."""
    out: dict[str, set] = {}

    def walk(cond, prefix=""):
        if isinstance(cond, Compare):
            values = cond.operand.value if cond.operand.kind != "field" else None
            if values is None or isinstance(values, bool):
                return
            for v in values if isinstance(values, list) else [values]:
                out.setdefault(prefix + cond.path, set()).add(v)
        elif isinstance(cond, Quantified):
            walk(cond.cond, f"{prefix}{cond.path}[*].")
        elif isinstance(cond, (All, AnyOf)):
            for child in cond.children:
                walk(child, prefix)
        elif isinstance(cond, Not):
            walk(cond.child, prefix)

    for rule in ruleset.rules:
        walk(rule.condition)
    return out


def _uscc():
    return st.text(alphabet=USCC_ALPHABET, min_size=17, max_size=17).map(lambda s: s + uscc_check_character(s))


def _gbt4754(prefixes):
    sections = sorted(GBT4754_SECTIONS)

    def from_section(letter):
        low, high = GBT4754_SECTIONS[letter]
        return st.tuples(st.integers(low, high), st.integers(0, 99)).map(
            lambda t: f"{letter}{t[0]:02d}{t[1]:02d}")

    random_code = st.sampled_from(sections).flatmap(from_section)
    grown = []
    for p in sorted(prefixes):
        if p[:1] in GBT4754_SECTIONS and all(c.isdigit() for c in p[1:]):
            fill = 5 - len(p)
            grown.append(st.integers(0, 10 ** max(fill, 0) - 1).map(
                lambda n, p=p, fill=fill: p + (f"{n:0{fill}d}" if fill > 0 else "")))
    valid = st.one_of(random_code, *grown) if grown else random_code
    from service.rulesets.formats import check_gbt4754
    return valid.filter(lambda c: check_gbt4754(c) is None)


def value_strategy(t: TypeSpec, path: str, hints: dict[str, set]):
    base = _non_null(t, path, hints)
    return st.one_of(st.none(), base) if t.nullable else base


def _non_null(t: TypeSpec, path: str, hints: dict[str, set]):
    kind = t.kind
    near = hints.get(path, set())
    if kind == "boolean":
        return st.booleans()
    if kind == "enum":
        return st.sampled_from(t.values)
    if kind == "date":
        return st.dates(min_value=t.min or dt.date(1990, 1, 1),
                        max_value=t.max or dt.date(2040, 12, 31)).map(dt.date.isoformat)
    if kind in ("integer", "decimal"):
        step = Decimal(1).scaleb(-t.scale)
        lo = t.min if t.min is not None else (t.gt + step if t.gt is not None else Decimal(-10) ** 6)
        hi = t.max if t.max is not None else (t.lt - step if t.lt is not None else Decimal(10) ** 9)
        points = sorted({p + d for p in near if not isinstance(p, str) for d in (-step, 0, step)
                         if lo <= p + d <= hi})
        if kind == "integer":
            ranged = st.integers(int(lo), int(min(hi, 10 ** 12)))
            picks = [int(p) for p in points]
        else:
            ranged = st.integers(int(lo / step), int(min(hi, Decimal(10) ** 12) / step)).map(lambda n: Decimal(n) * step)
            picks = points
        small = st.integers(int(lo / step), int(min(hi, lo + 1000) / step)).map(
            lambda n: int(n) if kind == "integer" else Decimal(n) * step)
        return st.one_of(st.sampled_from(picks), ranged, small) if picks else st.one_of(ranged, small)
    if kind == "string":
        if t.format == "uscc":
            return _uscc()
        if t.format == "gbt4754":
            return _gbt4754({p for p in near if isinstance(p, str)})
        if t.format == "cn_province":
            return st.sampled_from(CN_PROVINCES)
        texts = st.text(alphabet="abcXYZ中文公司 0123", min_size=t.min_length or 1, max_size=min(t.max_length or 20, 20))
        strings = [p for p in near if isinstance(p, str)]
        return st.one_of(st.sampled_from(strings), texts) if strings else texts
    if kind == "object":
        return object_strategy(t, path, hints)
    if kind == "list":
        return st.lists(value_strategy(t.items, path + "[*]", hints), min_size=t.min_items or 0,
                        max_size=min(t.max_items or 4, 4))
    raise ValueError(kind)


def object_strategy(t: TypeSpec, path: str, hints: dict[str, set]):
    required, optional = {}, {}
    for f in t.fields:
        fpath = f"{path}.{f.name}" if path else f.name
        strategy = value_strategy(f.type, fpath, hints)
        if f.required:
            required[f.name] = strategy
        else:
            optional[f.name] = strategy
    return st.fixed_dictionaries(required, optional=optional)


def input_strategy(ruleset: Ruleset):
    """Valid raw inputs (as a JSON request would carry them) for a ruleset."""
    hints = interesting_values(ruleset)
    return object_strategy(ruleset.input, "", hints)


__all__ = ["input_strategy", "interesting_values", "MISSING"]


def _mix(draw, base, generated):
    """Mostly the base (a real test case), with some parts swapped for generated values."""
    if isinstance(base, dict) and isinstance(generated, dict):
        out = {}
        for key in list(base) + [k for k in generated if k not in base]:
            if key in base and key in generated:
                out[key] = _mix(draw, base[key], generated[key])
            elif key in base:
                if draw(st.integers(0, 9)) > 0:
                    out[key] = base[key]
            elif draw(st.integers(0, 4)) == 0:
                out[key] = generated[key]
        return out
    return generated if draw(st.integers(0, 5)) == 0 else base


def realistic_input_strategy(ruleset: Ruleset):
    """Generated inputs, and the ruleset's own test inputs with random parts replaced.

    Pure generation rarely lines up the dozen conditions an APPROVE needs in a policy
    like sme-credit-policy; mutating real cases explores around every path the tests
    already take, and across their thresholds."""
    generated = input_strategy(ruleset)
    bases = [case.input for case in ruleset.tests if case.invalid is None and isinstance(case.input, dict)]
    if not bases:
        return generated

    @st.composite
    def mutated(draw):
        return _mix(draw, draw(st.sampled_from(bases)), draw(generated))

    return st.one_of(generated, mutated(), mutated())
