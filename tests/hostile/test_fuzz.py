"""Hypothesis fuzzing over HTTP, against real gunicorn: ruleset documents (POST
/v1/rulesets:validate) and decision inputs (POST /v1/decisions). No answer may be a 5xx or
take long; every error is problem+json; every decision answered 200 is in the log once.

Documents are the toy fixture with parts replaced by arbitrary JSON values, keys dropped
or added, sent as YAML or JSON; inputs are real sme-credit-policy cases (its embedded
tests and generated valid inputs) with parts replaced the same way. The default profile
is bounded (~30 s); `-m slow` runs the long one.
"""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
import simplejson
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import TOY_SOURCE
from tests.conftest import RULESETS_DIR
from tests.engine.samples import sample_inputs
from tests.hostile.conftest import HEADERS, assert_responsive, check_logged, send
from tests.server import GunicornServer
from tests.strategies import realistic_input_strategy

FAST, LONG = 60, 600
SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
ANSWER_BOUND_S = 10.0

# Arbitrary JSON, leaning on the values that have broken parsers and validators before.
hostile_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-10**40, max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False), st.decimals(allow_nan=False, allow_infinity=False, places=None),
    st.sampled_from([0, -1, 10**15, 1e-30, 1e300, Decimal("1e999"), Decimal("-0"), "", " ", "\x00", "\u202e", "ｱ",
                     "0x10", "1e3", "NaN", "true", "null", "yes", "2024-02-30", "9999-12-31", "../", "%s", "{{x}}",
                     "a" * 5000, "中" * 3000, "\ud7ff", "'; DROP TABLE decisions; --"]),
    st.text(max_size=40),
)
hostile_json = st.recursive(hostile_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)), max_leaves=20)


@st.composite
def mutated(draw, value, depth=0):
    """`value` with some parts replaced by hostile JSON, some keys dropped, some added."""
    roll = draw(st.integers(0, 99))
    if roll < 4 + depth * 2:
        return draw(hostile_json)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if draw(st.integers(0, 19)) == 0:
                continue  # dropped
            out[key] = draw(mutated(item, depth + 1))
        if draw(st.integers(0, 9)) == 0:
            out[draw(st.text(max_size=12))] = draw(hostile_json)
        return out
    if isinstance(value, list):
        items = [draw(mutated(item, depth + 1)) for item in value]
        if items and draw(st.integers(0, 9)) == 0:
            items = items * draw(st.integers(2, 30))  # repeated (duplicate ids, many rules)
        return items
    return value


def _dumps(value) -> bytes:
    return simplejson.dumps(value, use_decimal=True, default=str, ensure_ascii=False).encode("utf-8")


def _assert_sane(response, allowed: set[int], server=None) -> None:
    if response.status_code not in allowed and server is not None:
        log = server.log()
        where = log.rfind("Traceback")
        raise AssertionError(f"{response.status_code}: {response.text[:300]}\nrequest: {response.request.body[:500]!r}"
                             f"\nserver log:\n{log[where:where + 4000] if where >= 0 else log[-2000:]}")
    assert response.status_code in allowed, f"{response.status_code}: {response.text[:500]}"
    assert response.seconds < ANSWER_BOUND_S, f"took {response.seconds:.1f} s"
    if response.status_code >= 400:
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert response.json()["status"] == response.status_code


# -- ruleset documents ---------------------------------------------------------------------------------------

TOY = yaml.safe_load(TOY_SOURCE)
DOCUMENT_ANSWERS = {200, 400, 413, 415, 422}


def _document_case(target, ledger, data, as_yaml: bool):
    if as_yaml:
        try:
            body = yaml.safe_dump(json.loads(_dumps(data)), allow_unicode=True).encode("utf-8")
        except (yaml.YAMLError, ValueError):
            return
        content_type = "application/yaml"
    else:
        body, content_type = _dumps(data), "application/json"
    response = send(target, "POST", "/v1/rulesets:validate", ledger, "fuzz-document", data=body,
                    headers={"Content-Type": content_type})
    _assert_sane(response, DOCUMENT_ANSWERS, target)


def _document_fuzz(examples: int):
    @settings(max_examples=examples, **SETTINGS)
    @given(data=mutated(TOY), as_yaml=st.booleans())
    def run(target, ledger, data, as_yaml):
        _document_case(target, ledger, data, as_yaml)
    return run


def test_fuzzed_ruleset_documents_never_get_a_5xx(target, ledger):
    _document_fuzz(FAST)(target, ledger)
    assert_responsive(target, ledger)


@pytest.mark.slow
def test_fuzzed_ruleset_documents_never_get_a_5xx_long(target, ledger):
    _document_fuzz(LONG)(target, ledger)
    assert_responsive(target, ledger)


# -- decision inputs ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped_target(tmp_path_factory, ledger):
    """A server with the shipped rulesets (sme-credit-policy's real input schema)."""
    from tests.server import TOKENS

    server = GunicornServer(env={"RULESETS_DIR": str(RULESETS_DIR), "RULES_API_TOKENS": TOKENS}, workers=2,
                            data_dir=str(tmp_path_factory.mktemp("hostile-shipped"))).start(timeout=180)
    yield server
    check_logged(server, ledger, set(ledger.unchecked.get(server.url, ())))
    server.stop()


@pytest.fixture(scope="module")
def policy(shipped):
    return shipped.resolve("sme-credit-policy", None, dt.date(2026, 1, 15)).ruleset


DECISION_ANSWERS = {200, 400, 404, 413, 422}


def _decision_fuzz(examples: int, policy, answered: list):
    seen = []

    @settings(max_examples=examples, **SETTINGS)
    @given(data=st.data())
    def run(shipped_target, ledger, data):
        seen.append(1)
        base = data.draw(realistic_input_strategy(policy))
        body = {"ruleset": "sme-credit-policy", "as_of": "2026-01-15", "application_id": f"FUZZ-{len(seen)}",
                "input": json.loads(_dumps(base)), "trace": data.draw(st.sampled_from(["none", "fired", "full"]))}
        body = data.draw(mutated(body)) if data.draw(st.integers(0, 3)) else body
        response = send(shipped_target, "POST", "/v1/decisions", ledger, "fuzz-input", data=_dumps(body),
                        headers={"Content-Type": "application/json"})
        _assert_sane(response, DECISION_ANSWERS, shipped_target)
        if response.status_code == 200:
            answered.append(response.json()["decision_id"])
    return run


def _run_decisions(shipped_target, ledger, policy, examples):
    answered: list = []
    _decision_fuzz(examples, policy, answered)(shipped_target, ledger)
    assert answered, "no fuzzed input was a valid application: the fuzz is not exploring decisions"
    for decision_id in answered:
        ledger.answered(shipped_target, decision_id)
    check_logged(shipped_target, ledger, answered)
    assert ledger.lost == 0 and ledger.duplicated == 0
    assert send(shipped_target, "GET", "/v1/audit/verify", headers=HEADERS).json()["ok"] is True
    assert_responsive(shipped_target, ledger, body={"ruleset": "sme-credit-policy", "as_of": "2026-01-15",
                                                    "application_id": "FUZZ-ALIVE", "input": sample_inputs()[0]})


def test_fuzzed_decision_inputs_never_get_a_5xx_and_every_decision_is_logged_once(shipped_target, ledger, policy):
    _run_decisions(shipped_target, ledger, policy, FAST)


@pytest.mark.slow
def test_fuzzed_decision_inputs_never_get_a_5xx_long(shipped_target, ledger, policy):
    _run_decisions(shipped_target, ledger, policy, LONG)
