"""A product team and a release manager in headless Chromium against real gunicorn: a version
proposed through the API is reviewed and approved in the console, its diff shows the changed
parameter; an audit-only token cannot reach any ruleset-changing form; forms without this
session's CSRF token are refused."""
from __future__ import annotations

import re
import time

import pytest
import requests
from selenium.webdriver.support.select import Select

from tests.console.conftest import APPLICANT, REQUEST, ROOT
from tests.server import ALL, APPROVE, AUDIT, PUBLISH, bearer

# One gunicorn and one Chromium per module (~40-60 s to start on a busy 2-core machine).
pytestmark = pytest.mark.slow

NAME = "sme-credit-policy"
NEW_VERSION = "1.0.1"


def _document(version: str) -> str:
    text = (ROOT / "rulesets" / NAME / "1.0.0.yaml").read_text(encoding="utf-8")
    assert "version: '1.0.0'" in text and "value: [上海市, 江苏省, 浙江省]" in text
    return (text.replace("version: '1.0.0'", f"version: '{version}'")
                .replace("effective_from: 2024-06-17", "effective_from: 2026-06-01")
                .replace("value: [上海市, 江苏省, 浙江省]", "value: [上海市, 江苏省, 浙江省, 安徽省]"))


@pytest.fixture(scope="module")
def proposed(server):
    """The product team publishes a version that adds 安徽省 to the priority provinces."""
    response = requests.post(f"{server.url}/v1/rulesets/{NAME}/versions", data=_document(NEW_VERSION).encode("utf-8"),
                             headers={**bearer(PUBLISH), "Content-Type": "application/yaml"}, timeout=120)
    assert response.status_code in (200, 201), response.text
    return response.json()


def _statuses(console) -> list[int]:
    return [e["params"]["response"]["status"] for e in console.network_events()
            if e["method"] == "Network.responseReceived" and e["params"]["type"] == "Document"]


