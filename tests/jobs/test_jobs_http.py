"""Jobs over real gunicorn (docs/api-contract.md, "Jobs"): a job's result equals the synchronous impact of
the same cases; it survives a SIGKILL of its processes (and of a request worker) and a restart of
the whole service; cancel stops work; the master runs exactly one runner and replaces it.

One server for the module, on the shipped rulesets: sme-credit-policy 1.0.0 against 1.0.1 (its
standard rating floor raised to BB), over 600 logged decisions, 20 cases per chunk, 3 s leases.
"""
from __future__ import annotations

import os
import signal
import time

import pytest
import requests

from service.jobs.queue import JobQueue
from tests.jobs.helpers import SME, sme_applications, sme_stricter_yaml, wait_for_job
from tests.server import ALL, AUDIT, EVALUATE, TOKENS, GunicornServer, bearer

pytestmark = pytest.mark.slow

N_LOGGED = 600  # at least: every application the batch accepts is logged
OUTCOMES = ("APPROVE", "REFER", "DECLINE")
PERIOD = {"logged_from": "2020-01-01T00:00:00Z", "logged_to": "2100-01-01T00:00:00Z"}
COMPARED = ("matrix", "changed", "errors", "evaluated", "changed_count", "rule_changes", "from", "to", "ruleset")


class Api:
    def __init__(self, server, token):
        self.server, self.headers = server, bearer(token)

    def get(self, path, **kw):
        return requests.get(self.server.url + path, headers=self.headers, timeout=120, **kw)

    def post(self, path, headers=None, **kw):
        return requests.post(self.server.url + path, headers={**self.headers, **(headers or {})}, timeout=300, **kw)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    server = GunicornServer({"RULES_API_TOKENS": TOKENS, "JOB_LEASE_SECONDS": "3", "JOB_CHUNK_SIZE": "20",
                             "JOB_POLL_SECONDS": "0.2"}, data_dir=str(tmp_path_factory.mktemp("jobs-server")))
    server.start(timeout=300)
    try:
        yield from _populate(server)
    finally:
        server.stop()


