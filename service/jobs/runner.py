"""The job runner: a supervisor keeping N worker processes (multiprocessing, spawn).

Each worker process loops: claim work from the store-backed queue (service/jobs/queue.py),
do it, repeat. The supervisor only keeps the count: a worker that died (SIGKILL, OOM) is
replaced, and its chunk is claimed again when its lease expires. Nothing is handed from the
supervisor to a worker, so nothing is lost with one; the store is the only queue.

Who runs it: in a gunicorn deployment the master starts one runner per instance
(service/jobs/embedded.py, from gunicorn.conf.py's `when_ready`), outside the request
workers; or `python -m service.jobs run` runs it on its own (JOB_PROCESSES=0 turns the
embedded one off). Several runners (instances) on one PostgreSQL share the work.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time

from service.jobs.work import UNAVAILABLE, JobContext, JobSettings, step

log = logging.getLogger("service.jobs")

_stopping = False


def _on_term(signum, frame):
    global _stopping
    _stopping = True


def worker_main(parent_pid: int, settings_override: dict | None = None,
                job_settings: JobSettings | None = None) -> None:
    """One worker process: claim, work, repeat, until SIGTERM or its supervisor is gone."""
    from service.config import Settings

    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when we stop
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [jobs %(process)d] %(message)s")
    settings = Settings.from_env().override(settings_override)
    js = job_settings or JobSettings.from_env()
    ctx = JobContext(settings, js)
    stopping = lambda: _stopping or os.getppid() != parent_pid  # noqa: E731 - orphaned: stop
    try:
        _warm_up(ctx, stopping, js.poll_seconds)
        while not stopping():
            try:
                busy = step(ctx, stopping)
            except UNAVAILABLE as exc:
                log.warning("job store unavailable, retrying: %s", exc)
                busy = False
            except Exception:  # noqa: BLE001 - one bad job must not end the worker
                log.exception("job step failed")
                busy = False
            if not busy:
                time.sleep(js.poll_seconds)
    finally:
        try:
            ctx.queue.release(ctx.owner)  # others take over at once instead of after lease expiry
        except UNAVAILABLE:
            pass
        ctx.close()


def _warm_up(ctx: JobContext, stopping, pause: float) -> None:
    """Load the published versions before the first job asks (compiling them takes seconds)."""
    started = time.monotonic()
    while not stopping():
        try:
            ctx.catalog.sync(force=True)
            if ctx.catalog.registry.all() or time.monotonic() - started > 120:
                log.info("job process ready: %d versions loaded in %.1f s", len(ctx.catalog.registry.all()),
                         time.monotonic() - started)
                return
        except UNAVAILABLE:  # e.g. a brand-new store the app has not migrated yet
            pass
        time.sleep(pause)  # the app has not published the shipped rulesets yet


class Runner:
    def __init__(self, processes: int, *, settings_override: dict | None = None,
                 job_settings: JobSettings | None = None):
        self.processes = processes
        self.settings_override = settings_override
        self.job_settings = job_settings
        self._mp = multiprocessing.get_context("spawn")  # fresh interpreters: no forked engine state
        self.workers: list = []
        self._stop = False

    def _spawn(self):
        p = self._mp.Process(target=worker_main, name="credit-rules-job",
                             args=(os.getpid(), self.settings_override, self.job_settings), daemon=True)
        p.start()
        return p

    def start(self) -> "Runner":
        self.workers = [self._spawn() for _ in range(self.processes)]
        return self

    def supervise_once(self) -> None:
        for i, p in enumerate(self.workers):
            if not p.is_alive() and not self._stop:
                log.warning("job process %s exited (%s); starting another", p.pid, p.exitcode)
                self.workers[i] = self._spawn()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop = True
        for p in self.workers:
            if p.is_alive():
                p.terminate()  # SIGTERM: the worker gives its lease back and exits
        deadline = time.monotonic() + timeout
        for p in self.workers:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join()

    def __enter__(self) -> "Runner":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def run_forever(processes: int, parent_pid: int | None = None) -> None:
    """The runner as a process of its own (`python -m service.jobs run`)."""
    global _stopping
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    runner = Runner(processes).start()
    log.info("job runner %s: %d processes %s", os.getpid(), processes, [p.pid for p in runner.workers])
    try:
        while not _stopping:
            if parent_pid is not None and os.getppid() != parent_pid:
                log.warning("the gunicorn master %s is gone; stopping", parent_pid)
                break
            runner.supervise_once()
            time.sleep(0.5)
    finally:
        runner.stop()
