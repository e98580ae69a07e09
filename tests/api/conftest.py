"""Fixtures for the HTTP API tests: real gunicorn servers over the fixture rulesets.

- `server`: 2 workers, RULES_API_TOKENS set to the test tokens (tests/server.py), shared by
  the whole session. Tests that publish use their own ruleset names, so they do not step
  on each other; tests that evaluate `toy` pin its version.
- `open_server`: the same without RULES_API_TOKENS (open mode).
- `bare_server`: 1 worker, no rulesets at all and MAX_BODY_BYTES=1024 (413 and not-ready).

Every response a `Client` receives is checked against openapi.yaml (`contract.check`):
a documented operation, a documented status, a documented content type, a body that
validates against the documented schema; errors are application/problem+json.
"""
from __future__ import annotations

import json
import re
import time
import zlib

import pytest
import requests
import yaml

from tests.api import contract
from tests.server import ALL, APPROVE, AUDIT, EVALUATE, PUBLISH, ROOT, TOKENS, GunicornServer

FIXTURE_RULESETS = ROOT / "tests" / "fixtures" / "rulesets"
TOY_SOURCE = (FIXTURE_RULESETS / "toy" / "1.0.0.yaml").read_text(encoding="utf-8")

# Callers, by the role(s) their token carries.
TOKENS_BY_ROLE = {"evaluate": EVALUATE, "publish": PUBLISH, "audit": AUDIT, "approve": APPROVE, "all": ALL}


# -- servers ----------------------------------------------------------------------------------


def start_server(tmp_path_factory, label: str, env: dict, workers: int = 2) -> GunicornServer:
    data_dir = tmp_path_factory.mktemp(label)
    return GunicornServer(env=env, workers=workers, data_dir=str(data_dir)).start()


SIGNING_SEED_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # checkpoints are signed on `server`


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    s = start_server(tmp_path_factory, "server", {"RULESETS_DIR": str(FIXTURE_RULESETS), "RULES_API_TOKENS": TOKENS,
                                                  "DECISION_LOG_SIGNING_KEY": SIGNING_SEED_B64})
    yield s
    s.stop()


@pytest.fixture(scope="session")
def open_server(tmp_path_factory):
    s = start_server(tmp_path_factory, "open-server", {"RULESETS_DIR": str(FIXTURE_RULESETS), "RULES_API_TOKENS": None})
    yield s
    s.stop()


@pytest.fixture(scope="session")
def bare_server(tmp_path_factory):
    empty = tmp_path_factory.mktemp("no-rulesets")
    s = start_server(tmp_path_factory, "bare-server",
               {"RULESETS_DIR": str(empty), "RULES_API_TOKENS": TOKENS, "MAX_BODY_BYTES": "1024"}, workers=1)
    yield s
    s.stop()


# -- clients ----------------------------------------------------------------------------------


class Client:
    """`requests` against one server with one token; every answer is checked against openapi.yaml."""

    def __init__(self, base_url: str, token: str | None = None, *, check_contract: bool = True):
        self.base_url = base_url
        self.token = token
        self.check_contract = check_contract

    def request(self, method: str, path: str, *, headers: dict | None = None, **kwargs) -> requests.Response:
        headers = dict(headers or {})
        if self.token is not None and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {self.token}"
        kwargs.setdefault("timeout", 60)
        response = requests.request(method, self.base_url + path, headers=headers, **kwargs)
        if self.check_contract:
            contract.check(method, path, response)
        return response

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def as_(self, token: str | None) -> "Client":
        return Client(self.base_url, token, check_contract=self.check_contract)


@pytest.fixture(scope="session")
def evaluator(server) -> Client:
    return Client(server.url, EVALUATE)


@pytest.fixture(scope="session")
def publisher(server) -> Client:
    return Client(server.url, PUBLISH)


@pytest.fixture(scope="session")
def auditor(server) -> Client:
    return Client(server.url, AUDIT)


@pytest.fixture(scope="session")
def admin(server) -> Client:
    """All three roles."""
    return Client(server.url, ALL)


# -- documents and inputs ------------------------------------------------------------------------


def toy_input(rating: str | None = "BBB", code: str = "C3670", amount=100, **applicant) -> dict:
    return {"applicant": {"rating": rating, "code": code, **applicant}, "amount": amount}


def evaluate_body(application_id: str, ruleset: str = "toy", version: str | None = "1.0.0", **fields) -> dict:
    body = {"ruleset": ruleset, "application_id": application_id, "input": fields.pop("input", toy_input())}
    if version is not None:
        body["version"] = version
    body.update(fields)
    return body


