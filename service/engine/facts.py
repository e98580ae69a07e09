"""Runtime fact encoding: validated domain values -> the flat, exact facts durable_rules matches.

The compiler (compiler.py) decides what each fact must carry (a `Need` per path); this
module turns one evaluation's values into those facts, as JSON text written directly
(`make_piece`: no dict, no json.dumps per fact). Each path has a short key, `k<n>`,
given by the compiler (durable_rules' cost grows with the fact's size, so keys are kept
short; `key_of` spells the long, readable form); companions carry what the engine cannot ask
directly: `<key>___null` (null or not), `<key>___pN` (the first N characters, for
`starts_with`), `<key>___empty` and `<key>___hasI` (list emptiness and membership of the
enum's I-th value). Numbers are integers scaled by their declared decimal places, ordered
enums ranks, dates yyyymmdd: every comparison is exact.

The text is exactly what json.dumps(ensure_ascii=False) makes of the equivalent dict
(`build_fact`, the readable reference the tests compare it with).
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal

from service.rulesets.types import TypeSpec


class EncodingError(TypeError):
    """A value of the wrong Python type reached the engine (input was not validated)."""


def key_of(path: str) -> str:
    return path.replace(".", "__")


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


@dataclass
class Need:
    """What a fact must carry for one path."""

    path: str
    type: TypeSpec
    value: bool = False
    null: bool = False
    prefixes: set[int] = field(default_factory=set)
    has: set[int] = field(default_factory=set)  # enum value indexes (lists)
    empty: bool = False
    key: str = ""  # the fact key of `path` (short, given by the compiler); key_of(path) if empty

    @property
    def fact_key(self) -> str:
        return self.key or key_of(self.path)

    def copy(self) -> "Need":
        return Need(self.path, self.type, self.value, self.null, set(self.prefixes), set(self.has), self.empty, self.key)

    def merge(self, other: "Need") -> None:
        self.value |= other.value
        self.null |= other.null
        self.prefixes |= other.prefixes
        self.has |= other.has
        self.empty |= other.empty

    def property_count(self) -> int:
        return int(self.value) + int(self.null) + len(self.prefixes) + len(self.has) + int(self.empty)


def _encoder(t: TypeSpec):
    """A function encoding one validated value of `t` (see encode_scalar), specialised once."""
    kind = t.kind
    if kind == "enum" and t.ordered:
        ranks = {v: t.rank(v) for v in t.values}

        def ordered_enum(value):
            try:
                return ranks[value]
            except (KeyError, TypeError):
                raise EncodingError(f"{value!r} is not one of {t.values}") from None
        return ordered_enum
    if kind == "decimal":
        return lambda value: encode_scalar(t, value)
    if kind in ("boolean", "integer", "string"):
        expected = {"boolean": bool, "integer": int, "string": str}[kind]

        def exact(value):
            if type(value) is not expected:
                raise EncodingError(f"expected {kind}, got {type(value).__name__}")
            return value
        return exact
    return lambda value: encode_scalar(t, value)


def make_writer(need: Need):
    """A function putting one value (and the companions it needs) into a flat fact (a dict:
    the reference form of make_piece)."""
    key, t = need.fact_key, need.type
    if t.kind == "list":
        empty_key = key + "___empty" if need.empty else None
        has = tuple((f"{key}___has{i}", t.items.values[i]) for i in sorted(need.has))

        def write_list(fact, value):
            items = value or ()
            if empty_key:
                fact[empty_key] = not items
            if has:
                present = set(items)
                for has_key, v in has:
                    fact[has_key] = v in present
        return write_list
    null_key = key + "___null" if need.null else None
    encode = _encoder(t) if need.value and t.kind != "object" else None
    prefixes = tuple((f"{key}___p{n}", n) for n in sorted(need.prefixes))

    def write_value(fact, value):
        if null_key:
            fact[null_key] = value is None
        if value is None:
            return
        if encode:
            fact[key] = encode(value)
        if prefixes:
            if type(value) is not str:
                raise EncodingError("prefix test on a non-string")
            for prefix_key, n in prefixes:
                fact[prefix_key] = value[:n]  # a shorter value is itself: never equal to an n-long prefix
    return write_value



# -- facts as JSON text ----------------------------------------------------------------------

_string = json.encoder.encode_basestring  # json.dumps(..., ensure_ascii=False) of one str
_TRUE, _FALSE = "true", "false"


def _json_value(value) -> str:
    """An encoded value (bool, int or str) as json.dumps spells it."""
    if value is True:
        return _TRUE
    if value is False:
        return _FALSE
    if type(value) is int:
        return int.__repr__(value)
    return _string(value)


def _json_key(key: str) -> str:
    return _string(key) + ": "


def make_piece(need: Need):
    """A function from one value to its part of the fact's JSON text ("" when it adds
    nothing): the same entries, in the same order, as make_writer puts in the dict."""
    key, t = need.fact_key, need.type
    if t.kind == "list":
        empty = (_json_key(key + "___empty") + _TRUE, _json_key(key + "___empty") + _FALSE) if need.empty else None
        has = tuple((_json_key(f"{key}___has{i}"), t.items.values[i]) for i in sorted(need.has))

        def list_piece(value):
            items = value or ()
            out = []
            if empty:
                out.append(empty[0] if not items else empty[1])
            if has:
                present = set(items)
                for has_key, v in has:
                    out.append(has_key + (_TRUE if v in present else _FALSE))
            return ", ".join(out)
        return list_piece
    null_true = _json_key(key + "___null") + _TRUE if need.null else None
    null_false = _json_key(key + "___null") + _FALSE if need.null else None
    encode = _encoder(t) if need.value and t.kind != "object" else None
    value_key = _json_key(key)
    prefixes = tuple((_json_key(f"{key}___p{n}"), n) for n in sorted(need.prefixes))

    if encode is not None and not prefixes:  # the common case, kept short
        if null_true is None:
            def value_piece(value):
                return "" if value is None else value_key + _json_value(encode(value))
        else:
            def value_piece(value):
                if value is None:
                    return null_true
                return null_false + ", " + value_key + _json_value(encode(value))
        return value_piece

    def piece(value):
        if value is None:
            return null_true or ""
        out = [null_false] if null_false else []
        if encode:
            out.append(value_key + _json_value(encode(value)))
        if prefixes:
            if type(value) is not str:
                raise EncodingError("prefix test on a non-string")
            for prefix_key, n in prefixes:
                out.append(prefix_key + _string(value[:n]))  # a shorter value is itself: never equal to an n-long prefix
        return ", ".join(out)
    return piece


def fact_head(kind: str) -> str:
    """The start of a fact's text: its kind (the session adds sid, id and the closing brace)."""
    return "{" + _json_key("_w") + _string(kind)


def quantifier_pieces(key: str) -> tuple[str, str]:
    """The text of `___qN` true and false."""
    return _json_key(key) + _TRUE, _json_key(key) + _FALSE


def build_item_text(q, item: dict) -> str:
    parts = [q.head]
    for path, piece in q.pieces:
        value = item
        for part in path:
            value = None if value is None else value.get(part)
        text = piece(value)
        if text:
            parts.append(text)
    return ", ".join(parts)


# -- the reference form: dicts ------------------------------------------------------------------


def build_fact(sub, value_of) -> dict:
    """The flat fact of a sub-wave: every path it needs, from `value_of(parts) -> value`."""
    fact: dict = {"_w": sub.kind}
    for parts, write in sub.writers:
        write(fact, value_of(parts))
    return fact


def build_item_fact(q, item: dict) -> dict:
    fact: dict = {"_w": q.kind}
    for parts, write in q.writers:
        value = item
        for part in parts:
            value = None if value is None else value.get(part)
        write(fact, value)
    return fact
