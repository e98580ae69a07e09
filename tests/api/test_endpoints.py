"""Every endpoint over HTTP against a real gunicorn server (2 workers), as docs/api-contract.md says.

Servers and helpers are in conftest.py; every response is also checked against openapi.yaml.
Tests that publish use a ruleset name of their own (`unique`); tests that evaluate the `toy`
fixture pin its version, so no test depends on another.
"""
from __future__ import annotations

import csv
import hashlib
import datetime as dt
import io
import json
import re
import threading
import time
import uuid
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
import yaml
from prometheus_client.mmap_dict import MmapedDict

from tests.api.conftest import (
    JSON, YAML, Client, as_json_document, error_paths, evaluate_body, problem, publish, toy_input, toy_v2_yaml,
    toy_yaml, wait_for_log,
)
from tests.jobs.helpers import wait_for_job
from tests.server import ALL, EVALUATE, bearer

VOLATILE = ("decision_id", "evaluated_at", "duration_ms")
TOY_RULES = ["S-IN", "S-OUT", "R-FLOOR", "R-LOW", "R-MINES"]


def decide(client: Client, application_id: str, **fields) -> dict:
    response = client.post("/v1/decisions", json=evaluate_body(application_id, **fields))
    assert response.status_code == 200, response.text
    return response.json()


# == evaluate ======================================================================================


def _business_date() -> str:
    return dt.datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()


BUSINESS_DATES = {_business_date()}


def test_decline_is_a_200_result_with_reasons_and_full_trace(evaluator):
    body = evaluate_body("EV-DECLINE", trace="full", input=toy_input("CCC", mines=[{"cap": 20}]))
    response = evaluator.post("/v1/decisions", json=body)
    assert response.status_code == 200
    d = response.json()
    assert d["outcome"] == "DECLINE"
    assert d["application_id"] == "EV-DECLINE"
    assert d["ruleset"]["name"] == "toy" and d["ruleset"]["version"] == "1.0.0"
    assert re.fullmatch(r"[0-9a-f]{64}", d["ruleset"]["sha256"])
    assert d["reasons"] == [{"code": "LOW", "rule_id": "R-LOW", "stage": "rating",
                             "message_zh": "评级过低", "message_en": "rating too low"}]
    assert d["results"] == {"in_scope": True, "floor": "B", "tags": ["small", "mining"], "max_amount": 200}
    assert [t["rule_id"] for t in d["trace"]] == TOY_RULES  # full: every rule, fired or not
    fired = {t["rule_id"]: t["fired"] for t in d["trace"]}
    assert fired == {"S-IN": True, "S-OUT": False, "R-FLOOR": True, "R-LOW": True, "R-MINES": True}
    low = next(t for t in d["trace"] if t["rule_id"] == "R-LOW")
    assert low["inputs"] == {"result.in_scope": True, "applicant.rating": "CCC", "result.floor": "B"}
    assert low["effect"] == {"outcome": "DECLINE", "reason": "LOW"}
    assert d["as_of"] in BUSINESS_DATES | {_business_date()}  # today in Asia/Shanghai (around midnight: either)
    assert dt.datetime.fromisoformat(d["evaluated_at"].replace("Z", "+00:00")).tzinfo is not None
    assert d["duration_ms"] >= 0


@pytest.mark.parametrize("level, expected_rules", [
    ("full", TOY_RULES),
    ("fired", ["S-IN", "R-FLOOR"]),
    ("none", []),
    (None, ["S-IN", "R-FLOOR"]),  # default: fired
])
def test_trace_level_selects_the_rules_shown(evaluator, level, expected_rules):
    fields = {"trace": level} if level else {}
    d = decide(evaluator, f"EV-TRACE-{level}", **fields)
    assert d["outcome"] == "APPROVE"
    assert [t["rule_id"] for t in d["trace"]] == expected_rules


def test_same_input_same_version_gives_the_same_answer_apart_from_volatile_fields(evaluator):
    body = evaluate_body("EV-SAME", trace="full", input=toy_input("CCC", mines=[{"cap": 10.5}]))
    first = evaluator.post("/v1/decisions", json=body)
    second = evaluator.post("/v1/decisions", json=body)
    a, b = first.json(), second.json()
    assert {k: v for k, v in a.items() if k not in VOLATILE} == {k: v for k, v in b.items() if k not in VOLATILE}
    # byte for byte: the same text once the volatile fields are blanked out
    blank = lambda text: re.sub(r'"(decision_id|evaluated_at)":"[^"]*"|"duration_ms":[0-9.eE+-]+', "", text)
    assert blank(first.text) == blank(second.text)
    assert a["decision_id"] != b["decision_id"]
    assert uuid.UUID(a["decision_id"]).version == 7 and a["decision_id"] < b["decision_id"]  # sortable by time


def test_as_of_chooses_the_version_effective_on_that_date(publisher, evaluator, unique):
    publish(publisher, toy_yaml(unique, "1.0.0", effective_from="2024-01-01"))
    publish(publisher, toy_v2_yaml(unique, "2.0.0", effective_from="2025-01-01"))
    pick = lambda as_of: decide(evaluator, "EV-ASOF", ruleset=unique, version=None, as_of=as_of)["ruleset"]["version"]
    assert pick("2024-06-30") == "1.0.0"
    assert pick("2025-01-01") == "2.0.0"
    problem(evaluator.post("/v1/decisions", json=evaluate_body("EV-ASOF", ruleset=unique, version=None,
                                                               as_of="2023-12-31")), 404)


def test_unknown_ruleset_or_version_is_404(evaluator):
    assert "nope" in problem(evaluator.post("/v1/decisions", json=evaluate_body("EV-404", ruleset="nope")), 404)["detail"]
    problem(evaluator.post("/v1/decisions", json=evaluate_body("EV-404", version="9.9.9")), 404)


