"""The 2027-01 release goes out the way a bank would ship it: the four new versions are published over
HTTP to a real gunicorn server that runs the versions they succeed, through the normal publish path
(validation, static checks, embedded tests); then a 1.0.0 decision and a 1.1.0 decision are taken for
the same application, the 1.0.0 decision replays identically, and diff, impact and post-loan
monitoring answer over HTTP."""
from __future__ import annotations

import shutil

import pytest
import requests

from tests.server import AUDIT, EVALUATE, PUBLISH, ROOT, TOKENS, GunicornServer

NEW_VERSIONS = [("sme-loan-pricing", "2.6.0"), ("coal-industry-policy", "1.1.0"), ("sme-credit-policy", "1.1.0"),
                ("post-loan-monitoring", "1.0.0")]
APPLICATION = {
    "applicant": {"name": "杭州ABC贸易有限公司", "credit_code": "91330106MA2B3C4D5D", "industry_code": "C3670", "province": "浙江省",
                  "employees": 120, "annual_revenue": 50000000, "total_assets": 30000000, "credit_rating": "BBB",
                  "financials_sound": True},
    "request": {"amount": 300000, "term_months": 12, "purpose": "working_capital", "mode": "individual", "product": "working_capital_loan"},
}


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def before_release(tmp_path_factory):
    """A server whose rulesets directory holds everything shipped except the release's new versions."""
    rulesets = tmp_path_factory.mktemp("rulesets-before-2027-01")
    shutil.copytree(ROOT / "rulesets", rulesets, dirs_exist_ok=True)
    for name, version in NEW_VERSIONS:
        (rulesets / name / f"{version}.yaml").unlink()
    (rulesets / "post-loan-monitoring").rmdir()
    server = GunicornServer({"RULESETS_DIR": str(rulesets), "RULES_API_TOKENS": TOKENS, "PUBLISH_APPROVALS": "0"},
                            workers=1, data_dir=str(tmp_path_factory.mktemp("release-data"))).start(timeout=120)
    yield server
    server.stop()


