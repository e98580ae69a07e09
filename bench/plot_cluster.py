"""Plots of the cluster benchmark: logged decisions/s and append p99 against instance count.

    python bench/plot_cluster.py [--result bench/results/decisionlog_cluster.json]

Reads what bench/decisionlog_cluster.py wrote (instances sharing one PostgreSQL decision
log behind a delay proxy, group commit on and off) and writes
bench/results/decisions_vs_instances.png and bench/results/p99_vs_instances.png beside it.
It measures nothing itself.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "bench" / "results" / "decisionlog_cluster.json"
MODES = {True: "group commit (default)", False: "one transaction per decision (before)"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--result", default=str(RESULT))
    args = parser.parse_args()
    path = Path(args.result)
    if not path.exists():
        print(f"{path} does not exist: run `python bench/decisionlog_cluster.py` first", file=sys.stderr)
        return 2
    result = json.loads(path.read_text(encoding="utf-8"))

    import matplotlib
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    machine = result.get("machine", {})
    load = machine.get("load_average_at_end") or [float("nan")]
    subtitle = (f"{result.get('delay_ms_each_way')} ms delay each way to PostgreSQL, {result.get('seconds_per_run')} s per run, "
                f"{machine.get('cpus')} cores, load1 {load[0]:.1f} at end")
    written = []
    for key, label, name in (("per_second", "logged decisions/s", "decisions_vs_instances.png"),
                             ("append_p99_ms", "append p99 until commit (ms)", "p99_vs_instances.png")):
        if not any(key in run for run in result["runs"]):
            print(f"{path} has no {key}: rerun bench/decisionlog_cluster.py for {name}", file=sys.stderr)
            continue
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for mode, legend in MODES.items():
            runs = sorted((r for r in result["runs"] if r["group_commit"] == mode and r.get(key) is not None),
                          key=lambda r: r["instances"])
            if runs:
                ax.plot([r["instances"] for r in runs], [r[key] for r in runs], marker="o", label=legend)
        instances = sorted({r["instances"] for r in result["runs"]})
        ax.set_xticks(instances, [str(n) for n in instances])
        ax.set_xlabel(f"instances ({result['runs'][0].get('threads_per_instance')} appending threads each)")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.set_title(f"{label} against instance count\n{subtitle}", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path.parent / name, dpi=110)
        plt.close(fig)
        written.append(path.parent / name)
    print("written " + ", ".join(str(p) for p in written))
    return 0 if len(written) == 2 else 1


if __name__ == "__main__":
    sys.exit(main())
