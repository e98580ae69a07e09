"""Who may call what (docs/api-contract.md): every caller × every endpoint, against real gunicorn servers.

Token mode (RULES_API_TOKENS set): no token, an unknown token or a malformed Authorization
header → 401; a valid token without the role → 403; ruleset reads need any valid token;
ops endpoints are open. Open mode (RULES_API_TOKENS unset): evaluate and reads are open,
every publish and audit endpoint answers 403 whoever calls.
Tokens never show up in a response body or in the gunicorn log.
"""
from __future__ import annotations

import pytest

from tests.api.conftest import Client, evaluate_body, problem, toy_input, toy_v2_yaml, toy_yaml, wait_for_log
from tests.jobs.helpers import wait_for_job
from tests.server import ALL, APPROVE, AUDIT, EVALUATE, PUBLISH

UNKNOWN_TOKEN = "not-a-known-token-7e1d"

# name -> headers sent
CALLERS = {
    "evaluate": {"Authorization": f"Bearer {EVALUATE}"},
    "publish+evaluate": {"Authorization": f"Bearer {PUBLISH}"},
    "audit": {"Authorization": f"Bearer {AUDIT}"},
    "approve": {"Authorization": f"Bearer {APPROVE}"},
    "all roles": {"Authorization": f"Bearer {ALL}"},
    "no token": {},
    "unknown token": {"Authorization": f"Bearer {UNKNOWN_TOKEN}"},
    "malformed header": {"Authorization": f"Token {EVALUATE}"},
    "empty bearer": {"Authorization": "Bearer "},
}
ROLES_OF = {"evaluate": {"evaluate"}, "publish+evaluate": {"publish", "evaluate"}, "audit": {"audit"},
            "approve": {"approve"}, "all roles": {"evaluate", "publish", "audit", "approve"}}

NAME = "authz-demo"  # a ruleset with versions 1.0.0 and 1.1.0, published by the fixture
NO_JOB = "01a2129f-0000-7000-8000-00000000dead"


class AnyOf(frozenset):
    """Roles of which any one is enough (the others are `all of`)."""


def _endpoints(decision_id: str, job_id: str = NO_JOB) -> list[tuple[str, str, str, dict, set[str] | None, set[int]]]:
    """(label, METHOD, path, requests kwargs, roles needed (None = open), success statuses)."""
    evaluate = {"json": evaluate_body("AUTHZ-1", ruleset=NAME, version="1.0.0")}
    document = {"data": toy_yaml(NAME, "1.2.0").encode(), "headers": {"Content-Type": "application/yaml"}}
    given = {"json": {"from": "1.0.0", "to": "1.1.0", "applications": [{"input": toy_input("B")}]}}
    logged = {"json": {"from": "1.0.0", "to": "1.1.0", "logged_from": "2020-01-01T00:00:00Z",
                       "logged_to": "2100-01-01T00:00:00Z"}}
    read, ok = {"read"}, {200}
    return [
        ("evaluate", "POST", "/v1/decisions", evaluate, {"evaluate"}, ok),
        ("evaluate batch", "POST", "/v1/decisions:batch", {"json": {"items": [evaluate["json"]]}}, {"evaluate"}, ok),
        ("get decision", "GET", f"/v1/decisions/{decision_id}", {}, {"audit"}, ok),
        ("search decisions", "GET", "/v1/decisions?application_id=AUTHZ-0", {}, {"audit"}, ok),
        ("export decisions csv", "GET", "/v1/decisions?format=csv&application_id=AUTHZ-0", {}, {"audit"}, ok),
        ("replay decision", "POST", f"/v1/decisions/{decision_id}/replay", {}, {"audit"}, ok),
        ("verify log", "GET", "/v1/audit/verify", {}, {"audit"}, ok),
        ("list checkpoints", "GET", "/v1/audit/checkpoints", {}, {"audit"}, ok),
        ("checkpoint public key", "GET", "/v1/audit/public-key", {}, {"audit"}, ok),
        ("list rulesets", "GET", "/v1/rulesets", {}, read, ok),
        ("list versions", "GET", f"/v1/rulesets/{NAME}/versions", {}, read, ok),
        ("get version", "GET", f"/v1/rulesets/{NAME}/versions/1.0.0", {}, read, ok),
        ("get version yaml", "GET", f"/v1/rulesets/{NAME}/versions/1.0.0", {"headers": {"Accept": "application/yaml"}}, read, ok),
        ("diff", "GET", f"/v1/rulesets/{NAME}/diff?from=1.0.0&to=1.1.0", {}, read, ok),
        ("publish", "POST", f"/v1/rulesets/{NAME}/versions", document, {"publish"}, ok),
        ("retire", "POST", f"/v1/rulesets/{NAME}/versions/1.2.0:retire", {}, {"publish"}, ok),
        ("validate", "POST", "/v1/rulesets:validate", document, {"publish"}, ok),
        ("impact, given applications", "POST", f"/v1/rulesets/{NAME}/impact", given, {"publish"}, ok),
        ("impact, logged decisions", "POST", f"/v1/rulesets/{NAME}/impact", logged, AnyOf({"publish", "audit"}), {202}),
        ("list jobs", "GET", "/v1/jobs?limit=5", {}, read, ok),
        ("get job", "GET", f"/v1/jobs/{job_id}", {}, read, ok),
        ("job changes csv", "GET", f"/v1/jobs/{job_id}/changes.csv", {}, read, ok),
        ("cancel job", "POST", f"/v1/jobs/{job_id}:cancel", {}, AnyOf({"publish", "audit"}), {409}),   # it is done
        # This server publishes without approvals: approving or rejecting answers 409 (nothing
        # proposed) to whoever may call it; four-eyes itself is tests/api/test_releases.py.
        ("approve", "POST", f"/v1/rulesets/{NAME}/versions/1.1.0:approve", {}, {"approve"}, {200, 409}),
        ("reject", "POST", f"/v1/rulesets/{NAME}/versions/1.1.0:reject", {}, {"approve"}, {200, 409}),
        ("version history", "GET", f"/v1/rulesets/{NAME}/versions/1.0.0/history", {}, read, ok),
        ("start rollout", "PUT", f"/v1/rulesets/{NAME}/rollout", {"json": {"challenger": "1.1.0", "mode": "shadow"}},
         {"approve"}, {200, 201}),
        ("read rollout", "GET", f"/v1/rulesets/{NAME}/rollout", {}, read, {200, 404}),
        ("end rollout", "DELETE", f"/v1/rulesets/{NAME}/rollout", {}, {"approve"}, {200, 404}),
        ("rollout report", "GET", f"/v1/rulesets/{NAME}/rollout/report", {}, read, ok),
        ("healthz", "GET", "/healthz", {}, None, ok),
        ("readyz", "GET", "/readyz", {}, None, ok),
        ("metrics", "GET", "/metrics", {}, None, ok),
        ("openapi", "GET", "/openapi.yaml", {}, None, ok),
        ("docs", "GET", "/docs", {}, None, ok),
        ("docs asset", "GET", "/docs/swagger-ui.css", {}, None, ok),
    ]


