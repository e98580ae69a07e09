"""Request validation built from a ruleset's declared `input` (marshmallow, unknown=RAISE).

Built once per ruleset version when it loads. Fields are strict: JSON `1` is not a
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


class StrictDate(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        if type(value) is not str or len(value) != 10:
            raise ValidationError("must be a date YYYY-MM-DD")
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValidationError("must be a date YYYY-MM-DD") from None


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
        for key, value in messages.items():
            key = str(key)
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


class InputValidator:
    """Validates raw request input for one ruleset version."""

    def __init__(self, ruleset: Ruleset):
        self.ruleset = ruleset
        self.schema = object_schema(ruleset.input)(unknown=RAISE)
        self.constraints = ruleset.constraints
        self.params = {name: p.value for name, p in ruleset.parameters.items()}

    def load(self, raw, *, prefix: str = "input") -> dict:
        """Validated, typed input with defaults filled; raises InvalidInput listing every problem."""
        if not isinstance(raw, dict):
            raise InvalidInput("input must be a JSON object", [Problem("invalid_input", prefix, "must be an object")])
        try:
            data = self.schema.load(raw)
        except ValidationError as exc:
            problems: list[Problem] = []
            _flatten(exc.messages, prefix, problems)
            raise InvalidInput(f"input does not match {self.ruleset.key}'s declared schema", problems) from None
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
