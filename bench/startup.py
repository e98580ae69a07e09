"""Start-up time: a fresh gunicorn until its first decision and every worker ready, and the
ruleset authors' `check` of one file.

    python bench/startup.py [--workers 5] [--root DIR] [--out bench/results/startup.json]

Three runs of the server, each on loopback with the shipped rulesets: a first start on an
empty data dir (the shipped versions are checked, tested and published), then two
restarts on that data dir (versions the store accepted are only compiled, once, in the
master). Measured from the spawn of gunicorn: the first 200 answer to POST /v1/decisions,
and each worker's "ready in" log line. `--root` runs another checkout the same way (an
earlier commit, for before/after). The 1-minute load average is recorded: the machine is
shared, so compare figures of one run.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))

from service import canonical  # noqa: E402
from tests.engine.samples import sample_inputs  # noqa: E402
from tests.server import free_port  # noqa: E402

BODY = canonical.dumps({"ruleset": "sme-credit-policy", "as_of": "2026-01-15", "application_id": "START-1",
                        "input": sample_inputs()[0]})


def load1() -> float:
    return os.getloadavg()[0]


def start_once(root: Path, data_dir: str, workers: int, timeout: float) -> dict:
    port = free_port()
    env = {**os.environ, "PORT": str(port), "DATA_DIR": data_dir, "WEB_CONCURRENCY": str(workers),
           "RULESETS_DIR": str(root / "rulesets"), "PYTHONPATH": str(root),
           "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="credit-rules-metrics-")}
    env.pop("RULES_API_TOKENS", None)
    log_path = Path(data_dir) / f"gunicorn-{port}.log"
    load_before = load1()
    with open(log_path, "wb") as log:
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "service.wsgi:app"],
                                cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        first = None
        try:
            while time.monotonic() - t0 < timeout:
                if proc.poll() is not None:
                    raise RuntimeError(log_path.read_text(errors="replace")[-3000:])
                try:
                    r = requests.post(f"http://127.0.0.1:{port}/v1/decisions", data=BODY, timeout=timeout,
                                      headers={"Content-Type": "application/json"})
                    if r.status_code == 200:
                        first = time.monotonic() - t0
                        break
                except requests.RequestException:
                    time.sleep(0.05)
            ready = []
            while first is not None and len(ready) < workers and time.monotonic() - t0 < timeout:
                ready = re.findall(r"worker \d+ ready in ([\d.]+) s", log_path.read_text(errors="replace"))
                time.sleep(0.1)
            all_ready = time.monotonic() - t0
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)
    text = log_path.read_text(errors="replace")
    master = re.search(r"compiled (\d+) shipped ruleset versions in ([\d.]+) s", text)
    return {"first_decision_s": round(first, 2) if first else None,
            "all_workers_ready_s": round(all_ready, 2) if len(ready) >= workers else None,
            "worker_ready_after_fork_s": sorted(float(x) for x in ready),
            "master_compile_s": float(master.group(2)) if master else None,
            "load1_before": load_before, "load1_after": load1()}


def check_once(root: Path, file: str) -> dict:
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "service.rulesets", "check", file], cwd=root, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(root)})
    return {"file": file, "seconds": round(time.monotonic() - t0, 2), "ok": out.returncode == 0, "load1": load1()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=5)
    ap.add_argument("--root", default=str(HERE), help="checkout to start (default: this one)")
    ap.add_argument("--timeout", type=float, default=180)
    ap.add_argument("--out", default=str(HERE / "bench" / "results" / "startup.json"))
    args = ap.parse_args()
    root = Path(args.root).resolve()
    data_dir = tempfile.mkdtemp(prefix="credit-rules-startup-")
    try:
        runs = {"first_start": start_once(root, data_dir, args.workers, args.timeout)}
        for n in (1, 2):
            runs[f"restart_{n}"] = start_once(root, data_dir, args.workers, args.timeout)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    checks = [check_once(root, f) for f in ("rulesets/sme-credit-policy/1.0.0.yaml",
                                            "rulesets/sme-size-classification/2.0.0.yaml",
                                            "rulesets/coal-industry-policy/1.0.0.yaml")]
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    report = {"benchmark": "start-up: gunicorn until the first decision; `python -m service.rulesets check FILE`",
              "root": str(root), "commit": commit or None, "workers": args.workers, "cpu_count": os.cpu_count(),
              "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "runs": runs, "check": checks}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for name, r in runs.items():
        print(f"{name:12} first decision {r['first_decision_s']} s, all {args.workers} workers ready "
              f"{r['all_workers_ready_s']} s, worker ready after fork {r['worker_ready_after_fork_s']} (load {r['load1_before']:.1f})")
    for c in checks:
        print(f"check {c['file']}: {c['seconds']} s ({'ok' if c['ok'] else 'FAIL'})")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
