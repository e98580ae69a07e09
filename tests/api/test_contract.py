"""openapi.yaml is the running service, exactly.

(a) it is a valid OpenAPI 3.1 document;
(b) its paths and methods are the Flask app's url rules, no more, no less;
(c) real responses of a real gunicorn server, for every operation (success and the main
    errors), validate against the documented schemas (tests/api/contract.py does the checking;
    every `Client` response in this suite goes through it, this file drives each operation);
(d) schemathesis (examples, coverage and fuzzing phases, positive and negative data, 30
    examples per operation, fixed seed), over every operation of openapi.yaml, against a real
    gunicorn server of its own with a token holding every role: zero 5xx, every error
    application/problem+json, every response documented (status, media type, schema).
"""
from __future__ import annotations

import re

import pytest
import schemathesis
from openapi_spec_validator import validate as validate_openapi
from schemathesis import checks as st_checks

from tests.api import contract
from tests.jobs.helpers import wait_for_job
from tests.api.conftest import (
    FIXTURE_RULESETS, TOKENS_BY_ROLE, Client, evaluate_body, problem, publish, start_server, toy_input, toy_v2_yaml,
    toy_yaml,
)
from tests.server import ALL, TOKENS

# -- (a) ------------------------------------------------------------------------------------------


def test_openapi_document_is_valid_openapi_3_1():
    document = contract.spec()
    assert document["openapi"].startswith("3.1")
    validate_openapi(document)  # raises on any violation


def test_every_component_schema_is_a_valid_json_schema_2020_12():
    for name in contract.spec()["components"]["schemas"]:
        contract.validator(f"/components/schemas/{name}").check_schema(contract.spec()["components"]["schemas"][name])


def test_every_operation_documents_roles_and_its_error_answers():
    """Each /v1 operation names its roles and documents 401 (and 403 unless any token may call it)."""
    for method, template in sorted(contract.documented_operations()):
        operation = contract.spec()["paths"][template][method.lower()]
        if not template.startswith("/v1/"):
            assert operation.get("security") == [], f"{method} {template}: ops endpoints are open"
            continue
        roles = operation.get("x-required-roles")
        assert roles and set(roles) <= {"evaluate", "publish", "audit", "approve", "read"}, f"{method} {template}: {roles}"
        assert "401" in operation["responses"], f"{method} {template} can answer 401"
        if roles != ["read"]:
            assert "403" in operation["responses"], f"{method} {template} can answer 403"
        if method == "POST" and "requestBody" in operation:
            for status in ("413", "415", "422"):
                assert status in operation["responses"], f"{method} {template} takes a body: {status}"


def _request_examples():
    """(operation, example name, media type, schema pointer, value) of every request body example."""
    for template, item in contract.spec()["paths"].items():
        for method, operation in item.items():
            body = operation.get("requestBody") if isinstance(operation, dict) else None
            if not body:
                continue
            body, pointer = contract._resolve(body)
            pointer = pointer or f"/paths/{contract._pointer_escape(template)}/{method}/requestBody"
            for media, content in body["content"].items():
                examples = dict(content.get("examples", {}))
                if "example" in content:
                    examples["example"] = {"value": content["example"]}
                for name, example in examples.items():
                    yield (f"{method.upper()} {template}", name, media,
                           f"{pointer}/content/{contract._pointer_escape(media)}/schema", example["value"])


def test_request_examples_match_their_schemas():
    examples = list(_request_examples())
    assert len(examples) >= 6
    for operation, name, media, pointer, value in examples:
        assert contract.schema_errors(value, pointer) == [], f"{operation} example {name!r} ({media})"


def test_sme_credit_policy_example_is_a_valid_input_of_the_shipped_ruleset():
    """The documented example must stay a valid application for the shipped sme-credit-policy."""
    import datetime as dt
    import json
    from decimal import Decimal

    from service.decision_engine.registry import Registry
    from tests.server import ROOT

    registry = Registry()
    failures = registry.load_directory(ROOT / "rulesets")
    if "sme-credit-policy" not in registry.names():
        pytest.skip(f"the shipped sme-credit-policy does not load yet: {sorted(failures)}")
    example = contract.spec()["paths"]["/v1/decisions"]["post"]["requestBody"]["content"]["application/json"][
        "examples"]["sme-credit-policy"]["value"]
    as_of = dt.date.fromisoformat(example["as_of"])
    lv = registry.resolve("sme-credit-policy", example.get("version"), as_of)
    data = lv.validator.load(json.loads(json.dumps(example["input"]), parse_float=Decimal))  # raises if invalid
    evaluation = registry.evaluate_loaded(lv, data, as_of=as_of)
    assert evaluation.outcome in ("APPROVE", "REFER", "DECLINE")


