"""Two gunicorn instances on one PostgreSQL: one registry, one decision chain."""
from __future__ import annotations

import requests

from tests.integration.conftest import TOY, base_env, toy_decision
from tests.server import ALL, AUDIT, PUBLISH, GunicornServer, bearer


def test_version_published_on_one_instance_is_used_by_the_other_and_both_chain_one_log(pg_database):
    env = base_env(DATABASE_URL=pg_database)
    with GunicornServer(env) as a, GunicornServer(env) as b:
        newer = TOY.replace("version: '1.0.0'", "version: '1.1.0'").replace(
            "floor: {type: rating, value: B}", "floor: {type: rating, value: BB}").replace(
            "expect: {outcome: DECLINE, reasons: [LOW], results: {tags: [small, mining]}}",
            "expect: {outcome: DECLINE, reasons: [LOW], results: {tags: [small, mining], floor: BB}}").replace(
            "results: {in_scope: true, floor: B, max_amount: 200}", "results: {in_scope: true, floor: BB, max_amount: 200}")
        published = requests.post(f"{a.url}/v1/rulesets/toy/versions", data=newer.encode(),
                                  headers={**bearer(PUBLISH), "Content-Type": "application/yaml"}, timeout=30)
        assert published.status_code == 201, published.text

        # Instance b never restarted: it evaluates with the version a published.
        body = {**toy_decision("SHARED-1", rating="B"), "version": "1.1.0"}
        on_b = requests.post(f"{b.url}/v1/decisions", json=body, headers=bearer(ALL), timeout=30)
        assert on_b.status_code == 200, on_b.text
        assert on_b.json()["ruleset"]["version"] == "1.1.0"
        assert on_b.json()["outcome"] == "DECLINE"  # B is below the new floor BB
        listed = requests.get(f"{b.url}/v1/rulesets/toy/versions", headers=bearer(AUDIT), timeout=30).json()
        assert [v["version"] for v in listed["versions"]] == ["1.0.0", "1.1.0"]

        ids = []
        for n in range(40):
            server = a if n % 2 else b
            r = requests.post(f"{server.url}/v1/decisions", json=toy_decision(f"SHARED-{n}"), headers=bearer(ALL), timeout=30)
            assert r.status_code == 200, r.text
            ids.append(r.json()["decision_id"])

        report = requests.get(f"{a.url}/v1/audit/verify", headers=bearer(AUDIT), timeout=60).json()
        assert report["ok"] is True and report["checked"] == 41 and report["head"]["seq"] == 41
        # every decision, from either instance, is readable through the other one
        for decision_id in ids[:5] + ids[-5:]:
            assert requests.get(f"{b.url}/v1/decisions/{decision_id}", headers=bearer(AUDIT), timeout=30).status_code == 200
