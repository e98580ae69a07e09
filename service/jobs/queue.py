"""The job queue in the store: `jobs` and `job_chunks` (migration 0020_jobs), SQLite or PostgreSQL.

A job is planned once into chunks (ranges of decision-log seqs, or of given
applications). Processes claim a chunk by writing a lease (owner + expiry) on its row; a
lease that is not renewed in time (its process was SIGKILLed, its machine vanished) can
be claimed again by anyone. A chunk's result is written with the chunk marked done and the
job's progress advanced, in one transaction, and only while the job is still running: a
cancelled job takes no more results. Completing the last chunk reduces the chunk results
into the job's result in that same transaction, so a job is never left "all chunks done,
no result". Work is deterministic, so a chunk done twice (a stale lease holder finishing
late) gives the same answer and is counted once.

Its own connections, on the same database as the decision log (one per process/thread
user, reopened after an error): job bookkeeping never waits on, or holds, a decision
write's turn for longer than one short transaction.
"""
from __future__ import annotations

import datetime as dt
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from uuid6 import uuid7

from service import canonical
from service.decisionlog import SQLITE_FILENAME, StoreUnavailable

STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
# A chunk claimed this many times without finishing (each claimer died) fails its job.
MAX_ATTEMPTS = 5

_JOB_COLUMNS = ("id, kind, ruleset, params, status, created_by, created_at, started_at, finished_at, "
                "total, done, result, error")


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    ruleset: str
    params: dict
    status: str
    created_by: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    total: int | None
    done: int
    result_json: str | None
    error: str | None

    @property
    def result(self) -> Any:
        return canonical.loads(self.result_json) if self.result_json is not None else None


@dataclass(frozen=True)
class Chunk:
    job_id: str
    chunk_no: int
    lo: int
    hi: int
    cases: int
    attempts: int


def _now_text() -> str:
    return canonical.utc_text(dt.datetime.now(dt.timezone.utc))


def _job(row) -> Job:
    (id_, kind, ruleset, params, status, created_by, created_at, started_at, finished_at,
     total, done, result, error) = row
    return Job(id_, kind, ruleset, canonical.loads(params), status, created_by, created_at, started_at,
               finished_at, total, done, result, error)


