"""Interleaved A/B over HTTP: two (or more) servers side by side, the same wrk rounds in turn.

    python bench/http_ab.py "ROOT=/path/to/old/checkout" "" [--rounds 8] [--seconds 6]
    python bench/http_ab.py "GUNICORN_THREADS=16" "GUNICORN_THREADS=24"

Each argument is one server: space-separated NAME=VALUE settings for its environment
(an empty value unsets the variable), and ROOT=DIR to run another checkout of the project
(its `service` package, its gunicorn.conf.py) with this interpreter. All servers start at
once, each with the default configuration otherwise and its own fresh DATA_DIR (embedded
SQLite, every answer waiting for its fsync), then every round runs wrk against each in
turn: the no-op endpoint, then decisions (the bodies of http_benchmark.py). On this shared
VM the speed drifts by ±20 % within minutes; two servers measured in the same minutes are
the only comparison that means something. Writes bench/results/http_ab.json: per server
the median decisions/s, no-op/s, decisions/no-op, and every round.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tests.server as test_server  # noqa: E402
from bench.http_benchmark import LUA, decision_bodies, run_wrk  # noqa: E402
from tests.server import GunicornServer  # noqa: E402

DEFAULT_ENV = {"WEB_CONCURRENCY": None, "GUNICORN_THREADS": None, "REGISTRY_REFRESH_SECONDS": None,
               "RULES_API_TOKENS": None}


def parse_spec(spec: str) -> tuple[Path | None, dict]:
    env = dict(DEFAULT_ENV)
    root = None
    for setting in spec.split():
        name, sep, value = setting.partition("=")
        if not sep:
            raise SystemExit(f"not NAME=VALUE: {setting!r}")
        if name == "ROOT":
            root = Path(value).resolve()
            if not (root / "service" / "__init__.py").is_file():
                raise SystemExit(f"ROOT={value}: not a checkout of this project")
        else:
            env[name] = value or None
    return root, env


def start(stack: ExitStack, spec: str, data_dir: Path) -> GunicornServer:
    root, env = parse_spec(spec)
    saved = test_server.ROOT
    test_server.ROOT = root or saved  # GunicornServer runs from (and imports) its ROOT
    try:
        return stack.enter_context(GunicornServer(env=env, data_dir=str(data_dir)))
    finally:
        test_server.ROOT = saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("specs", nargs="+", help='one per server, e.g. "ROOT=../old" or "GUNICORN_THREADS=24"')
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=6, help="per endpoint, server and round")
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "http_ab.json"))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="credit-rules-ab-"))
    script = workdir / "decisions.lua"
    script.write_text(LUA % ", ".join(f"[==[{b}]==]" for b in decision_bodies()), encoding="utf-8")
    rounds = {spec: [] for spec in args.specs}
    with ExitStack() as stack:
        servers = {spec: start(stack, spec, workdir / f"data{i}") for i, spec in enumerate(args.specs)}
        for server in servers.values():  # warm-up
            run_wrk(server.url + "/v1/decisions", 2, args.connections, 2, str(script))
        for _ in range(args.rounds):
            for spec, server in servers.items():
                noop = run_wrk(server.url + "/healthz", args.seconds, args.connections, 2, None)
                decisions = run_wrk(server.url + "/v1/decisions", args.seconds, args.connections, 2, str(script))
                rounds[spec].append({"noop": noop["requests_per_second"], "decisions": decisions["requests_per_second"],
                                     "errors": sum(r["non_2xx"] + r["socket_errors"] for r in (noop, decisions)),
                                     "idle_pct": {"noop": noop["machine"]["idle_pct"],
                                                  "decisions": decisions["machine"]["idle_pct"]}})
    report = {"benchmark": "HTTP A/B, servers side by side, wrk rounds in turn", "connections": args.connections,
              "seconds_per_run": args.seconds,
              "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "cpu_count": os.cpu_count(),
              "servers": []}
    for spec, runs in rounds.items():
        summary = {"spec": spec or "(this checkout, default config)",
                   "decisions_per_second": statistics.median(r["decisions"] for r in runs),
                   "noop_per_second": statistics.median(r["noop"] for r in runs),
                   "decision_throughput_vs_noop": round(statistics.median(r["decisions"] / r["noop"] for r in runs), 3),
                   "errors": sum(r["errors"] for r in runs),
                   "idle_pct": {kind: statistics.median(r["idle_pct"][kind] for r in runs) for kind in ("noop", "decisions")},
                   "rounds": runs}
        report["servers"].append(summary)
        print(f"{summary['spec']:45s} decisions {summary['decisions_per_second']:7,.0f}/s  no-op "
              f"{summary['noop_per_second']:7,.0f}/s  ratio {summary['decision_throughput_vs_noop']:.3f}  "
              f"errors {summary['errors']}  idle {summary['idle_pct']['noop']:.0f}%/{summary['idle_pct']['decisions']:.0f}%")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
