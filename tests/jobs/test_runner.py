"""The multi-process path without gunicorn: the same job with 1 and with 2 processes gives the same
result (the map over chunks and the ordered reduce do not depend on who ran which chunk); the
gunicorn hook starts no runner when JOB_PROCESSES=0."""
from __future__ import annotations

import datetime as dt
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

import service
from service import canonical
from service.jobs import embedded
from service.jobs.partitioned import map_partition, plan_partitions, reduce_partitions
from service.jobs.queue import JobQueue
from service.jobs.runner import Runner
from service.jobs.work import JobSettings
from tests.jobs.helpers import SME, sme_applications, sme_stricter_yaml
from tests.server import ALL, TOKENS, bearer


@pytest.fixture(scope="module")
def logged_store(tmp_path_factory):
    """A store with sme-credit-policy 1.0.1 published and 400 logged 1.0.0 decisions."""
    data_dir = str(tmp_path_factory.mktemp("runner"))
    app = service.create_app({"data_dir": data_dir, "tokens": TOKENS})
    client, headers = app.test_client(), bearer(ALL)
    assert client.post(f"/v1/rulesets/{SME}/versions", data=sme_stricter_yaml().encode(),
                       headers={**headers, "Content-Type": "application/yaml"}).status_code == 201
    items = [{"ruleset": SME, "version": "1.0.0", "trace": "none", **a} for a in sme_applications(440)]
    assert client.post("/v1/decisions:batch", json={"items": items}, headers=headers).status_code == 200
    yield {"data_dir": data_dir, "client": client, "headers": headers}
    app.extensions["store"].close()


def run_job(world, processes: int) -> tuple[dict, set[str]]:
    client, headers = world["client"], world["headers"]
    created = client.post(f"/v1/rulesets/{SME}/impact", headers=headers, json={
        "from": "1.0.0", "to": "1.0.1", "logged_from": "2020-01-01T00:00:00Z", "logged_to": "2100-01-01T00:00:00Z"})
    assert created.status_code == 202
    job_id = created.json["id"]
    settings = JobSettings(processes=processes, lease_seconds=10, chunk_size=10, poll_seconds=0.1)
    with Runner(processes, settings_override={"data_dir": world["data_dir"]}, job_settings=settings):
        deadline = time.monotonic() + 300
        while client.get(f"/v1/jobs/{job_id}", headers=headers).json["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline, "the job did not finish"
            time.sleep(0.2)
    job = canonical.loads(client.get(f"/v1/jobs/{job_id}", headers=headers).data)  # exact decimals
    assert job["status"] == "done", job
    queue = JobQueue(None, world["data_dir"])
    owners = {row[0] for row in queue._tx(lambda execute: execute(
        "SELECT lease_owner FROM job_chunks WHERE job_id = ?", (job_id,)))}
    queue.close()
    return job["result"], owners


@pytest.mark.slow
def test_two_processes_give_the_same_result_as_one_and_as_a_distributed_map_reduce(logged_store):
    one, one_owner = run_job(logged_store, 1)
    two, two_owners = run_job(logged_store, 2)
    assert len(one_owner) == 1 and len(two_owners) == 2       # the second job really was shared
    assert one["evaluated"] > 300 and one["changed_count"] > 0
    assert two == one
    # The README's Dask/Ray recipe, with a process pool as the cluster: partitions by seq range,
    # the same map on two worker processes, the ordered reduce.
    data_dir = logged_store["data_dir"]
    t0 = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    t1 = dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc)
    parts = plan_partitions(None, data_dir, SME, t0, t1, size=64)
    assert len(parts) > 2 and sum(n for _, _, n in parts) == one["evaluated"] + len(one["errors"])
    args = [(None, data_dir, SME, "1.0.0", "1.0.1", t0, t1, lo, hi) for lo, hi, _ in parts]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        tallies = list(pool.map(map_partition, *zip(*args)))
    reduced = canonical.loads(canonical.dumps(reduce_partitions(tallies)))
    for key in ("evaluated", "matrix", "changed", "errors", "by_segment", "by_region_tier", "by_size_class"):
        assert reduced[key] == one[key], key


def test_no_runner_when_job_processes_is_zero(monkeypatch):
    class Log:
        def __init__(self):
            self.lines = []

        def info(self, *args):
            self.lines.append(args[0] % args[1:])

    server = type("Server", (), {"log": Log()})()
    monkeypatch.setenv("JOB_PROCESSES", "0")
    embedded.start(server)
    assert embedded.runner_pid() is None and "off" in server.log.lines[0]
    embedded.stop(server)


def test_job_settings_refuse_nonsense():
    with pytest.raises(ValueError):
        JobSettings.from_env({"JOB_CHUNK_SIZE": "0"})
    assert JobSettings.from_env({}).processes == 2
