"""Hostile inputs against a real gunicorn server: every answer a 4xx problem+json naming the
field, within a bounded time, and the server still answering afterwards.

- `target`: 2 workers over the fixture rulesets, MAX_BODY_BYTES 2 MiB (a 1 MiB ruleset
  document fits, a 3 MiB body does not), REQUEST_READ_TIMEOUT 2 s (slow clients).
- `ledger`: counts every hostile request and its answer. With HOSTILE_RESULTS=<path> set
  (bench/hostile_report.py sets it), the session writes the figures the README's
  "Reliability" section quotes: inputs tried, 4xx, 5xx, decisions lost, duplicated.
"""
from __future__ import annotations

import json
import os
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.api.conftest import FIXTURE_RULESETS, evaluate_body
from tests.server import ALL, TOKENS, GunicornServer

READ_TIMEOUT = 2.0
MAX_BODY = 2 * 1024 * 1024
HEADERS = {"Authorization": f"Bearer {ALL}"}


@dataclass
class Ledger:
    """What the hostile suite sent and what came back, and what the log holds of it."""

    statuses: Counter = field(default_factory=Counter)
    by_family: Counter = field(default_factory=Counter)
    answered_decisions: set = field(default_factory=set)  # decision ids answered 200
    unchecked: dict = field(default_factory=dict)  # server url -> ids not yet looked up in its log
    logged_checks: int = 0
    lost: int = 0
    duplicated: int = 0

    def record(self, family: str, status: int) -> None:
        self.statuses[status] += 1
        self.by_family[family] += 1

    def answered(self, server, decision_id: str) -> None:
        self.answered_decisions.add(decision_id)
        self.unchecked.setdefault(server.url, set()).add(decision_id)

    def figures(self) -> dict:
        total = sum(self.statuses.values())
        return {
            "inputs_tried": total,
            "answers_2xx": sum(n for s, n in self.statuses.items() if 200 <= s < 300),
            "answers_4xx": sum(n for s, n in self.statuses.items() if 400 <= s < 500),
            "answers_5xx": sum(n for s, n in self.statuses.items() if s >= 500 and s != 503),
            "answers_503_store_unavailable": self.statuses.get(503, 0),
            "no_answer": self.statuses.get(0, 0),
            "decisions_answered": len(self.answered_decisions),
            "decisions_checked_in_log": self.logged_checks,
            "decisions_not_checked": sum(len(ids) for ids in self.unchecked.values()),
            "decisions_lost": self.lost,
            "decisions_duplicated": self.duplicated,
            "by_family": dict(sorted(self.by_family.items())),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }


_LEDGER = Ledger()


@pytest.fixture(scope="session")
def ledger() -> Ledger:
    return _LEDGER


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("HOSTILE_RESULTS")
    if path and _LEDGER.statuses:
        figures = _LEDGER.figures()
        figures["pytest_exit_status"] = int(exitstatus)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n", encoding="utf-8")


@pytest.fixture(scope="session")
def target(tmp_path_factory, ledger):
    server = GunicornServer(env={"RULESETS_DIR": str(FIXTURE_RULESETS), "RULES_API_TOKENS": TOKENS,
                                 "MAX_BODY_BYTES": str(MAX_BODY), "REQUEST_READ_TIMEOUT": str(READ_TIMEOUT)},
                            workers=2, data_dir=str(tmp_path_factory.mktemp("hostile"))).start()
    yield server
    check_logged(server, ledger, set(ledger.unchecked.get(server.url, ())))
    server.stop()


# -- talking to it ------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: dict
    body: bytes
    seconds: float

    def json(self):
        return json.loads(self.body)


def send(server, method: str, path: str, ledger: Ledger | None = None, family: str = "http", *,
         timeout: float = 30, **kwargs) -> requests.Response:
    """A request through `requests`, recorded in the ledger."""
    headers = {**HEADERS, **kwargs.pop("headers", {})}
    started = time.monotonic()
    response = requests.request(method, server.url + path, headers=headers, timeout=timeout, **kwargs)
    response.seconds = time.monotonic() - started
    if ledger is not None:
        ledger.record(family, response.status_code)
        _note_decisions(server, ledger, method, path, response.status_code, response.content)
    return response


def _note_decisions(server, ledger: Ledger, method: str, path: str, status: int, body: bytes) -> None:
    """Every decision the server answered, so the session can look each one up in its log."""
    if method != "POST" or status != 200 or not path.startswith("/v1/decisions"):
        return
    data = json.loads(body)
    if path.startswith("/v1/decisions:batch"):
        for item in data["items"]:
            if item["status"] == 200:
                ledger.answered(server, item["decision"]["decision_id"])
    elif "decision_id" in data:
        ledger.answered(server, data["decision_id"])


