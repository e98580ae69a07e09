"""The job runner of a gunicorn instance, started and stopped by the gunicorn master.

gunicorn.conf.py calls `start(server)` from `when_ready` and `stop(server)` from `on_exit`.
The master starts exactly one runner process (`python -m service.jobs run`), beside — never
inside — the request workers, and a watchdog thread in the master starts another if it
exits (the master reaps every child itself, so the exit is seen as a return code). The
runner stops by itself when the master is gone (even after a SIGKILL of the master).
JOB_PROCESSES=0: no runner here (run one elsewhere).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading

from service.jobs.work import JobSettings

_state: dict = {}


def _launch() -> subprocess.Popen:
    js = JobSettings.from_env()
    return subprocess.Popen([sys.executable, "-m", "service.jobs", "run", "--processes", str(js.processes),
                             "--parent-pid", str(os.getpid())], stdin=subprocess.DEVNULL)


def start(server) -> None:
    js = JobSettings.from_env()
    if js.processes == 0:
        server.log.info("job runner: off (JOB_PROCESSES=0)")
        return
    stopping = threading.Event()
    _state.update(process=_launch(), stopping=stopping)
    server.log.info("job runner started: pid %s, %d processes", _state["process"].pid, js.processes)

    def watch():
        while not stopping.wait(1.0):
            # The master closes its listeners first when it shuts down: a runner that exits then
            # was stopped with the service (a signal to the process group), not lost.
            if not getattr(server, "LISTENERS", True):
                return
            if _state["process"].poll() is not None:
                server.log.warning("job runner %s exited; starting another", _state["process"].pid)
                _state["process"] = _launch()

    threading.Thread(target=watch, name="job-runner-watchdog", daemon=True).start()


def stop(server) -> None:
    if not _state:
        return
    _state["stopping"].set()
    process = _state["process"]
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
    _state.clear()


def runner_pid() -> int | None:
    process = _state.get("process")
    return process.pid if process is not None else None