def test_the_release_publishes_and_the_old_versions_keep_answering(before_release):
    url = before_release.url
    # before the release: 1.1.0 is unknown
    r = requests.post(f"{url}/v1/decisions", headers=auth(EVALUATE), timeout=60,
                      json={"ruleset": "sme-credit-policy", "version": "1.1.0", "application_id": "REL-0", "input": APPLICATION})
    assert r.status_code == 404, r.text

    # publish the four documents through the normal publish path
    for name, version in NEW_VERSIONS:
        text = (ROOT / "rulesets" / name / f"{version}.yaml").read_bytes()
        r = requests.post(f"{url}/v1/rulesets/{name}/versions", data=text, timeout=300,
                          headers={**auth(PUBLISH), "Content-Type": "application/yaml"})
        assert r.status_code == 201, r.text
        again = requests.post(f"{url}/v1/rulesets/{name}/versions", data=text, timeout=300,
                              headers={**auth(PUBLISH), "Content-Type": "application/yaml"})
        assert again.status_code == 200, again.text  # idempotent: same version, same content
        listed = requests.get(f"{url}/v1/rulesets/{name}/versions", headers=auth(EVALUATE), timeout=30).json()
        assert version in [v["version"] for v in listed["versions"]]

    # the same application: 1.0.0 in 2026, 1.1.0 in 2027
    old = requests.post(f"{url}/v1/decisions", headers=auth(EVALUATE), timeout=60, json={
        "ruleset": "sme-credit-policy", "as_of": "2026-12-15", "application_id": "REL-1", "input": APPLICATION}).json()
    new = requests.post(f"{url}/v1/decisions", headers=auth(EVALUATE), timeout=60, json={
        "ruleset": "sme-credit-policy", "as_of": "2027-01-15", "application_id": "REL-1", "input": APPLICATION}).json()
    assert old["ruleset"]["version"] == "1.0.0" and new["ruleset"]["version"] == "1.1.0"
    assert old["ruleset"]["sha256"] == "7e6104c585b992bc7a6e146c43d083af5babb5944279464042ecb9cd8eeb36d9"
    assert (old["outcome"], old["reasons"], old["results"]["routing"]) == ("APPROVE", [], "auto")
    assert new["outcome"] == "REFER"
    assert [r["code"] for r in new["reasons"]] == ["COMPLIANCE_NOT_ATTESTED"] * 12
    assert "compliance.approvals.land" in " ".join(r["message_zh"] for r in new["reasons"])
    assert new["results"]["routing"] == "manual_review"

    # replaying the 1.0.0 decision after the release is identical
    replay = requests.post(f"{url}/v1/decisions/{old['decision_id']}/replay", headers=auth(AUDIT), timeout=60)
    assert replay.status_code == 200, replay.text
    assert replay.json()["identical"] is True

    # the service's own diff and impact
    diff = requests.get(f"{url}/v1/rulesets/sme-credit-policy/diff", params={"from": "1.0.0", "to": "1.1.0"},
                        headers=auth(EVALUATE), timeout=60).json()
    added = {r["id"] for r in diff["rules"]["added"]}
    assert {"MD-REQ-ECOMMERCE-TERM", "PR-NA-APPROVALS-LAND"} <= added
    assert "transport_industry_prefixes" in {p["id"] for p in diff["parameters"]["changed"]}
    impact = requests.post(f"{url}/v1/rulesets/sme-credit-policy/impact", headers=auth(PUBLISH), timeout=120, json={
        "from": "1.0.0", "to": "1.1.0", "as_of": "2027-01-15",
        "applications": [{"application_id": "A", "input": APPLICATION},
                         {"application_id": "B", "input": {**APPLICATION, "compliance": {
                             "prohibited_product": False, "low_level_duplicate": False, "illegal_equity_investment": False,
                             "illegal_securities_investment": False, "other_violation": False,
                             "approvals": {"project": True, "environmental": True, "land": True, "irregular": False},
                             "environment": {"emissions_compliant": True, "emission_quota": True, "closure_ordered": False}}}}]})
    assert impact.status_code == 200, impact.text
    body = impact.json()
    assert body["outcome_matrix"]["APPROVE"]["REFER"] == 1 and body["outcome_matrix"]["APPROVE"]["APPROVE"] == 1

    # pricing: an LPR base rate is referred with both rates
    price = requests.post(f"{url}/v1/decisions", headers=auth(EVALUATE), timeout=60, json={
        "ruleset": "sme-loan-pricing", "as_of": "2027-01-15", "application_id": "REL-P",
        "input": {"term_months": 12, "base_rate": 3.45,
                  "coefficients": {"rating": 0.55, "guarantee": 0.65, "contribution": 0.75, "prospect": 0.70}}}).json()
    assert (price["ruleset"]["version"], price["outcome"]) == ("2.6.0", "REFER")
    assert [r["code"] for r in price["reasons"]] == ["BASE_RATE_OVERRIDDEN"]
    assert (float(price["results"]["benchmark_rate"]), float(price["results"]["base_rate"])) == (4.35, 3.45)

    # post-loan monitoring through the same POST /v1/decisions
    plm = requests.post(f"{url}/v1/decisions", headers=auth(EVALUATE), timeout=60, json={
        "ruleset": "post-loan-monitoring", "as_of": "2027-01-15", "application_id": "LOAN-1",
        "input": {"loan": {"credit_amount": 3000000, "classification": "normal"}, "borrower": {"health_index": 65},
                  "signals": {"short_term_debt_surge": True}}}).json()
    assert plm["outcome"] == "REFER"
    assert [r["code"] for r in plm["reasons"]] == ["BAND_YELLOW", "SHORT_TERM_DEBT_SURGE"]
    assert plm["results"]["band"] == "yellow" and plm["results"]["auto_check_passed"] is False
    assert (plm["results"]["verify_within_hours"], plm["results"]["follow_up_days"]) == (24, 60)
