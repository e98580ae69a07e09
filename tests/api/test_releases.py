"""Four-eyes publishing and champion/challenger rollouts over real gunicorn (docs/api-contract.md, "Releases").

One server with PUBLISH_APPROVALS=1 and named identities: li.wei proposes (publish, and
approve too — so that self-approval is a real possibility), wang.fang and zhao.min approve.
Each test uses its own ruleset name. Every answer is checked against openapi.yaml (Client).
The multi-instance checks (activation and split arms across instances) are in
tests/integration/test_releases_shared.py.
"""
from __future__ import annotations

import re

import pytest

from tests.api.conftest import (
    FIXTURE_RULESETS, Client, evaluate_body, problem, publish, start_server, toy_input, toy_v2_yaml, toy_yaml,
)

PROPOSER, APPROVER, SECOND = "lw-publish-8812", "wf-approve-2231", "zm-approve-7710"
AUDITOR, EVALUATOR = "au-audit-5521", "ev-eval-9911"
TOKENS = (f"li.wei={PROPOSER}:publish+approve+evaluate,wang.fang={APPROVER}:approve,zhao.min={SECOND}:approve,"
          f"{AUDITOR}:audit,{EVALUATOR}:evaluate")
VOLATILE = re.compile(r'"(decision_id|evaluated_at|duration_ms)":("[^"]*"|[0-9.eE+-]+)')


@pytest.fixture(scope="module")
def four_eyes(tmp_path_factory):
    s = start_server(tmp_path_factory, "four-eyes", {"RULESETS_DIR": str(FIXTURE_RULESETS), "RULES_API_TOKENS": TOKENS,
                                                     "PUBLISH_APPROVALS": "1"})
    yield s
    s.stop()


@pytest.fixture
def proposer(four_eyes):
    return Client(four_eyes.url, PROPOSER)


@pytest.fixture
def approver(four_eyes):
    return Client(four_eyes.url, APPROVER)


@pytest.fixture
def auditor(four_eyes):
    return Client(four_eyes.url, AUDITOR)


def released(proposer, approver, name: str) -> None:
    """`name` 1.0.0 proposed by li.wei and approved by wang.fang: the champion."""
    publish(proposer, toy_yaml(name, "1.0.0"))
    assert approver.post(f"/v1/rulesets/{name}/versions/1.0.0:approve").status_code == 200


def decide(client, name, application_id, **fields):
    return client.post("/v1/decisions", json=evaluate_body(application_id, ruleset=name, version=fields.pop("version", None),
                                                           as_of=fields.pop("as_of", "2024-06-01"), **fields))


def logged(auditor, application_id) -> list[dict]:
    page = auditor.get(f"/v1/decisions?application_id={application_id}")
    assert page.status_code == 200, page.text
    return page.json()["decisions"] if "decisions" in page.json() else page.json()["items"]


def test_a_proposed_version_is_never_served_to_as_of_but_can_be_dry_run(proposer, approver, auditor, unique):
    released(proposer, approver, unique)
    # The document says `status: active`; the registry keeps it proposed until approved.
    created = publish(proposer, toy_v2_yaml(unique, "1.1.0", effective_from="2021-01-01"))
    assert created.status_code == 201 and created.json()["status"] == "proposed"
    listed = proposer.get(f"/v1/rulesets/{unique}/versions").json()["versions"]
    assert [(v["version"], v["status"]) for v in listed] == [("1.0.0", "active"), ("1.1.0", "proposed")]
    for n in range(8):  # both workers
        answer = decide(proposer, unique, f"{unique}-asof-{n}", input=toy_input("B"))
        assert answer.status_code == 200 and answer.json()["ruleset"]["version"] == "1.0.0"
        assert answer.json()["outcome"] == "APPROVE"  # 1.1.0 would decline B (floor BB)
    pinned = problem(decide(proposer, unique, f"{unique}-pinned", version="1.1.0", input=toy_input("B")), 422)
    assert pinned["code"] == "version_not_active"
    dry = decide(proposer, unique, f"{unique}-dry", version="1.1.0", dry_run=True, input=toy_input("B"))
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] is True and dry.json()["outcome"] == "DECLINE"
    assert dry.json()["ruleset"]["version"] == "1.1.0"
    assert logged(auditor, f"{unique}-dry") == [] and logged(auditor, f"{unique}-pinned") == []
    assert len(logged(auditor, f"{unique}-asof-0")) == 1
    # A draft document is proposed just the same.
    draft = toy_yaml(unique, "1.2.0", effective_from="2022-01-01").replace("status: active", "status: draft")
    assert publish(proposer, draft).json()["status"] == "proposed"
    assert decide(proposer, unique, f"{unique}-asof-draft").json()["ruleset"]["version"] == "1.0.0"