def expected_in_token_mode(caller: str, needed: set[str] | None, success: set[int]) -> set[int]:
    if needed is None:
        return success                      # ops: open to everyone, whatever the header
    if caller not in ROLES_OF:
        return {401}                        # no token, unknown token, malformed header
    if isinstance(needed, AnyOf):
        return success if needed & ROLES_OF[caller] else {403}
    if needed == {"read"} or needed <= ROLES_OF[caller]:
        return success
    return {403}


def expected_in_open_mode(needed: set[str] | None, success: set[int]) -> set[int]:
    if needed is None or (not isinstance(needed, AnyOf) and needed <= {"evaluate", "read"}):
        return success
    return {403}                            # publish, audit and approve are closed without tokens


ENDPOINT_LABELS = [e[0] for e in _endpoints("x")]


@pytest.fixture(scope="module")
def token_world(server):
    admin = Client(server.url, ALL)
    # 1.2.0 exists before the matrix runs, so `publish` (idempotent: 200) and `retire` (of 1.2.0)
    # succeed for allowed callers in any order.
    for text in (toy_yaml(NAME, "1.0.0"), toy_v2_yaml(NAME, "1.1.0"), toy_yaml(NAME, "1.2.0")):
        response = admin.post(f"/v1/rulesets/{NAME}/versions", data=text.encode(), headers={"Content-Type": "application/yaml"})
        assert response.status_code in (200, 201), response.text
    decided = admin.post("/v1/decisions", json=evaluate_body("AUTHZ-0", ruleset=NAME, version="1.0.0"))
    assert decided.status_code == 200, decided.text
    job = admin.post(f"/v1/rulesets/{NAME}/impact", json={"from": "1.0.0", "to": "1.1.0", "logged_from": "2020-01-01T00:00:00Z",
                                                         "logged_to": "2100-01-01T00:00:00Z"})
    assert job.status_code == 202, job.text
    assert wait_for_job(admin.get, job.json()["id"])["status"] == "done"
    return {"endpoints": {e[0]: e for e in _endpoints(decided.json()["decision_id"], job.json()["id"])}}


