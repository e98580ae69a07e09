"""The reliability figures of the README: run the hostile suite against real gunicorn servers
and count what it sent and what came back, then time the refusal of 1 MiB ruleset documents.

    python bench/hostile_report.py [--long] [--out bench/results/hostile.json] [--readme-only]

`tests/hostile` (every case of issue #11, the families around them, the hypothesis fuzz of
documents and decision inputs; `--long` adds the slow fuzz profile) records each request in
its ledger (tests/hostile/conftest.py), including every decision answered 200 and whether
the log holds it exactly once. The 1 MiB documents are also timed in-process (CPU seconds of
parse + checks, the work the server does) so the figure does not depend on how busy the
shared machine is; the wall time over HTTP is in the suite's bounds.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))


def refusal_cpu_seconds() -> dict:
    from service.decision_engine.registry import Registry
    from service.rulesets.document import DocumentError, parse_document
    from tests.hostile.test_reported import _mebibyte_documents

    registry = Registry()
    out = {}
    for kind, text in _mebibyte_documents().items():
        started = time.process_time()
        try:
            registry.prepare(parse_document(text.encode("utf-8"), "yaml"))
        except DocumentError:
            pass  # refused while reading: a refusal too
        out[kind] = round(time.process_time() - started, 3)
    return out


README_COLUMNS = ("inputs_tried", "answers_4xx", "answers_5xx", "decisions_answered", "decisions_lost",
                  "decisions_duplicated")


def update_readme(figures: dict) -> None:
    """The README's Reliability table row, from the figures (tests/hostile/test_readme_figures.py checks it)."""
    readme = HERE / "README.md"
    text = readme.read_text(encoding="utf-8")
    header = "| inputs tried | 4xx | 5xx | decisions answered | decisions lost | decisions duplicated |\n|---|---|---|---|---|---|\n"
    start = text.index(header) + len(header)
    end = text.index("\n", start)
    row = "| " + " | ".join(f"{figures[k]:,}" for k in README_COLUMNS) + " |"
    readme.write_text(text[:start] + row + text[end:], encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--long", action="store_true", help="include the slow fuzz profile")
    parser.add_argument("--out", default=str(HERE / "bench" / "results" / "hostile.json"))
    parser.add_argument("--readme-only", action="store_true", help="only rewrite the README table from --out")
    args = parser.parse_args()
    if args.readme_only:
        update_readme(json.loads(Path(args.out).read_text(encoding="utf-8")))
        return 0
    ledger = Path(tempfile.mkdtemp(prefix="hostile-")) / "ledger.json"
    started = time.monotonic()
    marker = ["-m", "slow or not slow"] if args.long else ["-m", "not slow"]
    # The README check reads what this run writes: it is not part of the measured run.
    # -n 0: one process, so one ledger counts every request (the default run has two).
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", *marker, "tests/hostile",
                          "--deselect", "tests/hostile/test_readme_figures.py"],
                         cwd=HERE, env={**os.environ, "HOSTILE_RESULTS": str(ledger)})
    figures = json.loads(ledger.read_text()) if ledger.exists() else {}
    figures.update({
        "suite": "tests/hostile" + ("" if args.long else " (not slow)"),
        "suite_passed": run.returncode == 0,
        "suite_seconds": round(time.monotonic() - started, 1),
        "mebibyte_document_refusal_cpu_seconds": refusal_cpu_seconds(),
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "load_average_1m": round(os.getloadavg()[0], 2),
    })
    Path(args.out).write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if run.returncode == 0:
        update_readme(figures)
    print(json.dumps({k: figures.get(k) for k in ("inputs_tried", "answers_4xx", "answers_5xx", "decisions_lost",
                                                    "decisions_duplicated", "suite_passed")}, indent=2))
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
