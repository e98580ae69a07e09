"""Embedded SQLite store: the default, one file `<DATA_DIR>/decisions.sqlite3`.

Durability: WAL journal with `synchronous=FULL`. In WAL mode NORMAL already survives a
process crash (a SIGKILLed worker never loses a committed record) but may lose the
last commits on power loss or an OS crash. The API answers only after the decision
is committed and promises that every answered decision is in the log, so we pay the
fsync per commit.

Concurrency: every write starts with `BEGIN IMMEDIATE`, which takes the database
write lock up front (waiting up to BUSY_TIMEOUT_S for other threads and processes),
so "read chain_head -> insert -> update chain_head" is serialized and the chain stays
one line. Readers are not blocked (WAL) and read from a consistent snapshot.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import sqlite3
import threading
import time
from dataclasses import replace
from typing import Callable, Iterator, TypeVar

from .base import SQLStore
from .chain import timestamp_text
from .pool import ConnectionPool, PoolClosed
from .releases import ReleaseRecords
from .rows import DECISION_COLUMNS, StoredDecision
from .spool import Spool
from .store import DuplicateDecision, IdempotencyConflict, StoreError, StoreUnavailable

BUSY_TIMEOUT_S = 10.0

T = TypeVar("T")

_DB_ERRORS = (sqlite3.Error, OSError)


# A batch this large (this process's concurrent appends, group.py) commits without the
# spool: measured over HTTP at 100 connections (5 workers x 16 threads, batches of ~8), the
# spool's own transactions cost more than the fsync they let several processes share
# (decisions/s 571 -> 701 in one interleaved run).
DIRECT_BATCH = 4


class SQLiteStore(ReleaseRecords, SQLStore):
    backend = "sqlite"

    def __init__(self, path: str, *, hmac_key: bytes | None = None,
                 busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        super().__init__(hmac_key=hmac_key)
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        self._pool: ConnectionPool[sqlite3.Connection] = ConnectionPool(
            self._connect, lambda conn: conn.close())
        self._thread_turn = threading.Lock()
        self._turn_owner: int | None = None  # thread holding the writer turn (it is reentrant)
        self._spool = Spool(path + "-spool", busy_timeout_s)
        self._lock_pid: int | None = None
        self._lock_file_fd: int | None = None

    # --- connections and transactions ---------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        private_file(self.path)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves.
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout_s,
                               isolation_level=None, check_same_thread=False)
        try:
            self._enable_wal(conn)
            conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error:
            conn.close()
            raise
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        # WAL mode is stored in the file, so this is a no-op except on a brand-new
        # database. That switch needs an exclusive lock, and SQLite answers "database
        # is locked" at once, without waiting, when another process is opening the
        # same new file: retry for up to the busy timeout.
        deadline = time.monotonic() + self._busy_timeout_s
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy_error(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _transaction(self, work: Callable[[sqlite3.Connection], T], *, write: bool,
                     snapshot: bool = False, check_schema: bool = True, pipeline: bool = False) -> T:
        """Run `work` in one transaction on a pooled connection. A database error
        discards the connection (the next call opens a new one) and becomes
        StoreUnavailable; our own exceptions roll back and keep the connection."""
        for attempt in (1, 2):
            try:
                conn, reused = self._pool.acquire()
            except PoolClosed as exc:
                raise StoreUnavailable(str(exc)) from None
            except _DB_ERRORS as exc:
                raise _unavailable(exc) from exc
            try:
                if check_schema:
                    self._check_schema(conn)
                if write:
                    with self._writer_turn():
                        conn.execute("BEGIN IMMEDIATE")
                        result = work(conn)
                        conn.execute("COMMIT")
                else:
                    conn.execute("BEGIN")
                    result = work(conn)
                    conn.execute("COMMIT")
            except _DB_ERRORS as exc:
                self._pool.discard(conn)
                # A connection opened while the file was unwritable stays read-only
                # for good; nothing was written, so retry once on a fresh one.
                if reused and attempt == 1 and _is_read_only_error(exc):
                    continue
                raise _unavailable(exc) from exc
            except BaseException:
                self._rollback_and_release(conn)
                raise
            self._pool.release(conn)
            return result
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def _writer_turn(self, *, wait: bool = True):
        """Writers queue on an OS file lock before BEGIN IMMEDIATE.

        SQLite's own busy handler polls with sleeps of up to 100 ms, so under many
        concurrent writers (gunicorn workers) most of the time goes to sleeping. A
        blocking flock wakes the next writer as soon as the lock is free. The lock dies
        with its holder (even on SIGKILL). Threads of one process take turns on a mutex
        first, since flock is per open file. Without a usable lock file we fall back to
        SQLite's busy handler.

        Yields whether the turn is held. With wait=False nothing is waited for: False means
        another writer has it (or there is no lock file to take it with)."""
        if self._turn_owner == threading.get_ident():
            yield True  # already ours (a spool leader committing inside its turn)
            return
        if not self._thread_turn.acquire(blocking=wait):
            yield False
            return
        try:
            fd = self._lock_fd()
            if fd is None and not wait:
                yield False
                return
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    yield False
                    return
            self._turn_owner = threading.get_ident()
            try:
                yield True
            finally:
                self._turn_owner = None
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._thread_turn.release()

    def _spool_has_waiters(self, spool: Spool) -> bool:
        try:
            return spool.has_waiters()
        except _DB_ERRORS:
            spool.discard()
            return True  # let the spool path report it

    def _lock_fd(self) -> int | None:
        if self._lock_pid != os.getpid():  # after fork: our own open file, not the parent's
            self._lock_file_fd = None
            self._lock_pid = os.getpid()
            try:
                self._lock_file_fd = os.open(self.path + ".writer-lock", os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                self._lock_file_fd = None
        return self._lock_file_fd

    def _rollback_and_release(self, conn: sqlite3.Connection) -> None:
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            self._pool.discard(conn)
            return
        self._pool.release(conn)

    # --- group commit across processes (spool.py) ------------------------------------

    def _commit_batch(self, batch: list[tuple[StoredDecision, tuple[str, str, str] | None]]
                      ) -> list[StoredDecision | StoreError]:
        spool = self._spool
        with spool.lock:
            if len(batch) >= DIRECT_BATCH:
                # This process's own threads already share this commit (group.py): going through
                # the spool would cost more than the share of one fsync it could save.
                return super()._commit_batch(batch)
            # The write turn is free and nobody is queued in the spool: there is nothing to
            # batch with, commit directly (one transaction, none on the spool).
            with self._writer_turn(wait=False) as free:
                if free and not self._spool_has_waiters(spool):
                    return super()._commit_batch(batch)
            try:
                ids = spool.enqueue(batch)
            except _DB_ERRORS as exc:
                spool.discard()
                raise _unavailable(exc) from exc
            with self._writer_turn():
                try:
                    if not spool.all_settled(ids):
                        self._commit_spooled(spool)
                    outcomes = spool.take(ids)
                except BaseException as exc:
                    # Still holding the turn: no later leader can log what we answer 503 for.
                    try:
                        spool.drop(ids)
                    except _DB_ERRORS:
                        spool.discard()
                    if isinstance(exc, _DB_ERRORS):
                        spool.discard()
                        raise _unavailable(exc) from exc
                    raise
        results: list[StoredDecision | StoreError] = []
        for (record, idempotency), row_id in zip(batch, ids):
            status, seq, prev_hash, hash_ = outcomes[row_id]
            if status == "done":
                results.append(replace(record, seq=seq, prev_hash=prev_hash, hash=hash_))
            elif status == "idempotency":
                results.append(IdempotencyConflict(idempotency[0], idempotency[1]))
            else:
                results.append(DuplicateDecision(f"decision {record.decision_id} is already in the log"))
        return results

    def _commit_spooled(self, spool: Spool) -> None:
        """Holding the writer turn: commit every spooled append in one transaction."""
        claimed = spool.claim()
        try:
            outcomes = self._transaction(lambda conn: self._chain_spooled(conn, claimed), write=True)
        except DuplicateDecision:
            outcomes = {}
            for one in claimed:
                try:
                    outcomes.update(self._transaction(lambda conn: self._chain_spooled(conn, [one]), write=True))
                except DuplicateDecision:
                    outcomes[one[0]] = ("duplicate", None, None, None)
        except BaseException:
            spool.unclaim()
            raise
        spool.settle([(row_id, *outcome) for row_id, outcome in outcomes.items()])

    def _chain_spooled(self, conn: sqlite3.Connection, claimed) -> dict:
        # A leader that died after its COMMIT left its batch claimed: those already in
        # the log are answered from it, not appended twice.
        maybe_done = [record.decision_id for _, before, record, _ in claimed if before]
        logged = {}
        for start in range(0, len(maybe_done), 500):
            chunk = maybe_done[start:start + 500]
            logged.update((row[0], row[1:]) for row in conn.execute(
                f"SELECT decision_id, seq, prev_hash, hash FROM decisions WHERE decision_id IN "
                f"({','.join('?' * len(chunk))})", chunk))
        outcomes, to_chain = {}, []
        for row_id, before, record, idempotency in claimed:
            if before and record.decision_id in logged:
                outcomes[row_id] = ("done", *logged[record.decision_id])
            else:
                to_chain.append((row_id, record, idempotency))
        placed = self._chain(conn, [(record, idempotency) for _, record, idempotency in to_chain])
        for (row_id, _, _), result in zip(to_chain, placed):
            outcomes[row_id] = (("idempotency", None, None, None) if isinstance(result, IdempotencyConflict)
                                else ("done", result.seq, result.prev_hash, result.hash))
        return outcomes

    def ping(self) -> None:
        # A committed write: a rolled-back one would never reach the WAL file, so it
        # could not tell that the file has become unwritable.
        self._transaction(lambda conn: conn.execute("UPDATE heartbeat SET beat = beat + 1 WHERE id = 1"),
                  write=True)

    def close(self) -> None:
        self._pool.close()
        self._spool.discard()

    def is_fresh(self) -> bool:
        return self._transaction(
            lambda conn: conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0,
            write=False, check_schema=False)

    # --- dialect hooks ------------------------------------------------------------

    def _time(self, value: dt.datetime) -> str:
        return timestamp_text(value)

    def _lock_chain_head(self, conn: sqlite3.Connection) -> tuple[int, str]:
        # A write transaction (BEGIN IMMEDIATE) already holds the database write lock.
        seq, hash_ = conn.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
        return seq, hash_

    def _executemany(self, conn: sqlite3.Connection, sql: str, rows: list[tuple]) -> None:
        # One INSERT with many VALUES rows instead of executemany: the sqlite3 module lets go
        # of the GIL around every row's step, and each time this thread (which holds the
        # write turn every worker waits for) has to win the GIL back from the threads
        # evaluating. A batch of 10 decisions is 2 steps instead of ~140.
        if not rows:
            return
        head, values = sql.split(" VALUES ", 1)
        # as many rows per statement as the connection's limit on bound parameters allows
        per_statement = max(1, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(rows[0]))
        for start in range(0, len(rows), per_statement):
            chunk = rows[start:start + per_statement]
            conn.execute(f"{head} VALUES {', '.join([values] * len(chunk))}",
                         [value for row in chunk for value in row])

    def _chain_rows(self, conn: sqlite3.Connection, first_seq: int) -> Iterator[StoredDecision]:
        rows = conn.execute(
            f"SELECT {', '.join(DECISION_COLUMNS)}, "
            "(SELECT json_group_array(rule_id) FROM decision_rules r WHERE r.seq = d.seq) "
            "FROM decisions d WHERE d.seq >= ? ORDER BY d.seq", (first_seq,))
        for row in rows:
            yield StoredDecision.from_row(row[:-1], json.loads(row[-1]))

    def _table_exists(self, conn: sqlite3.Connection, name: str) -> bool:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                            (name,)).fetchone() is not None

    _integrity_errors = (sqlite3.IntegrityError,)

    def _is_duplicate_decision_id(self, exc: Exception) -> bool:
        return "decisions.decision_id" in str(exc)


# --- helpers ----------------------------------------------------------------------

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def private_file(path: str) -> None:
    """Create the database file owner-only (0600, in a 0700 directory when we create
    it) before SQLite opens it: it holds applicants' names and credit codes. SQLite
    gives its -wal and -shm files the mode of the database file. A file left
    world-readable by an older release is tightened."""
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, mode=PRIVATE_DIR_MODE, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    except FileExistsError:
        pass
    except OSError:
        return  # unwritable: SQLite reports it (reads may still work)
    for name in (path, path + "-wal", path + "-shm", path + ".writer-lock", path + "-spool-wal",
                 path + "-spool-shm"):
        try:
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, PRIVATE_FILE_MODE)
        except OSError:  # absent, or not ours to change: nothing to tighten here
            pass


def _unavailable(exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"decision log (SQLite) unavailable: {exc}")


def _is_busy_error(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _is_read_only_error(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_READONLY
