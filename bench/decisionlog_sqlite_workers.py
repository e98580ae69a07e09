"""SQLite group commit across processes: logged decisions per second with 1, 2 and 4
single-threaded processes (as gunicorn's sync workers are) appending to one embedded log,
with the cross-process spool (the default) and without it (one transaction and one fsync
per decision, the previous behaviour).

    python bench/decisionlog_sqlite_workers.py [--seconds 8]

Writes bench/results/decisionlog_sqlite_workers.json. Every run ends with a verify.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results" / "decisionlog_sqlite_workers.json"


def worker(data_dir: str, seconds: float, spool: bool, start, results) -> None:
    from bench.decisionlog_cluster import decision
    from service.decisionlog import open_store
    from service.decisionlog.base import SQLStore
    from service.decisionlog.group import GroupCommit

    store = open_store(None, data_dir)
    if not spool:  # straight to the log: each append its own transaction and fsync
        store._group_commit()
        store._group = GroupCommit(lambda batch: SQLStore._commit_batch(store, batch))
    store.append_decision(decision(str(uuid.uuid4())))
    start.wait(60)
    count, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        store.append_decision(decision(str(uuid.uuid4())))
        count += 1
    results.put(count)
    store.close()


def measure(processes: int, seconds: float, spool: bool) -> dict:
    from service.decisionlog import open_store

    with tempfile.TemporaryDirectory(prefix="bench-sqlite-") as data_dir:
        store = open_store(None, data_dir)
        store.migrate()
        context = multiprocessing.get_context("spawn")
        start, results = context.Event(), context.Queue()
        procs = [context.Process(target=worker, args=(data_dir, seconds, spool, start, results))
                 for _ in range(processes)]
        for proc in procs:
            proc.start()
        time.sleep(3)
        start.set()
        counts = [results.get(timeout=seconds + 120) for _ in procs]
        for proc in procs:
            proc.join(30)
        report = store.verify()
        store.close()
    return {"processes": processes, "spool_group_commit": spool, "logged": sum(counts),
            "per_second": round(sum(counts) / seconds, 1), "chain_ok": report.ok}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    args = parser.parse_args()
    runs = []
    for spool in (True, False):
        for processes in (1, 2, 4):
            run = measure(processes, args.seconds, spool)
            print(json.dumps(run), flush=True)
            runs.append(run)
    result = {"benchmark": "SQLite appends/s from single-threaded processes, with and without the spool",
              "seconds_per_run": args.seconds, "runs": runs,
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_average_at_end": os.getloadavg()}}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
