"""A product team and a release manager in headless Chromium against real gunicorn: a version
proposed through the API is reviewed and approved in the console, its diff shows the changed
parameter; an audit-only token cannot reach any ruleset-changing form; forms without this
session's CSRF token are refused."""
from __future__ import annotations

import re

import pytest
import requests

from tests.console.conftest import ROOT
from tests.server import ALL, AUDIT, PUBLISH, bearer

# One gunicorn and one Chromium per module (~40-60 s to start on a busy 2-core machine).
pytestmark = pytest.mark.slow

NAME = "sme-credit-policy"
NEW_VERSION = "1.0.1"


def _document(version: str) -> str:
    text = (ROOT / "rulesets" / NAME / "1.0.0.yaml").read_text(encoding="utf-8")
    assert "version: '1.0.0'" in text and "value: [上海市, 江苏省, 浙江省]" in text
    return (text.replace("version: '1.0.0'", f"version: '{version}'")
                .replace("effective_from: 2024-06-17", "effective_from: 2030-01-01")
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
    console.find("#compare").click()
    assert console.path.startswith(f"/console/rulesets/{NAME}/diff")
    row = console.find("#diff-parameters tr[data-param='priority_provinces']")
    assert "安徽省" not in row.find_element("css selector", "td.was").text
    assert "安徽省" in row.find_element("css selector", "td.now").text
    assert console.find_all("#diff-metadata")  # effective_from moved
    console.screenshot("diff")


def test_an_approver_approves_the_proposal_in_the_console(console, proposed, server):
    if proposed.get("status") != "proposed":
        pytest.skip("this build publishes without four-eyes approval: there is nothing to approve")
    console.sign_in(ALL)
    console.open("/console/proposals")
    console.screenshot("proposals")
    console.find(f"tr[data-proposal='{NAME}@{NEW_VERSION}'] a.review-link").click()
    assert console.find("#diff-parameters tr[data-param='priority_provinces']")
    console.find("#comment").send_keys("四眼复核通过 / four-eyes review passed")
    console.screenshot("review")
    console.find("#approve").click()
    assert console.find_all("#review-done") and console.text("#status") == "active"
    assert _version_status(server, NEW_VERSION) == "active"
    console.screenshot("approved")


def test_forms_without_this_sessions_csrf_token_are_refused(console, server, proposed):
    console.sign_in(ALL)
    retire_path = f"/console/rulesets/{NAME}/versions/{NEW_VERSION}/retire"
    # forged: the page's hidden token replaced before the form is sent
    console.open(retire_path)
    console.driver.execute_script("document.querySelector('#retire-form input[name=csrf_token]').value = 'forged-token-value';")
    console.network_events()
    console.find("#retire").click()
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
    console.find("#retire").click()
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
