"""`python -m service.decisionlog migrate | verify | purge`."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.decisionlog.__main__ import main
from service.decisionlog.migrations import MIGRATIONS

from .factories import BASE_TIME, make_decision

REPO_ROOT = Path(__file__).resolve().parents[2]
DAY = dt.timedelta(days=1)


@pytest.fixture
def cli(target, monkeypatch, capsys):
    """Run the CLI in-process against the test's database; returns (status, json)."""
    if target.database_url:
        monkeypatch.setenv("DATABASE_URL", target.database_url)
    else:
        monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("DATA_DIR", target.data_dir)
    for name in ("DECISION_LOG_HMAC_KEY", "DECISION_RETENTION_DAYS"):
        monkeypatch.delenv(name, raising=False)

    def run(*argv: str) -> tuple[int, object]:
        status = main(list(argv))
        captured = capsys.readouterr()
        output = json.loads(captured.out) if captured.out.strip() else captured.err
        return status, output

    return run


def fill(store, count=6):
    return [store.append_decision(make_decision(f"d-{seq}", evaluated_at=BASE_TIME + seq * DAY))
            for seq in range(1, count + 1)]


def test_migrate_then_again(cli):
    from service.decisionlog.migrations import MIGRATIONS

    assert cli("migrate") == (0, {"applied": [m.id for m in MIGRATIONS], "pending": []})
    assert cli("migrate") == (0, {"applied": [], "pending": []})


def test_verify_ok_then_broken(cli, target):
    records = fill(target.open())
    status, report = cli("verify")
    assert status == 0 and report["ok"] and report["checked"] == 6
    assert report["head"] == {"seq": 6, "hash": records[-1].hash}
    assert cli("verify", "--expected-head", f"6:{records[-1].hash}")[0] == 0

    target.sql("UPDATE decisions SET outcome = 'REFER' WHERE seq = 4")
    status, report = cli("verify")
    assert status == 1 and not report["ok"]
    assert (report["first_problem"]["seq"], report["first_problem"]["kind"]) == (4, "altered")


def test_verify_uses_the_hmac_key_from_the_environment(cli, target, monkeypatch):
    fill(target.open(hmac_key=b"k3y"))
    assert cli("verify")[0] == 1
    monkeypatch.setenv("DECISION_LOG_HMAC_KEY", "k3y")
    assert cli("verify")[0] == 0


def test_verify_unmigrated_is_an_error(cli):
    status, message = cli("verify")
    assert status == 2 and "migrate" in message


def test_purge_before_a_date(cli, target):
    fill(target.open())
    cutoff = (BASE_TIME + 4 * DAY).date().isoformat()  # midnight: records 1..3 are older
    status, result = cli("purge", "--before", cutoff)
    assert status == 0 and result["purged"] == 3
    status, report = cli("verify")
    assert status == 0 and report["retention_floor"]["first_seq"] == 4


def test_purge_by_retention_days(cli, target, monkeypatch):
    store = target.open()
    now = dt.datetime.now(dt.timezone.utc)
    for days_ago in (10, 9, 8, 6, 5):
        store.append_decision(make_decision(f"d-{days_ago}", evaluated_at=now - days_ago * DAY))
    monkeypatch.setenv("DECISION_RETENTION_DAYS", "7")
    status, result = cli("purge")
    assert status == 0 and result["purged"] == 3
    assert [s.decision_id for s in store.search_decisions()[0]] == ["d-6", "d-5"]
    for bad in ("0", "seven", "-3"):
        monkeypatch.setenv("DECISION_RETENTION_DAYS", bad)
        assert cli("purge")[0] == 2
    monkeypatch.delenv("DECISION_RETENTION_DAYS")
    assert cli("purge")[0] == 2  # neither --before nor the variable


def test_purge_refuses_a_log_that_does_not_verify(cli, target):
    fill(target.open())
    target.sql("UPDATE decisions SET outcome = 'REFER' WHERE seq = 2")
    status, result = cli("purge", "--before", "2100-01-01")
    assert status == 1 and result["purged"] == 0
    assert len(target.sql("SELECT seq FROM decisions")) == 6
    status, result = cli("purge", "--before", "2100-01-01", "--force")
    assert status == 0 and result["purged"] == 6


def test_bad_expected_head_is_a_usage_error(cli):
    with pytest.raises(SystemExit) as raised:
        cli("verify", "--expected-head", "seven")
    assert raised.value.code == 2


def test_runs_as_a_module(tmp_path):
    env = {**os.environ, "DATA_DIR": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    env.pop("DATABASE_URL", None)
    for command, expected_status in (("verify", 2), ("migrate", 0), ("verify", 0)):
        result = subprocess.run([sys.executable, "-m", "service.decisionlog", command],
                                capture_output=True, text=True, env=env, timeout=60)
        assert result.returncode == expected_status, result.stderr
    assert json.loads(result.stdout)["ok"] is True


def test_checkpoint_and_verify_with_only_the_public_key(cli, store, monkeypatch, tmp_path):
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from service.decisionlog.checkpoints import public_key_pem

    seed = bytes(range(32))
    fill(store, 4)
    monkeypatch.setenv("DECISION_LOG_SIGNING_KEY", base64.b64encode(seed).decode())
    status, signed = cli("checkpoint")
    assert status == 0 and signed["signed"]["seq"] == 4
    fill_more = [store.append_decision(make_decision(f"late-{n}")) for n in range(2)]
    monkeypatch.delenv("DECISION_LOG_SIGNING_KEY")  # the auditor holds no secret at all
    pem = tmp_path / "public.pem"
    pem.write_text(public_key_pem(Ed25519PrivateKey.from_private_bytes(seed)))
    status, report = cli("verify", "--since", "4", "--public-key", str(pem))
    assert status == 0 and report["checked"] == 1 + len(fill_more)
    assert report["checkpoints"]["signatures"] == "verified"
    other = tmp_path / "other.pem"
    other.write_text(public_key_pem(Ed25519PrivateKey.generate()))
    status, report = cli("verify", "--public-key", str(other))
    assert status == 1 and report["first_problem"]["kind"] == "bad_checkpoint"
