"""In-process evaluation speed of a ruleset, beside the plain interpreter, on one core.

    python bench/engine_throughput.py [--seconds 10] [--ruleset sme-credit-policy] [--out bench/results/engine.json]

Input is validated once up front (the request path's validation is measured by the HTTP
benchmark); each evaluation runs the `uses` composition and the ruleset in fresh
durable_rules sessions and builds the decision summary with `trace=fired`. The plain
interpreter (service.engine.reference) evaluates the same inputs in the same run, as the
reference the machine's noise applies to equally.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.engine.reference import ReferenceInterpreter  # noqa: E402
from service.decision_engine.registry import Registry, sub_input  # noqa: E402
from tests.engine.samples import sample_inputs  # noqa: E402

AS_OF = dt.date(2026, 1, 15)


def measure(label: str, fn, inputs, seconds: float) -> dict:
    latencies = []
    n = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for data in inputs:
            t0 = time.perf_counter_ns()
            fn(data)
            latencies.append(time.perf_counter_ns() - t0)
            n += 1
    total_s = sum(latencies) / 1e9
    latencies.sort()
    q = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] / 1000  # noqa: E731
    return {
        "label": label,
        "evaluations": n,
        "per_second": round(n / total_s, 1),
        "latency_us": {"mean": round(statistics.fmean(latencies) / 1000, 1), "p50": round(q(0.50), 1),
                       "p99": round(q(0.99), 1), "max": round(latencies[-1] / 1000, 1)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--ruleset", default="sme-credit-policy")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "engine.json"))
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core

    registry = Registry()
    failures = registry.load_directory(ROOT / "rulesets")
    if failures:
        print("rulesets failed to load:", failures, file=sys.stderr)
        return 1
    lv = registry.resolve(args.ruleset, None, AS_OF)
    inputs = [lv.validator.load(raw) for raw in sample_inputs()]

    def engine(data):
        return registry.evaluate_loaded(lv, data, as_of=AS_OF).summary("fired")

    interpreters = {lv.ruleset.key: ReferenceInterpreter(lv.ruleset)}

    def plain(data):
        uses = {}
        for use in lv.ruleset.uses:
            used = registry.resolve(use.ruleset, None, AS_OF)
            interp = interpreters.setdefault(used.ruleset.key, ReferenceInterpreter(used.ruleset))
            uses[use.alias] = _Used(interp.evaluate(sub_input(use, data, used.ruleset)))
        return interpreters[lv.ruleset.key].evaluate(data, uses=uses)

    for data in inputs:  # warm up, and check both agree on these inputs
        got, want = engine(data), plain(data)
        assert got["outcome"] == want["outcome"] and got["results"] == want["results"], (got, want)
    measure("warm-up", engine, inputs, 1.0)
    results = [measure("durable_rules engine (trace=fired)", engine, inputs, args.seconds),
               measure("plain interpreter", plain, inputs, args.seconds)]
    report = {
        "benchmark": "in-process evaluation, one core",
        "ruleset": lv.ruleset.key,
        "rules": len(lv.ruleset.rules),
        "durable_rules_per_version": len(lv.compiled.definition),
        "inputs": len(inputs),
        "as_of": AS_OF.isoformat(),
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "load1": os.getloadavg()[0],  # the machine is shared: compare figures of one run
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "platform": platform.platform()},
        "results": results,
        "engine_vs_plain": round(results[0]["per_second"] / results[1]["per_second"], 3),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for r in results:
        print(f"{r['label']:40} {r['per_second']:>10,.0f} /s   p50 {r['latency_us']['p50']:>7} µs   p99 {r['latency_us']['p99']:>7} µs")
    print(f"written to {args.out}")
    return 0


class _Used:
    """The reference result of a used ruleset, shaped like an Evaluation for `uses.*` reads."""

    def __init__(self, result: dict):
        self.outcome = result["outcome"]
        self.results = result["results"]


if __name__ == "__main__":
    sys.exit(main())