@pytest.mark.parametrize("input_, path", [
    (toy_input("XX"), "input.applicant.rating"),
    (toy_input("A", code="G99"), "input.applicant.code"),
    (toy_input("A", amount="100"), "input.amount"),
    (toy_input("A", amount=0), "input.amount"),
    (toy_input("A", amount=1.005), "input.amount"),
    ({"applicant": {"rating": "A", "code": "C3670"}}, "input.amount"),
    ({**toy_input("A"), "amout": 1}, "input.amout"),
    (toy_input("A", existing=1), "input.applicant.existing"),
    (toy_input("A", mines=[{"cap": -1}]), "input.applicant.mines.0.cap"),
])
def test_invalid_input_is_422_naming_the_field_path(evaluator, input_, path):
    body = problem(evaluator.post("/v1/decisions", json=evaluate_body("EV-422", input=input_)), 422)
    assert body["type"].endswith("/invalid-input")
    assert path in error_paths(body), body["errors"]
    assert all(e["message"] and e["code"] for e in body["errors"])


def test_every_input_problem_is_listed_at_once(evaluator):
    body = problem(evaluator.post("/v1/decisions", json=evaluate_body(
        "EV-422", input={"applicant": {"rating": "XX", "code": "Z1"}, "amount": -1})), 422)
    assert {"input.applicant.rating", "input.applicant.code", "input.amount"} <= set(error_paths(body))


@pytest.mark.parametrize("change, path", [
    ({"application_id": None}, "application_id"),
    ({"application_id": "has space"}, "application_id"),
    ({"trace": "verbose"}, "trace"),
    ({"version": "1.0"}, "version"),
    ({"as_of": "2026-02-30"}, "as_of"),
    ({"input": [1]}, "input"),
    ({"colour": "red"}, "colour"),
])
def test_invalid_envelope_is_422_naming_the_field(evaluator, change, path):
    body = {**evaluate_body("EV-ENV"), **change}
    body = {k: v for k, v in body.items() if v is not None}
    assert path in error_paths(problem(evaluator.post("/v1/decisions", json=body), 422))


@pytest.mark.parametrize("raw", [
    b'{"ruleset": "toy", ',                                     # truncated
    b'{"ruleset": "toy", "ruleset": "toy", "application_id": "A", "input": {}}',  # duplicate key
    b'{"ruleset": "toy", "application_id": "A", "input": {"amount": NaN}}',        # not JSON
    b'\xff\xfe{}',                                              # not UTF-8
    b'{"ruleset": "toy", "application_id": "A", "input": {"x": "\\ud800"}}',      # lone surrogate
    b"[" * 100_000 + b"]" * 100_000,                            # nested too deeply
])
def test_malformed_json_is_400(evaluator, raw):
    body = problem(evaluator.post("/v1/decisions", data=raw, headers=JSON), 400)
    assert body["type"].endswith("/malformed-json")


def test_duplicate_keys_inside_input_are_refused_too(evaluator):
    raw = b'{"ruleset":"toy","version":"1.0.0","application_id":"A","input":' \
          b'{"applicant":{"rating":"A","rating":"D","code":"C3670"},"amount":1}}'
    assert "rating" in problem(evaluator.post("/v1/decisions", data=raw, headers=JSON), 400)["detail"]


def test_numbers_beyond_any_meaningful_range_are_422_not_a_crash(evaluator):
    for literal in (b"1e999999", b"1" + b"0" * 5000):
        raw = b'{"ruleset":"toy","version":"1.0.0","application_id":"A","input":' \
              b'{"applicant":{"rating":"A","code":"C3670"},"amount":' + literal + b"}}"
        problem(evaluator.post("/v1/decisions", data=raw, headers=JSON), 422)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/yaml", None])