@pytest.fixture(scope="module")
def open_world(open_server):
    # Nothing can be published in open mode: use the fixture ruleset `toy` and make a decision.
    anonymous = Client(open_server.url)
    decided = anonymous.post("/v1/decisions", json=evaluate_body("AUTHZ-0"))
    assert decided.status_code == 200, decided.text
    endpoints = []
    for label, method, path, kwargs, needed, success in _endpoints(decided.json()["decision_id"]):
        path = path.replace(NAME, "toy").replace("to=1.1.0", "to=1.0.0")
        if label in ("get job", "job changes csv"):
            success = {404}   # nobody can create a job in open mode: reading one finds none
        if "json" in kwargs:
            kwargs = {**kwargs, "json": _retarget(kwargs["json"])}
        endpoints.append((label, method, path, kwargs, needed, success))
    return {"endpoints": {e[0]: e for e in endpoints}}


def _retarget(body: dict) -> dict:
    body = dict(body)
    if body.get("ruleset") == NAME:
        body["ruleset"] = "toy"
    if "items" in body:
        body["items"] = [_retarget(i) for i in body["items"]]
    if body.get("to") == "1.1.0":
        body["to"] = "1.0.0"
    return body


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("endpoint", ENDPOINT_LABELS)
def test_token_mode_allows_exactly_the_roles_of_the_contract(server, token_world, endpoint, caller):
    label, method, path, kwargs, needed, success = token_world["endpoints"][endpoint]
    headers = {**kwargs.get("headers", {}), **CALLERS[caller]}
    response = Client(server.url).request(method, path, **{**kwargs, "headers": headers})
    expected = expected_in_token_mode(caller, needed, success)
    assert response.status_code in expected, \
        f"{caller} → {label}: expected {sorted(expected)}, got {response.status_code}: {response.text[:300]}"
    if response.status_code == 401:
        assert response.headers.get("WWW-Authenticate") == "Bearer"
        problem(response, 401)
    if response.status_code == 403:
        assert "role" in problem(response, 403)["detail"]


@pytest.mark.parametrize("caller", ["no token", "unknown token", "all roles"])
@pytest.mark.parametrize("endpoint", ENDPOINT_LABELS)
def test_open_mode_opens_evaluate_and_reads_and_closes_publish_and_audit(open_server, open_world, endpoint, caller):
    """Without RULES_API_TOKENS any Authorization header is ignored: nobody gets publish or audit."""
    label, method, path, kwargs, needed, success = open_world["endpoints"][endpoint]
    headers = {**kwargs.get("headers", {}), **CALLERS[caller]}
    response = Client(open_server.url).request(method, path, **{**kwargs, "headers": headers})
    expected = expected_in_open_mode(needed, success)
    assert response.status_code in expected, \
        f"open mode, {caller} → {label}: expected {sorted(expected)}, got {response.status_code}: {response.text[:300]}"
    if response.status_code == 403:
        assert "RULES_API_TOKENS is not set" in problem(response, 403)["detail"]


def test_the_matrix_covers_every_documented_operation():
    from tests.api import contract

    covered = {(method, contract.find_template(path)) for _, method, path, *_ in _endpoints("01a2129f-0000-7000-8000-000000000000")}
    assert contract.documented_operations() - covered == set()


def test_roles_are_checked_before_the_body_is_read(server):
    """A wrong role is 403 even with a body that would be refused (no information leaks to it)."""
    client = Client(server.url, AUDIT)
    problem(client.post("/v1/decisions", data=b"{not json", headers={"Content-Type": "application/json"}), 403)
    problem(Client(server.url).post("/v1/decisions", data=b"{not json", headers={"Content-Type": "text/plain"}), 401)


def test_tokens_never_appear_in_response_bodies_or_in_the_server_log(server, token_world):
    """Every caller (valid, unknown and malformed tokens) on every endpoint; then read the log."""
    secrets = [EVALUATE, PUBLISH, AUDIT, ALL, UNKNOWN_TOKEN]
    seen = 0
    for label, method, path, kwargs, _, _ in token_world["endpoints"].values():
        for caller, auth in CALLERS.items():
            headers = {**kwargs.get("headers", {}), **auth, "X-Request-Id": f"leak-check-{seen}"}
            response = Client(server.url).request(method, path, **{**kwargs, "headers": headers})
            seen += 1
            for secret in secrets:
                assert secret not in response.text, f"{caller} → {label}: the response body contains a token"
                assert all(secret not in v for v in response.headers.values()), f"{caller} → {label}: a header has a token"
    log = wait_for_log(server, f'"request_id": "leak-check-{seen - 1}"')
    assert f"leak-check-{seen - 1}" in log, "the access log does not show these requests: the check below would be vacuous"
    for secret in secrets:
        assert secret not in log, "a token is written to the gunicorn log"
