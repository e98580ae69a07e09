"""Four-eyes publishing and split rollouts on two gunicorn instances sharing one PostgreSQL.

Neither instance restarts: a version proposed on one is never served by as_of on either,
self-approval is refused, an approval made on one instance activates the version on both,
and a split rollout puts the same applicant in the same arm whichever instance answers.
"""
from __future__ import annotations

import time

import pytest
import requests

from tests.integration.conftest import FIXTURE_RULESETS, TOY
from tests.server import GunicornServer, bearer

PROPOSER, APPROVER = "lw-publish-8812", "wf-approve-2231"
TOKENS = f"li.wei={PROPOSER}:publish+approve+evaluate,wang.fang={APPROVER}:approve,au-audit-5521:audit"

NEWER = TOY.replace("version: '1.0.0'", "version: '1.1.0'").replace(
    "effective_from: 2020-01-01", "effective_from: 2021-01-01").replace(
    "floor: {type: rating, value: B}", "floor: {type: rating, value: BB}").replace(
    "expect: {outcome: DECLINE, reasons: [LOW], results: {tags: [small, mining]}}",
    "expect: {outcome: DECLINE, reasons: [LOW], results: {tags: [small, mining], floor: BB}}").replace(
    "results: {in_scope: true, floor: B, max_amount: 200}", "results: {in_scope: true, floor: BB, max_amount: 200}")


def decide(server, application_id, rating="B", code="C3670", **extra):
    body = {"ruleset": "toy", "as_of": "2024-06-01", "application_id": application_id,
            "input": {"applicant": {"rating": rating, "code": code}, "amount": 100}, **extra}
    response = requests.post(f"{server.url}/v1/decisions", json=body, headers=bearer(PROPOSER), timeout=30)
    assert response.status_code in (200, 422), response.text
    return response


@pytest.mark.slow
def test_proposal_approval_and_split_arms_are_shared_by_every_instance(pg_database):
    env = {"RULES_API_TOKENS": TOKENS, "RULESETS_DIR": FIXTURE_RULESETS, "DATABASE_URL": pg_database,
           "PUBLISH_APPROVALS": "1", "REGISTRY_REFRESH_SECONDS": "0.2"}
    with GunicornServer(env) as a, GunicornServer(env) as b:
        assert NEWER != TOY and "value: BB" in NEWER
        proposed = requests.post(f"{a.url}/v1/rulesets/toy/versions", data=NEWER.encode(),
                                 headers={**bearer(PROPOSER), "Content-Type": "application/yaml"}, timeout=30)
        assert proposed.status_code == 201 and proposed.json()["status"] == "proposed", proposed.text

        # Never served to as_of, on either instance; pinned without dry_run refused.
        for n in range(6):
            for server in (a, b):
                answer = decide(server, f"P-{n}")
                assert answer.json()["ruleset"]["version"] == "1.0.0" and answer.json()["outcome"] == "APPROVE"
        pinned = decide(b, "P-pinned", version="1.1.0")
        assert pinned.status_code == 422 and pinned.json()["code"] == "version_not_active"
        # b sees the proposal within REGISTRY_REFRESH_SECONDS of its next look at the store (the
        # decisions above can all fit inside one refresh interval: look again after it).
        time.sleep(0.5)
        decide(b, "P-refresh")
        listed = requests.get(f"{b.url}/v1/rulesets/toy/versions", headers=bearer(PROPOSER), timeout=30).json()
        assert [v["status"] for v in listed["versions"]] == ["active", "proposed"]

        # Split while proposed: the same applicant gets the same arm from both instances.
        started = requests.put(f"{b.url}/v1/rulesets/toy/rollout", headers=bearer(APPROVER), timeout=30,
                               json={"challenger": "1.1.0", "mode": "split", "share": 0.3, "sticky_by": "applicant.code"})
        assert started.status_code == 201, started.text
        time.sleep(0.5)  # > REGISTRY_REFRESH_SECONDS: both instances have seen the rollout
        codes = [f"C{1300 + 11 * i}" for i in range(24)]
        arms: dict[str, set[str]] = {c: set() for c in codes}
        for round_ in range(2):
            for i, code in enumerate(codes):
                for server in ((a, b) if (i + round_) % 2 else (b, a)):
                    answer = decide(server, f"S-{code}", code=code).json()
                    arms[code].add(answer["rollout"]["arm"])
                    assert answer["ruleset"]["version"] == ("1.1.0" if answer["rollout"]["arm"] == "challenger" else "1.0.0")
        assert all(len(seen) == 1 for seen in arms.values()), arms
        challengers = sum("challenger" in seen for seen in arms.values())
        assert 0 < challengers < len(codes), challengers
        report = requests.get(f"{a.url}/v1/rulesets/toy/rollout/report", headers=bearer(PROPOSER), timeout=30).json()
        assert report["arms"] == {"champion": 4 * (len(codes) - challengers), "challenger": 4 * challengers}
        ended = requests.delete(f"{a.url}/v1/rulesets/toy/rollout", headers=bearer(APPROVER), timeout=30)
        assert ended.status_code == 200

        # Four eyes: the proposer cannot approve, on either instance.
        for server in (a, b):
            refused = requests.post(f"{server.url}/v1/rulesets/toy/versions/1.1.0:approve",
                                    headers=bearer(PROPOSER), timeout=30)
            assert refused.status_code == 403 and refused.json()["code"] == "self_approval"

        # Approved on b: a (never restarted) serves it to as_of.
        approved = requests.post(f"{b.url}/v1/rulesets/toy/versions/1.1.0:approve", json={"comment": "ok"},
                                 headers=bearer(APPROVER), timeout=30)
        assert approved.status_code == 200 and approved.json()["status"] == "active", approved.text
        time.sleep(0.5)  # > REGISTRY_REFRESH_SECONDS
        for n in range(6):
            answer = decide(a, f"A-{n}")
            assert answer.json()["ruleset"]["version"] == "1.1.0" and answer.json()["outcome"] == "DECLINE"
        history = requests.get(f"{a.url}/v1/rulesets/toy/versions/1.1.0/history", headers=bearer(PROPOSER), timeout=30)
        assert [(e["event"], e["identity"]) for e in history.json()["history"]] == [
            ("proposed", "li.wei"), ("rollout_started", "wang.fang"), ("rollout_ended", "wang.fang"),
            ("approved", "wang.fang"), ("activated", "wang.fang")]
        published_by = requests.get(f"{a.url}/v1/rulesets/toy/versions/1.1.0", headers=bearer(PROPOSER), timeout=30)
        assert published_by.status_code == 200