def toy_yaml(name: str = "toy", version: str = "1.0.0", *, effective_from: str = "2020-01-01") -> str:
    """The toy fixture document under another name / version / start date (same rules)."""
    text = TOY_SOURCE.replace("name: toy\n", f"name: {name}\n", 1)
    text = text.replace("version: '1.0.0'\n", f"version: '{version}'\n", 1)
    return text.replace("effective_from: 2020-01-01\n", f"effective_from: {effective_from}\n", 1)


def toy_v2_yaml(name: str = "toy", version: str = "1.1.0", *, effective_from: str = "2020-01-01") -> str:
    """A next version of toy: parameter `floor` B -> BB (changed), `big_amount` added, rule
    R-LOW retitled (changed), R-MINES removed, R-BIG added; its tests updated to match."""
    text = toy_yaml(name, version, effective_from=effective_from)
    replacements = [
        ("  floor: {type: rating, value: B}\n",
         "  floor: {type: rating, value: BB}\n  big_amount: {type: decimal, scale: 2, value: 1000000}\n"),
        ("    title_en: low\n", "    title_en: rating below the floor\n"),
        ("  - id: R-MINES\n    stage: rating\n    title_zh: 矿\n    title_en: mines\n"
         "    when: {field: applicant.mines, any_item: {field: cap, lt: 30}}\n    then: {add: {tags: [mining, small]}}\n",
         "  - id: R-BIG\n    stage: rating\n    title_zh: 大额\n    title_en: big amount\n"
         "    when: {field: amount, ge: {param: big_amount}}\n    then: {add: {tags: big}}\n"),
        ("expect: {outcome: APPROVE, results: {in_scope: true, floor: B, max_amount: 200}}",
         "expect: {outcome: APPROVE, results: {in_scope: true, floor: BB, max_amount: 200}}"),
        ("expect: {outcome: DECLINE, reasons: [LOW], results: {tags: [small, mining]}}",
         "expect: {outcome: DECLINE, reasons: [LOW]}"),
    ]
    for old, new in replacements:
        assert old in text, f"the toy fixture changed; update toy_v2_yaml: {old!r}"
        text = text.replace(old, new, 1)
    return text + ("  - name: big\n    input: {applicant: {rating: A, code: C3670}, amount: 2000000}\n"
                   "    expect: {outcome: APPROVE, results: {tags: [big]}}\n")


def as_json_document(yaml_text: str) -> str:
    """The same document as JSON (dates become ISO strings)."""
    return json.dumps(yaml.safe_load(yaml_text), default=str, ensure_ascii=False)


YAML = {"Content-Type": "application/yaml"}
JSON = {"Content-Type": "application/json"}


def publish(client: Client, text: str, name: str | None = None, *, expect: int | None = 201,
            content_type: str = "application/yaml") -> requests.Response:
    name = name or re.search(r"^name: (\S+)$", text, re.M).group(1)
    response = client.post(f"/v1/rulesets/{name}/versions", data=text.encode("utf-8"),
                           headers={"Content-Type": content_type})
    if expect is not None:
        assert response.status_code == expect, response.text
    return response


def problem(response: requests.Response, status: int) -> dict:
    """The problem+json body of an error answer, after checking status and media type."""
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text[:500]}"
    assert response.headers["Content-Type"].startswith("application/problem+json"), response.headers["Content-Type"]
    body = response.json()
    assert body["status"] == status
    # The stable code, and the type URI named after it (service/api/errors.py).
    assert re.fullmatch(r"[a-z][a-z0-9_]*", body["code"]), body
    assert body["type"].endswith("/" + body["code"].replace("_", "-")), body
    return body


def error_paths(body: dict) -> list[str]:
    return [e["path"] for e in body.get("errors", [])]


def wait_for_log(server, text: str, timeout: float = 5.0) -> str:
    """The server log once it contains `text` (workers write their access log lines after answering)."""
    deadline = time.monotonic() + timeout
    while True:
        log = server.log()
        if text in log or time.monotonic() > deadline:
            return log
        time.sleep(0.05)


@pytest.fixture
def unique(request) -> str:
    """A short name unique to this test, usable as a ruleset name or application id prefix."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    return f"t{zlib.crc32(request.node.nodeid.encode()) % 10**6}-{name[:30].strip('-')}"


__all__ = ["Client", "TOKENS_BY_ROLE", "FIXTURE_RULESETS", "toy_input", "evaluate_body", "toy_yaml", "toy_v2_yaml",
           "as_json_document", "publish", "problem", "error_paths", "wait_for_log", "YAML", "JSON"]
