"""The gunicorn access log is one valid JSON object per request, carrying the request id."""
from __future__ import annotations

import json
import time

import requests

from tests.server import GunicornServer


def test_access_log_lines_are_json_with_the_echoed_request_id():
    with GunicornServer() as server:
        answers = [
            requests.get(server.url + '/healthz?q="quoted"\\slash', headers={"User-Agent": 'odd "agent" \\ tab\there'}, timeout=10),
            requests.get(server.url + "/no/such/path", headers={"X-Request-Id": "core-banking-42"}, timeout=10),
        ]
        # Workers write their access log line after answering: poll until both are there.
        deadline = time.monotonic() + 10
        while True:
            complete_lines = server.log().split("\n")[:-1]  # the last may be half written
            records = [json.loads(line) for line in complete_lines if line.startswith("{")]
            ids = {r["request_id"] for r in records}
            if {a.headers["X-Request-Id"] for a in answers} <= ids or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    ids = {r["request_id"] for r in records}
    assert answers[1].headers["X-Request-Id"] == "core-banking-42"
    assert {a.headers["X-Request-Id"] for a in answers} <= ids
    last = next(r for r in records if r["request_id"] == "core-banking-42")
    assert last["status"] == 404 and last["path"] == "/no/such/path" and isinstance(last["duration_us"], int)