class JobQueue:
    """Thread-safe; open one per process (after fork)."""

    def __init__(self, database_url: str | None, data_dir: str, *, busy_timeout_s: float = 10.0):
        self.database_url = database_url
        self.path = None if database_url else os.path.join(data_dir, SQLITE_FILENAME)
        self._busy_timeout_s = busy_timeout_s
        self._conn = None
        self._pid = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> "JobQueue":
        return cls(settings.database_url, settings.data_dir)

    # -- connections -----------------------------------------------------------------

    def _connect(self):
        if self.database_url:
            import psycopg

            return psycopg.connect(self.database_url, autocommit=False, connect_timeout=5)
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def _tx(self, work: Callable[[Callable], Any]) -> Any:
        """Run `work(execute)` in one write transaction; any database error -> StoreUnavailable."""
        errors: tuple = (sqlite3.Error, OSError)
        if self.database_url:
            import psycopg

            errors = (psycopg.Error, OSError)
        with self._lock:
            if self._pid != os.getpid():  # never use a parent's connection after fork
                self._conn, self._pid = None, os.getpid()
            try:
                if self._conn is None:
                    self._conn = self._connect()
                conn = self._conn
                if self.database_url:
                    def execute(sql, params=()):
                        cur = conn.execute(sql.replace("?", "%s"), params)
                        return cur.fetchall() if cur.description else cur.rowcount
                    try:
                        result = work(execute)
                        conn.commit()
                    except BaseException:
                        conn.rollback()
                        raise
                    return result

                def execute(sql, params=()):
                    cur = conn.execute(sql, params)
                    return cur.fetchall() if cur.description else cur.rowcount
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(execute)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                return result
            except errors as exc:
                try:
                    self._conn.close()
                except Exception:  # noqa: BLE001 - the connection is being dropped anyway
                    pass
                self._conn = None
                raise StoreUnavailable(f"job store unavailable: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    # -- jobs ------------------------------------------------------------------------

    def create(self, kind: str, ruleset: str, params: dict, created_by: str | None) -> Job:
        job_id = str(uuid7())
        text = canonical.dumps(params)

        def work(execute):
            execute("INSERT INTO jobs (id, kind, ruleset, params, status, created_by, created_at) "
                    "VALUES (?, ?, ?, ?, 'queued', ?, ?)", (job_id, kind, ruleset, text, created_by, _now_text()))
            return _job(execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))[0])
        return self._tx(work)

    def get(self, job_id: str) -> Job | None:
        rows = self._tx(lambda execute: execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)))
        return _job(rows[0]) if rows else None

    def recent(self, limit: int = 20, ruleset: str | None = None) -> list[Job]:
        """The newest jobs first (ids are uuid7: they sort by creation time)."""
        where, params = ("WHERE ruleset = ? ", (ruleset, limit)) if ruleset else ("", (limit,))
        rows = self._tx(lambda execute: execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs {where}ORDER BY created_at DESC, id DESC LIMIT ?", params))
        return [_job(r) for r in rows]

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued or running job (a finished one stays as it is)."""
        def work(execute):
            execute("UPDATE jobs SET status = 'cancelled', finished_at = ? WHERE id = ? "
                    "AND status IN ('queued', 'running')", (_now_text(), job_id))
            rows = execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
            return _job(rows[0]) if rows else None
        return self._tx(work)

    def fail(self, job_id: str, error: str) -> None:
        self._tx(lambda execute: execute(
            "UPDATE jobs SET status = 'failed', error = ?, finished_at = ? WHERE id = ? "
            "AND status IN ('queued', 'running')", (error[:2000], _now_text(), job_id)))

    # -- planning --------------------------------------------------------------------

    def claim_plan(self, owner: str, lease_s: float) -> Job | None:
        """A queued job to plan, leased to `owner` (an expired planner's job is claimable again)."""
        now = time.time()

        def work(execute):
            lock = " FOR UPDATE SKIP LOCKED" if self.database_url else ""
            rows = execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE status = 'queued' "
                           f"AND (plan_expires IS NULL OR plan_expires < ?) ORDER BY created_at, id LIMIT 1{lock}", (now,))
            if not rows:
                return None
            job = _job(rows[0])
            execute("UPDATE jobs SET plan_owner = ?, plan_expires = ? WHERE id = ?", (owner, now + lease_s, job.id))
            return job
        return self._tx(work)

    def finish_plan(self, job_id: str, owner: str, chunks: list[tuple[int, int, int]],
                    empty_result: Callable[[], str]) -> bool:
        """Store the plan and start the job, if this planner still holds it and it was not cancelled.
        A job with nothing to do is done at once (`empty_result()` is its result)."""
        def work(execute):
            rows = execute("SELECT status, plan_owner FROM jobs WHERE id = ?" + (" FOR UPDATE" if self.database_url else ""),
                           (job_id,))
            if not rows or rows[0] != ("queued", owner):
                return False
            for no, (lo, hi, cases) in enumerate(chunks):
                execute("INSERT INTO job_chunks (job_id, chunk_no, lo, hi, cases, status) VALUES (?, ?, ?, ?, ?, 'pending')",
                        (job_id, no, lo, hi, cases))
            total = sum(c[2] for c in chunks)
            now = _now_text()
            if chunks:
                execute("UPDATE jobs SET status = 'running', total = ?, started_at = ?, plan_owner = NULL, "
                        "plan_expires = NULL WHERE id = ?", (total, now, job_id))
            else:
                execute("UPDATE jobs SET status = 'done', total = 0, started_at = ?, finished_at = ?, result = ?, "
                        "plan_owner = NULL, plan_expires = NULL WHERE id = ?", (now, now, empty_result(), job_id))
            return True
        return self._tx(work)

    # -- chunks ----------------------------------------------------------------------

    def claim_chunk(self, owner: str, lease_s: float) -> tuple[Job, Chunk] | None:
        """The next pending (or lease-expired) chunk of the oldest running job, leased to `owner`."""
        now = time.time()

        def work(execute):
            lock = " FOR UPDATE OF c SKIP LOCKED" if self.database_url else ""
            rows = execute(
                "SELECT c.job_id, c.chunk_no, c.lo, c.hi, c.cases, c.attempts FROM job_chunks c "
                "JOIN jobs j ON j.id = c.job_id WHERE j.status = 'running' "
                "AND (c.status = 'pending' OR (c.status = 'running' AND c.lease_expires < ?)) "
                f"ORDER BY j.created_at, c.job_id, c.chunk_no LIMIT 1{lock}", (now,))
            if not rows:
                return None
            chunk = Chunk(*rows[0])
            job = _job(execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (chunk.job_id,))[0])
            if chunk.attempts >= MAX_ATTEMPTS:
                execute("UPDATE jobs SET status = 'failed', error = ?, finished_at = ? WHERE id = ?",
                        (f"chunk {chunk.chunk_no} was claimed {chunk.attempts} times and never finished",
                         _now_text(), chunk.job_id))
                return None
            execute("UPDATE job_chunks SET status = 'running', lease_owner = ?, lease_expires = ?, "
                    "attempts = attempts + 1 WHERE job_id = ? AND chunk_no = ?",
                    (owner, now + lease_s, chunk.job_id, chunk.chunk_no))
            return job, Chunk(chunk.job_id, chunk.chunk_no, chunk.lo, chunk.hi, chunk.cases, chunk.attempts + 1)
        return self._tx(work)

    def renew(self, chunk: Chunk, owner: str, lease_s: float) -> bool:
        """Extend the lease; False when it is lost or the job is no longer running (cancelled)."""
        def work(execute):
            status = execute("SELECT status FROM jobs WHERE id = ?", (chunk.job_id,))
            if not status or status[0][0] != "running":
                return False
            return execute("UPDATE job_chunks SET lease_expires = ? WHERE job_id = ? AND chunk_no = ? "
                           "AND lease_owner = ? AND status = 'running'",
                           (time.time() + lease_s, chunk.job_id, chunk.chunk_no, owner)) == 1
        return self._tx(work)

    def complete_chunk(self, chunk: Chunk, owner: str, result: str,
                       reduce: Callable[[list[str]], str]) -> str:
        """Record a chunk's result. Returns "recorded", "finished" (it was the last chunk: the
        job is done, `reduce(chunk results in order)` is its result) or "dropped" (the job was
        cancelled or failed, or the chunk was already done)."""
        def work(execute):
            # Locks the job row first (PostgreSQL), so two last chunks cannot both miss being last.
            advanced = execute("UPDATE jobs SET done = done + ? WHERE id = ? AND status = 'running' AND EXISTS "
                               "(SELECT 1 FROM job_chunks WHERE job_id = ? AND chunk_no = ? AND status <> 'done')",
                               (chunk.cases, chunk.job_id, chunk.job_id, chunk.chunk_no))
            if advanced != 1:
                return "dropped"
            execute("UPDATE job_chunks SET status = 'done', result = ?, lease_owner = ?, lease_expires = NULL "
                    "WHERE job_id = ? AND chunk_no = ?", (result, owner, chunk.job_id, chunk.chunk_no))
            left = execute("SELECT count(*) FROM job_chunks WHERE job_id = ? AND status <> 'done'", (chunk.job_id,))[0][0]
            if left:
                return "recorded"
            parts = [r[0] for r in execute("SELECT result FROM job_chunks WHERE job_id = ? ORDER BY chunk_no",
                                           (chunk.job_id,))]
            execute("UPDATE jobs SET status = 'done', result = ?, finished_at = ? WHERE id = ?",
                    (reduce(parts), _now_text(), chunk.job_id))
            return "finished"
        return self._tx(work)

    def release(self, owner: str) -> None:
        """Give up every lease of `owner` at once (a graceful stop), so others need not wait for expiry."""
        def work(execute):
            execute("UPDATE job_chunks SET lease_expires = 0 WHERE lease_owner = ? AND status = 'running'", (owner,))
            execute("UPDATE jobs SET plan_expires = 0 WHERE plan_owner = ? AND status = 'queued'", (owner,))
        self._tx(work)

    def chunk_states(self, job_id: str) -> list[tuple[int, str, int]]:
        """(chunk_no, status, attempts) of a job's chunks, for tests and diagnostics."""
        return [tuple(r) for r in self._tx(lambda execute: execute(
            "SELECT chunk_no, status, attempts FROM job_chunks WHERE job_id = ? ORDER BY chunk_no", (job_id,)))]
