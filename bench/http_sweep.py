"""Throughput and latency against concurrency: decisions beside the no-op endpoint, one server.

    python bench/http_sweep.py [--seconds 8] [--levels 1,10,50,100,200] [--quick]

One gunicorn with the default config (gunicorn.conf.py), the decision log durably on
(embedded SQLite under a fresh DATA_DIR), driven by wrk on loopback, as in
bench/http_benchmark.py. At each concurrency level it runs GET /healthz (the no-op
reference) and POST /v1/decisions (realistic sme-credit-policy requests, the same
bodies as http_benchmark.py) back to back, alternating which goes first, so both see
the same machine. `--quick` is 2 s per point (for trying the script); the real run uses
8 s. Writes bench/results/http_sweep.json and two plots,
bench/results/throughput_vs_concurrency.png and bench/results/p99_vs_concurrency.png.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from http_benchmark import LUA, decision_bodies, run_wrk  # noqa: E402
from tests.server import GunicornServer  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def point(url: str, path: str, seconds: int, connections: int, script: str | None) -> dict:
    load1 = os.getloadavg()[0]
    out = run_wrk(url + path, seconds, connections, min(2, connections), script)
    return {"connections": connections, "load1_at_start": load1,
            "requests_per_second": out["requests_per_second"], "requests": out["requests"],
            "p50_ms": out["latency"]["p50_ms"], "p99_ms": out["latency"]["p99_ms"],
            "errors": out["non_2xx"] + out["socket_errors"], "command": out["command"]}


def plot(report: dict, out_dir: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    levels = report["levels"]
    series = {"no-op (GET /healthz)": report["noop"], "decision, log on (POST /v1/decisions)": report["decisions"]}
    subtitle = (f"{report['gunicorn_workers']} gunicorn workers, {report['machine']['cpu_count']} cores, "
                f"load1 {report['machine']['load1_at_start']:.1f} at start, {report['seconds_per_point']} s per point")
    written = []
    for key, label, name in (("requests_per_second", "requests/s", "throughput_vs_concurrency.png"),
                             ("p99_ms", "p99 latency (ms)", "p99_vs_concurrency.png")):
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for legend, points in series.items():
            ax.plot(levels, [p[key] for p in points], marker="o", label=legend)
        ax.set_xscale("log")
        ax.set_xticks(levels, [str(c) for c in levels])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("concurrent connections (wrk)")
        ax.set_ylabel(label)
        if key == "p99_ms":
            ax.set_yscale("log")
        ax.set_title(f"{label} against concurrency\n{subtitle}", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        written.append(out_dir / name)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--levels", default="1,10,50,100,200")
    parser.add_argument("--quick", action="store_true", help="2 s per point, for trying the script")
    parser.add_argument("--out-dir", default=str(RESULTS))
    args = parser.parse_args()
    seconds = 2 if args.quick else args.seconds
    levels = [int(c) for c in args.levels.split(",")]
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="credit-rules-sweep-"))
    script = workdir / "decisions.lua"
    script.write_text(LUA % ", ".join(f"[==[{b}]==]" for b in decision_bodies()), encoding="utf-8")
    load1_at_start = os.getloadavg()[0]
    noop, decisions = [], []
    # The default configuration: only where to listen and where to keep data change.
    env = {"WEB_CONCURRENCY": None, "REGISTRY_REFRESH_SECONDS": None, "RULES_API_TOKENS": None}
    with GunicornServer(env=env, data_dir=str(workdir / "data")) as server:
        workers = len(server.worker_pids())
        run_wrk(server.url + "/healthz", 2, 10, 2, None)  # warm-up: every worker has answered both
        run_wrk(server.url + "/v1/decisions", 2, 10, 2, str(script))
        for i, connections in enumerate(levels):
            runs = [("noop", "/healthz", None), ("decisions", "/v1/decisions", str(script))]
            for kind, path, lua in runs if i % 2 == 0 else runs[::-1]:
                p = point(server.url, path, seconds, connections, lua)
                (noop if kind == "noop" else decisions).append(p)
                print(f"c={connections:<4} {kind:<9} {p['requests_per_second']:>9,.0f} req/s  p50 {p['p50_ms']:8.2f} ms  "
                      f"p99 {p['p99_ms']:8.2f} ms  errors {p['errors']}  load1 {p['load1_at_start']:.1f}", flush=True)
        logged = (workdir / "data" / "decisions.sqlite3").exists()
    shutil.rmtree(workdir, ignore_errors=True)
    report = {
        "benchmark": "HTTP against concurrency, gunicorn default config, wrk on loopback",
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu_count": os.cpu_count(), "load1_at_start": load1_at_start, "load1_at_end": os.getloadavg()[0]},
        "gunicorn_workers": workers,
        "decision_log": "embedded SQLite under DATA_DIR, written before every answer" if logged else "missing",
        "seconds_per_point": seconds,
        "quick": args.quick,  # a try-out, not a measurement
        "levels": levels,
        "noop": noop,
        "decisions": decisions,
        "decision_throughput_vs_noop": [round(d["requests_per_second"] / n["requests_per_second"], 3) for n, d in zip(noop, decisions)],
        "decision_p99_vs_noop": [round(d["p99_ms"] / n["p99_ms"], 3) for n, d in zip(noop, decisions)],
        "errors": sum(p["errors"] for p in noop + decisions),
    }
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "http_sweep.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    pngs = plot(report, out_dir)
    print(f"written {out_dir / 'http_sweep.json'}, " + ", ".join(str(p) for p in pngs))
    return 0 if logged and report["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
