"""The type system of ruleset documents.

Every input field, result, parameter and literal has a `TypeSpec`. Types are declared
in a document's `input`, `results`, `parameters` and reusable `types` sections:

    rating: {type: enum, values: [AAA, AA, A, BBB, BB, B, CCC, CC, C, D], ordered: descending}
    amount: {type: decimal, scale: 2, gt: 0, max: 1000000000000}

Kinds: boolean, integer, decimal (with a fixed `scale` = decimal places), string
(lengths, safe `pattern`, named `format`), enum (lower/upper-case ASCII words;
`ordered: descending` = listed best first, so `ge B` means "B or better"), date,
object (`fields`), list (`items`). `nullable: true` admits null.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, replace
from decimal import Decimal

from service.rulesets.formats import FORMATS
from service.rulesets import regex_safety
from service.rulesets.regex_safety import regex_problems

KINDS = ("boolean", "integer", "decimal", "string", "enum", "date", "object", "list")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
ENUM_VALUE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Engine numbers are scaled to integers; keep them well inside int64 and exact in a double.
MAX_ABS_SCALED = 10**15
MAX_SCALE = 6
MAX_STRING_LENGTH = 10_000
MAX_LIST_ITEMS = 1_000


class _Missing:
    def __repr__(self):
        return "MISSING"


MISSING = _Missing()


@dataclass(frozen=True)
class TypeSpec:
    kind: str
    nullable: bool = False
    alias: str | None = None  # the `types:` name this came from, shown in messages
    # integer / decimal
    min: Decimal | None = None
    max: Decimal | None = None
    gt: Decimal | None = None
    lt: Decimal | None = None
    scale: int = 0
    # string
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    format: str | None = None
    # enum
    values: tuple[str, ...] = ()
    ordered: bool = False
    # object
    fields: tuple["FieldSpec", ...] = ()
    # list
    items: "TypeSpec | None" = None
    min_items: int | None = None
    max_items: int | None = None

    @property
    def numeric(self) -> bool:
        return self.kind in ("integer", "decimal")

    @property
    def orderable(self) -> bool:
        """Supports lt/le/gt/ge."""
        return self.numeric or self.kind == "date" or (self.kind == "enum" and self.ordered)

    @property
    def field_map(self) -> dict[str, "FieldSpec"]:
        return {f.name: f for f in self.fields}

    def describe(self) -> str:
        if self.alias:
            return self.alias
        if self.kind == "list" and self.items is not None:
            return f"list of {self.items.describe()}"
        if self.kind == "decimal":
            return f"decimal(scale {self.scale})"
        return self.kind

    def non_null(self) -> "TypeSpec":
        return replace(self, nullable=False) if self.nullable else self

    def rank(self, value: str) -> int:
        """Ordered enums: higher rank = better (values are listed best first)."""
        return len(self.values) - self.values.index(value)

    def lower_bound(self) -> Decimal | None:
        return self.min if self.gt is None else self.gt

    def upper_bound(self) -> Decimal | None:
        return self.max if self.lt is None else self.lt


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: TypeSpec
    required: bool = False
    default: object = MISSING
    description: str | None = None

    @property
    def optional_value(self):
        """What an omitted, optional field reads as."""
        return None if self.default is MISSING else self.default


@dataclass
class TypeContext:
    """Named types of one document, and where problems go."""

    aliases: dict[str, TypeSpec] = field(default_factory=dict)
    report: object = None  # callable(code, path, message)

    def problem(self, code: str, path: str, message: str) -> None:
        self.report(code, path, message)


_TYPE_KEYS = {
    "boolean": set(),
    "integer": {"min", "max", "gt", "lt"},
    "decimal": {"min", "max", "gt", "lt", "scale"},
    "string": {"min_length", "max_length", "pattern", "format"},
    "enum": {"values", "ordered"},
    "date": {"min", "max"},
    "object": {"fields"},
    "list": {"items", "min_items", "max_items"},
}
_COMMON_KEYS = {"type", "nullable", "description"}
_FIELD_KEYS = {"required", "default"}


def parse_type(spec, ctx: TypeContext, path: str, *, allow_field_keys: bool = False) -> TypeSpec | None:
    """Parse a type declaration; report problems through `ctx` and return None on failure."""
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, dict):
        ctx.problem("bad_type", path, "a type must be a mapping like {type: decimal, scale: 2}")
        return None
    kind = spec.get("type")
    if not isinstance(kind, str):
        ctx.problem("bad_type", f"{path}.type", "`type` is required and must be a kind name or a declared type")
        return None
    nullable = spec.get("nullable", False)
    if not isinstance(nullable, bool):
        ctx.problem("bad_type", f"{path}.nullable", "`nullable` must be true or false")
        nullable = False
    allowed = _COMMON_KEYS | (_FIELD_KEYS if allow_field_keys else set())

    if kind in ctx.aliases:
        base = ctx.aliases[kind]
        for key in spec:
            if key not in allowed:
                ctx.problem("unknown_key", f"{path}.{key}", f"`{key}` cannot refine declared type `{kind}`; declare a new type instead")
        return replace(base, nullable=nullable or base.nullable)
    if kind not in KINDS:
        ctx.problem("unknown_type", f"{path}.type", f"unknown type {kind!r}; use one of {', '.join(KINDS)} or a name from `types`")
        return None
    for key in spec:
        if key not in allowed | _TYPE_KEYS[kind]:
            ctx.problem("unknown_key", f"{path}.{key}", f"`{key}` is not an option of type {kind}")

    t = TypeSpec(kind=kind, nullable=nullable)
    if kind in ("integer", "decimal"):
        t = _parse_number(spec, t, ctx, path)
    elif kind == "string":
        t = _parse_string(spec, t, ctx, path)
    elif kind == "enum":
        t = _parse_enum(spec, t, ctx, path)
    elif kind == "date":
        lo = _date_option(spec, "min", ctx, path)
        hi = _date_option(spec, "max", ctx, path)
        t = replace(t, min=lo, max=hi)
    elif kind == "object":
        t = _parse_object(spec, t, ctx, path)
    elif kind == "list":
        t = _parse_list(spec, t, ctx, path)
    return t


def _number_option(spec, key, ctx, path) -> Decimal | None:
    if key not in spec:
        return None
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        ctx.problem("bad_type", f"{path}.{key}", f"`{key}` must be a number")
        return None
    return Decimal(value)


def _parse_number(spec, t: TypeSpec, ctx, path) -> TypeSpec:
    scale = 0
    if t.kind == "decimal":
        scale = spec.get("scale")
        if isinstance(scale, bool) or not isinstance(scale, int) or not 0 <= scale <= MAX_SCALE:
            ctx.problem("bad_type", f"{path}.scale", f"a decimal needs `scale`: the number of decimal places, 0..{MAX_SCALE}")
            scale = 2
    t = replace(t, scale=scale, min=_number_option(spec, "min", ctx, path), max=_number_option(spec, "max", ctx, path),
                gt=_number_option(spec, "gt", ctx, path), lt=_number_option(spec, "lt", ctx, path))
    if t.min is not None and t.gt is not None:
        ctx.problem("bad_type", path, "give either `min` or `gt`, not both")
    if t.max is not None and t.lt is not None:
        ctx.problem("bad_type", path, "give either `max` or `lt`, not both")
    limit = Decimal(MAX_ABS_SCALED).scaleb(-scale)
    for key in ("min", "max", "gt", "lt"):
        bound = getattr(t, key)
        if bound is None:
            continue
        if abs(bound) > limit:
            ctx.problem("bad_type", f"{path}.{key}", f"bounds must lie within ±{limit} at scale {scale}")
        elif bound != bound.quantize(Decimal(1).scaleb(-scale)):
            ctx.problem("bad_type", f"{path}.{key}", f"bound {bound} has more decimal places than scale {scale}")
    lo, hi = t.lower_bound(), t.upper_bound()
    if lo is not None and hi is not None and lo > hi:
        ctx.problem("empty_type", path, f"no value fits: lower bound {lo} is above upper bound {hi}")
    return t


def _parse_string(spec, t: TypeSpec, ctx, path) -> TypeSpec:
    def length(key):
        value = spec.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_STRING_LENGTH:
            ctx.problem("bad_type", f"{path}.{key}", f"`{key}` must be an integer 0..{MAX_STRING_LENGTH}")
            return None
        return value

    t = replace(t, min_length=length("min_length"), max_length=length("max_length"))
    fmt = spec.get("format")
    if fmt is not None and (not isinstance(fmt, str) or fmt not in FORMATS):
        ctx.problem("unknown_format", f"{path}.format", f"unknown format {fmt!r}; known: {', '.join(sorted(FORMATS))}")
        fmt = None
    pattern = spec.get("pattern")
    if pattern is not None:
        if not isinstance(pattern, str):
            ctx.problem("bad_pattern", f"{path}.pattern", "`pattern` must be a string")
            pattern = None
        else:
            for message in regex_problems(pattern):
                ctx.problem("unsafe_pattern", f"{path}.pattern", message)
                pattern = None
            if pattern is not None and (t.max_length is None or t.max_length > 1000):
                ctx.problem("unsafe_pattern", f"{path}.max_length", "a string with a `pattern` needs `max_length` of at most 1000")
    return replace(t, format=fmt, pattern=pattern)


def _parse_enum(spec, t: TypeSpec, ctx, path) -> TypeSpec:
    values = spec.get("values")
    if not isinstance(values, list) or not values:
        ctx.problem("bad_type", f"{path}.values", "an enum needs a non-empty list of `values`")
        return replace(t, values=("_",))
    clean = []
    for i, value in enumerate(values):
        if not isinstance(value, str) or not ENUM_VALUE_RE.match(value):
            ctx.problem("bad_enum_value", f"{path}.values[{i}]", f"enum value {value!r} must be an ASCII word (letters, digits, _ . -)")
        elif value in clean:
            ctx.problem("duplicate_enum_value", f"{path}.values[{i}]", f"enum value {value!r} is listed twice")
        else:
            clean.append(value)
    ordered = spec.get("ordered")
    if ordered not in (None, "descending"):
        ctx.problem("bad_type", f"{path}.ordered", "`ordered` may only be `descending` (values listed best first)")
    return replace(t, values=tuple(clean) or ("_",), ordered=ordered == "descending")


def _date_option(spec, key, ctx, path):
    if key not in spec:
        return None
    value = parse_date(spec[key])
    if value is None:
        ctx.problem("bad_type", f"{path}.{key}", f"`{key}` must be a date YYYY-MM-DD")
    return value


def _parse_object(spec, t: TypeSpec, ctx, path) -> TypeSpec:
    fields = spec.get("fields")
    if not isinstance(fields, dict) or not fields:
        ctx.problem("bad_type", f"{path}.fields", "an object needs a mapping of `fields`")
        return replace(t, fields=())
    return replace(t, fields=tuple(parse_fields(fields, ctx, f"{path}.fields")))


def _parse_list(spec, t: TypeSpec, ctx, path) -> TypeSpec:
    if t.nullable:
        ctx.problem("bad_type", f"{path}.nullable", "lists cannot be null; use an empty list (default: [])")
    items = parse_type(spec.get("items"), ctx, f"{path}.items") if "items" in spec else None
    if items is None:
        ctx.problem("bad_type", f"{path}.items", "a list needs an `items` type")
        items = TypeSpec("string")
    if items.kind == "list":
        ctx.problem("bad_type", f"{path}.items", "lists of lists are not supported")
    if items.nullable:
        ctx.problem("bad_type", f"{path}.items", "list items cannot be null")

    def count(key, default):
        value = spec.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LIST_ITEMS:
            ctx.problem("bad_type", f"{path}.{key}", f"`{key}` must be an integer 0..{MAX_LIST_ITEMS}")
            return default
        return value

    return replace(t, items=items, min_items=count("min_items", 0), max_items=count("max_items", MAX_LIST_ITEMS))


def parse_fields(fields: dict, ctx: TypeContext, path: str) -> list[FieldSpec]:
    out = []
    for name, spec in fields.items():
        fpath = f"{path}.{name}"
        if not isinstance(name, str) or not NAME_RE.match(name):
            ctx.problem("bad_name", fpath, "field names are lower_snake_case ASCII (a-z, 0-9, _)")
            continue
        t = parse_type(spec, ctx, fpath, allow_field_keys=True)
        if t is None:
            continue
        required = spec.get("required", False) if isinstance(spec, dict) else False
        if not isinstance(required, bool):
            ctx.problem("bad_type", f"{fpath}.required", "`required` must be true or false")
            required = False
        default = MISSING
        if isinstance(spec, dict) and "default" in spec:
            if required:
                ctx.problem("bad_default", f"{fpath}.default", "a required field cannot have a default")
            ok, value = check_value(t, spec["default"])
            if ok:
                default = value
            else:
                ctx.problem("bad_default", f"{fpath}.default", f"default {spec['default']!r} is not a valid {t.describe()}: {value}")
        if not required and default is MISSING:
            if t.kind == "list":
                default = []
            elif not t.nullable:
                ctx.problem("bad_default", fpath, "an optional field needs a `default` or `nullable: true`")
        description = spec.get("description") if isinstance(spec, dict) else None
        out.append(FieldSpec(name=name, type=t, required=required, default=default, description=description))
    return out


def parse_date(value) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return None
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value) if len(value) == 10 else None
        except ValueError:
            return None
    return None


def check_value(t: TypeSpec, value) -> tuple[bool, object]:
    """Is `value` (document data: str/int/Decimal/bool/None/list/dict/date) a valid `t`?

    Returns (True, normalised value) or (False, reason). Used for defaults, parameters,
    literals in conditions and test expectations; request input goes through marshmallow.
    """
    if value is None:
        return (True, None) if t.nullable else (False, "null is not allowed")
    kind = t.kind
    if kind == "boolean":
        return (True, value) if isinstance(value, bool) else (False, "expected true or false")
    if kind in ("integer", "decimal"):
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            return False, "expected a number"
        number = Decimal(value)
        if not number.is_finite():
            return False, "expected a finite number"
        reason = number_bounds_problem(t, number)
        if reason:
            return False, reason
        if kind == "integer" and number != number.to_integral_value():
            return False, "expected an integer"
        if not fits_scale(number, t.scale):
            return False, f"more than {t.scale} decimal places"
        return True, int(number) if kind == "integer" else number
    if kind == "string":
        if not isinstance(value, str):
            return False, "expected a string"
        reason = string_problem(t, value)
        return (False, reason) if reason else (True, value)
    if kind == "enum":
        if not isinstance(value, str) or value not in t.values:
            return False, f"expected one of {', '.join(t.values)}"
        return True, value
    if kind == "date":
        date = parse_date(value)
        if date is None:
            return False, "expected a date YYYY-MM-DD"
        if (t.min and date < t.min) or (t.max and date > t.max):
            return False, "date out of range"
        return True, date
    if kind == "list":
        if not isinstance(value, list):
            return False, "expected a list"
        if len(value) < (t.min_items or 0) or len(value) > (t.max_items or MAX_LIST_ITEMS):
            return False, f"expected {t.min_items}..{t.max_items} items"
        out = []
        for i, item in enumerate(value):
            ok, v = check_value(t.items, item)
            if not ok:
                return False, f"item {i}: {v}"
            out.append(v)
        return True, out
    if kind == "object":
        if not isinstance(value, dict):
            return False, "expected a mapping"
        fields = t.field_map
        extra = sorted(set(value) - set(fields))
        if extra:
            return False, f"unknown field(s) {', '.join(map(str, extra))}"
        out = {}
        for name, f in fields.items():
            if name not in value:
                if f.required:
                    return False, f"missing field {name}"
                out[name] = f.optional_value
                continue
            ok, v = check_value(f.type, value[name])
            if not ok:
                return False, f"{name}: {v}"
            out[name] = v
        return True, out
    return False, f"unsupported kind {kind}"


def number_bounds_problem(t: TypeSpec, number: Decimal) -> str | None:
    if t.min is not None and number < t.min:
        return f"must be at least {t.min}"
    if t.gt is not None and number <= t.gt:
        return f"must be greater than {t.gt}"
    if t.max is not None and number > t.max:
        return f"must be at most {t.max}"
    if t.lt is not None and number >= t.lt:
        return f"must be less than {t.lt}"
    if abs(number.scaleb(t.scale)) >= MAX_ABS_SCALED:
        return "is too large"
    return None


def fits_scale(number: Decimal, scale: int) -> bool:
    """Has at most `scale` decimal places (call only on numbers already bounds-checked)."""
    return number.as_tuple().exponent >= -scale or number == number.quantize(Decimal(1).scaleb(-scale))


def string_problem(t: TypeSpec, value: str) -> str | None:
    if t.min_length is not None and len(value) < t.min_length:
        return f"must be at least {t.min_length} characters"
    if len(value) > (t.max_length if t.max_length is not None else MAX_STRING_LENGTH):
        return f"must be at most {t.max_length if t.max_length is not None else MAX_STRING_LENGTH} characters"
    if t.pattern is not None and not regex_safety.fullmatch(t.pattern, value):
        return f"must match {t.pattern}"
    if t.format is not None:
        return FORMATS[t.format](value)
    return None


def same_domain(a: TypeSpec, b: TypeSpec) -> bool:
    """Can values of `a` and `b` be compared with each other (field to field)?"""
    if a.kind != b.kind:
        return a.numeric and b.numeric and a.scale == b.scale
    if a.kind == "enum":
        return a.values == b.values and a.ordered == b.ordered
    if a.kind == "decimal":
        return a.scale == b.scale
    if a.kind in ("object", "list"):
        return False
    return True


def assignable(src: TypeSpec, dst: TypeSpec) -> str | None:
    """Why a value of type `src` may not be stored where `dst` is expected (None if it may)."""
    if src.nullable and not dst.nullable:
        return f"{src.describe()} may be null but {dst.describe()} may not"
    if src.kind != dst.kind and not (src.kind == "integer" and dst.kind == "decimal"):
        return f"{src.describe()} is not {dst.describe()}"
    if dst.kind == "enum":
        missing = [v for v in src.values if v not in dst.values]
        if missing:
            return f"values {', '.join(missing)} are not in {dst.describe()}"
        if dst.ordered and src.values != dst.values:
            return "ordered enums must have the same values"
    if dst.numeric:
        if src.scale > dst.scale:
            return f"scale {src.scale} is finer than {dst.scale}"
        for mine, theirs, tighter in ((src.lower_bound(), dst.lower_bound(), "lower"), (src.upper_bound(), dst.upper_bound(), "upper")):
            if theirs is None:
                continue
            if mine is None or (tighter == "lower" and mine < theirs) or (tighter == "upper" and mine > theirs):
                return f"its {tighter} bound does not fit within {dst.describe()}'s"
        if src.gt is None and dst.gt is not None and src.min is not None and src.min <= dst.gt:
            return "its lower bound does not fit"
        if src.lt is None and dst.lt is not None and src.max is not None and src.max >= dst.lt:
            return "its upper bound does not fit"
    if dst.kind == "string":
        if dst.format and src.format != dst.format:
            return f"format {dst.format} is not guaranteed"
        if dst.pattern and src.pattern != dst.pattern:
            return f"pattern {dst.pattern} is not guaranteed"
        if dst.max_length is not None and (src.max_length is None or src.max_length > dst.max_length):
            return "it may be longer"
        if dst.min_length and (src.min_length or 0) < dst.min_length:
            return "it may be shorter"
    if dst.kind == "list":
        return assignable(src.items, dst.items)
    if dst.kind == "object":
        sf = src.field_map
        for f in dst.fields:
            if f.name not in sf:
                if f.required:
                    return f"field {f.name} is missing"
                continue
            reason = assignable(sf[f.name].type, f.type)
            if reason:
                return f"field {f.name}: {reason}"
        extra = set(sf) - set(dst.field_map)
        if extra:
            return f"fields {', '.join(sorted(extra))} are unknown there"
    return None
