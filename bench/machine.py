"""The machine's CPU time from /proc/stat, for benchmarks that say how busy the machine was."""
from __future__ import annotations


def cpu_times() -> list[int]:
    """CPU time so far, in ticks: user nice system idle iowait irq softirq steal."""
    with open("/proc/stat", encoding="ascii") as stat:
        return [int(x) for x in stat.readline().split()[1:9]]


def idle_and_steal(before: list[int], after: list[int]) -> dict:
    """Between two cpu_times(): the share left idle (idle + iowait) and the share the VM's
    host took (steal), in %."""
    spent = [a - b for a, b in zip(after, before)]
    total = max(1, sum(spent))
    return {"idle_pct": round(100 * (spent[3] + spent[4]) / total, 1),
            "steal_pct": round(100 * spent[7] / total, 1)}
