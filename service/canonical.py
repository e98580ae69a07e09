"""Canonical JSON: one byte-exact text for one value.

Used for ruleset content hashes, decision-log hash chains and every JSON body the
service writes. Decimals are written as JSON numbers with their exact digits (never
through a float), keys are sorted, no insignificant whitespace, UTF-8 text kept as is.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
from decimal import Decimal

import orjson
import simplejson


def _default(value):
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def normalize_decimal(value: Decimal) -> Decimal:
    """0.550 -> 0.55, 1E+1 -> 10: one spelling per number."""
    if value == value.to_integral_value():
        return Decimal(int(value))
    return Decimal(format(value.normalize(), "f"))


_ORJSON_SORTED = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS
_ORJSON_ORDERED = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS


def _orjson_default(value):
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))  # exactly simplejson's use_decimal spelling
    if isinstance(value, simplejson.RawJSON):
        return orjson.Fragment(value.encoded_json)
    return _default(value)


def dumps(value, *, sort_keys: bool = True) -> str:
    """Compact JSON text; Decimal values are exact JSON numbers.

    orjson writes it (about 10x faster: this runs several times per decision); the text
    is byte-identical to the simplejson spelling below, which takes over for what orjson
    does not write the same way or at all (integers beyond 64 bits, non-string keys,
    subclasses of str/int/dict/list) — tests/test_canonical_fast.py holds them equal."""
    try:
        return orjson.dumps(value, default=_orjson_default,
                            option=_ORJSON_SORTED if sort_keys else _ORJSON_ORDERED).decode("utf-8")
    except (TypeError, orjson.JSONEncodeError):
        return _simplejson_dumps(value, sort_keys=sort_keys)


def _simplejson_dumps(value, *, sort_keys: bool) -> str:
    return simplejson.dumps(
        value,
        use_decimal=True,
        sort_keys=sort_keys,
        separators=(",", ":"),
        ensure_ascii=False,
        default=_default,
    )


def loads(text: str | bytes):
    """Parse JSON keeping every non-integer number as an exact Decimal."""
    return simplejson.loads(text, use_decimal=True)


def sha256_hex(value) -> str:
    """sha256 of the canonical text of a value."""
    return hashlib.sha256(dumps(value).encode("utf-8")).hexdigest()


def utc_text(value: _dt.datetime) -> str:
    """The one text form of an instant: UTC, microseconds, `Z` (2026-11-24T08:00:00.000000Z).
    Used in answers, exports and the log's hashes alike; a naive value is taken to be UTC."""
    value = value.replace(tzinfo=_dt.timezone.utc) if value.tzinfo is None else value.astimezone(_dt.timezone.utc)
    # isoformat, not strftime: strftime writes year 1 as "1", which no longer sorts as text.
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


def spreadsheet_safe(text: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula (CSV injection): a cell starting
    with = + - @ or a tab/CR gets a leading '."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
