"""Group commit across the processes of one host for the embedded SQLite log.

Each process batches its own threads' appends (group.py); this batches the processes.
It is worth it when a process has few appends at once (a sync worker, a quiet threaded
one): a batch of DIRECT_BATCH or more (sqlite.py) already shares its fsync and commits
directly, and so does an append that finds the write turn free and nobody queued.
Otherwise the append is first put in a spool — a small
SQLite file beside the log, written without fsync (it only holds appends whose callers
are still waiting) — and then the writer queues for the log's write turn (an OS file
lock). Whoever gets the turn commits *every* spooled append in one transaction and one
fsync and writes each one's seq and hash back to the spool; the processes queued behind
it find theirs already committed and answer at once.

Crash safety: an append is answered only after its own row says committed. A leader
killed after its COMMIT but before writing results back leaves rows marked pending
whose decision is already in the log: the next leader recognises them (same decision
id, same content) instead of appending them twice. An append whose commit failed is
removed from the spool while its process still holds the write turn, so no later
leader can log a decision whose caller was told 503.
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time

import orjson

from .rows import StoredDecision

SETTLED_TTL_S = 60.0  # rows of callers that died before collecting their result
MAX_BATCH = 1000

_SCHEMA = """CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    record BLOB NOT NULL,       -- the prepared record (rows.StoredDecision fields, seq 0)
    idempotency BLOB,           -- [identity, key, request_sha256] or NULL
    status TEXT NOT NULL DEFAULT 'pending',  -- pending | claimed | done | duplicate | idempotency
    seq INTEGER, prev_hash TEXT, hash TEXT, settled_at REAL
)"""

_FIELDS = ("decision_id", "application_id", "ruleset_name", "ruleset_version", "ruleset_sha256",
           "outcome", "as_of", "evaluated_at", "fired_rules_json", "request_json", "response_json",
           "trace_json")


def encode(record: StoredDecision) -> bytes:
    return orjson.dumps([getattr(record, name) for name in _FIELDS])


def decode(blob: bytes) -> StoredDecision:
    return StoredDecision(0, **dict(zip(_FIELDS, orjson.loads(blob))))


class Spool:
    """One per process (and per log file); callers serialise on `lock`."""

    def __init__(self, path: str, busy_timeout_s: float) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self.lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None

    def conn(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            from .sqlite import private_file  # the same owner-only file rules as the log

            private_file(self.path)
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None,
                                   check_same_thread=False)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=OFF")  # see module doc: nothing here is durable state
                conn.execute(_SCHEMA)
            except sqlite3.Error:
                conn.close()
                raise
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def discard(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
        self._conn = None

    def enqueue(self, batch: list[tuple[StoredDecision, tuple[str, str, str] | None]]) -> list[int]:
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids = [conn.execute("INSERT INTO spool (record, idempotency) VALUES (?, ?)",
                                (encode(record), orjson.dumps(idem) if idem else None)).lastrowid
                   for record, idem in batch]
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return ids

    def has_waiters(self) -> bool:
        """Some process's append is queued here (or was claimed by a leader that died)."""
        return self.conn().execute("SELECT 1 FROM spool WHERE status IN ('pending', 'claimed') LIMIT 1"
                                   ).fetchone() is not None

    def all_settled(self, ids: list[int]) -> bool:
        marks = ",".join("?" * len(ids))
        pending = self.conn().execute(f"SELECT count(*) FROM spool WHERE id IN ({marks}) "
                                      "AND status IN ('pending', 'claimed')",
                                      ids).fetchone()[0]
        return pending == 0

    def claim(self) -> list[tuple[int, bool, StoredDecision, tuple[str, str, str] | None]]:
        """Mark the waiting appends as claimed by this leader and return them as
        (id, claimed_before, record, idempotency). claimed_before: a leader claimed it
        and died — its COMMIT may or may not have happened."""
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute("SELECT id, status, record, idempotency FROM spool "
                                "WHERE status IN ('pending', 'claimed') "
                                f"ORDER BY id LIMIT {MAX_BATCH}").fetchall()
            conn.executemany("UPDATE spool SET status = 'claimed' WHERE id = ?", [(row[0],) for row in rows])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return [(row_id, status == "claimed", decode(record), tuple(orjson.loads(idem)) if idem else None)
                for row_id, status, record, idem in rows]

    def unclaim(self) -> None:
        """The claimed batch was not committed: the others' appends wait again."""
        self.conn().execute("UPDATE spool SET status = 'pending' WHERE status = 'claimed'")

    def settle(self, outcomes: list[tuple[int, str, int | None, str | None, str | None]]) -> None:
        now = time.time()
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("UPDATE spool SET status = ?, seq = ?, prev_hash = ?, hash = ?, settled_at = ? "
                             "WHERE id = ?", [(status, seq, prev, hash_, now, row_id)
                                              for row_id, status, seq, prev, hash_ in outcomes])
            conn.execute("DELETE FROM spool WHERE settled_at < ?", (now - SETTLED_TTL_S,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def take(self, ids: list[int]) -> dict[int, tuple[str, int | None, str | None, str | None]]:
        """The outcomes of `ids` (status, seq, prev_hash, hash); their rows are removed."""
        marks = ",".join("?" * len(ids))
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute(f"SELECT id, status, seq, prev_hash, hash FROM spool WHERE id IN ({marks})",
                                ids).fetchall()
            conn.execute(f"DELETE FROM spool WHERE id IN ({marks})", ids)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return {row[0]: row[1:] for row in rows}

    def drop(self, ids: list[int]) -> None:
        marks = ",".join("?" * len(ids))
        conn = self.conn()
        conn.execute(f"DELETE FROM spool WHERE id IN ({marks})", ids)
