"""Sessions are reused, so nothing may survive a use: after EVERY evaluation of every shipped
version's embedded tests and of the sample inputs, the raw engine shows the session's state
without a fact, an event or a pending action, and a failed use deletes the state.

The check reads durable_rules directly (not through durable.py's own emptiness check), so a
bug in that check cannot hide a surviving fact.
"""
from __future__ import annotations

import datetime as dt
from contextlib import contextmanager

import durable_rules_engine as raw
import pytest

from service.engine import durable
from service.rulesets.testing import run_tests
from tests.engine.samples import sample_inputs

AS_OF = dt.date(2026, 1, 15)


def _raw_state(handle, sid: str) -> tuple[str, str] | None:
    """(facts, events) of a session as the engine holds them; None if it has no state."""
    try:
        return raw.get_facts(handle, sid), raw.get_events(handle, sid)
    except raw.error:  # 309: no such state (deleted)
        return None


@pytest.fixture
def every_use_checked(monkeypatch):
    """Wrap DurableRuleset.session: after each use record what the engine still holds."""
    real = durable.DurableRuleset.session
    uses: list[tuple[str, int, object]] = []

    @contextmanager
    def checked(self):
        with real(self) as session:
            yield session
        facts = len(session._facts)
        left = _raw_state(self._handle, session._sid)
        pending = raw.start_action(self._handle)
        uses.append((self.name, facts, (left, pending)))

    monkeypatch.setattr(durable.DurableRuleset, "session", checked)
    return uses


def _assert_all_empty(uses):
    assert uses, "nothing was evaluated"
    survivors = [(name, left) for name, _, left in uses if left not in ((("[]", "[]"), None), (None, None))]
    assert survivors == [], survivors[:5]


def test_no_fact_survives_any_use_in_the_embedded_tests_of_every_shipped_version(shipped, every_use_checked):
    cases = 0
    for lv in shipped.all():
        report = run_tests(lv, shipped)
        assert report.passed, lv.ruleset.key
        cases += len(report.cases)
    _assert_all_empty(every_use_checked)
    assert sum(facts for _, facts, _ in every_use_checked) > cases  # the uses asserted real facts
    # A successful use keeps its (empty) state for the next one instead of deleting it.
    assert sum(left == (("[]", "[]"), None) for _, _, left in every_use_checked) > 0.99 * len(every_use_checked)


def test_no_fact_survives_alternating_sample_evaluations(shipped, every_use_checked):
    lv = shipped.resolve("sme-credit-policy", None, AS_OF)
    data = [lv.validator.load(raw_input) for raw_input in sample_inputs()]
    for n in range(2_000):
        shipped.evaluate_loaded(lv, data[(n * 7) % len(data)], as_of=AS_OF)
    _assert_all_empty(every_use_checked)
    assert len(every_use_checked) >= 4_000  # the policy and its size classification, each use


def test_a_failed_use_deletes_the_state_and_the_next_use_starts_empty(shipped):
    lv = shipped.versions("sme-credit-policy")[-1]
    engine = lv.compiled.engine
    with engine.session() as session:
        session.assert_fact({"_w": "none"})
    sid = engine._sid
    assert _raw_state(engine._handle, sid) == ("[]", "[]")
    with pytest.raises(RuntimeError):
        with engine.session() as session:
            session.assert_fact({"_w": "none"})
            raise RuntimeError("the evaluation failed half-way")
    assert _raw_state(engine._handle, sid) is None  # deleted, not emptied
    assert durable.live_sessions() == 0
    with engine.session() as session:
        session.assert_fact({"_w": "none"})
    assert engine._sid != sid and engine.is_empty()


def _policy_and_input(shipped):
    lv = shipped.resolve("sme-credit-policy", None, AS_OF)
    return lv, lv.validator.load(sample_inputs()[0])


def test_a_fact_that_survives_the_retraction_deletes_the_state(shipped, monkeypatch):
    lv, data = _policy_and_input(shipped)
    engine = lv.compiled.engine
    shipped.evaluate_loaded(lv, data, as_of=AS_OF)
    sid = engine._sid
    assert sid is not None
    monkeypatch.setattr(durable._engine, "retract_fact", lambda handle, text: (0, 0))  # retracts nothing
    expected = shipped.evaluate_loaded(lv, data, as_of=AS_OF).summary("full")
    monkeypatch.undo()
    assert _raw_state(engine._handle, sid) is None  # the facts were left, so the state went
    assert engine._sid is None
    assert shipped.evaluate_loaded(lv, data, as_of=AS_OF).summary("full") == expected
    assert engine.is_empty()


def test_the_same_facts_are_accepted_again_after_the_retraction(shipped):
    """Ids restart at f1 every use, so the same input asserts the very same fact texts again:
    the engine would refuse them (MessageObserved) had they not been retracted."""
    lv, data = _policy_and_input(shipped)
    engine = lv.compiled.engine
    first = shipped.evaluate_loaded(lv, data, as_of=AS_OF).summary("full")
    sid = engine._sid
    for _ in range(3):
        assert shipped.evaluate_loaded(lv, data, as_of=AS_OF).summary("full") == first
        assert engine._sid == sid and engine.is_empty()  # reused, not deleted and re-created