def test_self_approval_is_403_and_another_identity_activates_it(proposer, approver, auditor, four_eyes, unique):
    released(proposer, approver, unique)
    publish(proposer, toy_v2_yaml(unique, "1.1.0", effective_from="2021-01-01"))
    refused = problem(proposer.post(f"/v1/rulesets/{unique}/versions/1.1.0:approve", json={"comment": "mine"}), 403)
    assert refused["code"] == "self_approval"
    assert proposer.get(f"/v1/rulesets/{unique}/versions").json()["versions"][1]["status"] == "proposed"
    problem(Client(four_eyes.url, EVALUATOR).post(f"/v1/rulesets/{unique}/versions/1.1.0:approve"), 403)

    approved = approver.post(f"/v1/rulesets/{unique}/versions/1.1.0:approve", json={"comment": "委员会已批准 / committee ok"})
    assert approved.status_code == 200, approved.text
    assert approved.json() | {} == {"name": unique, "version": "1.1.0", "status": "active", "approvals": 1, "needed": 1,
                                    "approved_by": ["wang.fang"], "proposed_by": "li.wei"}
    for n in range(6):
        assert decide(proposer, unique, f"{unique}-after-{n}").json()["ruleset"]["version"] == "1.1.0"
    again = problem(Client(four_eyes.url, SECOND).post(f"/v1/rulesets/{unique}/versions/1.1.0:approve"), 409)
    assert again["code"] == "release_conflict"

    history = auditor.get(f"/v1/rulesets/{unique}/versions/1.1.0/history")
    assert history.status_code == 200
    events = [(e["event"], e["identity"], e["comment"]) for e in history.json()["history"]]
    assert events == [("proposed", "li.wei", None), ("approved", "wang.fang", "委员会已批准 / committee ok"),
                      ("activated", "wang.fang", None)]
    assert all(token not in history.text for token in (PROPOSER, APPROVER, SECOND))
    assert proposer.get(f"/v1/rulesets/{unique}/versions/1.1.0").json()["status"] == "active"


