"""Over HTTP against real gunicorn: idempotency keys, integrity on read, tampered rows
in search and replay, private SQLite files."""
from __future__ import annotations

import concurrent.futures
import os
import sqlite3
import stat
from pathlib import Path

import pytest
import requests

from tests.integration.conftest import base_env, toy_decision
from tests.server import AUDIT, EVALUATE, GunicornServer, bearer


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    parent = tmp_path_factory.mktemp("http-integrity")
    data_dir = parent / "var"  # created by the service itself
    with GunicornServer(base_env(DATA_DIR=str(data_dir)), workers=3, data_dir=str(parent)) as s:
        s.log_dir, s.data_dir = s.data_dir, str(data_dir)
        yield s


def post(server, body, key=None, token=EVALUATE):
    headers = {**bearer(token), **({"Idempotency-Key": key} if key is not None else {})}
    return requests.post(f"{server.url}/v1/decisions", json=body, headers=headers, timeout=30)


def head_seq(server):
    return requests.get(f"{server.url}/v1/audit/verify", headers=bearer(AUDIT), timeout=30).json()["head"]["seq"]


def problem_code(response):
    body = response.json()
    return body.get("code") or body["type"].rsplit("/", 1)[-1]


def test_same_key_same_body_answers_the_first_decision_and_logs_nothing(server):
    first = post(server, toy_decision("IDEM-1"), key="order-1")
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    seq = head_seq(server)
    again = post(server, toy_decision("IDEM-1"), key="order-1")
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content  # byte-identical: the logged response
    assert head_seq(server) == seq


def test_same_key_different_body_is_refused(server):
    assert post(server, toy_decision("IDEM-2"), key="order-2").status_code == 200
    refused = post(server, toy_decision("IDEM-2", rating="CCC"), key="order-2")
    assert refused.status_code == 422
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    assert problem_code(refused) == "idempotency_key_reused"


def test_keys_are_scoped_to_the_callers_identity(server):
    mine = post(server, toy_decision("IDEM-3"), key="shared-key")
    theirs = post(server, toy_decision("IDEM-3", rating="CCC"), key="shared-key", token="ops-all-4e1f")
    assert mine.status_code == theirs.status_code == 200
    assert mine.json()["decision_id"] != theirs.json()["decision_id"]


@pytest.mark.parametrize("key", ["x" * 129, ""])
def test_a_bad_key_names_the_header(server, key):
    refused = post(server, toy_decision("IDEM-4"), key=key)
    assert refused.status_code == 422
    assert [e["path"] for e in refused.json()["errors"]] == ["Idempotency-Key"]


def test_concurrent_requests_with_one_key_log_once(server):
    seq = head_seq(server)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(server, toy_decision("IDEM-RACE"), key="race-1"), range(8)))
    assert [a.status_code for a in answers] == [200] * 8
    assert len({a.json()["decision_id"] for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 7
    assert head_seq(server) == seq + 1


def test_batch_items_carry_keys(server):
    items = [{**toy_decision("IDEM-B1"), "idempotency_key": "batch-1"},
             {**toy_decision("IDEM-B2"), "idempotency_key": "batch-2"}]
    url = f"{server.url}/v1/decisions:batch"
    first = requests.post(url, json={"items": items}, headers=bearer(EVALUATE), timeout=30).json()
    seq = head_seq(server)
    items[1] = {**toy_decision("IDEM-B2", rating="CCC"), "idempotency_key": "batch-2"}
    items.append({**toy_decision("IDEM-B3"), "idempotency_key": "y" * 129})
    again = requests.post(url, json={"items": items}, headers=bearer(EVALUATE), timeout=30).json()
    assert again["items"][0]["status"] == 200 and again["items"][0]["idempotent_replayed"] is True
    assert again["items"][0]["decision"] == first["items"][0]["decision"]
    assert again["items"][1]["status"] == 422
    assert again["items"][2]["status"] == 422
    assert [e["path"] for e in again["items"][2]["error"]["errors"]] == ["items.2.idempotency_key"]
    assert head_seq(server) == seq


def test_a_row_altered_in_the_database_is_flagged_unmatched_and_not_replayed_as_identical(server):
    decision = post(server, toy_decision("TAMPER-READ")).json()
    decision_id = decision["decision_id"]
    url = f"{server.url}/v1/decisions/{decision_id}"
    assert requests.get(url, headers=bearer(AUDIT), timeout=30).json()["integrity"] == \
        {"hash_ok": True, "link_ok": True}
    flipped = "DECLINE" if decision["outcome"] != "DECLINE" else "APPROVE"
    with sqlite3.connect(Path(server.data_dir) / "decisions.sqlite3") as conn:
        conn.execute("UPDATE decisions SET outcome = ? WHERE decision_id = ?", (flipped, decision_id))
    shown = requests.get(url, headers=bearer(AUDIT), timeout=30).json()
    assert shown["integrity"] == {"hash_ok": False, "link_ok": True}
    found = requests.get(f"{server.url}/v1/decisions", params={"outcome": flipped, "application_id": "TAMPER-READ"},
                         headers=bearer(AUDIT), timeout=30).json()
    assert found["items"] == []
    replay = requests.post(url + "/replay", headers=bearer(AUDIT), timeout=30).json()
    assert replay["identical"] is False
    assert replay["differences"][0]["path"] == "/integrity"


def test_the_data_directory_and_database_files_are_private(server):
    data_dir = Path(server.data_dir)
    assert stat.S_IMODE(os.stat(data_dir).st_mode) == 0o700
    for name in ("decisions.sqlite3", "decisions.sqlite3-wal", "decisions.sqlite3-shm"):
        assert stat.S_IMODE(os.stat(data_dir / name).st_mode) == 0o600, name