def raw(server, data: bytes, *, ledger: Ledger | None = None, family: str = "raw", timeout: float = 30,
        shutdown: bool = False) -> Answer:
    """Bytes straight onto a socket (what `requests` will not send); the parsed answer."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as conn:
        try:
            conn.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before taking everything: read what it said
        if shutdown:
            conn.shutdown(socket.SHUT_WR)
        received = b""
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                received += chunk
                if _complete(received):
                    break
        except ConnectionResetError:
            pass
    answer = _parse(received, time.monotonic() - started)
    if ledger is not None:
        ledger.record(family, answer.status)
        request_line = data.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        if len(request_line) >= 2:
            _note_decisions(server, ledger, request_line[0], request_line[1], answer.status, answer.body)
    return answer


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def _parse(data: bytes, seconds: float) -> Answer:
    if not data:
        return Answer(0, {}, b"", seconds)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(status, headers, body, seconds)


def http_request(method: str, path: str, body: bytes = b"", *, headers: dict | None = None,
                 chunked: bool = False, content_length: int | None = None) -> bytes:
    """One HTTP/1.1 request as bytes; the body sent as is, chunked, or with a forged length."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {ALL}", "Connection: close"]
    for name, value in ({"Content-Type": "application/json"} if headers is None else headers).items():
        lines.append(f"{name}: {value}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    elif body or content_length is not None:
        lines.append(f"Content-Length: {len(body) if content_length is None else content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunks(body: bytes, size: int = 65536) -> bytes:
    """`body` in chunked transfer coding, ended properly."""
    out = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size))
    return out + b"0\r\n\r\n"


# -- what every hostile answer must be -------------------------------------------------------------


def assert_problem(answer, status: int, *, field: str | None = None, seconds: float = 10.0) -> dict:
    """A problem+json answer with this status (naming `field` among its errors' paths, when
    given), within `seconds`."""
    code = answer.status_code if isinstance(answer, requests.Response) else answer.status
    content_type = answer.headers.get("Content-Type") or answer.headers.get("content-type", "")
    text = answer.text if isinstance(answer, requests.Response) else answer.body.decode("utf-8", "replace")
    assert code == status, f"expected {status}, got {code}: {text[:400]}"
    assert content_type.startswith("application/problem+json"), f"{content_type}: {text[:200]}"
    assert answer.seconds < seconds, f"answered in {answer.seconds:.1f} s (bound {seconds} s)"
    body = json.loads(text)
    assert body["status"] == status and body["detail"]
    if field is not None:
        paths = [e["path"] for e in body.get("errors", [])]
        assert any(p == field or p.startswith(field + ".") or p.startswith(field + "[") for p in paths), \
            f"{field!r} not among {paths[:10]}"
    return body


def assert_responsive(server, ledger: Ledger | None = None, *, within: float = 3.0, body: dict | None = None) -> None:
    """The server answers health and a real decision (`body`, else a toy one) promptly."""
    started = time.monotonic()
    assert requests.get(server.url + "/healthz", timeout=within).status_code == 200
    response = requests.post(server.url + "/v1/decisions", json=body or evaluate_body("HOSTILE-ALIVE", trace="none"),
                             headers=HEADERS, timeout=within)
    assert response.status_code == 200, response.text[:300]
    assert time.monotonic() - started < within
    if ledger is not None:
        ledger.answered(server, response.json()["decision_id"])


def check_logged(server, ledger: Ledger, decision_ids) -> None:
    """Every decision answered 200 is in the log exactly once (GET finds it; the search by its
    application id lists it once); counted into the ledger."""
    for decision_id in decision_ids:
        ledger.unchecked.get(server.url, set()).discard(decision_id)
        got = requests.get(f"{server.url}/v1/decisions/{decision_id}", headers=HEADERS, timeout=30)
        ledger.logged_checks += 1
        if got.status_code != 200:
            ledger.lost += 1
            continue
        app_id = got.json()["application_id"]
        listed = requests.get(f"{server.url}/v1/decisions", params={"application_id": app_id, "limit": 1000},
                              headers=HEADERS, timeout=30).json()
        ids = [d["decision_id"] for d in listed["items"]]
        if ids.count(decision_id) != 1:
            ledger.duplicated += max(0, ids.count(decision_id) - 1)
            ledger.lost += ids.count(decision_id) == 0