def test_rejected_is_terminal(proposer, approver, unique):
    released(proposer, approver, unique)
    publish(proposer, toy_v2_yaml(unique, "1.1.0"))
    rejected = approver.post(f"/v1/rulesets/{unique}/versions/1.1.0:reject", json={"comment": "floor too strict"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert problem(approver.post(f"/v1/rulesets/{unique}/versions/1.1.0:approve"), 409)["code"] == "release_conflict"
    assert problem(decide(proposer, unique, f"{unique}-r", version="1.1.0", dry_run=True), 422)["code"] == "version_not_active"
    assert proposer.get(f"/v1/rulesets/{unique}/versions").json()["versions"][1]["status"] == "rejected"
    assert problem(approver.request("PUT", f"/v1/rulesets/{unique}/rollout",
                                    json={"challenger": "1.1.0", "mode": "shadow"}), 422)["code"] == "invalid_rollout"


def test_shadow_answers_are_byte_identical_to_champion_only_answers(proposer, approver, auditor, unique):
    released(proposer, approver, unique)
    publish(proposer, toy_v2_yaml(unique, "1.1.0", effective_from="2021-01-01"))  # stays proposed: the challenger
    cases = [("A", 100, None), ("B", 100, None), ("CCC", 100, [{"cap": 20}]), ("BB", 250, None), (None, 100, None)]
    bodies = {}
    for trace in ("fired", "full"):
        for i, (rating, amount, mines) in enumerate(cases):
            extra = {"mines": mines} if mines else {}
            body = evaluate_body(f"{unique}-{i}", ruleset=unique, version=None, as_of="2024-06-01", trace=trace,
                                 input=toy_input(rating, amount=amount, **extra))
            bodies[(trace, i)] = body
    before = {key: proposer.post("/v1/decisions", json=body).text for key, body in bodies.items()}

    started = approver.request("PUT", f"/v1/rulesets/{unique}/rollout", json={"challenger": "1.1.0", "mode": "shadow"})
    assert started.status_code == 201, started.text
    assert started.json()["started_by"] == "wang.fang"
    during = {key: proposer.post("/v1/decisions", json=body) for key, body in bodies.items()}
    for key, response in during.items():
        assert response.status_code == 200
        assert VOLATILE.sub("", response.text) == VOLATILE.sub("", before[key]), key
        assert "rollout" not in response.json()

    # The log holds the challenger's answer beside the champion's.
    b_decision = during[("fired", 1)].json()["decision_id"]
    record = auditor.get(f"/v1/decisions/{b_decision}").json()
    assert record["rollout"] == {"mode": "shadow", "arm": "champion", "champion": "1.0.0", "challenger": "1.1.0"}
    assert record["response"]["outcome"] == "APPROVE" and record["shadow"]["outcome"] == "DECLINE"
    assert [r["code"] for r in record["shadow"]["reasons"]] == ["LOW"]
    assert record["shadow"]["results"]["floor"] == "BB"
    replay = auditor.post(f"/v1/decisions/{b_decision}/replay")
    assert replay.json()["identical"] is True, replay.text

    report = auditor.get(f"/v1/rulesets/{unique}/rollout/report?from=2020-01-01")
    assert report.status_code == 200, report.text
    report = report.json()
    assert report["arms"] == {"champion": 10, "challenger": 0} and report["pairs"] == 10
    assert report["matrix"]["APPROVE"]["DECLINE"] == 2  # B, twice (fired and full)
    assert sum(sum(row.values()) for row in report["matrix"].values()) == 10
    changed = [c for c in report["changed"] if c["decision_id"] == b_decision]
    assert changed and changed[0]["rules_responsible"] == ["R-FLOOR", "R-LOW"]
    assert changed[0]["champion"]["outcome"] == "APPROVE" and changed[0]["challenger"]["outcome"] == "DECLINE"
    assert report["changed_count"] == len(report["changed"]) == 2

    ended = approver.request("DELETE", f"/v1/rulesets/{unique}/rollout")
    assert ended.status_code == 200 and ended.json()["ended"] is True
    assert problem(auditor.get(f"/v1/rulesets/{unique}/rollout"), 404)["code"] == "no_rollout"
    events = [e["event"] for e in auditor.get(f"/v1/rulesets/{unique}/versions/1.1.0/history").json()["history"]]
    assert events == ["proposed", "rollout_started", "rollout_ended"]


def test_a_failing_challenger_never_fails_or_changes_the_answer(proposer, approver, auditor, unique):
    released(proposer, approver, unique)
    # The challenger refuses amounts over 500 (input validation): only its shadow fails.
    strict = toy_yaml(unique, "1.1.0").replace("amount: {type: decimal, scale: 2, gt: 0, required: true}",
                                               "amount: {type: decimal, scale: 2, gt: 0, max: 500, required: true}")
    assert "max: 500" in strict
    publish(proposer, strict)
    body = evaluate_body(f"{unique}-big", ruleset=unique, version=None, as_of="2024-06-01", input=toy_input("A", amount=9000))
    before = proposer.post("/v1/decisions", json=body).text
    approver.request("PUT", f"/v1/rulesets/{unique}/rollout", json={"challenger": "1.1.0", "mode": "shadow"})
    during = proposer.post("/v1/decisions", json=body)
    assert during.status_code == 200 and VOLATILE.sub("", during.text) == VOLATILE.sub("", before)
    record = auditor.get(f"/v1/decisions/{during.json()['decision_id']}").json()
    assert record["shadow"]["error"]["code"] == "invalid_input" and "outcome" not in record["shadow"]
    report = auditor.get(f"/v1/rulesets/{unique}/rollout/report").json()
    assert report["shadow_errors"] == 1 and report["pairs"] == 0
    metrics = auditor.get("/metrics").text
    assert (f'credit_rules_rollout_decisions_total{{arm="champion",mode="shadow",ruleset="{unique}",shadow="failed"}} 1.0'
            in metrics), [line for line in metrics.splitlines() if "rollout" in line]


def test_split_sends_a_stable_share_to_the_challenger_and_says_which_arm(proposer, approver, auditor, unique):
    released(proposer, approver, unique)
    publish(proposer, toy_v2_yaml(unique, "1.1.0"))
    bad = approver.request("PUT", f"/v1/rulesets/{unique}/rollout", json={"challenger": "1.1.0", "mode": "split", "share": 0.5})
    assert {e["path"] for e in problem(bad, 422)["errors"]} == {"sticky_by"}
    bad = approver.request("PUT", f"/v1/rulesets/{unique}/rollout",
                           json={"challenger": "1.1.0", "mode": "split", "share": 0.5, "sticky_by": "applicant.nope"})
    assert problem(bad, 422)["code"] == "invalid_rollout"
    problem(approver.request("PUT", f"/v1/rulesets/{unique}/rollout",
                             json={"challenger": "1.1.0", "mode": "split", "share": 1.5, "sticky_by": "applicant.code"}), 422)
    problem(proposer.request("PUT", f"/v1/rulesets/{unique}/rollout", json={"challenger": "1.1.0", "mode": "shadow"},
                             headers={"Authorization": f"Bearer {EVALUATOR}"}), 403)
    started = approver.request("PUT", f"/v1/rulesets/{unique}/rollout",
                               json={"challenger": "1.1.0", "mode": "split", "share": 0.5, "sticky_by": "applicant.code"})
    assert started.status_code == 201 and started.json()["share"] == 0.5
    assert auditor.get(f"/v1/rulesets/{unique}/rollout").json()["sticky_by"] == "applicant.code"
    codes = [f"C{1300 + 7 * i}" for i in range(30)]
    arms = {}
    for round_ in range(2):
        for code in codes:
            answer = decide(proposer, unique, f"{unique}-{code}-{round_}", input=toy_input("B", code=code))
            assert answer.status_code == 200, answer.text
            rollout = answer.json()["rollout"]
            assert rollout["mode"] == "split"
            version = answer.json()["ruleset"]["version"]
            assert version == {"champion": "1.0.0", "challenger": "1.1.0"}[rollout["arm"]]
            assert answer.json()["outcome"] == {"1.0.0": "APPROVE", "1.1.0": "DECLINE"}[version]
            assert arms.setdefault(code, rollout["arm"]) == rollout["arm"], f"{code} changed arm"
    counts = {arm: list(arms.values()).count(arm) for arm in ("champion", "challenger")}
    assert counts["champion"] > 5 and counts["challenger"] > 5, counts
    # Pinned requests are outside the rollout.
    pinned = decide(proposer, unique, f"{unique}-pinned", version="1.0.0", input=toy_input("B", code=codes[0]))
    assert "rollout" not in pinned.json()
    report = auditor.get(f"/v1/rulesets/{unique}/rollout/report").json()
    assert report["arms"] == {"champion": 2 * counts["champion"], "challenger": 2 * counts["challenger"]}
    assert report["matrix"]["APPROVE"]["DECLINE"] == 60 and report["changed_count"] == 60
    assert {c["arm"] for c in report["changed"]} == {"champion", "challenger"}