def test_toy_and_batch_examples_work_against_the_server(server):
    content = contract.spec()["paths"]["/v1/decisions"]["post"]["requestBody"]["content"]["application/json"]
    client = Client(server.url, ALL)
    response = client.post("/v1/decisions", json=content["examples"]["toy"]["value"])
    assert response.status_code == 200 and response.json()["outcome"] == "APPROVE"
    batch = contract.spec()["paths"]["/v1/decisions:batch"]["post"]["requestBody"]["content"]["application/json"]
    response = client.post("/v1/decisions:batch", json=batch["examples"]["mixed"]["value"])
    assert [i["status"] for i in response.json()["items"]] == [200, 422]
    document = contract.spec()["components"]["requestBodies"]["RulesetDocument"]["content"]["application/yaml"]["example"]
    validated = client.post("/v1/rulesets:validate", data=document.encode(), headers={"Content-Type": "application/yaml"})
    assert validated.status_code == 200, validated.text


# -- (b) ------------------------------------------------------------------------------------------


def _flask_operations(tmp_path) -> set[tuple[str, str]]:
    from service import create_app

    app = create_app({"rulesets_dir": str(FIXTURE_RULESETS), "data_dir": str(tmp_path), "tokens": TOKENS})
    out = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/console/"):
            continue  # the web console's HTML pages (tests/console), not API operations
        template = re.sub(r"<(?:[a-z_]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        # HEAD and OPTIONS are answered by Flask for every GET / every rule; they are not operations.
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            out.add((method, template))
    return out


def test_flask_url_rules_and_openapi_paths_are_the_same(tmp_path):
    served = _flask_operations(tmp_path)
    documented = contract.documented_operations()
    assert served - documented == set(), "served but not in openapi.yaml"
    assert documented - served == set(), "in openapi.yaml but not served"


def test_served_openapi_yaml_is_the_file(server):
    response = Client(server.url).get("/openapi.yaml")
    assert response.status_code == 200
    assert response.content == contract.OPENAPI_PATH.read_bytes()


# -- (c) ------------------------------------------------------------------------------------------
# Every documented operation, driven to success and to its main errors. The Client checks each
# response against openapi.yaml; each scenario also asserts the status it expects, so we know
# which documented response was exercised.


# An impact job over every logged decision.
WHOLE_LOG = {"logged_from": "2020-01-01T00:00:00Z", "logged_to": "2100-01-01T00:00:00Z"}


@pytest.fixture(scope="module")
def world(server, admin):
    """A decision in the log, and a ruleset `contract-demo` with versions 1.0.0 and 1.1.0."""
    decided = admin.post("/v1/decisions", json=evaluate_body("CONTRACT-1", trace="full",
                                                              input=toy_input("CCC", mines=[{"cap": 20}])))
    assert decided.status_code == 200, decided.text
    publish(admin, toy_yaml("contract-demo", "1.0.0"))
    publish(admin, toy_v2_yaml("contract-demo", "1.1.0"))
    done = admin.post("/v1/rulesets/toy/impact", json={"from": "1.0.0", "to": "1.0.0", **WHOLE_LOG})
    assert done.status_code == 202, done.text
    assert wait_for_job(admin.get, done.json()["id"])["status"] == "done"
    return {"decision_id": decided.json()["decision_id"], "job_id": done.json()["id"]}


def _scenarios(world) -> list[tuple[str, str, str, dict, int]]:
    """(label, METHOD, path, requests kwargs, expected status)."""
    did = world["decision_id"]
    good = evaluate_body("CONTRACT-2")
    return [
        ("evaluate", "POST", "/v1/decisions", {"json": good}, 200),
        ("evaluate declined, full trace", "POST", "/v1/decisions",
         {"json": evaluate_body("CONTRACT-3", trace="full", input=toy_input("D"))}, 200),
        ("evaluate malformed JSON", "POST", "/v1/decisions", {"data": b"{", "headers": {"Content-Type": "application/json"}}, 400),
        ("evaluate no token", "POST", "/v1/decisions", {"json": good, "token": None}, 401),
        ("evaluate wrong role", "POST", "/v1/decisions", {"json": good, "token": "audit"}, 403),
        ("evaluate unknown ruleset", "POST", "/v1/decisions", {"json": {**good, "ruleset": "nope"}}, 404),
        ("evaluate wrong content type", "POST", "/v1/decisions", {"data": b"x", "headers": {"Content-Type": "text/plain"}}, 415),
        ("evaluate invalid input", "POST", "/v1/decisions", {"json": {**good, "input": toy_input("XX")}}, 422),
        ("batch", "POST", "/v1/decisions:batch",
         {"json": {"items": [good, {**good, "input": toy_input("XX")}, {**good, "ruleset": "nope"}, 7]}}, 200),
        ("batch too many items", "POST", "/v1/decisions:batch", {"json": {"items": [good] * 1001}}, 422),
        ("batch malformed", "POST", "/v1/decisions:batch", {"data": b'{"items": [}', "headers": {"Content-Type": "application/json"}}, 400),
        ("search", "GET", "/v1/decisions?limit=2", {}, 200),
        ("search filtered", "GET", "/v1/decisions?application_id=CONTRACT-1&ruleset=toy&version=1.0.0&outcome=DECLINE"
                                   "&rule_id=R-LOW&from=2020-01-01T00:00:00Z&to=2100-01-01T00:00:00%2B08:00", {}, 200),
        ("search csv", "GET", "/v1/decisions?format=csv&application_id=CONTRACT-1", {}, 200),
        ("search bad limit", "GET", "/v1/decisions?limit=0", {}, 422),
        ("search wrong role", "GET", "/v1/decisions", {"token": "evaluate"}, 403),
        ("get decision", "GET", f"/v1/decisions/{did}", {}, 200),
        ("get unknown decision", "GET", "/v1/decisions/01a2129f-0000-7000-8000-000000000000", {}, 404),
        ("replay", "POST", f"/v1/decisions/{did}/replay", {}, 200),
        ("replay unknown", "POST", "/v1/decisions/not-a-decision/replay", {}, 404),
        ("verify", "GET", "/v1/audit/verify", {}, 200),
        ("verify bad head", "GET", "/v1/audit/verify?expected_head_seq=x&expected_head_hash=y", {}, 422),
        ("verify since unknown checkpoint", "GET", "/v1/audit/verify?since=999999", {}, 200),
        ("list checkpoints", "GET", "/v1/audit/checkpoints?limit=10", {}, 200),
        ("list checkpoints bad limit", "GET", "/v1/audit/checkpoints?limit=0", {}, 422),
        ("checkpoint public key", "GET", "/v1/audit/public-key", {}, 200),
        ("checkpoint public key wrong role", "GET", "/v1/audit/public-key", {"token": "evaluate"}, 403),
        ("list rulesets", "GET", "/v1/rulesets", {"token": "evaluate"}, 200),
        ("list rulesets unknown token", "GET", "/v1/rulesets", {"headers": {"Authorization": "Bearer not-a-token-000"}}, 401),
        ("list versions", "GET", "/v1/rulesets/contract-demo/versions", {}, 200),
        ("list versions unknown", "GET", "/v1/rulesets/nope/versions", {}, 404),
        ("get version json", "GET", "/v1/rulesets/contract-demo/versions/1.0.0", {}, 200),
        ("get version yaml", "GET", "/v1/rulesets/contract-demo/versions/1.0.0", {"headers": {"Accept": "application/yaml"}}, 200),
        ("get version unknown", "GET", "/v1/rulesets/contract-demo/versions/9.9.9", {}, 404),
        ("publish", "POST", "/v1/rulesets/contract-demo/versions",
         {"data": toy_yaml("contract-demo", "1.2.0").encode(), "headers": {"Content-Type": "application/yaml"}}, 201),
        ("publish again", "POST", "/v1/rulesets/contract-demo/versions",
         {"data": toy_yaml("contract-demo", "1.2.0").encode(), "headers": {"Content-Type": "application/yaml"}}, 200),
        ("publish conflict", "POST", "/v1/rulesets/contract-demo/versions",
         {"data": toy_yaml("contract-demo", "1.2.0", effective_from="2021-01-01").encode(),
          "headers": {"Content-Type": "text/yaml"}}, 409),
        ("publish invalid", "POST", "/v1/rulesets/contract-demo/versions",
         {"data": b"name: contract-demo\nversion: '3.0.0'\n", "headers": {"Content-Type": "application/yaml"}}, 422),
        ("publish wrong content type", "POST", "/v1/rulesets/contract-demo/versions",
         {"data": b"x", "headers": {"Content-Type": "text/plain"}}, 415),
        ("publish wrong role", "POST", "/v1/rulesets/contract-demo/versions",
         {"data": b"x", "headers": {"Content-Type": "application/yaml"}, "token": "evaluate"}, 403),
        ("retire", "POST", "/v1/rulesets/contract-demo/versions/1.2.0:retire", {}, 200),
        ("retire unknown", "POST", "/v1/rulesets/contract-demo/versions/7.0.0:retire", {}, 404),
        ("validate", "POST", "/v1/rulesets:validate",
         {"data": toy_yaml("contract-demo", "4.0.0").encode(), "headers": {"Content-Type": "application/yaml"}}, 200),
        ("validate invalid", "POST", "/v1/rulesets:validate",
         {"data": b'{"name": "x"}', "headers": {"Content-Type": "application/json"}}, 422),
        ("diff", "GET", "/v1/rulesets/contract-demo/diff?from=1.0.0&to=1.1.0", {"token": "audit"}, 200),
        ("diff missing to", "GET", "/v1/rulesets/contract-demo/diff?from=1.0.0", {}, 422),
        ("diff unknown version", "GET", "/v1/rulesets/contract-demo/diff?from=1.0.0&to=8.0.0", {}, 404),
        ("impact given", "POST", "/v1/rulesets/contract-demo/impact",
         {"json": {"from": "1.0.0", "to": "1.1.0", "applications": [{"input": toy_input("B")}, {"input": {}}]}}, 200),
        ("impact logged: a job", "POST", "/v1/rulesets/contract-demo/impact",
         {"json": {"from": "1.0.0", "to": "1.1.0", "logged_from": "2020-01-01T00:00:00Z", "logged_to": "2100-01-01T00:00:00Z"}}, 202),
        ("impact logged without publish or audit role", "POST", "/v1/rulesets/contract-demo/impact",
         {"json": {"from": "1.0.0", "to": "1.1.0", "logged_from": "2020-01-01T00:00:00Z", "logged_to": "2100-01-01T00:00:00Z"},
          "token": "evaluate"}, 403),
        ("impact invalid", "POST", "/v1/rulesets/contract-demo/impact", {"json": {"from": "1.0.0"}}, 422),
        ("healthz", "GET", "/healthz", {}, 200),
        ("readyz", "GET", "/readyz", {}, 200),
        ("metrics", "GET", "/metrics", {}, 200),
        ("openapi", "GET", "/openapi.yaml", {}, 200),
        ("docs", "GET", "/docs", {}, 200),
        ("docs asset", "GET", "/docs/swagger-ui-bundle.js", {}, 200),
        ("docs unknown asset", "GET", "/docs/evil.js", {}, 404),
        ("list jobs", "GET", "/v1/jobs?ruleset=toy&limit=3", {"token": "evaluate"}, 200),
        ("list jobs bad limit", "GET", "/v1/jobs?limit=0", {}, 422),
        ("get job", "GET", f"/v1/jobs/{world['job_id']}", {"token": "evaluate"}, 200),
        ("get unknown job", "GET", "/v1/jobs/01a2129f-0000-7000-8000-000000000000", {}, 404),
        ("job changes csv", "GET", f"/v1/jobs/{world['job_id']}/changes.csv", {}, 200),
        ("job changes csv unknown", "GET", "/v1/jobs/not-a-job/changes.csv", {}, 404),
        ("cancel a done job", "POST", f"/v1/jobs/{world['job_id']}:cancel", {}, 409),
        ("cancel wrong role", "POST", f"/v1/jobs/{world['job_id']}:cancel", {"token": "evaluate"}, 403),
        ("unknown path", "GET", "/v1/nothing-here", {}, 404),
        ("wrong method", "DELETE", "/v1/decisions", {}, 405),
    ]


@pytest.fixture(scope="module")
def four_eyes_server(tmp_path_factory):
    """PUBLISH_APPROVALS=1: publishing proposes; `publish` (prod-91c2aa) proposes, `approve` approves.
    JOB_PROCESSES=0: no job runner, so a job submitted here stays queued until it is cancelled."""
    s = start_server(tmp_path_factory, "contract-four-eyes", {"RULESETS_DIR": str(FIXTURE_RULESETS),
                                                              "RULES_API_TOKENS": TOKENS, "PUBLISH_APPROVALS": "1",
                                                              "JOB_PROCESSES": "0"})
    yield s
    s.stop()


def _release_scenarios(queued_job: str) -> list[tuple[str, str, str, dict, int]]:
    """Four-eyes publishing and rollouts, in order, on `four_eyes_server` (whose jobs stay queued)."""
    document = {"headers": {"Content-Type": "application/yaml"}}
    name = "release-demo"
    return [
        ("propose", "POST", f"/v1/rulesets/{name}/versions", {**document, "data": toy_yaml(name, "1.0.0").encode(),
                                                               "token": "publish"}, 201),
        ("propose challenger", "POST", f"/v1/rulesets/{name}/versions",
         {**document, "data": toy_v2_yaml(name, "1.1.0", effective_from="2021-01-01").encode(), "token": "publish"}, 201),
        ("propose to reject", "POST", f"/v1/rulesets/{name}/versions",
         {**document, "data": toy_yaml(name, "1.2.0").encode(), "token": "publish"}, 201),
        ("evaluate pinned proposed", "POST", "/v1/decisions",
         {"json": evaluate_body("REL-1", ruleset=name, version="1.0.0"), "token": "publish"}, 422),
        ("dry run proposed", "POST", "/v1/decisions",
         {"json": evaluate_body("REL-2", ruleset=name, version="1.0.0", dry_run=True), "token": "publish"}, 200),
        ("approve wrong role", "POST", f"/v1/rulesets/{name}/versions/1.0.0:approve", {"token": "publish"}, 403),
        ("approve bad body", "POST", f"/v1/rulesets/{name}/versions/1.0.0:approve",
         {"json": {"comment": 7}, "token": "approve"}, 422),
        ("approve bad content type", "POST", f"/v1/rulesets/{name}/versions/1.0.0:approve",
         {"data": b"x", "headers": {"Content-Type": "text/plain"}, "token": "approve"}, 415),
        ("approve malformed", "POST", f"/v1/rulesets/{name}/versions/1.0.0:approve",
         {"data": b"{", "headers": {"Content-Type": "application/json"}, "token": "approve"}, 400),
        ("approve unknown", "POST", f"/v1/rulesets/{name}/versions/9.0.0:approve", {"token": "approve"}, 404),
        ("approve", "POST", f"/v1/rulesets/{name}/versions/1.0.0:approve",
         {"json": {"comment": "ok"}, "token": "approve"}, 200),
        ("approve again", "POST", f"/v1/rulesets/{name}/versions/1.0.0:approve", {"token": "approve"}, 409),
        ("reject", "POST", f"/v1/rulesets/{name}/versions/1.2.0:reject", {"json": {"comment": "no"}, "token": "approve"}, 200),
        ("reject again", "POST", f"/v1/rulesets/{name}/versions/1.2.0:reject", {"token": "approve"}, 409),
        ("reject wrong role", "POST", f"/v1/rulesets/{name}/versions/1.2.0:reject", {"token": "audit"}, 403),
        ("reject unknown", "POST", f"/v1/rulesets/{name}/versions/9.0.0:reject", {"token": "approve"}, 404),
        ("reject bad body", "POST", f"/v1/rulesets/{name}/versions/1.2.0:reject", {"json": [], "token": "approve"}, 422),
        ("reject bad content type", "POST", f"/v1/rulesets/{name}/versions/1.2.0:reject",
         {"data": b"x", "headers": {"Content-Type": "text/plain"}, "token": "approve"}, 415),
        ("reject malformed", "POST", f"/v1/rulesets/{name}/versions/1.2.0:reject",
         {"data": b"{", "headers": {"Content-Type": "application/json"}, "token": "approve"}, 400),
        ("history", "GET", f"/v1/rulesets/{name}/versions/1.0.0/history", {"token": "evaluate"}, 200),
        ("history unknown", "GET", f"/v1/rulesets/{name}/versions/9.0.0/history", {}, 404),
        ("history no token", "GET", f"/v1/rulesets/{name}/versions/1.0.0/history", {"token": None}, 401),
        ("no rollout yet", "GET", f"/v1/rulesets/{name}/rollout", {}, 404),
        ("end no rollout", "DELETE", f"/v1/rulesets/{name}/rollout", {"token": "approve"}, 404),
        ("rollout unusable challenger", "PUT", f"/v1/rulesets/{name}/rollout",
         {"json": {"challenger": "1.2.0", "mode": "shadow"}, "token": "approve"}, 422),
        ("rollout wrong role", "PUT", f"/v1/rulesets/{name}/rollout",
         {"json": {"challenger": "1.1.0", "mode": "shadow"}, "token": "publish"}, 403),
        ("rollout unknown challenger", "PUT", f"/v1/rulesets/{name}/rollout",
         {"json": {"challenger": "7.0.0", "mode": "shadow"}, "token": "approve"}, 404),
        ("rollout malformed", "PUT", f"/v1/rulesets/{name}/rollout",
         {"data": b"{", "headers": {"Content-Type": "application/json"}, "token": "approve"}, 400),
        ("rollout bad content type", "PUT", f"/v1/rulesets/{name}/rollout",
         {"data": b"x", "headers": {"Content-Type": "text/plain"}, "token": "approve"}, 415),
        ("start shadow", "PUT", f"/v1/rulesets/{name}/rollout",
         {"json": {"challenger": "1.1.0", "mode": "shadow"}, "token": "approve"}, 201),
        ("shadowed decision", "POST", "/v1/decisions",
         {"json": evaluate_body("REL-3", ruleset=name, version=None, as_of="2024-06-01"), "token": "evaluate"}, 200),
        ("change to split", "PUT", f"/v1/rulesets/{name}/rollout",
         {"json": {"challenger": "1.1.0", "mode": "split", "share": 1, "sticky_by": "applicant.code"}, "token": "approve"}, 200),
        ("split decision", "POST", "/v1/decisions",
         {"json": evaluate_body("REL-4", ruleset=name, version=None, as_of="2024-06-01"), "token": "evaluate"}, 200),
        ("logged split decision", "GET", "/v1/decisions?application_id=REL-4", {"token": "audit"}, 200),
        ("read rollout", "GET", f"/v1/rulesets/{name}/rollout", {"token": "audit"}, 200),
        ("read rollout unknown ruleset", "GET", "/v1/rulesets/nope/rollout", {}, 404),
        ("report", "GET", f"/v1/rulesets/{name}/rollout/report?from=2020-01-01&to=2100-01-01T00:00:00Z", {}, 200),
        ("report bad from", "GET", f"/v1/rulesets/{name}/rollout/report?from=yesterday", {}, 422),
        ("report unknown ruleset", "GET", "/v1/rulesets/nope/rollout/report", {}, 404),
        ("end rollout", "DELETE", f"/v1/rulesets/{name}/rollout", {"token": "approve"}, 200),
        ("end rollout wrong role", "DELETE", f"/v1/rulesets/{name}/rollout", {"token": "evaluate"}, 403),
        ("cancel a queued job", "POST", f"/v1/jobs/{queued_job}:cancel", {}, 200),
    ]


def test_real_responses_of_every_operation_match_openapi(server, world, four_eyes_server, admin):
    exercised: dict[tuple[str, str], set[int]] = {}
    # A job on the server without a runner: it is still queued when it is cancelled, whatever the timing.
    queued = Client(four_eyes_server.url, ALL).post("/v1/rulesets/toy/impact", json={"from": "1.0.0", "to": "1.0.0", **WHOLE_LOG})
    assert queued.status_code == 202, queued.text
    runs = [(server, s) for s in _scenarios(world)] + [(four_eyes_server, s) for s in _release_scenarios(queued.json()["id"])]
    for target, (label, method, path, kwargs, expected) in runs:
        kwargs = dict(kwargs)
        role = kwargs.pop("token", "all")
        client = Client(target.url, TOKENS_BY_ROLE[role] if role else None)
        response = client.request(method, path, **kwargs)  # checked against openapi.yaml by the Client
        assert response.status_code == expected, f"{label}: {method} {path} -> {response.status_code}: {response.text[:300]}"
        template = contract.find_template(path)
        exercised.setdefault((method, template), set()).add(response.status_code)
    not_succeeded = {op for op in contract.documented_operations()
                     if not any(200 <= s < 300 for s in exercised.get(op, ()))}
    assert not_succeeded == set(), "operations never driven to success"
    not_failed = {op for op in contract.documented_operations()
                  if op[1].startswith("/v1/") and not any(s >= 400 for s in exercised.get(op, ()))}
    assert not_failed == set(), "/v1 operations never driven to an error"


def test_not_ready_and_too_large_answers_match_openapi(bare_server):
    """A server with no rulesets is not ready (503 problem+json); bodies over MAX_BODY_BYTES get 413."""
    client = Client(bare_server.url, ALL)
    body = problem(client.get("/readyz"), 503)
    assert body["checks"] == {"rulesets": False, "store": True}
    assert problem(client.post("/v1/decisions", data=b"{" + b" " * 2048 + b"}", headers={"Content-Type": "application/json"}), 413)
    assert problem(client.post("/v1/rulesets:validate", data=b"x" * 2048, headers={"Content-Type": "application/yaml"}), 413)


def test_contract_checker_rejects_an_undocumented_answer(server, world):
    """The checker is not a rubber stamp: a real 200 body checked against the wrong schema fails."""
    response = Client(server.url, ALL).get(f"/v1/decisions/{world['decision_id']}")
    assert contract.schema_errors(response.json(), "/components/schemas/LoggedDecision") == []
    assert contract.schema_errors(response.json(), "/components/schemas/Decision") != []
    assert contract.schema_errors({"type": "x", "title": "t", "status": 200, "detail": "d"}, "/components/schemas/Problem")


# -- (d) ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    """Its own server: schemathesis publishes, retires and evaluates whatever it likes."""
    s = start_server(tmp_path_factory, "fuzz-server", {"RULESETS_DIR": str(FIXTURE_RULESETS), "RULES_API_TOKENS": TOKENS})
    yield s
    s.stop()


# Loaded from the file (identical to the served /openapi.yaml, see above) at import time:
# schemathesis.pytest.from_fixture, the lazy loader, does not work with pytest 9 in schemathesis
# 4.32 (it sets `request.node._nodeid`, which pytest 9 no longer has).
schema = schemathesis.openapi.from_path(contract.OPENAPI_PATH, config=schemathesis.Config.from_dict({
    "seed": 20261124,
    "headers": {"Authorization": f"Bearer {ALL}"},
    "request-timeout": 30,
    "generation": {"max-examples": 30, "mode": "all", "database": "none", "deterministic": True},
    "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True},
               "stateful": {"enabled": False}},
}))

