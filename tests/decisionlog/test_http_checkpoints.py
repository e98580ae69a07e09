"""Signed checkpoints over HTTP against real gunicorn (several workers signing)."""
from __future__ import annotations

import base64
import time

import pytest
import requests
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from service.decisionlog.checkpoints import signed_bytes
from tests.integration.conftest import base_env, toy_decision
from tests.server import AUDIT, EVALUATE, GunicornServer, bearer

SEED_B64 = base64.b64encode(bytes(range(32))).decode()


def get(server, path, **params):
    return requests.get(f"{server.url}{path}", params=params, headers=bearer(AUDIT), timeout=30)


def wait_for_checkpoint_at(server, seq, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = get(server, "/v1/audit/checkpoints").json()["items"]
        if items and items[0]["seq"] >= seq:
            return items
        time.sleep(0.1)
    raise AssertionError(f"no checkpoint at seq {seq} within {timeout}s")


def test_workers_sign_the_head_and_anyone_with_the_public_key_can_check(tmp_path):
    env = base_env(DECISION_LOG_SIGNING_KEY=SEED_B64, CHECKPOINT_SECONDS="0.5")
    with GunicornServer(env, workers=3, data_dir=str(tmp_path)) as server:
        for n in range(3):
            assert requests.post(f"{server.url}/v1/decisions", json=toy_decision(f"CP-{n}"),
                                 headers=bearer(EVALUATE), timeout=30).status_code == 200
        items = wait_for_checkpoint_at(server, 3)
        pem = get(server, "/v1/audit/public-key")
        assert pem.status_code == 200 and pem.headers["Content-Type"].startswith("application/x-pem-file")
        public = load_pem_public_key(pem.content)
        for item in items:
            public.verify(base64.b64decode(item["signature"]), signed_bytes(item["seq"], item["hash"], item["time"]))
        assert [i["seq"] for i in items] == sorted({i["seq"] for i in items}, reverse=True)  # newest first, unique
        report = get(server, "/v1/audit/verify").json()
        assert report["ok"] and report["checkpoints"]["signatures"] == "verified"
        incremental = get(server, "/v1/audit/verify", since=str(items[0]["seq"])).json()
        assert incremental["ok"] and incremental["checkpoints"]["since"] == items[0]["seq"]
        assert get(server, "/v1/audit/verify", since="999999").json()["first_problem"]["kind"] == "bad_checkpoint"
        assert get(server, "/v1/audit/checkpoints", limit="0").status_code == 422
        # nothing new: no new checkpoint however long we wait
        time.sleep(1.5)
        assert get(server, "/v1/audit/checkpoints").json()["items"] == wait_for_checkpoint_at(server, 3)


def test_the_head_is_signed_at_shutdown(tmp_path):
    env = base_env(DECISION_LOG_SIGNING_KEY=SEED_B64, CHECKPOINT_SECONDS="3600")
    server = GunicornServer(env, workers=2, data_dir=str(tmp_path)).start()
    try:
        for n in range(2):
            requests.post(f"{server.url}/v1/decisions", json=toy_decision(f"CP-STOP-{n}"),
                          headers=bearer(EVALUATE), timeout=30)
        head = get(server, "/v1/audit/verify").json()["head"]
    finally:
        server.stop()
    with GunicornServer(env, workers=1, data_dir=str(tmp_path)) as again:
        items = get(again, "/v1/audit/checkpoints").json()["items"]
        assert [(i["seq"], i["hash"]) for i in items] == [(head["seq"], head["hash"])]


def test_without_a_signing_key_there_is_no_public_key(tmp_path):
    with GunicornServer(base_env(), workers=1, data_dir=str(tmp_path)) as server:
        assert get(server, "/v1/audit/public-key").status_code == 404
        assert get(server, "/v1/audit/checkpoints").json() == {"items": []}
        assert get(server, "/v1/audit/verify").json()["checkpoints"]["signatures"] == "unchecked"


@pytest.mark.parametrize("bad", ["not-a-key", base64.b64encode(b"x" * 31).decode()])
def test_a_bad_signing_key_stops_the_service_with_one_line(tmp_path, bad):
    server = GunicornServer(base_env(DECISION_LOG_SIGNING_KEY=bad), workers=1, data_dir=str(tmp_path))
    with pytest.raises(RuntimeError):
        server.start(timeout=30)
    assert "DECISION_LOG_SIGNING_KEY" in server.log()


def test_the_console_reads_the_newest_checkpoint_through_the_audit_service(tmp_path):
    from service import create_app
    from service.console import features
    from tests.integration.conftest import FIXTURE_RULESETS
    from tests.server import TOKENS

    app = create_app({"data_dir": str(tmp_path), "tokens": TOKENS, "rulesets_dir": FIXTURE_RULESETS,
                      "signing_key": SEED_B64, "checkpoint_seconds": 3600})
    try:
        client = app.test_client()
        assert client.post("/v1/decisions", json=toy_decision("CP-CONSOLE"),
                           headers=bearer(EVALUATE)).status_code == 200
        signed = app.extensions["checkpointer"].round(final=True)
        assert features.signing_configured(app) and features.checkpoints_available(app)
        assert features.latest_checkpoint(app) == signed.to_dict()
    finally:
        app.extensions["checkpointer"].stop()
        app.extensions["store"].close()