def test_wrong_content_type_is_415(evaluator, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    data = json.dumps(evaluate_body("EV-415")).encode()
    response = evaluator.post("/v1/decisions", data=data, headers=headers)
    problem(response, 415)


def test_body_over_the_limit_is_413(bare_server):
    """bare_server has MAX_BODY_BYTES=1024."""
    client = Client(bare_server.url, ALL)
    small = json.dumps(evaluate_body("EV-413")).encode()
    assert len(small) < 1024
    problem(client.post("/v1/decisions", data=small, headers=JSON), 404)  # under the limit: read (no rulesets here)
    padded = json.dumps({**evaluate_body("EV-413"), "pad": "x" * 2000}).encode()
    problem(client.post("/v1/decisions", data=padded, headers=JSON), 413)
    problem(client.post("/v1/decisions:batch", data=padded, headers=JSON), 413)
    problem(client.post("/v1/rulesets/toy/versions", data=padded, headers=YAML), 413)


def test_body_over_8_mib_is_413_with_the_default_limit(evaluator):
    big = b'{"pad": "' + b"x" * (8 * 1024 * 1024) + b'"}'
    try:
        response = evaluator.post("/v1/decisions", data=big, headers=JSON)
    except requests.ConnectionError:
        pytest.fail("the server dropped the connection instead of answering 413")
    problem(response, 413)


# == batch =========================================================================================


def test_batch_decides_good_items_and_reports_bad_ones_in_order(evaluator, auditor):
    items = [
        evaluate_body("BATCH-OK", input=toy_input("A")),
        evaluate_body("BATCH-BAD-INPUT", input=toy_input("XX")),
        evaluate_body("BATCH-UNKNOWN", ruleset="nope"),
        "not an object",
        {"ruleset": "toy", "input": {}},
        evaluate_body("BATCH-DECLINE", input=toy_input("D")),
    ]
    response = evaluator.post("/v1/decisions:batch", json={"items": items})
    assert response.status_code == 200
    out = response.json()
    assert [i["index"] for i in out["items"]] == list(range(6))
    assert [i["status"] for i in out["items"]] == [200, 422, 404, 422, 422, 200]
    assert out["summary"] == {"total": 6, "decided": 2, "failed": 4}
    assert out["items"][0]["decision"]["outcome"] == "APPROVE"
    assert out["items"][5]["decision"]["outcome"] == "DECLINE"
    assert "items.1.input.applicant.rating" in [e["path"] for e in out["items"][1]["error"]["errors"]]
    assert [e["path"] for e in out["items"][3]["error"]["errors"]] == ["items.3"]
    assert "items.4.application_id" in [e["path"] for e in out["items"][4]["error"]["errors"]]
    # Each failed item carries the problem document a single request would get.
    assert [i.get("error", {}).get("code") for i in out["items"]] == [
        None, "invalid_input", "unknown_ruleset", "invalid_request", "invalid_request", None]
    single = problem(evaluator.post("/v1/decisions", json=items[1]), 422)
    item_error = out["items"][1]["error"]
    assert {k: item_error[k] for k in ("type", "title", "status", "code", "detail")} == \
        {k: single[k] for k in ("type", "title", "status", "code", "detail")}
    assert [e["path"] for e in item_error["errors"]] == ["items.1." + p for p in error_paths(single)]
    # only real decisions are logged
    logged = lambda app: auditor.get(f"/v1/decisions?application_id={app}").json()["items"]
    assert len(logged("BATCH-OK")) == 1 and len(logged("BATCH-DECLINE")) == 1
    assert logged("BATCH-BAD-INPUT") == [] and logged("BATCH-UNKNOWN") == []


def test_batch_of_1000_is_accepted_and_1001_refused(evaluator):
    item = evaluate_body("BATCH-1000", trace="none")
    ok = evaluator.post("/v1/decisions:batch", json={"items": [item] * 1000})
    assert ok.status_code == 200 and ok.json()["summary"]["decided"] == 1000
    body = problem(evaluator.post("/v1/decisions:batch", json={"items": [item] * 1001}), 422)
    assert "items" in error_paths(body)


@pytest.mark.parametrize("body, path", [({"items": []}, "items"), ({}, "items"), ({"items": {}}, "items"),
                                        ({"items": [1], "extra": 1}, "extra")])
def test_batch_envelope_errors_are_422(evaluator, body, path):
    assert path in error_paths(problem(evaluator.post("/v1/decisions:batch", json=body), 422))


# == rulesets: publish, read, retire, validate ==================================================


def test_publish_yaml_then_again_is_idempotent_and_different_content_conflicts(publisher, unique):
    text = toy_yaml(unique, "1.0.0")
    created = publish(publisher, text, expect=201)
    body = created.json()
    assert body["created"] is True and body["version"] == "1.0.0" and body["status"] == "active"
    assert body["tests"]["passed"] is True and len(body["tests"]["cases"]) == 3
    assert created.headers["Location"] == f"/v1/rulesets/{unique}/versions/1.0.0"
    again = publish(publisher, text, expect=200)
    assert again.json()["created"] is False and again.json()["sha256"] == body["sha256"]
    changed = text.replace("owner: test", "owner: someone-else")
    detail = problem(publish(publisher, changed, expect=None), 409)["detail"]
    assert "immutable" in detail
    # the published content did not change
    doc = publisher.get(f"/v1/rulesets/{unique}/versions/1.0.0").json()["document"]
    assert doc["owner"] == "test"


def test_publish_json_has_the_same_identity_as_the_same_yaml(publisher, unique):
    text = toy_yaml(unique, "1.0.0")
    as_yaml = publish(publisher, text, expect=201).json()
    as_json = publish(publisher, as_json_document(text), unique, content_type="application/json", expect=200).json()
    assert as_json["sha256"] == as_yaml["sha256"]
    new = publish(publisher, as_json_document(toy_v2_yaml(unique, "1.1.0")), unique, content_type="application/json")
    assert new.status_code == 201 and new.json()["version"] == "1.1.0"


def test_get_version_as_json_or_yaml_by_accept(publisher, unique):
    text = toy_yaml(unique, "1.0.0")
    sha = publish(publisher, text).json()["sha256"]
    as_json = publisher.get(f"/v1/rulesets/{unique}/versions/1.0.0")
    assert as_json.headers["Content-Type"].startswith("application/json")
    assert as_json.json()["document"]["name"] == unique and as_json.json()["sha256"] == sha
    assert as_json.headers["X-Ruleset-Sha256"] == sha
    for accept in ("application/yaml", "text/yaml"):
        as_yaml = publisher.get(f"/v1/rulesets/{unique}/versions/1.0.0", headers={"Accept": accept})
        assert as_yaml.headers["Content-Type"].startswith("application/yaml")
        assert as_yaml.text == text  # the document as published
        assert as_yaml.headers["X-Ruleset-Sha256"] == sha
    # a version published as JSON comes back as YAML with the same content (the same sha256)
    sha_json = publish(publisher, as_json_document(toy_v2_yaml(unique, "1.1.0")), unique,
                       content_type="application/json").json()["sha256"]
    converted = publisher.get(f"/v1/rulesets/{unique}/versions/1.1.0", headers={"Accept": "application/yaml"})
    assert converted.status_code == 200 and converted.headers["X-Ruleset-Sha256"] == sha_json
    assert yaml.safe_load(converted.text)["parameters"]["big_amount"]["value"] == 1000000
    revalidated = publisher.post("/v1/rulesets:validate", data=converted.text.encode(), headers=YAML)
    assert revalidated.status_code == 200 and revalidated.json()["sha256"] == sha_json


def test_lists_show_published_versions(publisher, evaluator, unique):
    publish(publisher, toy_yaml(unique, "1.0.0"))
    publish(publisher, toy_v2_yaml(unique, "1.10.0"))
    publish(publisher, toy_v2_yaml(unique, "1.9.0"))
    versions = evaluator.get(f"/v1/rulesets/{unique}/versions").json()["versions"]
    assert [v["version"] for v in versions] == ["1.0.0", "1.9.0", "1.10.0"]  # semver order
    listed = {r["name"]: r for r in evaluator.get("/v1/rulesets").json()["rulesets"]}
    assert {"toy", "operators", unique} <= set(listed)
    assert listed[unique]["description"] == {"zh": "测试", "en": "Toy"}
    problem(evaluator.get("/v1/rulesets/no-such-ruleset/versions"), 404)
    problem(evaluator.get(f"/v1/rulesets/{unique}/versions/2.0.0"), 404)


def test_invalid_document_is_422_listing_every_problem_with_paths(publisher, unique):
    text = toy_yaml(unique, "1.0.0")
    for old, new in [("    stage: rating\n    title_zh: 低\n", "    stage: nowhere\n    title_zh: 低\n"),   # rules[3]
                     ("outcome: REFER, reason: OUT}", "outcome: REFER, reason: NO_SUCH}"),                # rules[1]
                     ("then: {add: {tags: [mining, small]}}", "then: {add: {tags: [mining, tiny]}}")]:     # rules[4]
        assert old in text
        text = text.replace(old, new, 1)
    body = problem(publish(publisher, text, expect=None), 422)
    assert body["type"].endswith("/invalid-ruleset")
    errors = {e["path"]: e for e in body["errors"] if e["severity"] == "error"}
    assert {"rules[1].then.reason", "rules[3].stage", "rules[4].then.add.tags[1]"} <= set(errors), list(errors)
    assert errors["rules[3].stage"]["code"] == "unknown_stage" and "nowhere" in errors["rules[3].stage"]["message"]
    assert errors["rules[3].stage"]["line"] == text.splitlines().index("    stage: nowhere") + 1
    problem(publisher.get(f"/v1/rulesets/{unique}/versions"), 404)  # nothing stored


def test_document_whose_embedded_test_fails_is_422(publisher, unique):
    text = toy_yaml(unique, "1.0.0").replace("  floor: {type: rating, value: B}", "  floor: {type: rating, value: BB}")
    body = problem(publish(publisher, text, expect=None), 422)
    failing = [e for e in body["errors"] if e["code"] == "test_failed"]
    assert failing and failing[0]["path"] == "tests[0]" and "floor" in failing[0]["message"]


def test_document_name_must_match_the_url(publisher, unique):
    body = problem(publish(publisher, toy_yaml(unique, "1.0.0"), name=f"{unique}-other", expect=None), 422)
    assert error_paths(body) == ["name"]


def test_retired_version_is_refused_when_pinned_and_skipped_by_as_of(publisher, evaluator, unique):
    publish(publisher, toy_yaml(unique, "1.0.0"))
    publish(publisher, toy_v2_yaml(unique, "1.1.0"))
    unpinned = lambda: decide(evaluator, "RETIRE", ruleset=unique, version=None, as_of="2026-01-01")["ruleset"]["version"]
    assert unpinned() == "1.1.0"
    retired = publisher.post(f"/v1/rulesets/{unique}/versions/1.1.0:retire")
    assert retired.status_code == 200
    assert retired.json()["status"] == "retired" and retired.json()["retired_at"]
    body = problem(evaluator.post("/v1/decisions", json=evaluate_body("RETIRE", ruleset=unique, version="1.1.0")), 422)
    assert "retired" in body["detail"]
    assert unpinned() == "1.0.0"
    statuses = {v["version"]: v["status"] for v in evaluator.get(f"/v1/rulesets/{unique}/versions").json()["versions"]}
    assert statuses == {"1.0.0": "active", "1.1.0": "retired"}
    assert publisher.post(f"/v1/rulesets/{unique}/versions/1.1.0:retire").status_code == 200  # again: no change
    problem(publisher.post(f"/v1/rulesets/{unique}/versions/9.0.0:retire"), 404)


def test_validate_answers_like_publish_and_stores_nothing(publisher, unique):
    ok = publisher.post("/v1/rulesets:validate", data=toy_yaml(unique, "1.0.0").encode(), headers=YAML)
    assert ok.status_code == 200
    assert ok.json()["valid"] is True and ok.json()["name"] == unique and ok.json()["tests"]["passed"] is True
    as_json = publisher.post("/v1/rulesets:validate", data=as_json_document(toy_yaml(unique, "1.0.0")).encode(), headers=JSON)
    assert as_json.status_code == 200 and as_json.json()["sha256"] == ok.json()["sha256"]
    bad = toy_yaml(unique, "1.0.0").replace("  floor: {type: rating, value: B}", "  floor: {type: rating, value: BB}")
    body = problem(publisher.post("/v1/rulesets:validate", data=bad.encode(), headers=YAML), 422)
    assert "tests[0]" in error_paths(body)
    problem(publisher.get(f"/v1/rulesets/{unique}/versions"), 404)  # nothing stored
    problem(publisher.post("/v1/rulesets:validate", data=b"{}", headers={"Content-Type": "text/plain"}), 415)


def test_diff_lists_added_removed_and_changed_rules_and_parameters(publisher, evaluator, unique):
    publish(publisher, toy_yaml(unique, "1.0.0"))
    publish(publisher, toy_v2_yaml(unique, "1.1.0"))
    response = evaluator.get(f"/v1/rulesets/{unique}/diff?from=1.0.0&to=1.1.0")
    assert response.status_code == 200
    d = response.json()
    assert d["from"]["version"] == "1.0.0" and d["to"]["version"] == "1.1.0" and d["identical"] is False
    assert [r["id"] for r in d["rules"]["added"]] == ["R-BIG"]
    assert [r["id"] for r in d["rules"]["removed"]] == ["R-MINES"]
    assert [(r["id"], r["fields"]) for r in d["rules"]["changed"]] == [("R-LOW", ["title_en"])]
    assert [p["id"] for p in d["parameters"]["added"]] == ["big_amount"]
    assert d["parameters"]["removed"] == []
    [floor] = d["parameters"]["changed"]
    assert (floor["id"], floor["was"]["value"], floor["now"]["value"]) == ("floor", "B", "BB")
    same = evaluator.get(f"/v1/rulesets/{unique}/diff?from=1.0.0&to=1.0.0").json()
    assert same["identical"] is True and same["rules"] == {"added": [], "removed": [], "changed": []}
    assert error_paths(problem(evaluator.get(f"/v1/rulesets/{unique}/diff?from=1.0.0"), 422)) == ["to"]
    problem(evaluator.get(f"/v1/rulesets/{unique}/diff?from=1.0.0&to=3.0.0"), 404)


# == impact ========================================================================================


def test_impact_of_given_applications(publisher, unique):
    publish(publisher, toy_yaml(unique, "1.0.0"))
    publish(publisher, toy_v2_yaml(unique, "1.1.0"))
    applications = [
        {"application_id": "B-RATED", "input": toy_input("B")},                        # APPROVE -> DECLINE (floor B -> BB)
        {"application_id": "AA-RATED", "input": toy_input("AA")},                      # APPROVE -> APPROVE
        {"application_id": "MINES", "as_of": "2026-01-15", "input": toy_input("A", mines=[{"cap": 1}])},  # tags change
        {"application_id": "CCC", "input": toy_input("CCC")},                          # DECLINE -> DECLINE
        {"application_id": "BROKEN", "input": {"amount": 1}},                          # invalid under both
    ]
    response = publisher.post(f"/v1/rulesets/{unique}/impact", json={"from": "1.0.0", "to": "1.1.0", "applications": applications})
    assert response.status_code == 200
    r = response.json()
    assert r["source"] == {"kind": "given", "count": 5}
    assert r["evaluated"] == 4
    assert r["outcome_matrix"] == {"APPROVE": {"APPROVE": 2, "REFER": 0, "DECLINE": 1},
                                   "REFER": {"APPROVE": 0, "REFER": 0, "DECLINE": 0},
                                   "DECLINE": {"APPROVE": 0, "REFER": 0, "DECLINE": 1}}
    # Every evaluated case changed: at least the `floor` result (parameter B -> BB) differs.
    changed = {c["application_id"]: c for c in r["changed"]}
    assert list(changed) == ["B-RATED", "AA-RATED", "MINES", "CCC"] and r["changed_count"] == 4
    assert changed["B-RATED"]["from"]["outcome"] == "APPROVE" and changed["B-RATED"]["to"]["outcome"] == "DECLINE"
    assert changed["B-RATED"]["to"]["reasons"] == ["LOW"]
    assert (changed["AA-RATED"]["from"]["results"]["floor"], changed["AA-RATED"]["to"]["results"]["floor"]) == ("B", "BB")
    # responsible: rules firing differently (R-LOW, R-MINES), and fired rules that changed or read
    # a changed parameter (R-FLOOR reads `floor`)
    assert changed["B-RATED"]["rules_responsible"] == ["R-FLOOR", "R-LOW"]
    assert changed["AA-RATED"]["rules_responsible"] == ["R-FLOOR"]
    assert changed["MINES"]["rules_responsible"] == ["R-FLOOR", "R-MINES"] and changed["MINES"]["as_of"] == "2026-01-15"
    assert changed["CCC"]["rules_responsible"] == ["R-FLOOR", "R-LOW"]
    assert [e["application_id"] for e in r["errors"]] == ["BROKEN"]
    assert r["rule_changes"] == {"added": ["R-BIG"], "removed": ["R-MINES"], "changed": ["R-LOW"]}


def test_impact_of_logged_decisions_of_a_period_is_a_job_for_publish_or_audit(publisher, admin, auditor, evaluator, unique):
    publish(publisher, toy_yaml(unique, "1.0.0"))
    publish(publisher, toy_v2_yaml(unique, "1.1.0"))
    before = decide(evaluator, "IMPACT-LOG-OLD", ruleset=unique, version="1.0.0", input=toy_input("B"))
    inside = [decide(evaluator, f"IMPACT-LOG-{r}", ruleset=unique, version="1.0.0", input=toy_input(r)) for r in ("B", "AA")]
    after = decide(evaluator, "IMPACT-LOG-NEW", ruleset=unique, version="1.0.0", input=toy_input("B"))
    period = {"from": "1.0.0", "to": "1.1.0", "logged_from": inside[0]["evaluated_at"], "logged_to": after["evaluated_at"]}
    assert before["evaluated_at"] < period["logged_from"]
    problem(evaluator.post(f"/v1/rulesets/{unique}/impact", json=period), 403)   # evaluate only
    for caller in (publisher, auditor):
        response = caller.post(f"/v1/rulesets/{unique}/impact", json=period)
        assert response.status_code == 202 and response.headers["Location"] == f"/v1/jobs/{response.json()['id']}"
        job = wait_for_job(caller.get, response.json()["id"])
        assert job["status"] == "done" and job["progress"] == {"done": 2, "total": 2}, job
        r = job["result"]
        assert r["source"]["kind"] == "decision_log" and r["evaluated"] == 2
        assert r["matrix"]["APPROVE"] == {"APPROVE": 1, "REFER": 0, "DECLINE": 1}
        outcomes = {c["application_id"]: (c["from"]["outcome"], c["to"]["outcome"]) for c in r["changed"]}
        assert outcomes == {"IMPACT-LOG-B": ("APPROVE", "DECLINE"), "IMPACT-LOG-AA": ("APPROVE", "APPROVE")}
    limited = admin.post(f"/v1/rulesets/{unique}/impact", json={**period, "limit": 1})
    assert wait_for_job(admin.get, limited.json()["id"])["result"]["evaluated"] == 1


@pytest.mark.parametrize("body, path", [
    ({"to": "1.0.0", "applications": [{"input": {}}]}, "from"),
    ({"from": "1.0.0", "to": "1.0.0"}, "applications"),
    ({"from": "1.0.0", "to": "1.0.0", "applications": [{"input": {}, "as_of": "2026-13-01"}]}, "applications.0.as_of"),
    ({"from": "1.0.0", "to": "1.0.0", "applications": [{"input": {}, "asof": "2026-01-01"}]}, "applications.0.asof"),
    ({"from": "1.0.0", "to": "1.0.0", "applications": [{"application_id": 7, "input": {}}]}, "applications.0.application_id"),
    ({"from": "1.0.0", "to": "1.0.0", "logged_from": "2026-01-01T00:00:00", "logged_to": "2026-02-01T00:00:00Z"}, "logged_from"),
    ({"from": "1.0.0", "to": "1.0.0", "logged_from": "0001-01-01T00:00:00+23:59", "logged_to": "2026-02-01T00:00:00Z"}, "logged_from"),
    ({"from": "1.0.0", "to": "1.0.0", "logged_from": "2026-01-01T00:00:00Z"}, "logged_to"),
    ({"from": "1.0.0", "to": "1.0.0", "logged_from": "2026-02-01T00:00:00Z", "logged_to": "2026-01-01T00:00:00Z"}, "logged_to"),
    ({"from": "1.0.0", "to": "1.0.0", "logged_from": "2026-01-01T00:00:00Z", "logged_to": "2026-02-01T00:00:00Z", "limit": 0}, "limit"),
])
def test_impact_request_errors_are_422_naming_the_field(admin, body, path):
    assert path in error_paths(problem(admin.post("/v1/rulesets/toy/impact", json=body), 422))


# == audit =========================================================================================


def test_logged_decision_has_request_response_full_trace_and_chain(evaluator, auditor):
    request = evaluate_body("AUDIT-GET", trace="none", input=toy_input("CCC", mines=[{"cap": 5}]))
    first = evaluator.post("/v1/decisions", json=request).json()
    second = decide(evaluator, "AUDIT-GET-2")
    response = auditor.get(f"/v1/decisions/{first['decision_id']}")
    assert response.status_code == 200
    logged = response.json()
    assert logged["request"] == request
    assert logged["response"] == first
    assert logged["response"]["trace"] == []                               # as answered (trace: none) …
    assert [t["rule_id"] for t in logged["trace"]] == TOY_RULES            # … but the log keeps the full trace
    assert [t["fired"] for t in logged["trace"]] == [True, False, True, True, True]
    assert logged["uses_trace"] is None
    assert logged["fired_rules"] == ["S-IN", "R-FLOOR", "R-LOW", "R-MINES"]
    assert (logged["outcome"], logged["application_id"], logged["as_of"]) == ("DECLINE", "AUDIT-GET", first["as_of"])
    # the caller's identity is logged (hashed with the record), never its token
    assert logged["decided_by"] == "token:" + hashlib.sha256(EVALUATE.encode()).hexdigest()[:12]
    assert EVALUATE not in json.dumps(logged)
    nxt = auditor.get(f"/v1/decisions/{second['decision_id']}").json()
    assert nxt["seq"] == logged["seq"] + 1
    assert nxt["chain"]["prev_hash"] == logged["chain"]["hash"] != nxt["chain"]["hash"]


@pytest.mark.parametrize("decision_id", [str(uuid.UUID(int=0)), "01a2129f-0000-7000-8000-000000000000", "nope", "x" * 300])
def test_unknown_or_malformed_decision_id_is_404(auditor, decision_id):
    problem(auditor.get(f"/v1/decisions/{decision_id}"), 404)
    problem(auditor.post(f"/v1/decisions/{decision_id}/replay"), 404)


@pytest.fixture(scope="module")
def logged_series(server):
    """Seven decisions of one application (toy 1.0.0 and operators), made in sequence."""
    client = Client(server.url, ALL)
    app = "AUDIT-SERIES"
    made = [decide(client, app, input=toy_input(r)) for r in ("A", "CCC", "B", "D", "AA")]
    made.append(decide(client, app, ruleset="operators", version="1.0.0", input={
        "n": 0, "k": 60, "r": "CCC", "q": None, "b": True, "code": "AB1", "d": "2024-03-01"}))
    made.append(decide(client, app, input=toy_input("A")))
    return app, made


def _search(client: Client, query: str) -> list[dict]:
    response = client.get(f"/v1/decisions?{query}")
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_search_by_each_criterion(auditor, logged_series):
    app, made = logged_series
    ids = lambda items: [i["decision_id"] for i in items]
    assert ids(_search(auditor, f"application_id={app}")) == [d["decision_id"] for d in made]
    assert ids(_search(auditor, f"application_id={app}&ruleset=operators")) == [made[5]["decision_id"]]
    assert ids(_search(auditor, f"application_id={app}&ruleset=toy&version=1.0.0")) == ids([made[i] for i in (0, 1, 2, 3, 4, 6)])
    declined = [d["decision_id"] for d in made if d["outcome"] == "DECLINE"]
    assert len(declined) == 2 and ids(_search(auditor, f"application_id={app}&outcome=DECLINE")) == declined
    assert ids(_search(auditor, f"application_id={app}&rule_id=R-LOW")) == declined
    assert ids(_search(auditor, f"application_id={app}&rule_id=MIXED")) == [made[5]["decision_id"]]
    # time range: from inclusive, to exclusive
    window = f"from={made[1]['evaluated_at']}&to={made[3]['evaluated_at']}"
    assert ids(_search(auditor, f"application_id={app}&{window}")) == [made[1]["decision_id"], made[2]["decision_id"]]
    assert _search(auditor, "application_id=NOBODY-EVER") == []
    summary = _search(auditor, f"application_id={app}&limit=1")[0]
    assert summary["ruleset"] == made[0]["ruleset"] and summary["outcome"] == made[0]["outcome"]


def test_search_pages_with_a_cursor(auditor, logged_series):
    app, made = logged_series
    seen, cursor, pages = [], None, 0
    while True:
        query = f"application_id={app}&limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = auditor.get(f"/v1/decisions?{query}").json()
        pages += 1
        assert len(page["items"]) <= 3
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 10
    assert pages == 3
    assert [i["decision_id"] for i in seen] == [d["decision_id"] for d in made]
    assert [i["seq"] for i in seen] == sorted(i["seq"] for i in seen)


@pytest.mark.parametrize("query, path", [
    ("limit=0", "limit"), ("limit=1001", "limit"), ("limit=ten", "limit"), ("outcome=MAYBE", "outcome"),
    ("from=yesterday", "from"), ("from=2026-01-01T00:00:00", "from"), ("to=9999-12-31T23:59:59-23:59", "to"),
    ("cursor=not-ours", "cursor"), ("colour=red", "colour"), ("format=xml", "format"), ("ruleset=Not_A_Name", "ruleset"),
])
def test_bad_search_parameters_are_422(auditor, query, path):
    assert path in error_paths(problem(auditor.get(f"/v1/decisions?{query}"), 422))


def test_csv_export_of_a_search(auditor, logged_series):
    app, made = logged_series
    for how in ({"path": f"/v1/decisions?format=csv&application_id={app}"},
                {"path": f"/v1/decisions?application_id={app}", "headers": {"Accept": "text/csv"}}):
        response = auditor.get(how["path"], headers=how.get("headers"))
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert [r["decision_id"] for r in rows] == [d["decision_id"] for d in made]
        assert rows[1]["outcome"] == "DECLINE" and rows[1]["fired_rules"].split() == ["S-IN", "R-FLOOR", "R-LOW"]
        assert rows[0]["sha256"] == made[0]["ruleset"]["sha256"] and rows[0]["application_id"] == app
    declined = list(csv.DictReader(io.StringIO(auditor.get(f"/v1/decisions?format=csv&application_id={app}&outcome=DECLINE").text)))
    assert len(declined) == 2


def test_csv_export_never_hands_a_spreadsheet_a_formula(evaluator, auditor):
    """The API's export and the console's are one CSV (service/audit.py), guarded alike."""
    made = decide(evaluator, "=HYPERLINK(\"x\")")
    rows = list(csv.DictReader(io.StringIO(auditor.get("/v1/decisions?format=csv&application_id=%3DHYPERLINK(%22x%22)").text)))
    assert [(r["decision_id"], r["application_id"]) for r in rows] == [(made["decision_id"], "'=HYPERLINK(\"x\")")]


def test_replay_is_identical(auditor, logged_series):
    _, made = logged_series
    for decision in (made[1], made[5]):
        response = auditor.post(f"/v1/decisions/{decision['decision_id']}/replay")
        assert response.status_code == 200
        r = response.json()
        assert r["identical"] is True and r["differences"] == []
        assert r["ruleset"] == decision["ruleset"] and r["replayed"]["outcome"] == decision["outcome"]


def test_verify_reports_an_intact_chain_up_to_the_latest_decision(auditor, evaluator):
    latest = decide(evaluator, "VERIFY")
    seq = auditor.get(f"/v1/decisions/{latest['decision_id']}").json()["seq"]
    report = auditor.get("/v1/audit/verify").json()
    assert report["ok"] is True and report["first_problem"] is None
    assert report["head"]["seq"] == seq and report["checked"] >= seq
    head = report["head"]
    again = auditor.get(f"/v1/audit/verify?expected_head_seq={head['seq']}&expected_head_hash={head['hash']}").json()
    assert again["ok"] is True
    wrong = auditor.get(f"/v1/audit/verify?expected_head_seq={head['seq']}&expected_head_hash={'0' * 64}").json()
    assert wrong["ok"] is False and wrong["first_problem"]["kind"]


# == ops ===========================================================================================


def test_healthz_and_readyz(server):
    client = Client(server.url)
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready" and ready.json()["checks"] == {"rulesets": True, "store": True}
    assert ready.json()["rulesets_loaded"] >= 2


def test_readyz_is_503_problem_when_no_ruleset_is_loaded(bare_server):
    body = problem(Client(bare_server.url).get("/readyz"), 503)
    assert body["checks"]["rulesets"] is False and body["rulesets_loaded"] == 0


def _metric(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} ([0-9.eE+-]+)", line)
        if match:
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(match.group(2))
    return total


def _decisions_per_worker(server, ruleset: str) -> dict[int, float]:
    """What each worker process counted, read from its own prometheus multiprocess file."""
    out: dict[int, float] = {}
    for path in Path(server.env["PROMETHEUS_MULTIPROC_DIR"]).glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            _, sample, labels, _ = json.loads(key)
            if sample == "credit_rules_decisions_total" and labels.get("ruleset") == ruleset:
                out[pid] = out.get(pid, 0.0) + value
    return out


def _two_concurrent_batches(client: Client, ruleset: str, version: str, size: int = 200) -> list[requests.Response]:
    """Two batches at once, on two connections (gthread workers balance connections, not
    requests: both may land on one worker; callers repeat until every worker served one)."""
    body = {"items": [evaluate_body("METRICS", ruleset=ruleset, version=version, trace="none")] * size}
    results: list[requests.Response] = []
    threads = [threading.Thread(target=lambda: results.append(client.post("/v1/decisions:batch", json=body)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _requests_per_worker(server, endpoint: str) -> dict[int, float]:
    out: dict[int, float] = {}
    for path in Path(server.env["PROMETHEUS_MULTIPROC_DIR"]).glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            _, sample, labels, _ = json.loads(key)
            if sample == "credit_rules_http_requests_total" and labels.get("endpoint") == endpoint:
                out[pid] = out.get(pid, 0.0) + value
    return out


def _on_every_worker(server, endpoint: str, call) -> dict[int, requests.Response]:
    """Repeat `call` until each worker has answered it once; {worker pid: its response}.
    Which worker answered is read from the workers' own request counters."""
    answers: dict[int, requests.Response] = {}
    workers = set(server.worker_pids())
    blocker_body = {"items": [evaluate_body("BLOCKER", trace="none")] * 300}
    for attempt in range(60):
        before = _requests_per_worker(server, endpoint)
        blocker = None
        if attempt % 2:
            # A sync worker serves one request at a time: keep one busy so another answers.
            blocker = threading.Thread(target=lambda: requests.post(
                f"{server.url}/v1/decisions:batch", json=blocker_body, headers=bearer(ALL), timeout=60))
            blocker.start()
            time.sleep(0.05)
        response = call()
        if blocker is not None:
            blocker.join()
        after = _requests_per_worker(server, endpoint)
        [pid] = [p for p in after if after[p] != before.get(p, 0.0)]
        answers.setdefault(pid, response)
        if set(answers) == workers:
            return answers
    raise AssertionError(f"only workers {sorted(answers)} of {sorted(workers)} answered")


def test_every_worker_reads_versions_published_and_retired_on_another_without_restart(server, publisher, unique):
    versions = lambda: publisher.get(f"/v1/rulesets/{unique}/versions")
    publish(publisher, toy_yaml(unique, "1.0.0"))
    for answer in _on_every_worker(server, "/v1/rulesets/<name>/versions", versions).values():
        assert [v["version"] for v in answer.json()["versions"]] == ["1.0.0"]   # every worker knows the ruleset
    publish(publisher, toy_v2_yaml(unique, "1.1.0"))
    assert publisher.post(f"/v1/rulesets/{unique}/versions/1.0.0:retire").status_code == 200
    for pid, answer in _on_every_worker(server, "/v1/rulesets/<name>/versions", versions).items():
        statuses = {v["version"]: v["status"] for v in answer.json()["versions"]}
        assert statuses == {"1.0.0": "retired", "1.1.0": "active"}, f"worker {pid} is stale: {statuses}"


def test_published_version_is_used_by_every_worker_without_restart_and_metrics_sum_workers(server, publisher, unique):
    """Published on one worker; both workers then decide with it; /metrics counts both."""
    client = Client(server.url, ALL)
    assert _metric(client.get("/metrics").text, "credit_rules_decisions_total", ruleset=unique) == 0
    publish(publisher, toy_yaml(unique, "1.0.0"))
    for rounds in range(1, 16):
        responses = _two_concurrent_batches(client, unique, "1.0.0")
        assert [r.status_code for r in responses] == [200, 200]
        assert [r.json()["summary"]["decided"] for r in responses] == [200, 200]
        per_worker = _decisions_per_worker(server, unique)
        if sorted(per_worker) == sorted(server.worker_pids()):
            break
    assert sorted(per_worker) == sorted(server.worker_pids()), per_worker   # both workers decided with it
    assert all(count > 0 for count in per_worker.values())
    metrics = client.get("/metrics")
    assert metrics.headers["Content-Type"].startswith("text/plain")
    total = _metric(metrics.text, "credit_rules_decisions_total", ruleset=unique, version="1.0.0", outcome="APPROVE")
    assert total == 400 * rounds == sum(per_worker.values())
    assert "# TYPE credit_rules_decisions_total counter" in metrics.text
    assert _metric(metrics.text, "credit_rules_http_requests_total", endpoint="/v1/decisions:batch", status="200") >= 2 * rounds


def test_openapi_yaml_is_served(server):
    response = Client(server.url).get("/openapi.yaml")
    assert response.headers["Content-Type"].startswith("application/yaml")
    assert yaml.safe_load(response.text)["openapi"].startswith("3.1")


def test_docs_page_and_its_assets_are_served_locally(server):
    client = Client(server.url)
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "/openapi.yaml" in page.text
    assert "validatorUrl: null" in page.text  # Swagger UI's default calls validator.swagger.io
    assert not re.search(r"""(src|href|url)\s*[=:(]\s*["']?(https?:)?//""", page.text), "the page loads something from the internet"
    assets = re.findall(r'(?:src|href)="(/docs/[^"]+)"', page.text)
    assert {"/docs/swagger-ui-bundle.js", "/docs/swagger-ui-standalone-preset.js", "/docs/swagger-ui.css"} <= set(assets)
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200 and len(response.content) > 100, asset
        expected = {"js": "text/javascript", "css": "text/css", "png": "image/png"}[asset.rsplit(".", 1)[1]]
        assert response.headers["Content-Type"].startswith(expected), (asset, response.headers["Content-Type"])
    problem(client.get("/docs/..%2Fopenapi.yaml"), 404)
    problem(client.get("/docs/not-there.js"), 404)


def test_request_id_is_echoed_or_generated(server):
    client = Client(server.url, ALL)
    echoed = client.get("/healthz", headers={"X-Request-Id": "core-banking:42.a_b"})
    assert echoed.headers["X-Request-Id"] == "core-banking:42.a_b"
    generated = [client.get("/healthz").headers["X-Request-Id"] for _ in range(2)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", g) for g in generated) and generated[0] != generated[1]
    for bad in ("has spaces", "x" * 65, "semi;colon"):
        replaced = client.get("/healthz", headers={"X-Request-Id": bad}).headers["X-Request-Id"]
        assert replaced != bad and re.fullmatch(r"[0-9a-f]{32}", replaced)
    error = client.post("/v1/decisions", data=b"{", headers={**JSON, "X-Request-Id": "trace-me-1"})
    assert error.headers["X-Request-Id"] == "trace-me-1" and problem(error, 400)["request_id"] == "trace-me-1"
    assert '"request_id": "trace-me-1"' in wait_for_log(server, '"request_id": "trace-me-1"')  # in the access log too


def test_unknown_paths_and_methods_are_problem_json(server):
    client = Client(server.url, ALL)
    problem(client.get("/v1/nothing"), 404)
    problem(client.get("/static/anything.css"), 404)
    wrong = client.request("DELETE", "/v1/decisions")
    problem(wrong, 405)
    assert {"GET", "POST"} <= set(wrong.headers["Allow"].replace(" ", "").split(","))
    problem(client.get("/v1/decisions:batch"), 405)
