"""HTTP throughput and latency of decisions, beside the same server's no-op endpoint.

    python bench/http_benchmark.py [--seconds 20] [--connections 100] [--out bench/results/http.json]

Starts gunicorn with the default config (gunicorn.conf.py: sync workers from the CPU
count) on loopback, the decision log on (embedded SQLite under a fresh DATA_DIR), and
drives it with wrk (Debian package `wrk`): first GET /healthz (the no-op reference),
then POST /v1/decisions with realistic sme-credit-policy requests, rotating through
several very different applications. Each run is bounded in time. Results go to a JSON
file; the script exits 1 when the targets are missed (decisions ≥ 50% of the no-op's
throughput, p99 ≤ 3× the no-op's, zero errors).
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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
    proc = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 60)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr or proc.stdout)
    return {"command": " ".join(cmd + [url]), **parse_wrk(proc.stdout), "raw": proc.stdout}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=20)
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
    env = {"WEB_CONCURRENCY": None, "REGISTRY_REFRESH_SECONDS": None, "RULES_API_TOKENS": None}
    with GunicornServer(env=env, data_dir=str(workdir / "data")) as server:
        workers = len(server.worker_pids())
        run_wrk(server.url + "/healthz", 3, args.connections, args.threads, None)  # warm-up
        run_wrk(server.url + "/v1/decisions", 3, args.connections, args.threads, str(script))
        noop = run_wrk(server.url + "/healthz", args.seconds, args.connections, args.threads, None)
        decisions = run_wrk(server.url + "/v1/decisions", args.seconds, args.connections, args.threads, str(script))
        logged = (workdir / "data" / "decisions.sqlite3").exists()
    throughput_ratio = decisions["requests_per_second"] / noop["requests_per_second"]
    p99_ratio = decisions["latency"]["p99_ms"] / noop["latency"]["p99_ms"]
    errors = decisions["non_2xx"] + decisions["socket_errors"] + noop["non_2xx"] + noop["socket_errors"]
    report = {
        "benchmark": "HTTP, gunicorn default config, wrk on loopback",
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "load1_at_end": os.getloadavg()[0],  # the machine is shared: compare the ratios of one run
        "gunicorn_workers": workers,
        "connections": args.connections,
        "seconds_per_run": args.seconds,
        "decision_log": "embedded SQLite under DATA_DIR, written before every answer" if logged else "missing",
        "noop": {k: v for k, v in noop.items() if k != "raw"},
        "decisions": {k: v for k, v in decisions.items() if k != "raw"},
        "decision_throughput_vs_noop": round(throughput_ratio, 3),
        "decision_p99_vs_noop": round(p99_ratio, 3),
        "errors": errors,
        "targets": {"throughput_ratio_min": 0.5, "p99_ratio_max": 3.0, "errors": 0},
        "met": throughput_ratio >= 0.5 and p99_ratio <= 3.0 and errors == 0,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"no-op     {noop['requests_per_second']:>9,.0f} req/s  p50 {noop['latency']['p50_ms']:.2f} ms  p99 {noop['latency']['p99_ms']:.2f} ms")
    print(f"decisions {decisions['requests_per_second']:>9,.0f} req/s  p50 {decisions['latency']['p50_ms']:.2f} ms  p99 {decisions['latency']['p99_ms']:.2f} ms")
    print(f"ratio {throughput_ratio:.2f} (≥0.5), p99 ratio {p99_ratio:.2f} (≤3), errors {errors}; written to {args.out}")
    return 0 if report["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
