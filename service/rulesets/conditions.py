"""Conditions and their operands: document data -> `model.Cond`, type-checked.

Split from the document parser (parse.py), which owns everything else of a ruleset and
hands each `when` here with the `Scope` of what it may read. What each comparison
operator accepts comes from the one operator table, operators.py.
"""
from __future__ import annotations

from dataclasses import replace

from service.rulesets import expr
from service.rulesets.model import (
    DECISION_ROOT, OUTCOME_TYPE, PARAMS_ROOT, RESULT_ROOT, USES_ROOT, All, Always, AnyOf, Compare, Not, Operand,
    Quantified,
)
from service.rulesets.operators import COMPARE_OPS, OPERATORS, QUANTIFIERS
from service.rulesets.types import TypeSpec, check_value, same_domain

MAX_COND_DEPTH = 30


class ConditionParser:
    """Parses the conditions of one document for its parser `p` (reporting through `p.report`,
    resolving parameters and named conditions through it, recording what is used)."""

    def __init__(self, parser):
        self.p = parser


    def parse(self, raw, path, scope: "Scope", depth, refs=()):
        if depth > MAX_COND_DEPTH:
            self.p.report("too_deep", path, f"conditions nest at most {MAX_COND_DEPTH} levels")
            return None
        if not isinstance(raw, dict) or not raw:
            self.p.report("bad_condition", path, "a condition is a mapping: {all: [...]}, {any: [...]}, {not: ...}, {ref: name}, {always: true} or {field: path, <op>: value}")
            return None
        keys = set(raw)
        if keys in ({"all"}, {"any"}):
            (key,) = keys
            items = raw[key]
            if not isinstance(items, list) or not items:
                self.p.report("bad_condition", f"{path}.{key}", f"`{key}` takes a non-empty list of conditions")
                return None
            children = [self.parse(c, f"{path}.{key}[{i}]", scope, depth + 1, refs) for i, c in enumerate(items)]
            if any(c is None for c in children):
                return None
            return All(tuple(children)) if key == "all" else AnyOf(tuple(children))
        if keys == {"not"}:
            child = self.parse(raw["not"], f"{path}.not", scope, depth + 1, refs)
            return None if child is None else Not(child)
        if keys == {"always"}:
            if raw["always"] is not True:
                self.p.report("bad_condition", f"{path}.always", "`always` must be true")
                return None
            return Always()
        if keys == {"ref"}:
            name = raw["ref"]
            if name not in self.p.named_raw:
                self.p.report("unknown_condition", f"{path}.ref", f"no named condition {name!r} in `conditions`")
                return None
            if name in refs:
                self.p.report("condition_cycle", f"{path}.ref", f"named condition {name!r} refers to itself ({' -> '.join(refs + (name,))})")
                return None
            self.p.used_conditions.add(name)
            return self.parse(self.p.named_raw[name], f"conditions.{name}", scope, depth + 1, refs + (name,))
        if "field" in keys:
            return self.comparison(raw, path, scope, depth, refs)
        self.p.report("bad_condition", path, f"unknown condition keys {sorted(map(str, keys))}")
        return None

    def comparison(self, raw, path, scope, depth, refs):
        ops = [k for k in raw if k != "field"]
        if len(ops) != 1:
            self.p.report("bad_condition", path, f"a comparison has `field` and exactly one operator out of {', '.join(COMPARE_OPS + tuple(QUANTIFIERS))}")
            return None
        op, operand_raw = ops[0], raw[ops[0]]
        fpath = raw["field"]
        t = scope.resolve(fpath) if isinstance(fpath, str) else None
        if t is None:
            self.p.report("unknown_field", f"{path}.field", scope.why_unknown(fpath))
            return None
        if op in QUANTIFIERS:
            if t.kind != "list" or t.items.kind != "object":
                self.p.report("type_mismatch", f"{path}.{op}", f"`{op}` needs a list of objects; {fpath} is {t.describe()}")
                return None
            cond = self.parse(operand_raw, f"{path}.{op}", scope.for_item(t.items), depth + 1, refs)
            return None if cond is None else Quantified(fpath, QUANTIFIERS[op], cond, t)
        if op not in COMPARE_OPS:
            self.p.report("unknown_operator", f"{path}.{op}", f"unknown operator {op!r}; use one of {', '.join(COMPARE_OPS + tuple(QUANTIFIERS))}")
            return None
        operand = self.operand(op, operand_raw, t, f"{path}.{op}", scope, fpath)
        return None if operand is None else Compare(fpath, op, operand, t)

    def operand(self, op, raw, t: TypeSpec, path, scope, fpath):
        """The right-hand side of `fpath op raw`, checked against what the operator's shape accepts."""
        bad = lambda msg: self.p.report("type_mismatch", path, msg)  # noqa: E731
        shape = OPERATORS[op].shape
        if shape == "null_flag":
            if not isinstance(raw, bool):
                bad(f"`{op}` takes true or false")
                return None
            if not t.nullable:
                self.p.report("never_null", path, f"{fpath} can never be null, so this test is constant")
                return None
            return Operand("literal", raw)
        if shape == "list_flag":
            if t.kind != "list" or not isinstance(raw, bool):
                bad(f"`{op}` takes true or false and needs a list field")
                return None
            return Operand("literal", raw)
        if t.kind == "object":
            bad(f"{fpath} is an object; compare one of its fields, or use is_null")
            return None
        if shape in ("list", "list_values"):
            if t.kind != "list" or t.items.kind in ("object", "list"):
                bad(f"`{op}` needs a list of plain values; {fpath} is {t.describe()}")
                return None
            return self.value_operand(raw, t.items, path, scope, as_list=(shape == "list_values"))
        if t.kind == "list":
            bad(f"{fpath} is a list; use contains, contains_any, is_empty, any_item or all_items")
            return None
        if shape == "ordered" and not t.orderable:
            bad(f"`{op}` needs a number, a date or an ordered enum; {fpath} is {t.describe()}")
            return None
        if shape == "prefix":
            if t.kind != "string":
                bad(f"`{op}` needs a string; {fpath} is {t.describe()}")
                return None
            if t.max_length is None or t.max_length > 64:
                bad(f"`{op}` needs a string field with max_length of at most 64; {fpath} has {t.max_length}")
                return None
            return self.value_operand(raw, TypeSpec("string", max_length=64, min_length=1), path, scope,
                                      as_list=True, list_or_single=True)
        if t.kind == "boolean" and shape != "scalar":
            bad("booleans are tested with eq or ne")
            return None
        return self.value_operand(raw, t.non_null(), path, scope, as_list=(shape == "scalar_list"))

    def value_operand(self, raw, t: TypeSpec, path, scope, *, as_list, list_or_single=False):
        """A literal / {param} / {field} operand whose values must be of type `t` (or a list of them)."""
        if isinstance(raw, dict) and set(raw) == {"param"}:
            param = self.p.params.get(raw["param"]) if isinstance(raw["param"], str) else None
            if param is None:
                self.p.report("unknown_parameter", f"{path}.param", f"no parameter {raw['param']!r} in `parameters`")
                return None
            self.p.used_params.add(param.name)
            values = param.value
            if as_list and not isinstance(values, list):
                if not list_or_single:
                    self.p.report("type_mismatch", f"{path}.param", f"parameter {param.name} must be a list here")
                    return None
                values = [values]
            if not as_list and isinstance(values, list):
                self.p.report("type_mismatch", f"{path}.param", f"parameter {param.name} is a list; use `in`")
                return None
            checked = self.check_literals(values, t, f"{path}.param", f"parameter {param.name}")
            return None if checked is None else Operand("param", checked, name=param.name)
        if isinstance(raw, dict) and set(raw) == {"field"}:
            if scope.item is not None:
                self.p.report("bad_operand", f"{path}.field", "inside any_item/all_items, compare with values or parameters, not other fields")
                return None
            other = scope.resolve(raw["field"]) if isinstance(raw["field"], str) else None
            if other is None:
                self.p.report("unknown_field", f"{path}.field", scope.why_unknown(raw["field"]))
                return None
            want_list = as_list and not list_or_single
            if want_list:
                if other.kind != "list" or not same_domain(other.items, t):
                    self.p.report("type_mismatch", f"{path}.field", f"{raw['field']} must be a list of {t.describe()}")
                    return None
            elif other.kind == "list" or not same_domain(other, t):
                self.p.report("type_mismatch", f"{path}.field", f"{raw['field']} ({other.describe()}) cannot be compared with {t.describe()}")
                return None
            return Operand("field", name=raw["field"], type=other)
        if isinstance(raw, dict):
            self.p.report("bad_operand", path, "an operand is a value, a list, {param: name} or {field: path}")
            return None
        if as_list and not isinstance(raw, list):
            if not list_or_single:
                self.p.report("type_mismatch", path, "expected a list of values")
                return None
            raw = [raw]
        if not as_list and isinstance(raw, list):
            self.p.report("type_mismatch", path, "expected a single value; use `in` for a list")
            return None
        checked = self.check_literals(raw, t, path, "value")
        return None if checked is None else Operand("literal", checked)

    def check_literals(self, values, t, path, what):
        if isinstance(values, list):
            if not values:
                self.p.report("type_mismatch", path, f"{what}: the list is empty")
                return None
            out = []
            for i, v in enumerate(values):
                ok, nv = check_value(t, v)
                if not ok:
                    self.p.report("type_mismatch", f"{path}[{i}]" if what == "value" else path, f"{what}: {v!r} is not a valid {t.describe()}: {nv}")
                    return None
                out.append(nv)
            return out
        ok, nv = check_value(t, values)
        if not ok:
            self.p.report("type_mismatch", path, f"{what}: {values!r} is not a valid {t.describe()}: {nv}")
            return None
        return nv


