"""The generated validator on the hot path returns exactly what marshmallow returns, and every
input it is not sure of — each refusal — goes to marshmallow (so 422s keep its messages)."""
from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from service.errors import InvalidInput
from service.schemas import ruleset_input

SAMEWORK = Path("/work/shared/bench/samework/inputs.json")


def _outcome(fn, raw):
    try:
        return "ok", repr(fn(raw))  # repr: values, their types and key order
    except InvalidInput as exc:
        return "refused", exc.message, [(p.path, p.message) for p in exc.problems]


def _marshmallow_only(validator):
    return lambda raw: validator._check_constraints(validator.load_schema(raw), "input")


def _mutations(raw: dict):
    """Each leaf replaced by wrong or edge values, removed, and an unknown key added."""
    yield raw
    odd = (None, True, 1, -1, 0, Decimal("1.5"), Decimal("1E+2"), Decimal("NaN"), "1", "", "2026-01-15", [], {}, 10**30,
           Decimal("0.001"), "x" * 300, [None], [1], [{}])

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from walk(value, path + (key,))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from walk(value, path + (i,))
        yield path

    for path in list(walk(raw, ())):
        if not path:
            continue
        for value in odd:
            out = copy.deepcopy(raw)
            target = out
            for part in path[:-1]:
                target = target[part]
            target[path[-1]] = value
            yield out
        out = copy.deepcopy(raw)
        target = out
        for part in path[:-1]:
            target = target[part]
        if isinstance(target, dict):
            del target[path[-1]]
            yield out
            target["not_declared"] = 1
            yield out


def _inputs_of(lv):
    for case in lv.ruleset.tests:
        if isinstance(case.input, dict):
            yield case.input


# The default run mutates the first 3 golden inputs of every version; CI's slow run the first 12.
@pytest.mark.parametrize("per_version, at_least", [(3, (10_000, 1_000)), pytest.param(12, (40_000, 4_000), marks=pytest.mark.slow)],
                         ids=["first-3", "first-12"])
def test_same_answers_as_marshmallow_on_every_golden_input_and_its_mutations(shipped, toy, per_version, at_least):
    checked = fast = 0
    for registry in (shipped, toy):
        for lv in registry.all():
            v = lv.validator
            for base in list(_inputs_of(lv))[:per_version]:
                for raw in _mutations(base):
                    want = _outcome(_marshmallow_only(v), raw)
                    assert _outcome(v.load, raw) == want, (lv.ruleset.key, raw)
                    checked += 1
                    try:
                        v._fast(raw)
                        fast += 1
                    except ruleset_input._Unsure:
                        pass
    assert checked > at_least[0] and fast > at_least[1]  # the fast path really is taken, and often refused


@pytest.mark.skipif(not SAMEWORK.exists(), reason="the shared samework inputs are not on this machine")
def test_same_answers_on_the_samework_inputs(shipped):
    lv = shipped.resolve("sme-credit-policy", None, dt.date(2026, 1, 15))
    inputs = json.loads(SAMEWORK.read_text(encoding="utf-8"), parse_float=Decimal)
    for raw in inputs:
        assert repr(lv.validator._fast(raw)) == repr(lv.validator.load_schema(raw))  # all valid: all fast


def test_a_refusal_keeps_marshmallows_messages(toy):
    lv = toy.resolve("toy", "1.0.0", dt.date(2026, 1, 15))
    with pytest.raises(InvalidInput) as raised:
        lv.validator.load({"applicant": {"rating": 5, "code": "C3670", "what": 1}, "amount": "100"})
    assert sorted((p.path, p.message) for p in raised.value.problems) == [
        ("input.amount", "must be a number (a JSON number, not a string)"),
        ("input.applicant.rating", "must be one of: AAA, AA, A, BBB, BB, B, CCC, CC, C, D"),
        ("input.applicant.what", "unknown field (not declared in the ruleset's input)"),
    ]


def test_same_answers_on_generated_inputs(shipped):
    from hypothesis import HealthCheck, given, settings

    from tests.strategies import input_strategy

    for lv in shipped.all()[:6] + shipped.versions("sme-credit-policy"):
        v = lv.validator

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(input_strategy(lv.ruleset))
        def check(raw):
            assert _outcome(v.load, raw) == _outcome(_marshmallow_only(v), raw)
        check()
