"""The console in-process (Flask test client): sessions, CSRF, roles, headers and every bad input
as an HTML 4xx page. The browser tests (test_auditor.py, test_product.py) show the same against
gunicorn; these run in seconds."""
from __future__ import annotations

import csv
import io
import logging
import re
import shutil

import pytest

from service import create_app
from tests.console.conftest import _rulesets_subset
from tests.server import ALL, AUDIT, EVALUATE, PUBLISH, TOKENS


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    rulesets = _rulesets_subset()
    try:
        yield create_app({"data_dir": str(tmp_path_factory.mktemp("console-data")), "tokens": TOKENS,
                          "rulesets_dir": str(rulesets), "console_secret_key": "k" * 40})
    finally:
        shutil.rmtree(rulesets, ignore_errors=True)


def csrf_of(client, path="/console/signin") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def signed_in(app, token: str):
    client = app.test_client()
    response = client.post("/console/signin", data={"token": token, "csrf_token": csrf_of(client)})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def test_sign_in_sets_a_strict_httponly_cookie_without_the_token(app):
    client = app.test_client()
    token = csrf_of(client)
    response = client.post("/console/signin", data={"token": AUDIT, "csrf_token": token, "next": "/console/audit"})
    assert response.status_code == 302 and response.headers["Location"] == "/console/audit"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console/" in cookie
    assert AUDIT not in cookie
    assert client.get("/console/audit").status_code == 200


def test_an_unknown_token_is_refused_with_a_page(app):
    client = app.test_client()
    response = client.post("/console/signin", data={"token": "forged-token-123", "csrf_token": csrf_of(client)})
    assert response.status_code == 401 and response.mimetype == "text/html"
    assert "令牌无效" in response.get_data(as_text=True)


def test_pages_need_a_session(app):
    response = app.test_client().get("/console/decisions?outcome=DECLINE")
    assert response.status_code == 302 and response.headers["Location"].startswith("/console/signin?next=")


def test_sign_in_never_redirects_off_the_console(app):
    client = app.test_client()
    for target in ("https://evil.example/", "//evil.example/x", "/v1/decisions", "/console/\\evil"):
        response = client.post("/console/signin", data={"token": ALL, "csrf_token": csrf_of(client), "next": target})
        assert response.headers["Location"] == "/console/decisions", target


def test_posts_without_the_sessions_csrf_token_are_refused(app):
    client = signed_in(app, ALL)
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": csrf_of(app.test_client())}):
        response = client.post("/console/audit/verify", data=data)
        assert response.status_code == 403 and response.mimetype == "text/html"
        assert "CSRF" in response.get_data(as_text=True)
    assert client.post("/console/audit/verify", data={"csrf_token": csrf_of(client, "/console/audit")}).status_code == 200
    # sign-in itself (no session yet) needs the sign-in page's token
    assert app.test_client().post("/console/signin", data={"token": ALL}).status_code == 403


@pytest.mark.parametrize("token, path, status", [
    (AUDIT, "/console/rulesets/sme-credit-policy/versions/1.0.0/retire", 403),
    (AUDIT, "/console/rulesets/sme-credit-policy/versions/1.0.0/review", 403),
    (PUBLISH, "/console/rulesets/sme-credit-policy/versions/1.0.0/retire", 200),
    (PUBLISH, "/console/decisions", 403),
    (PUBLISH, "/console/audit", 403),
    (EVALUATE, "/console/rulesets", 200),
    (AUDIT, "/console/decisions", 200),
])
def test_pages_ask_for_the_roles_the_api_asks_for(app, token, path, status):
    response = signed_in(app, token).get(path)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    if status == 403:
        assert "lacks the" in response.get_data(as_text=True)


@pytest.mark.parametrize("path, status", [
    ("/console/decisions?from=yesterday", 422),
    ("/console/decisions?to=2026-13-01", 422),
    ("/console/decisions?outcome=MAYBE", 422),
    ("/console/decisions?ruleset=Not%20A%20Name", 422),
    ("/console/decisions?version=one", 422),
    ("/console/decisions?rule_id=%00", 422),
    ("/console/decisions?cursor=garbage!", 422),
    ("/console/decisions?application_id=" + "x" * 101, 422),
    ("/console/decisions.csv?from=nope", 422),
    ("/console/decisions/not-an-id", 404),
    ("/console/decisions/01a212b5-e4a7-7565-8912-b2d5b7411dc8", 404),
    ("/console/rulesets/no-such-ruleset", 404),
    ("/console/rulesets/sme-credit-policy/versions/9.9.9", 404),
    ("/console/rulesets/sme-credit-policy/versions/latest", 422),
    ("/console/rulesets/sme-credit-policy/diff?from=1.0.0&to=x", 422),
    ("/console/rulesets/sme-credit-policy/diff?from=1.0.0&to=7.0.0", 404),
    ("/console/no-such-page", 404),
])
def test_bad_input_is_an_html_4xx_page(app, path, status):
    response = signed_in(app, ALL).get(path)
    assert response.status_code == status and response.mimetype == "text/html"
    assert "Content-Security-Policy" in response.headers


