"""`python -m service.jobs run [--processes N]`: a job runner on its own (see runner.py)."""
from __future__ import annotations

import argparse
import logging

from service.jobs.runner import run_forever
from service.jobs.work import JobSettings


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m service.jobs")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run impact/backtest jobs from the store's queue")
    run.add_argument("--processes", type=int, default=None, help="worker processes (default JOB_PROCESSES or 2)")
    run.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [job-runner %(process)d] %(message)s")
    processes = args.processes if args.processes is not None else JobSettings.from_env().processes
    if processes < 1:
        parser.error("--processes must be at least 1")
    run_forever(processes, args.parent_pid)


if __name__ == "__main__":
    main()
