"""Altering or deleting a logged record makes GET /v1/audit/verify point at it."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import requests

from tests.integration.conftest import base_env, toy_decision
from tests.server import ALL, AUDIT, GunicornServer, bearer


@pytest.fixture
def server():
    with GunicornServer(base_env()) as s:
        yield s


def _fill(server, n=5):
    for k in range(n):
        assert requests.post(f"{server.url}/v1/decisions", json=toy_decision(f"TAMPER-{k}"),
                             headers=bearer(ALL), timeout=30).status_code == 200


def _verify(server):
    return requests.get(f"{server.url}/v1/audit/verify", headers=bearer(AUDIT), timeout=30).json()


@pytest.mark.parametrize("statement, kind", [
    ("UPDATE decisions SET outcome = 'DECLINE' WHERE seq = {seq}", "altered"),
    ("""UPDATE decisions SET response = replace(response, '"outcome":"APPROVE"', '"outcome":"DECLINE"') WHERE seq = {seq}""",
     "altered"),
    ("DELETE FROM decisions WHERE seq = {seq}", "missing"),
])
def test_verify_points_at_the_tampered_record(server, statement, kind):
    _fill(server)
    report = _verify(server)
    assert report["ok"] is True
    seq = report["head"]["seq"] - 2
    db = Path(server.data_dir) / "decisions.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute(statement.format(seq=seq))
    report = _verify(server)
    assert report["ok"] is False
    assert report["first_problem"]["seq"] == seq
    assert report["first_problem"]["kind"] == kind
