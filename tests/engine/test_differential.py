"""The compiler is right: durable_rules and the plain interpreter agree exactly.

For every version of every shipped ruleset, generated inputs (biased to each
threshold's boundaries; 100 per ruleset in the default run, 300 in CI's slow run) are
evaluated through the compiled durable_rules network and through `ReferenceInterpreter`,
which evaluates the same parsed document directly.
Outcome, reason codes, results and the fired rules must be identical — for the used
rulesets of a composition as well.
"""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from service.engine.reference import ReferenceInterpreter
from service.errors import InvalidInput
from service.decision_engine.registry import sub_input
from tests.conftest import RULESETS_DIR
from tests.strategies import realistic_input_strategy

SHIPPED = sorted(p.name for p in RULESETS_DIR.iterdir() if p.is_dir())
EXAMPLES = 300  # per version (at least 60 each when a ruleset has more than 3): CI's slow run
FAST_EXAMPLES = 100  # the default run: a third as many (derandomised too)
SIZES = [pytest.param(FAST_EXAMPLES, id="fast"), pytest.param(EXAMPLES, id="full", marks=pytest.mark.slow)]


def _reference(lv, data, used_evaluations):
    """Reference results for the used rulesets first, then for the ruleset itself."""
    uses = {}
    for use in lv.ruleset.uses:
        used = used_evaluations[use.alias]
        expected = ReferenceInterpreter(used.ruleset).evaluate(sub_input(use, data, used.ruleset))
        assert _engine_view(used) == expected, f"used ruleset {used.ruleset.key} disagrees"
        uses[use.alias] = used
    return ReferenceInterpreter(lv.ruleset).evaluate(data, uses=uses)


def _engine_view(evaluation) -> dict:
    return {
        "outcome": evaluation.outcome,
        "reasons": [r["code"] for r in evaluation.reasons],
        "results": evaluation.results,
        "fired": evaluation.fired,
    }


def _dates(lv):
    rs = lv.ruleset
    end = rs.effective_to - dt.timedelta(days=1) if rs.effective_to else rs.effective_from + dt.timedelta(days=3650)
    return st.dates(min_value=rs.effective_from, max_value=end)


def _check_version(registry, lv, examples):
    @settings(max_examples=examples, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(raw=realistic_input_strategy(lv.ruleset), as_of=_dates(lv))
    def check(raw, as_of):
        try:
            data = lv.validator.load(raw)
        except InvalidInput:
            assume(False)
        evaluation = registry.evaluate_loaded(lv, data, as_of=as_of)
        assert _engine_view(evaluation) == _reference(lv, data, evaluation.uses)

    check()


@pytest.mark.parametrize("examples", SIZES)
@pytest.mark.parametrize("name", SHIPPED)
def test_engine_agrees_with_plain_interpreter(shipped, name, examples):
    versions = shipped.versions(name)
    assert versions, f"{name} did not load"
    for lv in versions:
        _check_version(shipped, lv, max(examples // len(versions), examples // 5) if len(versions) > 3 else examples)


@pytest.mark.parametrize("examples", SIZES)
def test_engine_agrees_on_the_operator_fixtures(toy, examples):
    for lv in toy.all():  # toy and operators: every operator, negated and not
        _check_version(toy, lv, examples)


def test_generated_inputs_reach_every_outcome(shipped):
    """The generator is not vacuous: for sme-credit-policy it produces every outcome."""
    lv = shipped.versions("sme-credit-policy")[-1]
    seen = set()

    @settings(max_examples=400, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(raw=realistic_input_strategy(lv.ruleset))
    def collect(raw):
        try:
            data = lv.validator.load(raw)
        except InvalidInput:
            assume(False)
        seen.add(shipped.evaluate_loaded(lv, data, as_of=dt.date(2026, 1, 15)).outcome)

    collect()
    assert seen == {"APPROVE", "REFER", "DECLINE"}
