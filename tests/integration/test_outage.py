"""The store made unwritable: 503 and /readyz failing, then recovery without a restart."""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.integration.conftest import base_env, toy_decision
from tests.server import ALL, GunicornServer, bearer


def _decide(server, n):
    return requests.post(f"{server.url}/v1/decisions", json=toy_decision(f"OUTAGE-{n}"), headers=bearer(ALL), timeout=30)


def _until(predicate, seconds=15):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_postgres_stopped_gives_503_and_readyz_fails_then_recovers(pg_cluster, pg_database):
    with GunicornServer(base_env(DATABASE_URL=pg_database)) as server:
        assert _decide(server, 0).status_code == 200
        pg_cluster.stop()
        try:
            refused = _decide(server, 1)
            assert refused.status_code == 503
            assert refused.headers["Content-Type"] == "application/problem+json"
            assert refused.json()["status"] == 503 and "decision_id" not in refused.json()
            assert requests.get(f"{server.url}/readyz", timeout=30).status_code == 503
        finally:
            pg_cluster.start()
        assert _until(lambda: requests.get(f"{server.url}/readyz", timeout=30).status_code == 200)
        assert _decide(server, 2).status_code == 200


@pytest.mark.skipif(shutil.which("chattr") is None, reason="needs chattr to make a file immutable as root")
def test_sqlite_made_unwritable_gives_503_and_readyz_fails_then_recovers():
    with GunicornServer(base_env()) as server:
        assert _decide(server, 0).status_code == 200
        db = Path(server.data_dir) / "decisions.sqlite3"
        files = [str(db), str(db) + "-wal"]
        probe = subprocess.run(["chattr", "+i", *files], capture_output=True)
        if probe.returncode != 0:
            pytest.skip(f"chattr +i is not supported here: {probe.stderr!r}")
        try:
            refused = _decide(server, 1)
            assert refused.status_code == 503, refused.text
            assert requests.get(f"{server.url}/readyz", timeout=30).status_code == 503
        finally:
            subprocess.run(["chattr", "-i", *files], check=True)
        assert _until(lambda: requests.get(f"{server.url}/readyz", timeout=30).status_code == 200)
        assert _decide(server, 2).status_code == 200


def test_started_while_postgres_was_down_the_service_catches_up_when_it_is_back(pg_cluster, pg_database):
    pg_cluster.stop()
    try:
        server = GunicornServer(base_env(DATABASE_URL=pg_database)).start()
    except Exception:
        pg_cluster.start()
        raise
    try:
        assert requests.get(f"{server.url}/readyz", timeout=30).status_code == 503
        assert _decide(server, 0).status_code == 503
        pg_cluster.start()
        assert _until(lambda: requests.get(f"{server.url}/readyz", timeout=30).status_code == 200, seconds=20)
        assert _decide(server, 2).status_code == 200  # the shipped rulesets were published and loaded
        assert requests.get(f"{server.url}/readyz", timeout=30).status_code == 200
    finally:
        server.stop()
