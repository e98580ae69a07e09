"""Many writers, one chain: appends from several processes must form one gapless line."""
from __future__ import annotations

import multiprocessing
import os
import signal
import time

from .conftest import run_processes
from .factories import make_decision
from .workers import append_many, append_until_killed

PROCESSES, APPENDS_EACH = 4, 250


def test_four_processes_append_into_one_gapless_chain(target):
    store = target.open()  # migrated before the workers start
    run_processes(append_many,
                  [(target.database_url, target.data_dir, worker, APPENDS_EACH)
                   for worker in range(PROCESSES)],
                  timeout_s=120)
    total = PROCESSES * APPENDS_EACH

    records = list(store.iter_decisions())
    assert [record.seq for record in records] == list(range(1, total + 1))
    assert len({record.decision_id for record in records}) == total
    for worker in range(PROCESSES):  # each worker's own appends stay in its order
        mine = [record.decision_id for record in records
                if record.decision_id.startswith(f"w{worker}-")]
        assert mine == sorted(mine) and len(mine) == APPENDS_EACH

    report = store.verify()
    assert report.ok, report.first_problem
    assert report.checked == total
    assert report.head == {"seq": total, "hash": records[-1].hash}


def test_sigkill_mid_append_loses_no_answered_decision(target, tmp_path):
    """A worker killed at an arbitrary point: every decision it answered is logged,
    the chain is intact, and the next append continues it."""
    store = target.open()
    answered_path = tmp_path / "answered.txt"
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    worker = context.Process(target=append_until_killed,
                             args=(start, None, target.database_url, target.data_dir,
                                   str(answered_path)))
    worker.start()
    start.set()
    deadline = time.monotonic() + 30
    while store.search_decisions(limit=50)[1] is None:  # until 50+ appends are in
        assert time.monotonic() < deadline and worker.is_alive()
        time.sleep(0.02)
    os.kill(worker.pid, signal.SIGKILL)
    worker.join(10)

    answered = answered_path.read_text().split()
    logged = [record.decision_id for record in store.iter_decisions()]
    assert set(answered) <= set(logged)
    assert len(logged) - len(answered) <= 1  # at most the one in flight when killed
    report = store.verify()
    assert report.ok, report.first_problem
    following = store.append_decision(make_decision("after-kill"))
    # SQLite's cross-process group commit may still log the one decision the worker had
    # handed to the spool when it died (never answered, logged once, like a crash just
    # after COMMIT); nothing else appears and nothing is duplicated.
    in_flight = {r.decision_id for r in store.iter_decisions()} - set(logged) - {"after-kill"}
    assert len(in_flight) <= (1 if target.backend == "sqlite" else 0)
    assert following.seq == len(logged) + len(in_flight) + 1 and store.verify().ok