def test_bad_form_fields_are_4xx_pages(app):
    client = signed_in(app, ALL)
    token = csrf_of(client, "/console/rulesets")
    assert client.post("/console/lang", data={"csrf_token": token, "lang": "fr"}).status_code == 422
    assert client.post("/console/signin", data={"csrf_token": token, "token": "x" * 600}).status_code == 422
    response = client.post("/console/rulesets/sme-credit-policy/versions/1.0.0/review",
                           data={"csrf_token": token, "decision": "maybe"})
    assert response.status_code in (403, 422)  # no approve role here, or an unknown decision


def test_every_page_sends_a_strict_csp(app):
    client = signed_in(app, ALL)
    for path in ("/console/signin", "/console/decisions", "/console/audit", "/console/rulesets",
                 "/console/rulesets/sme-credit-policy/versions/1.0.0", "/console/static/console.css"):
        response = client.get(path)
        assert response.status_code == 200, path
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    page = client.get("/console/rulesets").get_data(as_text=True)
    assert "<script" not in page and "style=" not in page and "http://" not in page and "https://" not in page


def test_language_switch_is_remembered(app):
    client = signed_in(app, AUDIT)
    assert "决策查询" in client.get("/console/decisions").get_data(as_text=True)
    token = csrf_of(client, "/console/decisions")
    client.post("/console/lang", data={"csrf_token": token, "lang": "en", "next": "/console/decisions"})
    page = client.get("/console/decisions").get_data(as_text=True)
    assert '<html lang="en">' in page and "Decisions" in page
    # signing out keeps the language
    client.post("/console/signout", data={"csrf_token": csrf_of(client, "/console/decisions")})
    assert "Sign in" in client.get("/console/signin").get_data(as_text=True)


def test_an_unset_secret_key_is_generated_with_a_warning(tmp_path, caplog, monkeypatch):
    monkeypatch.delenv("CONSOLE_SECRET_KEY_GENERATED", raising=False)
    empty = tmp_path / "rulesets"
    empty.mkdir()
    with caplog.at_level(logging.WARNING, logger="service.console"):
        app = create_app({"data_dir": str(tmp_path), "tokens": TOKENS, "rulesets_dir": str(empty)})
    assert any("CONSOLE_SECRET_KEY is not set" in r.getMessage() for r in caplog.records)
    assert len(app.secret_key) >= 32
    client = signed_in(app, AUDIT)
    assert client.get("/console/audit").status_code == 200


def test_the_api_keeps_answering_problem_json(app):
    response = app.test_client().get("/v1/no-such-thing")
    assert response.status_code == 404 and response.mimetype == "application/problem+json"


def test_the_csv_export_never_hands_a_spreadsheet_a_formula(app):
    from tests.console.conftest import APPLICANT, REQUEST

    body = {"ruleset": "sme-credit-policy", "as_of": "2026-01-15", "application_id": "=HYPERLINK(\"x\")",
            "input": {"applicant": APPLICANT, "request": REQUEST}}
    api = app.test_client()
    assert api.post("/v1/decisions", json=body, headers={"Authorization": f"Bearer {ALL}"}).status_code == 200
    export = signed_in(app, AUDIT).get("/console/decisions.csv?application_id=%3DHYPERLINK(%22x%22)")
    assert export.status_code == 200 and export.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(export.get_data(as_text=True))))
    assert [r["application_id"] for r in rows] == ["'=HYPERLINK(\"x\")"]


def test_open_mode_reads_rulesets_and_nothing_else(tmp_path):
    rulesets = _rulesets_subset()
    try:
        app = create_app({"data_dir": str(tmp_path), "rulesets_dir": str(rulesets), "console_secret_key": "o" * 40})
        client = app.test_client()
        page = client.get("/console/signin").get_data(as_text=True)
        assert "RULES_API_TOKENS" in page
        assert client.post("/console/signin", data={"token": "", "csrf_token": csrf_of(client)}).status_code == 302
        assert client.get("/console/rulesets").status_code == 200
        refused = client.get("/console/decisions")
        assert refused.status_code == 403 and "RULES_API_TOKENS" in refused.get_data(as_text=True)
    finally:
        shutil.rmtree(rulesets, ignore_errors=True)
