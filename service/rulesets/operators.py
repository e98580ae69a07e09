"""The comparison operators of the condition language: one table, read by the parser (what
an operator accepts), the durable_rules compiler (how it is matched), the reference
interpreter and the static analysis (what it means).

Adding an operator is one `Operator(...)` entry here plus its tests; an operator whose
`shape` is new also needs its case in the compiler (engine/compiler.py `_Compiler.compare`).

`holds(value, operand)` is the meaning on decoded values: for a `null_false` operator it is
only called with a non-null value and operand (every comparison on a null is false), with
ordered enums compared by rank when `ranked`.
"""
from __future__ import annotations

import operator as _op
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Operator:
    name: str
    shape: str  # what the left side and the operand are, see SHAPES
    holds: Callable[[object, object], bool]
    null_false: bool = True  # every test on a null left side (or operand) is false
    ranked: bool = False  # ordered enums compare by rank
    durable: str | None = None  # durable_rules test when positive (None: plain equality)
    durable_negated: str | None = None  # the test of its negation on a non-null value


SHAPES = {
    "scalar": "a scalar left side and one value of its type",
    "scalar_list": "a scalar left side and a list of values of its type (or a list field)",
    "ordered": "a number, date or ordered enum and one value of its type",
    "prefix": "a string of max_length <= 64 and one or more prefixes",
    "list": "a list of plain values and one value of its items' type",
    "list_values": "a list of plain values and a list of values of its items' type",
    "list_flag": "a list and true/false",
    "null_flag": "a nullable field and true/false",
}


def _contains(value, wanted) -> bool:
    wanted = wanted if isinstance(wanted, list) else [wanted]
    return any(w in (value or ()) for w in wanted)


OPERATORS: dict[str, Operator] = {o.name: o for o in (
    Operator("eq", "scalar", _op.eq, durable=None, durable_negated="$neq"),
    Operator("ne", "scalar", _op.ne, durable="$neq", durable_negated=None),
    Operator("in", "scalar_list", lambda v, values: v in values),
    Operator("not_in", "scalar_list", lambda v, values: v not in values),
    Operator("lt", "ordered", _op.lt, ranked=True, durable="$lt", durable_negated="$gte"),
    Operator("le", "ordered", _op.le, ranked=True, durable="$lte", durable_negated="$gt"),
    Operator("gt", "ordered", _op.gt, ranked=True, durable="$gt", durable_negated="$lte"),
    Operator("ge", "ordered", _op.ge, ranked=True, durable="$gte", durable_negated="$lt"),
    Operator("starts_with", "prefix", lambda v, prefixes: any(v.startswith(p) for p in prefixes)),
    Operator("contains", "list", _contains, null_false=False),
    Operator("contains_any", "list_values", _contains, null_false=False),
    Operator("is_empty", "list_flag", lambda v, flag: (not v) == flag, null_false=False),
    Operator("is_null", "null_flag", lambda v, flag: (v is None) == flag, null_false=False),
)}

# Item quantifiers: `{field: <list of objects>, any_item: <condition on one item>}`.
QUANTIFIERS = {"any_item": "any", "all_items": "all"}

COMPARE_OPS = tuple(OPERATORS)
ORDER_OPS = tuple(n for n, o in OPERATORS.items() if o.shape == "ordered")
LIST_OPS = tuple(n for n, o in OPERATORS.items() if o.shape.startswith("list"))


def rank(t, value):
    """The value an operator compares: an ordered enum's rank, anything else itself."""
    return t.rank(value) if t.kind == "enum" and t.ordered else value


def compare(op: str, t, value, operand) -> bool:
    """Does a decoded `value` of type `t` satisfy `op operand`? (None is null)"""
    spec = OPERATORS[op]
    if spec.null_false:
        if value is None or operand is None:
            return False
        if spec.ranked:
            return spec.holds(rank(t, value), rank(t, operand))
    return spec.holds(value, operand)


__all__ = ["COMPARE_OPS", "LIST_OPS", "OPERATORS", "ORDER_OPS", "Operator", "QUANTIFIERS", "SHAPES", "compare", "rank"]
