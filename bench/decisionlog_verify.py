"""Verify a decision log of 1M records: the whole chain vs incrementally from the
newest signed checkpoint.

    python bench/decisionlog_verify.py [--records 1000000] [--tail 1000] [--backend sqlite|postgres]

Fills a fresh log through the store's own chaining code (batches of 5,000 per
transaction, to fill fast), signs a checkpoint, appends `--tail` more records, then
times `verify()` (every record) and `verify(since=<checkpoint seq>)` (only what is
newer), both checking the checkpoint signatures. Writes bench/results/decisionlog_verify.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from bench.decisionlog_cluster import decision  # noqa: E402
from service.decisionlog import open_store  # noqa: E402
from service.decisionlog.rows import prepare_decision  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "decisionlog_verify.json"
BATCH = 5000


def fill(store, count: int) -> float:
    started = time.perf_counter()
    done = 0
    while done < count:
        n = min(BATCH, count - done)
        batch = [(prepare_decision(decision(str(uuid.uuid4()))), None) for _ in range(n)]
        store._transaction(lambda conn: store._chain(conn, batch), write=True)
        done += n
    return time.perf_counter() - started


def timed(call):
    started = time.perf_counter()
    report = call()
    return time.perf_counter() - started, report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--tail", type=int, default=1000)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()

    key = Ed25519PrivateKey.generate()
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as data_dir:
        url = None
        if args.backend == "postgres":
            import psycopg
            admin = os.environ["TEST_DATABASE_URL"]
            name = f"bench_verify_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            url = admin.rsplit("/", 1)[0] + "/" + name
        store = open_store(url, data_dir)
        store.migrate()
        fill_s = fill(store, args.records - args.tail)
        checkpoint = store.sign_checkpoint(key, min_interval_s=0)
        fill_s += fill(store, args.tail)
        full_s, full = timed(lambda: store.verify(public_key=key.public_key()))
        incremental_s, incremental = timed(lambda: store.verify(public_key=key.public_key(), since=checkpoint.seq))
        store.close()
    assert full.ok and incremental.ok, (full.first_problem, incremental.first_problem)
    result = {
        "benchmark": "verify the decision log: full chain vs incremental from a signed checkpoint",
        "backend": args.backend, "records": args.records, "checkpoint_seq": checkpoint.seq,
        "fill_seconds": round(fill_s, 1),
        "full": {"seconds": round(full_s, 2), "records_checked": full.checked,
                 "records_per_second": round(full.checked / full_s)},
        "incremental": {"seconds": round(incremental_s, 3), "records_checked": incremental.checked,
                        "since": checkpoint.seq},
        "speedup": round(full_s / incremental_s, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_end": os.getloadavg(),
                    "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
