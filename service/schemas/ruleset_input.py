"""Request validation built from a ruleset's declared `input` (marshmallow, unknown=RAISE).

Built once per ruleset version when it loads, twice over: the marshmallow schema, whose
messages every 422 carries, and a validator generated from the same declared input
(`_fast`, plain closures, several times quicker) that takes the hot path. The generated one
accepts only what it is sure of and then returns exactly what marshmallow would (same
values, same types, same key order: tests/schemas/test_fast_validator.py); anything else —
every refusal included — goes through marshmallow, so refusals and their messages are
marshmallow's. Fields are strict: JSON `1` is not a
boolean and `"5"` is not a number (durable_rules would happily treat them as `true`
and 5), decimals keep at most their declared places, enums, formats, bounds, lengths,
nested objects and lists are checked, defaults filled in, and the ruleset's
cross-field `constraints` run last.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from service.errors import InvalidInput, Problem
from service.rulesets import expr
from service.rulesets.model import Ruleset
from service.rulesets.types import FieldSpec, TypeSpec, fits_scale, number_bounds_problem, string_problem


class StrictBoolean(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        if type(value) is not bool:
            raise ValidationError("must be true or false")
        return value


class StrictInteger(fields.Field):
    def __init__(self, spec: TypeSpec, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            raise ValidationError("must be an integer (a JSON number, not a string)")
        if isinstance(value, Decimal):
            if not value.is_finite() or value != value.to_integral_value():
                raise ValidationError("must be an integer")
            value = int(value)
        problem = number_bounds_problem(self.spec, Decimal(value))
        if problem:
            raise ValidationError(problem)
        return value


class StrictDecimal(fields.Field):
    def __init__(self, spec: TypeSpec, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            raise ValidationError("must be a number (a JSON number, not a string)")
        number = Decimal(value)
        if not number.is_finite():
            raise ValidationError("must be a finite number")
        problem = number_bounds_problem(self.spec, number)
        if problem:
            raise ValidationError(problem)
        if not fits_scale(number, self.spec.scale):
            raise ValidationError(f"must have at most {self.spec.scale} decimal places")
        return number


class StrictString(fields.Field):
    def __init__(self, spec: TypeSpec, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec

    def _deserialize(self, value, attr, data, **kwargs):
        if type(value) is not str:
            raise ValidationError("must be a string")
        problem = string_problem(self.spec, value)
        if problem:
            raise ValidationError(problem)
        return value


class StrictEnum(fields.Field):
    def __init__(self, spec: TypeSpec, **kwargs):
        super().__init__(**kwargs)
        self.values = frozenset(spec.values)
        self.listing = ", ".join(spec.values)

    def _deserialize(self, value, attr, data, **kwargs):
        if type(value) is not str or value not in self.values:
            raise ValidationError(f"must be one of: {self.listing}")
        return value


def iso_date(value) -> dt.date | None:
    """The date a YYYY-MM-DD string names; None for anything else (the one rule for every date field)."""
    if type(value) is not str or len(value) != 10:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


class StrictDate(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        date = iso_date(value)
        if date is None:
            raise ValidationError("must be a date YYYY-MM-DD")
        return date


def _field_for(spec: FieldSpec) -> fields.Field:
    kwargs: dict = {"allow_none": spec.type.nullable}
    if spec.required:
        kwargs["required"] = True
    else:
        default = spec.optional_value
        kwargs["load_default"] = (lambda d=default: list(d)) if isinstance(default, list) else (
            (lambda d=default: dict(d)) if isinstance(default, dict) else default)
    return _make(spec.type, kwargs)


def _make(t: TypeSpec, kwargs: dict) -> fields.Field:
    kind = t.kind
    if kind == "boolean":
        return StrictBoolean(**kwargs)
    if kind == "integer":
        return StrictInteger(t, **kwargs)
    if kind == "decimal":
        return StrictDecimal(t, **kwargs)
    if kind == "string":
        return StrictString(t, **kwargs)
    if kind == "enum":
        return StrictEnum(t, **kwargs)
    if kind == "date":
        return StrictDate(**kwargs)
    if kind == "object":
        return fields.Nested(object_schema(t), unknown=RAISE, **kwargs)
    if kind == "list":
        inner = _make(t.items, {})
        return fields.List(inner, validate=validate.Length(min=t.min_items, max=t.max_items), **kwargs)
    raise ValueError(f"unsupported kind {kind}")


def object_schema(t: TypeSpec) -> type[Schema]:
    return Schema.from_dict({f.name: _field_for(f) for f in t.fields}, name="RulesetInput")


def _flatten(messages, prefix: str, out: list[Problem]) -> None:
    if isinstance(messages, dict):
        # marshmallow reports unknown keys in set order (string hashing differs per process):
        # sort them, after the declared fields in their own order, so a 422 is deterministic.
        unknown = sorted((str(k), v) for k, v in messages.items() if v == ["Unknown field."])
        declared = [(str(k), v) for k, v in messages.items() if v != ["Unknown field."]]
        for key, value in declared + unknown:
            if key == "_schema":
                _flatten(value, prefix, out)
            else:
                _flatten(value, f"{prefix}.{key}" if prefix else key, out)
    elif isinstance(messages, list):
        if all(isinstance(m, str) for m in messages):
            for m in messages:
                message = "unknown field (not declared in the ruleset's input)" if m == "Unknown field." else m
                message = "is required" if message == "Missing data for required field." else message
                message = "may not be null" if message == "Field may not be null." else message
                out.append(Problem("invalid_input", prefix, message))
        else:
            for item in messages:
                _flatten(item, prefix, out)
    else:
        out.append(Problem("invalid_input", prefix, str(messages)))


# -- the generated validator: the accepting path -------------------------------------------------


class _Unsure(Exception):
    """Not certainly valid: let marshmallow decide (and word the problems)."""


def _fast_for(t: TypeSpec):
    """A function validating one non-null value of `t` exactly as the marshmallow field of
    `_make` would when it accepts, raising _Unsure in every other case."""
    kind = t.kind
    if kind == "boolean":
        def boolean(value):
            if type(value) is not bool:
                raise _Unsure
            return value
        return boolean
    if kind == "integer":
        def integer(value):
            if type(value) is int:
                number = value
            elif type(value) is Decimal and value.is_finite() and value == value.to_integral_value():
                number = value = int(value)
            else:
                raise _Unsure
            if number_bounds_problem(t, Decimal(number)):
                raise _Unsure
            return value
        return integer
    if kind == "decimal":
        scale = t.scale

        def decimal(value):
            if type(value) is not Decimal and type(value) is not int:
                raise _Unsure
            number = Decimal(value)
            if not number.is_finite() or number_bounds_problem(t, number) or not fits_scale(number, scale):
                raise _Unsure
            return number
        return decimal
    if kind == "string":
        def string(value):
            if type(value) is not str or string_problem(t, value):
                raise _Unsure
            return value
        return string
    if kind == "enum":
        values = frozenset(t.values)

        def enum(value):
            if type(value) is not str or value not in values:
                raise _Unsure
            return value
        return enum
    if kind == "date":
        def date(value):
            parsed = iso_date(value)
            if parsed is None:
                raise _Unsure
            return parsed
        return date
    if kind == "object":
        return _fast_object(t)
    if kind == "list":
        inner = _fast_for(t.items)
        low, high = t.min_items, t.max_items

        def items(value):
            if type(value) is not list:
                raise _Unsure
            out = [inner(v) if v is not None else _unsure() for v in value]
            if (low is not None and len(out) < low) or (high is not None and len(out) > high):
                raise _Unsure
            return out
        return items
    raise ValueError(f"unsupported kind {kind}")


def _unsure():
    raise _Unsure


def _fast_object(t: TypeSpec):
    names = frozenset(f.name for f in t.fields)
    plan = []
    for f in t.fields:
        if f.required:
            default = None
        else:
            value = f.optional_value  # as _field_for's load_default: lists and dicts copied
            default = (lambda d=value: list(d)) if isinstance(value, list) else (
                (lambda d=value: dict(d)) if isinstance(value, dict) else (lambda d=value: d))
        plan.append((f.name, f.required, f.type.nullable, default, _fast_for(f.type)))
    plan = tuple(plan)

    def obj(value):
        if type(value) is not dict:
            raise _Unsure
        for key in value:
            if key not in names:
                raise _Unsure
        out = {}
        for name, required, nullable, default, check in plan:
            if name in value:
                v = value[name]
                if v is None:
                    if not nullable:
                        raise _Unsure
                    out[name] = None
                else:
                    out[name] = check(v)
            elif required:
                raise _Unsure
            else:
                out[name] = default()
        return out
    return obj


class InputValidator:
    """Validates raw request input for one ruleset version."""

    def __init__(self, ruleset: Ruleset):
        self.ruleset = ruleset
        self.schema = object_schema(ruleset.input)(unknown=RAISE)
        self._fast = _fast_object(ruleset.input)
        self.constraints = ruleset.constraints
        self.params = {name: p.value for name, p in ruleset.parameters.items()}

    def load(self, raw, *, prefix: str = "input") -> dict:
        """Validated, typed input with defaults filled; raises InvalidInput listing every problem."""
        if not isinstance(raw, dict):
            raise InvalidInput("input must be a JSON object", [Problem("invalid_input", prefix, "must be an object")])
        try:
            data = self._fast(raw)
        except _Unsure:
            data = self.load_schema(raw, prefix=prefix)
        return self._check_constraints(data, prefix)

    def load_schema(self, raw, *, prefix: str = "input") -> dict:
        """The marshmallow path alone (every refusal goes here, for its messages)."""
        try:
            return self.schema.load(raw)
        except ValidationError as exc:
            problems: list[Problem] = []
            _flatten(exc.messages, prefix, problems)
            raise InvalidInput(f"input does not match {self.ruleset.key}'s declared schema", problems) from None

    def _check_constraints(self, data: dict, prefix: str) -> dict:
        problems = []
        params = self.params
        for constraint in self.constraints:
            def lookup(path):
                if path.startswith("params."):
                    return params[path[7:]]
                value = data
                for part in path.split("."):
                    if value is None:
                        return None
                    value = value.get(part)
                return value
            try:
                ok = expr.evaluate(constraint.node, lookup)
            except Exception:  # noqa: BLE001 - a constraint that cannot be computed is a failed constraint
                ok = False
            if not ok:
                problems.append(Problem("constraint", f"{prefix}.{constraint.path}",
                                        f"{constraint.message_en} / {constraint.message_zh}"))
        if problems:
            raise InvalidInput(f"input breaks {self.ruleset.key}'s constraints", problems)
        return data


def default_sub_input(t: TypeSpec, given: dict) -> dict:
    """Fill a `uses` sub-input's unmapped optional fields with their defaults."""
    out = dict(given)
    for f in t.fields:
        if f.name not in out and not f.required:
            value = f.optional_value
            out[f.name] = list(value) if isinstance(value, list) else value
    return out


__all__ = ["InputValidator", "default_sub_input"]
