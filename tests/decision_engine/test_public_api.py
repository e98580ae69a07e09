"""The public in-process API (docs/api-contract.md, "In-process API"): service.load_engine(...).evaluate(...).

Its answer is the HTTP answer minus decision_id / evaluated_at / duration_ms, and invalid
input raises the error (with the problems) the API turns into a 422."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from decimal import Decimal

import pytest
import requests

import service
from service import canonical
from service.decision_engine import Decision, Engine
from service.errors import InvalidInput, InvalidRequest, InvalidRuleset, UnknownRuleset
from tests.engine.samples import sample_inputs
from tests.server import ROOT, GunicornServer

FIXTURES = ROOT / "tests" / "fixtures" / "rulesets"
VOLATILE = ("decision_id", "evaluated_at", "duration_ms")
AS_OF = dt.date(2026, 1, 15)

TOY_CASES = [
    {"applicant": {"rating": "BBB", "code": "C3670"}, "amount": 100},
    {"applicant": {"rating": "CCC", "code": "C3670", "mines": [{"cap": 50}, {"cap": Decimal("20.5")}]}, "amount": 100},
    {"applicant": {"rating": None, "code": "G5310"}, "amount": Decimal("99.99")},
]
BAD_TOY = {"applicant": {"rating": "ZZZ", "code": 5, "extra": 1}, "amount": "100"}


@pytest.fixture(scope="module")
def toy_engine() -> Engine:
    return service.load_engine(FIXTURES)


@pytest.fixture(scope="module")
def toy_http(tmp_path_factory):
    server = GunicornServer({"RULESETS_DIR": str(FIXTURES), "RULES_API_TOKENS": None}, workers=1,
                            data_dir=str(tmp_path_factory.mktemp("in-process-api"))).start()
    yield server
    server.stop()


def _post(server, body) -> requests.Response:
    return requests.post(server.url + "/v1/decisions", data=canonical.dumps(body), timeout=30,
                         headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("trace", ["fired", "full", "none"])
@pytest.mark.parametrize("case", range(len(TOY_CASES)))
def test_as_dict_is_the_http_answer_without_its_volatile_fields(toy_engine, toy_http, case, trace):
    raw = TOY_CASES[case]
    answer = _post(toy_http, {"ruleset": "toy", "application_id": f"APP-{case}", "as_of": "2026-01-15",
                              "trace": trace, "input": raw})
    assert answer.status_code == 200, answer.text
    http = {k: v for k, v in canonical.loads(answer.text).items() if k not in VOLATILE}
    d = toy_engine.evaluate("toy", raw, as_of=AS_OF, trace=trace, application_id=f"APP-{case}")
    assert isinstance(d, Decision)
    assert canonical.loads(canonical.dumps(d.as_dict())) == http
    assert list(d.as_dict()) == list(http)  # same key order as the HTTP body
    assert (d.outcome, d.reasons, d.results) == (http["outcome"], http["reasons"], http["results"])
    assert canonical.loads(canonical.dumps(d.trace)) == http["trace"]
    # Without application_id, the answer is the same minus that field.
    plain = toy_engine.evaluate("toy", raw, as_of=AS_OF, trace=trace).as_dict()
    assert "application_id" not in plain and canonical.dumps(plain) == canonical.dumps(
        {k: v for k, v in d.as_dict().items() if k != "application_id"})


def test_invalid_input_raises_the_problems_the_api_answers_with(toy_engine, toy_http):
    answer = _post(toy_http, {"ruleset": "toy", "application_id": "APP-BAD", "as_of": "2026-01-15", "input": BAD_TOY})
    assert answer.status_code == 422
    body = answer.json()
    with pytest.raises(InvalidInput) as raised:
        toy_engine.evaluate("toy", BAD_TOY, as_of=AS_OF)
    got = sorted((p.path, p.message) for p in raised.value.problems)
    assert got == sorted((e["path"], e["message"]) for e in body["errors"])
    assert {"input.applicant.rating", "input.applicant.code", "input.applicant.extra", "input.amount"} <= {p for p, _ in got}
    assert raised.value.message == body["detail"]


def test_unknown_names_versions_and_bad_arguments(toy_engine):
    with pytest.raises(UnknownRuleset):
        toy_engine.evaluate("nope", TOY_CASES[0], as_of=AS_OF)
    with pytest.raises(UnknownRuleset):
        toy_engine.evaluate("toy", TOY_CASES[0], as_of=AS_OF, version="9.9.9")
    with pytest.raises(InvalidRequest):
        toy_engine.evaluate("toy", TOY_CASES[0], as_of=AS_OF, trace="everything")
    with pytest.raises(InvalidRequest):
        toy_engine.evaluate("toy", TOY_CASES[0], as_of="2026-01-15")
    assert toy_engine.evaluate("toy", TOY_CASES[0], as_of=AS_OF, version="1.0.0").outcome == "APPROVE"


def test_shipped_policy_matches_the_registry_path(shipped):
    engine = Engine(shipped)
    for raw in sample_inputs():
        lv = shipped.resolve("sme-credit-policy", None, AS_OF)
        want = shipped.evaluate_loaded(lv, lv.validator.load(raw), as_of=AS_OF).summary("fired")
        got = engine.evaluate("sme-credit-policy", raw, as_of=AS_OF).as_dict()
        assert got["ruleset"] == {"name": lv.name, "version": lv.version, "sha256": lv.ruleset.sha256}
        assert canonical.dumps({k: got[k] for k in want}) == canonical.dumps(want)
        assert "uses" in got


def test_a_directory_that_does_not_load_raises_with_every_problem(tmp_path):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "1.0.0.yaml").write_text("name: toy\nversion: '1.0.0'\nrules: 5\n", encoding="utf-8")
    with pytest.raises(InvalidRuleset) as raised:
        service.load_engine(tmp_path)
    assert raised.value.problems and all(p.path.startswith("toy/1.0.0.yaml") for p in raised.value.problems)


def test_importing_service_stays_cheap():
    code = ("import json, sys, service; assert hasattr(service, 'load_engine'); "
            "print(json.dumps([m for m in ('durable_rules_engine', 'marshmallow', 'yaml') if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(out.stdout) == []  # the engine loads when load_engine is called, not on import