def expr_kind(t: TypeSpec) -> str | None:
    if t.numeric:
        return "number"
    return {"string": "string", "enum": "string", "boolean": "boolean", "date": "date"}.get(t.kind)


class Scope:
    """Resolves the paths a condition or expression may read, with their types."""

    def __init__(self, parser, stage_index, own_stage=None, gate=False, inputs_only=False, item: TypeSpec | None = None):
        self.p = parser
        self.stage_index = stage_index
        self.own_stage = own_stage
        self.gate = gate
        self.inputs_only = inputs_only
        self.item = item

    def for_item(self, item_type: TypeSpec) -> "Scope":
        return Scope(self.p, self.stage_index, self.own_stage, self.gate, self.inputs_only, item=item_type)

    def resolve(self, path) -> TypeSpec | None:
        if not isinstance(path, str) or not path:
            return None
        parts = path.split(".")
        if self.item is not None:
            return walk_object(self.item, parts)
        root = parts[0]
        if root == RESULT_ROOT and not self.inputs_only:
            if len(parts) != 2 or parts[1] not in self.p.results:
                return None
            return self.p.results[parts[1]].type
        if root == USES_ROOT and not self.inputs_only:
            if len(parts) != 3 or parts[1] not in self.p.uses:
                return None
            if parts[2] == "outcome":
                return OUTCOME_TYPE
            f = self.p.uses[parts[1]].results.get(parts[2])
            if f is None:
                return None
            return f.type if f.type.kind == "list" else replace(f.type, nullable=True)
        if root == DECISION_ROOT and not self.inputs_only:
            return OUTCOME_TYPE if parts[1:] == ["outcome"] else None
        if root == PARAMS_ROOT:
            return None
        return walk_object(self.p.input, parts)

    def expr_type(self, path) -> expr.ExprType | None:
        if path.startswith(PARAMS_ROOT + "."):
            param = self.p.params.get(path.split(".", 1)[1])
            if param is None or param.type.kind in ("list", "object"):
                return None
            return to_expr_type(param.type)
        t = self.resolve(path)
        if t is None or t.kind == "list":
            return None
        if t.kind == "object":  # only comparable with null
            return expr.ExprType("object", t.nullable)
        return to_expr_type(t)

    def why_unknown(self, path) -> str:
        if not isinstance(path, str):
            return "`field` must be a dotted path string"
        if self.item is not None:
            return f"{path!r} is not a field of the list item (paths inside any_item/all_items are relative to one item)"
        root = path.split(".")[0]
        if root == RESULT_ROOT:
            return f"{path!r}: no such result in `results`"
        if root == USES_ROOT:
            return f"{path!r}: no such `uses` alias or result of the used ruleset"
        if root == DECISION_ROOT:
            return f"{path!r}: only decision.outcome can be read"
        return f"{path!r} is not declared in `input`"


def walk_object(t: TypeSpec, parts) -> TypeSpec | None:
    nullable = False
    for i, part in enumerate(parts):
        if t.kind != "object":
            return None
        f = t.field_map.get(part)
        if f is None:
            return None
        t = f.type
        if i < len(parts) - 1 and t.nullable:
            nullable = True
    if nullable and t.kind != "list":
        t = replace(t, nullable=True)
    return t


def to_expr_type(t: TypeSpec) -> expr.ExprType:
    kind = expr_kind(t) or "string"
    return expr.ExprType(kind, t.nullable)
