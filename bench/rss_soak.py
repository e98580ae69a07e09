"""Resident memory over a long run of evaluations through the in-process API.

    python bench/rss_soak.py [--n 1000000] [--sample-every 50000] [--out bench/results/rss_soak.json]

`service.load_engine("rulesets")` once, then `--n` calls of `engine.evaluate(...)` that
alternate between the shipped rulesets: the inputs are every valid embedded test case of
the newest version of each ruleset, taken round-robin so no two consecutive calls use the
same ruleset when there are several. Each answer is compared with the answer that input
gave the first time (determinism). RSS (psutil) is sampled every `--sample-every`
evaluations. The first sample after warm-up (the first 5 %, at least one sample) is the
baseline. The run fails (exit 1) when RSS at any later sample is more than 10 % above the
baseline, when any evaluation raised a durable_rules error, when a durable_rules session
is left live, or when any answer changed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import service  # noqa: E402
from service import canonical  # noqa: E402
from service.engine import durable  # noqa: E402

AS_OF = dt.date(2026, 1, 15)
MAX_GROWTH = 0.10


def workload(engine) -> list[tuple[str, str, object, dt.date]]:
    """(ruleset, version, input, as_of) for each valid embedded case of each ruleset's newest
    version, interleaved across rulesets."""
    per_ruleset = []
    for name in engine.registry.names():
        lv = engine.registry.versions(name)[-1]
        cases = [(name, lv.version, case.input, case.as_of or AS_OF) for case in lv.ruleset.tests if case.invalid is None]
        if cases:
            per_ruleset.append(cases)
    interleaved = []
    for k in range(max(len(c) for c in per_ruleset)):
        interleaved += [cases[k % len(cases)] for cases in per_ruleset]
    return interleaved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--sample-every", type=int, default=50_000)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "rss_soak.json"))
    args = parser.parse_args()
    every = max(1, min(args.sample_every, args.n // 10))  # a short run still gets ten samples
    warmup = max(every, (args.n // 20) // every * every)

    load1_at_start = os.getloadavg()[0]
    engine = service.load_engine(ROOT / "rulesets")
    work = workload(engine)
    expected: dict[int, str] = {}
    process = psutil.Process()
    samples, engine_errors, other_errors, changed = [], 0, 0, 0
    started = time.perf_counter()
    for n in range(1, args.n + 1):
        k = n % len(work)
        name, version, raw, as_of = work[k]
        try:
            text = canonical.dumps(engine.evaluate(name, raw, as_of=as_of, version=version, trace="full").as_dict())
        except durable.EngineFailure:
            engine_errors += 1
            continue
        except Exception:  # noqa: BLE001 -- counted and reported: a soak must not stop on the first
            other_errors += 1
            continue
        changed += expected.setdefault(k, text) != text
        if n % every == 0:
            gc.collect()
            samples.append({"evaluations": n, "rss_bytes": process.memory_info().rss,
                            "seconds": round(time.perf_counter() - started, 1)})
            print(f"{n:>9,} evaluations  RSS {samples[-1]['rss_bytes'] / 2**20:7.1f} MiB  {samples[-1]['seconds']:>7.1f} s", flush=True)
    seconds = time.perf_counter() - started

    baseline = next(s for s in samples if s["evaluations"] >= warmup)
    peak = max(s["rss_bytes"] for s in samples if s["evaluations"] >= warmup)
    growth = (peak - baseline["rss_bytes"]) / baseline["rss_bytes"]
    live = durable.live_sessions()
    met = growth <= MAX_GROWTH and engine_errors == 0 and other_errors == 0 and live == 0 and changed == 0
    report = {
        "benchmark": "RSS over in-process evaluations (service.load_engine), alternating rulesets",
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu_count": os.cpu_count(), "load1_at_start": load1_at_start, "load1_at_end": os.getloadavg()[0]},
        "evaluations": args.n,
        "seconds": round(seconds, 1),
        "evaluations_per_second": round(args.n / seconds),
        "workload": {"inputs": len(work), "rulesets": sorted({f"{w[0]}@{w[1]}" for w in work}), "trace": "full"},
        "warmup_evaluations": warmup,
        "baseline_rss_bytes": baseline["rss_bytes"],
        "peak_rss_after_warmup_bytes": peak,
        "growth_after_warmup": round(growth, 4),
        "durable_rules_errors": engine_errors,
        "other_errors": other_errors,
        "live_sessions_at_end": live,
        "changed_answers": changed,
        "samples": samples,
        "targets": {"growth_after_warmup_max": MAX_GROWTH, "durable_rules_errors": 0, "changed_answers": 0},
        "met": met,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"growth after warm-up {growth:+.2%} (≤ {MAX_GROWTH:.0%}), durable_rules errors {engine_errors}, "
          f"other errors {other_errors}, changed answers {changed}, {args.n / seconds:,.0f} evaluations/s; written to {args.out}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