def test_an_audit_only_token_cannot_reach_ruleset_changing_forms(console, proposed):
    console.sign_in(AUDIT)
    console.open(f"/console/rulesets/{NAME}/versions/1.0.0")
    assert not console.find_all("#retire-link") and not console.find_all("#review-link")
    for path in (f"/console/rulesets/{NAME}/versions/1.0.0/retire", f"/console/rulesets/{NAME}/versions/{NEW_VERSION}/review"):
        console.network_events()
        console.open(path)
        assert _statuses(console)[-1] == 403, path
        assert "403" in console.text("h1")
    assert "lacks" in console.text("#error-message")
    console.screenshot("forbidden")
    # the form posts are refused too, with a valid CSRF token of this very session
    page = console.http().get(f"{console.server.url}/console/rulesets", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = console.http().post(f"{console.server.url}/console/rulesets/{NAME}/versions/1.0.0/retire",
                                   data={"csrf_token": token}, timeout=30, allow_redirects=False)
    assert response.status_code == 403 and response.headers["Content-Type"].startswith("text/html")
    assert _version_status(console.server, "1.0.0") == "active"
    console.sign_out()


def test_the_diff_page_shows_the_changed_parameter(console, proposed):
    console.sign_in(PUBLISH)
    console.open(f"/console/rulesets/{NAME}")
    assert console.find_all(f"tr[data-version='{NEW_VERSION}']")
    console.screenshot("versions")
    Select(console.find("#diff-from")).select_by_visible_text("1.0.0")
    Select(console.find("#diff-to")).select_by_visible_text(NEW_VERSION)
    console.submit("#compare")
    assert console.path == f"/console/rulesets/{NAME}/diff?from=1.0.0&to={NEW_VERSION}"
    row = console.find("#diff-parameters tr[data-param='priority_provinces']")
    assert "安徽省" not in row.find_element("css selector", "td.was").text
    assert "安徽省" in row.find_element("css selector", "td.now").text
    assert console.find_all("#diff-metadata")  # effective_from moved
    console.screenshot("diff")


def test_an_approver_approves_the_proposal_in_the_console(console, proposed, server):
    assert proposed["status"] == "proposed"  # four-eyes: publishing only proposes
    console.sign_in(APPROVE)
    assert console.text("#identity") == "wang.fang"
    console.open("/console/proposals")
    console.screenshot("proposals")
    console.find(f"tr[data-proposal='{NAME}@{NEW_VERSION}'] a.review-link").click()
    assert console.text("#status") == "proposed"
    row = console.find("#diff-parameters tr[data-param='priority_provinces']")
    assert "安徽省" in row.find_element("css selector", "td.now").text
    console.find("#comment").send_keys("四眼复核通过 / four-eyes review passed")
    console.screenshot("review")
    console.submit("#approve")
    assert console.find_all("#review-done") and console.text("#status") == "active"
    events = [e.get_attribute("data-event") for e in console.find_all("tr.history-event")]
    assert events[0] == "proposed" and "approved" in events and events[-1] == "activated"
    assert "四眼复核通过" in console.text("#history")
    console.screenshot("approved")
    assert _version_status(server, NEW_VERSION) == "active"
    history = requests.get(f"{server.url}/v1/rulesets/{NAME}/versions/{NEW_VERSION}/history",
                           headers=bearer(AUDIT), timeout=30).json()["history"]
    assert [e["identity"] for e in history if e["event"] == "approved"] == ["wang.fang"]
    console.open(f"/console/rulesets/{NAME}")
    assert "wang.fang" in console.find(f"tr[data-version='{NEW_VERSION}']").text
    console.sign_out()


def test_nobody_approves_their_own_proposal(console, server):
    response = requests.post(f"{server.url}/v1/rulesets/{NAME}/versions", data=_document("1.0.2").encode("utf-8"),
                             headers={**bearer(ALL), "Content-Type": "application/yaml"}, timeout=120)
    assert response.status_code == 201 and response.json()["status"] == "proposed", response.text
    console.sign_in(ALL)
    console.open(f"/console/rulesets/{NAME}/versions/1.0.2/review")
    console.find("#reject")  # the form is there: this token holds the approve role
    console.network_events()
    console.submit("#approve")
    assert _statuses(console)[-1] == 403
    assert "四眼原则" in console.text("#error-message") and "cannot approve it" in console.text("#error-message")
    console.screenshot("self-approval")
    assert _version_status(server, "1.0.2") == "proposed"
    # someone else rejects it, with a comment
    console.sign_out().sign_in(APPROVE)
    console.open(f"/console/rulesets/{NAME}/versions/1.0.2/review")
    console.find("#comment").send_keys("参数未经风险委员会讨论 / not discussed by the risk committee")
    console.submit("#reject")
    assert console.text("#status") == "rejected"
    assert _version_status(server, "1.0.2") == "rejected"
    console.sign_out()


def test_a_shadow_rollout_shows_its_report_and_the_challengers_result(console, server):
    response = requests.put(f"{server.url}/v1/rulesets/{NAME}/rollout", headers=bearer(APPROVE), timeout=30,
                            json={"challenger": NEW_VERSION, "mode": "shadow"})
    assert response.status_code in (200, 201), response.text
    # 安徽省 is a prudent region for 1.0.0 (individual mode -> REFER) and a priority one for 1.0.1
    anhui = {**APPLICANT, "province": "安徽省"}
    body = {"ruleset": NAME, "as_of": "2026-01-15", "application_id": "APP-CONSOLE-SHADOW",
            "input": {"applicant": anhui, "request": REQUEST}}
    decided = requests.post(f"{server.url}/v1/decisions", json=body, headers=bearer(PUBLISH), timeout=30)
    assert decided.status_code == 200, decided.text
    decision = decided.json()
    console.sign_in(ALL)
    console.open("/console/rollouts")
    assert NEW_VERSION in console.text("#rollouts")
    console.screenshot("rollouts")
    console.submit("a.rollout-report")
    assert int(console.text("#arms tr[data-arm='champion'] td")) >= 1
    assert int(console.text("#matrix td[data-from='REFER'][data-to='APPROVE']")) >= 1
    assert "TG-REGION-PRIORITY" in console.text("#changed")
    console.screenshot("rollout-report")
    console.open(f"/console/decisions/{decision['decision_id']}")
    assert console.text("#outcome") == decision["outcome"]
    assert console.find_all("#shadow") and NEW_VERSION in console.text("#shadow")
    console.screenshot("decision-shadow")
    assert requests.delete(f"{server.url}/v1/rulesets/{NAME}/rollout", headers=bearer(APPROVE), timeout=30).status_code == 200
    console.sign_out()


def test_an_impact_job_shows_its_progress_and_result(console, server):
    body = {"from": "1.0.0", "to": NEW_VERSION, "logged_from": "2020-01-01T00:00:00Z", "logged_to": "2100-01-01T00:00:00Z"}
    created = requests.post(f"{server.url}/v1/rulesets/{NAME}/impact", json=body, headers=bearer(ALL), timeout=30)
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    console.sign_in(ALL)
    console.open("/console/jobs")
    assert console.find_all(f"tr[data-job='{job_id}']")
    console.screenshot("jobs")
    console.open(f"/console/jobs/{job_id}")
    deadline = time.monotonic() + 120
    while console.find("#job").get_attribute("data-status") in ("queued", "running"):
        assert console.find_all('meta[http-equiv="refresh"]')  # the page polls while the job runs
        assert time.monotonic() < deadline, "the job did not finish in 120 s"
        time.sleep(1)
        console.open(f"/console/jobs/{job_id}")
    assert console.find("#job").get_attribute("data-status") == "done", console.text("#job")
    assert not console.find_all('meta[http-equiv="refresh"]')
    done, total = console.text("#job-progress").split("/")
    assert done == total and int(total) >= 1
    assert int(console.text("#matrix td[data-from='REFER'][data-to='APPROVE']")) >= 1  # the 安徽省 case
    console.screenshot("job")
    changes = console.http().get(server.url + f"/console/jobs/{job_id}/changes.csv", timeout=30)
    assert changes.status_code == 200 and "APP-CONSOLE-SHADOW" in changes.text
    console.sign_out()


def test_forms_without_this_sessions_csrf_token_are_refused(console, server, proposed):
    console.sign_in(ALL)
    retire_path = f"/console/rulesets/{NAME}/versions/{NEW_VERSION}/retire"
    # forged: the page's hidden token replaced before the form is sent
    console.open(retire_path)
    console.driver.execute_script("document.querySelector('#retire-form input[name=csrf_token]').value = 'forged-token-value';")
    console.network_events()
    console.submit("#retire")
    assert _statuses(console)[-1] == 403
    assert "CSRF" in console.text("#error-message")
    console.screenshot("csrf-refused")
    # missing: the same session's cookie, no token at all
    response = console.http().post(server.url + retire_path, data={}, timeout=30, allow_redirects=False)
    assert response.status_code == 403 and "CSRF" in response.text
    # a token from another session does not pass either
    other = requests.Session()
    token = re.search(r'name="csrf_token" value="([^"]+)"', other.get(server.url + "/console/signin", timeout=30).text).group(1)
    response = console.http().post(server.url + retire_path, data={"csrf_token": token}, timeout=30, allow_redirects=False)
    assert response.status_code == 403
    assert _version_status(server, NEW_VERSION) != "retired"
    # with the page's own token the same form works
    console.open(retire_path)
    console.screenshot("retire")
    console.submit("#retire")
    assert console.find_all("#retired")
    assert _version_status(server, NEW_VERSION) == "retired"


def test_sign_out_ends_the_session(console):
    console.sign_in(ALL)
    console.sign_out()
    assert console.path.startswith("/console/signin")
    console.open("/console/decisions")
    assert console.path.startswith("/console/signin")


def _version_status(server, version: str) -> str:
    response = requests.get(f"{server.url}/v1/rulesets/{NAME}/versions", headers=bearer(AUDIT), timeout=30)
    return next(v["status"] for v in response.json()["versions"] if v["version"] == version)
