"""Logged decisions per second with 1, 2 and 4 instances sharing one PostgreSQL decision
log, with 1 ms of injected latency each way between every instance and the database.

    python bench/decisionlog_cluster.py [--seconds 10] [--threads 8] [--delay-ms 1] [--instances 1,2,4] [--out FILE]

An "instance" is a process with its own Store (as a gunicorn instance has), appending
from `--threads` threads (its concurrent requests); every append returns only after
its own record is committed. The latency is injected by a small asyncio TCP proxy (a
process of its own) between the instances and the server. After each run the chain
is verified (gapless, intact). Each run also records how long an append takes until
its commit (p50/p99 over every append; bench/plot_cluster.py plots them). Runs each
instance count with group commit on (the store's default) and off (one transaction per
decision, the previous behaviour).

Each run also says where the machine's CPU went (`cpu`: µs per append spent by the
instances, PostgreSQL's processes and the proxy, and the share left idle, from /proc) and
how long `chain_append` ran (`chain_append`: pg_stat_user_functions, waiting for the chain
lock included): whether the instances wait on the log or on the machine.

PostgreSQL: TEST_DATABASE_URL (a server where we may CREATE DATABASE), else a throwaway
cluster (tests/decisionlog/pgserver.py). Writes bench/results/decisionlog_cluster.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.machine import cpu_times, idle_and_steal  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "decisionlog_cluster.json"


# --- the delay proxy -------------------------------------------------------------------


def run_proxy(listen_port: int, target: tuple[str, int], delay_s: float, ready) -> None:
    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Every chunk is written delay_s after it was read, in order: a timer per chunk (no
        # task switch per chunk), so the proxy itself takes little of the machine's CPU.
        loop = asyncio.get_running_loop()
        last = 0.0
        try:
            while data := await reader.read(65536):
                last = max(last + 1e-9, loop.time() + delay_s)  # strictly increasing: kept in order
                loop.call_at(last, writer.write, data)
        finally:
            loop.call_at(max(last + 1e-9, loop.time() + delay_s), writer.close)

    async def handle(client_reader, client_writer) -> None:
        server_reader, server_writer = await asyncio.open_connection(*target)
        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer),
                             return_exceptions=True)

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# --- one instance ----------------------------------------------------------------------


def decision(decision_id: str):
    from service.decisionlog import NewDecision
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc)
    response = {"decision_id": decision_id, "application_id": f"APP-{decision_id[:8]}",
                "ruleset": {"name": "sme-credit-policy", "version": "1.0.0", "sha256": "5" * 64},
                "as_of": "2026-11-24", "outcome": "APPROVE", "reasons": [],
                "results": {"is_sme": True, "size_class": "small", "rate": Decimal("0.0435"),
                            "eligible_products": ["collateral_loan", "working_capital_loan", "factoring"]},
                "trace": [{"rule_id": f"R-{n:03d}", "stage": "scope", "fired": True,
                           "inputs": {"applicant.employees": 120}} for n in range(8)],
                "evaluated_at": now.isoformat().replace("+00:00", "Z"), "duration_ms": 2.1}
    return NewDecision(
        decision_id=decision_id, application_id=response["application_id"], ruleset_name="sme-credit-policy",
        ruleset_version="1.0.0", ruleset_sha256="5" * 64, outcome="APPROVE", as_of="2026-11-24",
        evaluated_at=now, fired_rules=[f"R-{n:03d}" for n in range(8)],
        request={"ruleset": "sme-credit-policy", "application_id": response["application_id"],
                 "input": {"applicant": {"name": "杭州示例精密机械有限公司", "employees": 120,
                                         "annual_revenue": 80000000, "credit_rating": "BBB"},
                           "request": {"amount": 300000, "term_months": 12}}},
        response=response, trace={"rules": [[n, True, [120]] for n in range(40)]})


def run_instance(url: str, threads: int, seconds: float, group_commit: bool, start, results) -> None:
    import threading

    from service.decisionlog import open_store
    from service.decisionlog.group import GroupCommit

    store = open_store(url, "/nonexistent")
    if not group_commit:  # the previous behaviour: one transaction per decision
        store._group_commit()
        store._group = GroupCommit(store._commit_batch, max_batch=1)
    store.append_decision(decision(str(uuid.uuid4())))  # connect before the clock starts
    counts = [0] * threads
    latencies: list[float] = []  # seconds per append, until its commit (list.append is atomic)
    start.wait(60)
    deadline = time.monotonic() + seconds

    def work(n: int) -> None:
        while time.monotonic() < deadline:
            began = time.perf_counter()
            store.append_decision(decision(str(uuid.uuid4())))
            latencies.append(time.perf_counter() - began)
            counts[n] += 1

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    results.put((sum(counts), latencies))
    store.close()


def _percentile_ms(sorted_seconds: list[float], q: float) -> float | None:
    if not sorted_seconds:
        return None
    return round(sorted_seconds[min(len(sorted_seconds) - 1, int(q * len(sorted_seconds)))] * 1000, 2)


def cpu_snapshot() -> tuple[dict[int, tuple[str, int]], list[int]]:
    """Every process's CPU ticks so far (with its command name), and the machine's."""
    ticks = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                    head, tail = stat.read().rsplit(")", 1)
            except OSError:
                continue
            fields = tail.split()
            ticks[int(entry)] = (head.split("(", 1)[1], int(fields[11]) + int(fields[12]))
    return ticks, cpu_times()


def cpu_split(before, after, instance_pids: set[int], proxy_pid: int | None, appends: int) -> dict:
    """Where the machine's CPU went during a run: µs per append for the instances, PostgreSQL
    (its backends), the delay proxy and everything else, and the share left idle."""
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
    spent = {"instances": 0, "postgres": 0, "proxy": 0, "other": 0}
    for pid, (name, ticks) in after[0].items():
        used = ticks - before[0].get(pid, (name, 0))[1]
        kind = ("instances" if pid in instance_pids else "proxy" if pid == proxy_pid
                else "postgres" if name == "postgres" else "other")
        spent[kind] += used
    machine = idle_and_steal(before[1], after[1])
    return {"us_per_append": {kind: round(ticks * tick_us / max(1, appends)) for kind, ticks in spent.items()},
            "machine_idle_pct": machine["idle_pct"], "machine_steal_pct": machine["steal_pct"]}


def measure(url: str, instances: int, threads: int, seconds: float, group_commit: bool,
            proxy_pid: int | None = None) -> dict:
    from service.decisionlog import open_store

    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    processes = [context.Process(target=run_instance, args=(url, threads, seconds, group_commit, start, results))
                 for _ in range(instances)]
    for process in processes:
        process.start()
    time.sleep(3)  # let every instance connect and warm up
    before = cpu_snapshot()
    start.set()
    time.sleep(seconds)
    after = cpu_snapshot()
    counts, latencies = [], []
    for _ in processes:
        count, times = results.get(timeout=seconds + 120)
        counts.append(count)
        latencies += times
    latencies.sort()
    for process in processes:
        process.join(30)
    store = open_store(url, "/nonexistent")
    report = store.verify()
    store.close()
    return {"instances": instances, "threads_per_instance": threads, "group_commit": group_commit,
            "logged": sum(counts), "per_second": round(sum(counts) / seconds, 1),
            "append_p50_ms": _percentile_ms(latencies, 0.50), "append_p99_ms": _percentile_ms(latencies, 0.99),
            "chain_ok": report.ok, "chain_gapless_records": report.checked,
            "cpu": cpu_split(before, after, {process.pid for process in processes}, proxy_pid, sum(counts))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--delay-ms", type=float, default=1.0)
    parser.add_argument("--instances", default="1,2,4")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()

    import psycopg
    from tests.decisionlog.pgserver import PgServer

    server = None
    admin_url = os.environ.get("TEST_DATABASE_URL")
    if not admin_url:
        server = PgServer()
        server.start()
        admin_url = server.url
    try:
        parts = urlsplit(admin_url)
        proxy_port = _free_port()
        context = multiprocessing.get_context("spawn")
        ready = context.Event()
        proxy = context.Process(target=run_proxy, args=(proxy_port, (parts.hostname, parts.port),
                                                        args.delay_ms / 1000, ready), daemon=True)
        proxy.start()
        ready.wait(30)
        runs = []
        for group_commit in (True, False):
            for instances in [int(n) for n in args.instances.split(",")]:
                name = f"bench_cluster_{uuid.uuid4().hex[:10]}"
                with psycopg.connect(admin_url, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                    # How long chain_append ran (it holds the chain lock): pg_stat_user_functions.
                    try:  # (a superuser's setting: without it the run just reports null)
                        conn.execute(f"ALTER DATABASE \"{name}\" SET track_functions = 'pl'")
                    except psycopg.errors.InsufficientPrivilege:
                        pass
                db_url = urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}@127.0.0.1:{proxy_port}",
                                                   path="/" + name))
                from service.decisionlog import open_store
                store = open_store(db_url, "/nonexistent")
                store.migrate()
                store.close()
                run = measure(db_url, instances, args.threads, args.seconds, group_commit, proxy.pid)
                run["chain_append"] = chain_append_time(urlunsplit(parts._replace(path="/" + name)), args.seconds)
                print(json.dumps(run), flush=True)
                runs.append(run)
                with psycopg.connect(admin_url, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        proxy.terminate()
    finally:
        if server is not None:
            server.cleanup()

    def ratio(group_commit: bool, n: int) -> float | None:
        by = {r["instances"]: r["per_second"] for r in runs if r["group_commit"] == group_commit}
        return round(by[n] / by[1], 2) if n in by and by.get(1) else None

    result = {
        "benchmark": "decision-log appends/s, instances sharing one PostgreSQL log through a delay proxy",
        "delay_ms_each_way": args.delay_ms, "seconds_per_run": args.seconds,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_end": os.getloadavg()},
        "runs": runs,
        "scaling_group_commit": {"2_over_1": ratio(True, 2), "4_over_1": ratio(True, 4)},
        "scaling_one_transaction_per_decision": {"2_over_1": ratio(False, 2), "4_over_1": ratio(False, 4)},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["scaling_group_commit"]), json.dumps(result["scaling_one_transaction_per_decision"]))


def chain_append_time(url: str, seconds: float) -> dict | None:
    """Calls of chain_append and the share of the run it was running (waiting for the chain
    lock included): near 100 % would mean the log itself serialises the instances."""
    import psycopg

    time.sleep(1)  # backends report function statistics when their transaction ends (<= 1 s)
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT calls, total_time FROM pg_stat_user_functions "
                           "WHERE funcname = 'chain_append'").fetchone()
    if row is None:
        return None
    calls, total_ms = row
    return {"calls": calls, "ms_per_call": round(total_ms / max(1, calls), 3),
            "running_pct_of_run": round(100 * total_ms / 1000 / seconds, 1)}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()
