"""The decision envelope's accepting path (schemas.api.evaluate_request) gives exactly what the
marshmallow schema gives, and every envelope it is not sure of goes to the schema, so each
refusal keeps its problems and messages."""
from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from service.errors import InvalidRequest
from service.schemas.api import EvaluateRequest, _evaluate_fast, evaluate_request, load

SCHEMA = EvaluateRequest()
VALID = {"ruleset": "sme-credit-policy", "version": "1.1.0", "as_of": "2026-01-15",
         "application_id": "APP-2026-000123", "input": {"applicant": {"name": "x"}}, "trace": "full",
         "dry_run": True}
ODD = (None, True, False, 0, 1, Decimal("1.5"), "", " ", "x", "sme-credit-policy", "sme-credit-policy\n",
       "Sme", "1.0.0", "1.0.0\n", "01.0.0", "1.0", "2026-01-15", "2026-02-30", "2026-W01-1", "20260115",
       "2026-01-15T00:00:00", "full", "fired", "none", "FULL", "APP 1", "APP\t1", "é", "A" * 100, "A" * 101,
       [], {}, {"a": 1}, ["x"])


def _outcome(raw):
    try:
        return "ok", repr(load(SCHEMA, raw))  # repr: values, their types and key order
    except InvalidRequest as exc:
        return "refused", exc.message, [(p.path, p.message) for p in exc.problems]


def _fast_outcome(raw):
    try:
        return "ok", repr(evaluate_request(raw))
    except InvalidRequest as exc:
        return "refused", exc.message, [(p.path, p.message) for p in exc.problems]


def _envelopes():
    yield VALID
    for field in VALID:
        yield {k: v for k, v in VALID.items() if k != field}  # each field left out
        for value in ODD:
            yield {**VALID, field: value}
    yield {**VALID, "unknown": 1}
    yield {"ruleset": "sme-credit-policy", "application_id": "A", "input": {}}  # only the required ones
    for combo in itertools.product((None, "1.0.0", "x"), (None, "2026-01-15", "bad"), ("fired", None)):
        yield {**VALID, "version": combo[0], "as_of": combo[1], "trace": combo[2]}


def test_every_envelope_gets_what_the_schema_gives():
    accepted_fast = 0
    for raw in _envelopes():
        assert _fast_outcome(raw) == _outcome(raw), raw
        accepted_fast += _evaluate_fast(raw) is not None
    assert accepted_fast > 30  # the fast path is really taken, not always deferred


@pytest.mark.parametrize("raw", [None, [], "x", 1, {"ruleset": 1}, {**VALID, "input": []},
                                 {**VALID, "dry_run": None}, {**VALID, "trace": None}, {**VALID, "as_of": "2026-13-01"}])
def test_anything_doubtful_is_left_to_the_schema(raw):
    assert _evaluate_fast(raw) is None
