"""Job throughput: case pairs per second of an impact job over the decision log, with 1 and 2
job processes (service/jobs/runner.py, the same runner gunicorn's master starts).

    python bench/jobs_benchmark.py [--cases 2000] [--chunk-size 100] [--rounds 3] [--out bench/results/jobs.json]

Setup (not measured): an embedded SQLite store in a temporary directory, sme-credit-policy 1.0.0
(shipped) and 1.0.1 (its standard rating floor raised to BB) published, `--cases` decisions of
1.0.0 logged. In each of `--rounds` rounds, for 1 then 2 processes, a runner is started and warmed up (a small job that every
process takes part in), then one job over every logged decision is timed from its planning to
its last chunk (the job's own started_at / finished_at): case pairs / s = cases / that time.
Each case pair is two validated evaluations (from, to) plus the comparison and the tally; the
store reads (the logged requests, in seq-range chunks) and writes (chunk results) are included.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import service  # noqa: E402
from service.jobs.queue import JobQueue  # noqa: E402
from service.jobs.runner import Runner  # noqa: E402
from service.jobs.work import JobSettings  # noqa: E402
from tests.jobs.helpers import SME, sme_applications, sme_stricter_yaml  # noqa: E402

TOKEN = "bench-token-0001"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
PERIOD = {"logged_from": "2020-01-01T00:00:00Z", "logged_to": "2100-01-01T00:00:00Z"}


def _time(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc).timestamp()


def run_job(client, limit: int | None) -> str:
    body = {"from": "1.0.0", "to": "1.0.1", **PERIOD}
    if limit is not None:
        body["limit"] = limit
    response = client.post(f"/v1/rulesets/{SME}/impact", json=body, headers=HEADERS)
    assert response.status_code == 202, response.json
    job_id = response.json["id"]
    while (job := client.get(f"/v1/jobs/{job_id}", headers=HEADERS).json)["status"] not in ("done", "failed", "cancelled"):
        time.sleep(0.05)
    assert job["status"] == "done", job
    return job_id


def owners(data_dir: str, job_id: str) -> int:
    queue = JobQueue(None, data_dir)
    try:
        return len({r[0] for r in queue._tx(lambda execute: execute(
            "SELECT lease_owner FROM job_chunks WHERE job_id = ?", (job_id,)))})
    finally:
        queue.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--chunk-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "jobs.json"))
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="jobs-bench-")
    app = service.create_app({"data_dir": data_dir, "tokens": f"{TOKEN}:evaluate+publish+audit"})
    client = app.test_client()
    published = client.post(f"/v1/rulesets/{SME}/versions", data=sme_stricter_yaml().encode(),
                            headers={**HEADERS, "Content-Type": "application/yaml"})
    assert published.status_code in (200, 201), published.json
    applications = sme_applications(args.cases + args.cases // 5, prefix="BENCH")
    logged = 0
    for start in range(0, len(applications), 1000):
        items = [{"ruleset": SME, "version": "1.0.0", "trace": "none", **a} for a in applications[start:start + 1000]]
        logged += client.post("/v1/decisions:batch", json={"items": items}, headers=HEADERS).json["summary"]["decided"]
    print(f"logged {logged} decisions", file=sys.stderr)

    runs = []
    for round_no in range(args.rounds):  # rounds interleave 1 and 2 processes: the machine's noise hits both
        for processes in (1, 2):
            settings = JobSettings(processes=processes, lease_seconds=30, chunk_size=args.chunk_size, poll_seconds=0.05)
            with Runner(processes, settings_override={"data_dir": data_dir}, job_settings=settings):
                for _ in range(20):  # warm-up until every process has loaded the versions and taken part
                    warm = run_job(client, limit=args.chunk_size * processes * 2)
                    if owners(data_dir, warm) == processes:
                        break
                job_id = run_job(client, limit=args.cases)
                job = client.get(f"/v1/jobs/{job_id}", headers=HEADERS).json
            seconds = _time(job["finished_at"]) - _time(job["started_at"])
            cases = job["progress"]["total"]
            runs.append({"round": round_no + 1, "processes": processes, "case_pairs": cases, "seconds": round(seconds, 3),
                         "case_pairs_per_second": round(cases / seconds, 1),
                         "chunks_by_processes": owners(data_dir, job_id), "load_average_1m": round(os.getloadavg()[0], 2)})
            print(f"round {round_no + 1}, {processes} process(es): {cases} case pairs in {seconds:.2f} s "
                  f"= {cases / seconds:.1f}/s", file=sys.stderr)
    best = {p: max(r["case_pairs_per_second"] for r in runs if r["processes"] == p) for p in (1, 2)}

    result = {
        "benchmark": "impact job over the decision log (sme-credit-policy 1.0.0 -> 1.0.1), case pairs per second",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_1m": round(os.getloadavg()[0], 2)},
        "store": "embedded SQLite",
        "chunk_size": args.chunk_size,
        "best_case_pairs_per_second": {"1": best[1], "2": best[2]},
        "speedup_2_over_1": round(best[2] / best[1], 2),
        "runs": runs,
        "note": "best of the rounds per process count; the machine is shared (2 CPUs), load_average_1m says how busy it was",
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    app.extensions["store"].close()


if __name__ == "__main__":
    main()
