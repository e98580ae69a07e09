"""The fast canonical JSON writer (orjson) is byte-identical to the simplejson one it
replaced: what the log hashes and the service answers must not change by a byte."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import simplejson
from hypothesis import given, settings, strategies as st

from service import canonical

decimals = st.decimals(allow_nan=False, allow_infinity=False, places=None) | st.decimals(
    min_value=Decimal("-1E+30"), max_value=Decimal("1E+30"), allow_nan=False, allow_infinity=False)
scalars = (st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70) | decimals
           | st.text() | st.dates() | st.datetimes(timezones=st.just(dt.timezone.utc)))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=5), max_leaves=30)


@settings(max_examples=400, deadline=None)
@given(values, st.booleans())
def test_same_bytes_as_simplejson(value, sort_keys):
    assert canonical.dumps(value, sort_keys=sort_keys) == canonical._simplejson_dumps(value, sort_keys=sort_keys)


def test_the_awkward_cases():
    cases = [
        {"z": Decimal("1E+6"), "a": Decimal("0.10"), "m": Decimal("-0"), "big": 10 ** 40},
        {"text": "杭州\u2028\u2029\x00\x1f\"\\/ \U0001f600", "é": 1, "e": 2, "\U0001f600": 3, "\uffff": 4},
        [simplejson.RawJSON('{"b":1,"a":2}'), dt.date(2026, 1, 15), dt.datetime(2026, 1, 15, 8, tzinfo=dt.timezone.utc)],
        {1: "int key"},
    ]
    for value in cases:
        for sort_keys in (True, False):
            assert canonical.dumps(value, sort_keys=sort_keys) == canonical._simplejson_dumps(value, sort_keys=sort_keys)
