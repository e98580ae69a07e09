"""HTTP throughput and latency of decisions, beside the same server's no-op endpoint.

    python bench/http_benchmark.py [--rounds 4] [--seconds 8] [--connections 100] [--out bench/results/http.json]

Starts gunicorn with the default config (gunicorn.conf.py: threaded workers from the CPU
count) on loopback, the decision log on (embedded SQLite under a fresh DATA_DIR, every
answer waiting for its fsync), and drives it with wrk (Debian package `wrk`): GET /healthz
(the no-op reference) and POST /v1/decisions with realistic sme-credit-policy requests,
rotating through several very different applications. The two alternate, round after
round, so both see the same machine (this one is shared and its speed drifts by ±20 %
within minutes); each endpoint's figure is the median of its rounds. Results go to a JSON
file; the script exits 1 when the targets are missed (decisions ≥ 0.30 of the no-op's
throughput, p99 ≤ 3× the no-op's, zero errors).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import cpu_times, idle_and_steal  # noqa: E402
from service import canonical  # noqa: E402
from tests.engine.samples import sample_inputs  # noqa: E402
from tests.server import GunicornServer  # noqa: E402

LUA = """
local bodies = {%s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/v1/decisions", {["Content-Type"] = "application/json"}, bodies[(n %% #bodies) + 1])
end
"""


def decision_bodies() -> list[str]:
    return [canonical.dumps({"ruleset": "sme-credit-policy", "as_of": "2026-01-15",
                             "application_id": f"BENCH-{i:04d}", "input": raw, "trace": "fired"})
            for i, raw in enumerate(sample_inputs())]


def parse_wrk(text: str) -> dict:
    def unit(value: str) -> float:  # -> milliseconds
        number, suffix = re.match(r"([\d.]+)(\w+)", value).groups()
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[suffix]

    out = {"requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))}
    out["requests"] = int(re.search(r"(\d+) requests in", text).group(1))
    latency = {}
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"\s{pct}%\s+([\d.]+\w+)", text)
        latency[f"p{pct}_ms"] = round(unit(m.group(1)), 3)
    out["latency"] = latency
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["non_2xx"] = int(non2xx.group(1)) if non2xx else 0
    out["socket_errors"] = sum(int(x) for x in sock.groups()) if sock else 0
    return out


def run_wrk(url: str, seconds: int, connections: int, threads: int, script: str | None) -> dict:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if script:
        cmd += ["-s", script]
    before = cpu_times()
    proc = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 60)
    machine = idle_and_steal(before, cpu_times())  # did the server (and wrk) keep the machine busy?
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr or proc.stdout)
    return {"command": " ".join(cmd + [url]), **parse_wrk(proc.stdout), "machine": machine, "raw": proc.stdout}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=8, help="per endpoint and round")
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "http.json"))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="credit-rules-bench-"))
    script = workdir / "decisions.lua"
    bodies = decision_bodies()
    script.write_text(LUA % ", ".join(f"[==[{b}]==]" for b in bodies), encoding="utf-8")
    # The default configuration: only where to listen and where to keep data change.
    env = {"WEB_CONCURRENCY": None, "GUNICORN_THREADS": None, "REGISTRY_REFRESH_SECONDS": None, "RULES_API_TOKENS": None}
    rounds = []
    with GunicornServer(env=env, data_dir=str(workdir / "data")) as server:
        workers = len(server.worker_pids())
        run_wrk(server.url + "/healthz", 3, args.connections, args.threads, None)  # warm-up
        run_wrk(server.url + "/v1/decisions", 3, args.connections, args.threads, str(script))
        for _ in range(args.rounds):
            noop = run_wrk(server.url + "/healthz", args.seconds, args.connections, args.threads, None)
            decisions = run_wrk(server.url + "/v1/decisions", args.seconds, args.connections, args.threads, str(script))
            rounds.append({"noop": {k: v for k, v in noop.items() if k != "raw"},
                           "decisions": {k: v for k, v in decisions.items() if k != "raw"}})
        logged = (workdir / "data" / "decisions.sqlite3").exists()

    def median_of(kind: str, pick) -> float:
        return statistics.median(pick(r[kind]) for r in rounds)

    summary = {kind: {"requests_per_second": median_of(kind, lambda x: x["requests_per_second"]),
                      "p50_ms": median_of(kind, lambda x: x["latency"]["p50_ms"]),
                      "p99_ms": median_of(kind, lambda x: x["latency"]["p99_ms"])}
               for kind in ("noop", "decisions")}
    throughput_ratio = summary["decisions"]["requests_per_second"] / summary["noop"]["requests_per_second"]
    p99_ratio = summary["decisions"]["p99_ms"] / summary["noop"]["p99_ms"]
    errors = sum(r[kind]["non_2xx"] + r[kind]["socket_errors"] for r in rounds for kind in ("noop", "decisions"))
    report = {
        "benchmark": "HTTP, gunicorn default config, wrk on loopback, no-op and decisions alternating",
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "load1_at_end": os.getloadavg()[0],
        "gunicorn_workers": workers,
        "connections": args.connections,
        "rounds": args.rounds,
        "seconds_per_run": args.seconds,
        "decision_log": "embedded SQLite under DATA_DIR, written before every answer" if logged else "missing",
        "median": summary,
        "decision_throughput_vs_noop": round(throughput_ratio, 3),
        "decision_p99_vs_noop": round(p99_ratio, 3),
        "round_ratios": [round(r["decisions"]["requests_per_second"] / r["noop"]["requests_per_second"], 3) for r in rounds],
        "errors": errors,
        "targets": {"throughput_ratio_min": 0.30, "p99_ratio_max": 3.0, "errors": 0},
        "met": throughput_ratio >= 0.30 and p99_ratio <= 3.0 and errors == 0,
        "runs": rounds,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for kind, label in (("noop", "no-op    "), ("decisions", "decisions")):
        m = summary[kind]
        print(f"{label} {m['requests_per_second']:>9,.0f} req/s  p50 {m['p50_ms']:.2f} ms  p99 {m['p99_ms']:.2f} ms  (median of {args.rounds})")
    print(f"ratio {throughput_ratio:.2f} (≥0.30; rounds {report['round_ratios']}), p99 ratio {p99_ratio:.2f} (≤3), "
          f"errors {errors}; written to {args.out}")
    return 0 if report["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