CHECKS = [st_checks.not_a_server_error, st_checks.status_code_conformance, st_checks.content_type_conformance,
          st_checks.response_schema_conformance]


# Minutes on 2 shared cores (every operation, 30 examples, three phases): CI runs it (.ci/run);
# the default run keeps (c) above, which drives every operation against the same schemas.
@pytest.mark.slow
@schema.parametrize()
def test_schemathesis_no_server_errors_and_problem_json_errors(case, fuzz_server):
    response = case.call(base_url=fuzz_server.url)
    where = f"{case.method} {case.formatted_path} -> {response.status_code}"
    assert response.status_code < 500, f"{where}: {response.text[:500]}"
    if response.status_code >= 400:
        content_type = response.headers.get("content-type", [""])[0]  # schemathesis: lower-case keys, list values
        assert content_type.startswith("application/problem+json"), f"{where} {content_type}: {response.text[:300]}"
    case.validate_response(response, checks=CHECKS)


def test_schemathesis_fuzzes_every_documented_and_served_operation():
    """The fuzz above is generated from openapi.yaml, and (b) proves openapi.yaml is exactly the
    served routes, so an operation added later is fuzzed without touching this file. Here: no
    operation is left out of it (none fails to load, none is filtered away)."""
    loaded = [result.ok() for result in schema.get_all_operations()]
    fuzzed = {(operation.method.upper(), operation.path) for operation in loaded}
    assert fuzzed == contract.documented_operations()