def _populate(server):
    api = Api(server, ALL)
    published = api.post(f"/v1/rulesets/{SME}/versions", data=sme_stricter_yaml().encode(),
                         headers={"Content-Type": "application/yaml"})
    assert published.status_code == 201, published.text
    applications = sme_applications(N_LOGGED + N_LOGGED // 10)
    logged, results = [], {}
    for start in range(0, len(applications), 300):
        part = applications[start:start + 300]
        batch = api.post("/v1/decisions:batch", json={"items": [
            {"ruleset": SME, "version": "1.0.0", "trace": "none", **a} for a in part]})
        assert batch.status_code == 200, batch.text
        for app, item in zip(part, batch.json()["items"]):
            if item["status"] == 200:
                logged.append(app)
                results[app["application_id"]] = (item["decision"]["outcome"], item["decision"]["results"])
    assert N_LOGGED <= len(logged) <= 1000
    # The synchronous impact of exactly these cases (the inline path takes up to 1,000 given applications).
    inline = api.post(f"/v1/rulesets/{SME}/impact", json={"from": "1.0.0", "to": "1.0.1", "applications": logged})
    assert inline.status_code == 200, inline.text
    yield {"server": server, "api": api, "logged": logged, "results": results, "inline": inline.json(), "n": len(logged)}


def start_job(api, **extra) -> dict:
    response = api.post(f"/v1/rulesets/{SME}/impact", json={"from": "1.0.0", "to": "1.0.1", **PERIOD, **extra})
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"/v1/jobs/{response.json()['id']}"
    return response.json()


def wait_until(condition, timeout=120, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out")


def running_with_progress(api, job_id):
    job = api.get(f"/v1/jobs/{job_id}").json()
    return job if job["status"] == "running" and job["progress"]["done"] > 0 else None


def assert_equals_inline(result: dict, inline: dict) -> None:
    for key in COMPARED:
        assert result[key] == inline[key], key
    assert result["evaluated"] >= N_LOGGED and result["changed_count"] > 0


def queue_of(server) -> JobQueue:
    return JobQueue(None, server.data_dir)


def test_a_jobs_result_equals_the_synchronous_impact_of_the_same_cases(world):
    api, inline = world["api"], world["inline"]
    job = wait_for_job(api.get, start_job(api)["id"])
    assert job["status"] == "done", job
    assert job["progress"] == {"done": world["n"], "total": world["n"]}
    assert job["kind"] == "impact" and job["created_by"].startswith("token:")
    result = job["result"]
    assert_equals_inline(result, inline)
    assert result["source"] == {"kind": "decision_log", "from": "2020-01-01T00:00:00.000000Z",
                                "to": "2100-01-01T00:00:00.000000Z", "limit": None}
    # The breakdowns, recomputed from the logged answers (the `from` version's results) and each
    # case's outcome under `to` (its changed entry, else unchanged).
    to_outcome = {c["application_id"]: c["to"]["outcome"] for c in inline["changed"]}
    expected = {"by_segment": {}, "by_region_tier": {}, "by_size_class": {}}
    for app in world["logged"]:
        a, results = world["results"][app["application_id"]]   # the logged answer: the `from` version's
        b = to_outcome.get(app["application_id"], a)
        for name, key in (("by_segment", "segments"), ("by_region_tier", "region_tier"), ("by_size_class", "size_class")):
            value = results.get(key)
            values = (value or ["unknown"]) if isinstance(value, list) else ["unknown" if value is None else value]
            for v in values:
                table = expected[name].setdefault(v, {x: {y: 0 for y in OUTCOMES} for x in OUTCOMES})
                table[a][b] += 1
    for name in expected:
        assert result[name] == dict(sorted(expected[name].items())), name
    assert len(result["by_region_tier"]) > 1 and len(result["by_size_class"]) > 1
    # The CSV: one row per changed case, in case order.
    csv_text = api.get(f"/v1/jobs/{job['id']}/changes.csv")
    assert csv_text.status_code == 200 and csv_text.headers["Content-Type"].startswith("text/csv")
    rows = csv_text.text.splitlines()
    assert rows[0].startswith("application_id,as_of,from_outcome,to_outcome")
    assert [r.split(",")[0] for r in rows[1:]] == [c["application_id"] for c in inline["changed"]]


def test_a_job_survives_sigkill_of_its_processes_and_of_a_request_worker(world):
    server, api = world["server"], world["api"]
    job = start_job(api)
    seen = wait_until(lambda: running_with_progress(api, job["id"]))
    assert seen["progress"]["done"] < world["n"], "the job finished before the kill: nothing would be shown"
    victims = server.job_process_pids()
    assert len(victims) == 2
    for pid in victims + server.worker_pids()[:1]:
        os.kill(pid, signal.SIGKILL)
    done = wait_for_job(api.get, job["id"], timeout=240)
    assert done["status"] == "done", done
    assert_equals_inline(done["result"], world["inline"])
    assert done["progress"] == {"done": world["n"], "total": world["n"]}
    # A killed process's chunk was claimed again after its lease expired.
    assert max(attempts for _, _, attempts in queue_of(server).chunk_states(job["id"])) >= 2
    assert set(server.job_process_pids()).isdisjoint(victims) and len(server.job_process_pids()) == 2


def test_cancel_stops_work(world):
    api = world["api"]
    many = sme_applications(3000, prefix="CANCEL")
    created = api.post(f"/v1/rulesets/{SME}/impact", json={"from": "1.0.0", "to": "1.0.1", "applications": many})
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    wait_until(lambda: running_with_progress(api, job_id))
    cancelled = api.post(f"/v1/jobs/{job_id}:cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    time.sleep(1.5)  # a chunk in progress stops at its next lease renewal (every lease/3 = 1 s)
    queue = queue_of(world["server"])
    before = (api.get(f"/v1/jobs/{job_id}").json(), queue.chunk_states(job_id))
    time.sleep(4)
    after = (api.get(f"/v1/jobs/{job_id}").json(), queue.chunk_states(job_id))
    assert after == before                                     # no chunk claimed or finished since
    job, chunks = after
    assert job["status"] == "cancelled" and job["result"] is None
    assert job["progress"]["done"] < job["progress"]["total"] == 3000
    assert sum(1 for _, status, _ in chunks if status == "pending") > 0
    assert api.post(f"/v1/jobs/{job_id}:cancel").json()["status"] == "cancelled"      # idempotent
    assert api.get(f"/v1/jobs/{job_id}/changes.csv").status_code == 409


def test_job_roles_and_errors(world):
    api, server = world["api"], world["server"]
    evaluator, auditor = Api(server, EVALUATE), Api(server, AUDIT)
    body = {"from": "1.0.0", "to": "1.0.1", **PERIOD, "limit": 5}
    assert evaluator.post(f"/v1/rulesets/{SME}/impact", json=body).status_code == 403
    job = auditor.post(f"/v1/rulesets/{SME}/impact", json=body)
    assert job.status_code == 202
    finished = wait_for_job(evaluator.get, job.json()["id"])                 # any valid token reads
    assert finished["status"] == "done" and finished["result"]["evaluated"] == 5
    listed = evaluator.get(f"/v1/jobs?ruleset={SME}&limit=2").json()["jobs"]
    assert [j["id"] for j in listed][0] == finished["id"] and len(listed) == 2     # newest first
    assert all(j["result"] is None for j in listed)
    assert evaluator.get("/v1/jobs?limit=0").status_code == 422
    assert evaluator.post(f"/v1/jobs/{finished['id']}:cancel").status_code == 403
    assert auditor.post(f"/v1/jobs/{finished['id']}:cancel").status_code == 409  # nothing left to cancel
    assert requests.get(server.url + f"/v1/jobs/{finished['id']}").status_code == 401
    assert api.get("/v1/jobs/01a2129f-0000-7000-8000-000000000000").status_code == 404
    unknown = api.post(f"/v1/rulesets/{SME}/impact", json={**body, "to": "9.9.9"})
    assert unknown.status_code == 404                                         # refused now, not in the job


def test_the_master_runs_one_runner_and_replaces_it_when_it_dies(world):
    server = world["server"]
    [runner] = server.job_runner_pids()
    processes = server.job_process_pids()
    assert len(processes) == 2 and all(p not in server.worker_pids() for p in processes + [runner])
    os.kill(runner, signal.SIGKILL)
    new_runner = wait_until(lambda: [p for p in server.job_runner_pids() if p != runner], timeout=30, step=0.2)
    assert len(new_runner) == 1
    # the dead runner's processes notice they are orphans and stop
    wait_until(lambda: not any(os.path.exists(f"/proc/{p}") and _alive(p) for p in processes), timeout=30, step=0.2)
    wait_until(lambda: len(server.job_process_pids()) == 2, timeout=30, step=0.2)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_a_job_survives_a_restart_of_the_whole_service(world):
    """Last: it kills the module's server (master, request workers, runner, job processes) at once."""
    server, api = world["server"], world["api"]
    job = start_job(api)
    seen = wait_until(lambda: running_with_progress(api, job["id"]))
    assert seen["progress"]["done"] < world["n"]
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()
    wait_until(lambda: not server.job_process_pids() and not _group_alive(server.process.pid), timeout=30, step=0.2)
    server.start(timeout=300)                                  # same data directory, same store
    resumed = api.get(f"/v1/jobs/{job['id']}").json()
    assert resumed["progress"]["done"] >= seen["progress"]["done"]   # finished chunks are kept
    done = wait_for_job(api.get, job["id"], timeout=240)
    assert done["status"] == "done", done
    assert_equals_inline(done["result"], world["inline"])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
