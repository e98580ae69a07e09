"""Jobs on two gunicorn instances sharing one PostgreSQL: a job created on one is worked on by the
runners of both, survives the loss of the instance it was created on, and its result equals the
synchronous impact of the same cases."""
from __future__ import annotations

import os
import signal
import time

import psycopg
import pytest
import requests

from tests.jobs.helpers import SME, sme_applications, sme_stricter_yaml, wait_for_job
from tests.server import ALL, TOKENS, GunicornServer, bearer

pytestmark = pytest.mark.slow

PERIOD = {"logged_from": "2020-01-01T00:00:00Z", "logged_to": "2100-01-01T00:00:00Z"}


def test_two_instances_share_a_job_and_it_survives_losing_one(pg_database):
    env = {"RULES_API_TOKENS": TOKENS, "DATABASE_URL": pg_database, "JOB_LEASE_SECONDS": "3",
           "JOB_CHUNK_SIZE": "10", "JOB_PROCESSES": "1"}
    with GunicornServer(env) as a, GunicornServer(env) as b:
        h = bearer(ALL)
        assert requests.post(f"{a.url}/v1/rulesets/{SME}/versions", data=sme_stricter_yaml().encode(),
                             headers={**h, "Content-Type": "application/yaml"}, timeout=120).status_code == 201
        apps = sme_applications(300, prefix="SHARED")
        batch = requests.post(f"{b.url}/v1/decisions:batch", timeout=300, headers=h, json={"items": [
            {"ruleset": SME, "version": "1.0.0", "trace": "none", **x} for x in apps]}).json()
        logged = [x for x, item in zip(apps, batch["items"]) if item["status"] == 200]
        inline = requests.post(f"{b.url}/v1/rulesets/{SME}/impact", headers=h, timeout=300,
                               json={"from": "1.0.0", "to": "1.0.1", "applications": logged}).json()
        created = requests.post(f"{a.url}/v1/rulesets/{SME}/impact", headers=h, timeout=60,
                                json={"from": "1.0.0", "to": "1.0.1", **PERIOD})
        assert created.status_code == 202
        job_id = created.json()["id"]
        # Lose the instance the job was created on once work has started; the other finishes it.
        deadline = time.monotonic() + 240
        while (seen := requests.get(f"{b.url}/v1/jobs/{job_id}", headers=h, timeout=30).json())["progress"]["done"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert seen["progress"]["done"] < seen["progress"]["total"], "finished before the loss: nothing shown"
        os.killpg(a.process.pid, signal.SIGKILL)
        a.process.wait()
        done = wait_for_job(lambda p: requests.get(b.url + p, headers=h, timeout=30), job_id, timeout=300)
        assert done["status"] == "done", done
        for key in ("matrix", "changed", "errors", "evaluated", "rule_changes"):
            assert done["result"][key] == inline[key], key
        with psycopg.connect(pg_database) as conn:
            owners = {r[0] for r in conn.execute("SELECT lease_owner FROM job_chunks WHERE job_id = %s", (job_id,))}
        owners_b = {f":{p}:" for p in b.job_process_pids()}
        assert any(tag in o for o in owners for tag in owners_b), owners        # b's runner finished it
