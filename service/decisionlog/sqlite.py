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
from typing import Callable, TypeVar

from . import migrations
from .chain import timestamp_text
from .releases import ReleaseRecords
from .pool import ConnectionPool, PoolClosed
from .rows import (
    DECISION_COLUMNS,
    RetentionAnchor,
    StoredDecision,
    prepare_decision,
    decision_query,
    latest_anchor,
    orphan_index_seq,
    ruleset_row,
)
from .store import (
    SOURCE_FORMATS,
    DecisionFilter,
    DuplicateDecision,
    LoggedDecision,
    NewDecision,
    NotFound,
    RulesetVersionRow,
    SchemaNotMigrated,
    Store,
    StoreError,
    StoreUnavailable,
    VersionConflict,
    VerifyReport,
)
from .verify import verify_chain

BUSY_TIMEOUT_S = 10.0

T = TypeVar("T")

_RULESET_COLUMNS = (
    "name, version, sha256, canonical_json, source_text, source_format, "
    "published_at, published_by, retired_at, retired_by"
)
_DB_ERRORS = (sqlite3.Error, OSError)


class SQLiteStore(ReleaseRecords, Store):
    backend = "sqlite"

    def __init__(self, path: str, *, hmac_key: bytes | None = None,
                 busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.path = path
        self._key = hmac_key
        self._busy_timeout_s = busy_timeout_s
        self._schema_ok = False
        self._pool: ConnectionPool[sqlite3.Connection] = ConnectionPool(
            self._connect, lambda conn: conn.close())
        self._thread_turn = threading.Lock()
        self._lock_pid: int | None = None
        self._lock_file_fd: int | None = None

    # --- connections and transactions ---------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
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

    def _run(self, work: Callable[[sqlite3.Connection], T], *, write: bool,
             check_schema: bool = True) -> T:
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
    def _writer_turn(self):
        """Writers queue on an OS file lock before BEGIN IMMEDIATE.

        SQLite's own busy handler polls with sleeps of up to 100 ms, so under many
        concurrent writers (gunicorn workers) most of the time goes to sleeping. A
        blocking flock wakes the next writer as soon as the lock is free. The lock dies
        with its holder (even on SIGKILL). Threads of one process take turns on a mutex
        first, since flock is per open file. Without a usable lock file we fall back to
        SQLite's busy handler."""
        with self._thread_turn:
            fd = self._lock_fd()
            if fd is None:
                yield
                return
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

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

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        if self._schema_ok:
            return
        missing = self._pending(conn)
        if missing:
            raise SchemaNotMigrated(
                f"decision log schema is not migrated (pending: {', '.join(missing)}); "
                "run `python -m service.decisionlog migrate`")
        self._schema_ok = True

    # --- lifecycle ----------------------------------------------------------------

    def migrate(self) -> list[str]:
        def apply(conn: sqlite3.Connection) -> list[str]:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                         "id TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
            applied = {row[0] for row in conn.execute("SELECT id FROM schema_migrations")}
            done = []
            for migration in migrations.MIGRATIONS:
                if migration.id in applied:
                    continue
                for statement in migration.sqlite:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations (id, applied_at) VALUES (?, ?)",
                             (migration.id, timestamp_text(_now())))
                done.append(migration.id)
            return done

        # BEGIN IMMEDIATE is the lock: a second migrating process waits, then finds
        # everything applied.
        applied = self._run(apply, write=True, check_schema=False)
        self._schema_ok = False
        return applied

    def is_fresh(self) -> bool:
        return self._run(
            lambda conn: conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0,
            write=False, check_schema=False)

    def pending_migrations(self) -> list[str]:
        return self._run(self._pending, write=False, check_schema=False)

    def _pending(self, conn: sqlite3.Connection) -> list[str]:
        tracked = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                               "AND name = 'schema_migrations'").fetchone()
        applied = ({row[0] for row in conn.execute("SELECT id FROM schema_migrations")}
                   if tracked else set())
        return migrations.pending(applied)

    def ping(self) -> None:
        # A committed write: a rolled-back one would never reach the WAL file, so it
        # could not tell that the file has become unwritable.
        self._run(lambda conn: conn.execute("UPDATE heartbeat SET beat = beat + 1 WHERE id = 1"),
                  write=True)

    def close(self) -> None:
        self._pool.close()

    # --- ruleset registry ---------------------------------------------------------

    def publish_version(self, name: str, version: str, sha256: str, canonical_json: str,
                        source_text: str, source_format: str,
                        published_by: str | None, *,
                        after_insert: Callable | None = None) -> tuple[RulesetVersionRow, bool]:
        if source_format not in SOURCE_FORMATS:
            raise ValueError(f"source_format must be one of {', '.join(SOURCE_FORMATS)}")

        def publish(conn: sqlite3.Connection) -> tuple[RulesetVersionRow, bool]:
            inserted = conn.execute(
                f"INSERT INTO ruleset_versions ({_RULESET_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL) "
                f"ON CONFLICT (name, version) DO NOTHING RETURNING {_RULESET_COLUMNS}",
                (name, version, sha256, canonical_json, source_text, source_format,
                 timestamp_text(_now()), published_by),
            ).fetchall()
            if inserted:
                _bump_generation(conn)
                if after_insert is not None:  # release records, in the same transaction
                    after_insert(conn)
                return ruleset_row(inserted[0]), True
            existing = _select_version(conn, name, version)
            if existing.sha256 != sha256:
                raise VersionConflict(
                    f"{name} {version} is already published with different content "
                    f"(sha256 {existing.sha256})")
            return existing, False

        return self._run(publish, write=True)

    def list_versions(self, name: str | None = None) -> list[RulesetVersionRow]:
        where, params = ("WHERE name = ?", (name,)) if name is not None else ("", ())
        sql = f"SELECT {_RULESET_COLUMNS} FROM ruleset_versions {where} ORDER BY name, id"
        rows = self._run(lambda conn: conn.execute(sql, params).fetchall(), write=False)
        return [ruleset_row(row) for row in rows]

    def get_version(self, name: str, version: str) -> RulesetVersionRow | None:
        return self._run(lambda conn: _select_version(conn, name, version), write=False)

    def retire_version(self, name: str, version: str, retired_by: str | None, *,
                       after_retire: Callable | None = None) -> RulesetVersionRow:
        def retire(conn: sqlite3.Connection) -> RulesetVersionRow:
            row = _select_version(conn, name, version)
            if row is None:
                raise NotFound(f"ruleset {name} version {version} is not published")
            if row.retired:
                return row
            conn.execute("UPDATE ruleset_versions SET retired_at = ?, retired_by = ? "
                         "WHERE name = ? AND version = ?",
                         (timestamp_text(_now()), retired_by, name, version))
            _bump_generation(conn)
            if after_retire is not None:
                after_retire(conn)
            return _select_version(conn, name, version)

        return self._run(retire, write=True)

    def registry_generation(self) -> int:
        return self._run(
            lambda conn: conn.execute(
                "SELECT generation FROM registry_state WHERE id = 1").fetchone()[0],
            write=False)

    # --- decision log -------------------------------------------------------------

    def append_decision(self, rec: NewDecision) -> LoggedDecision:
        prepared = prepare_decision(rec)  # serialise outside the write lock

        def append(conn: sqlite3.Connection) -> StoredDecision:
            head_seq, head_hash = conn.execute(
                "SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
            stored = prepared.chained(head_seq + 1, head_hash, self._key)
            try:
                conn.execute(f"INSERT INTO decisions ({', '.join(DECISION_COLUMNS)}) "
                             f"VALUES ({', '.join('?' * len(DECISION_COLUMNS))})",
                             stored.column_values())
            except sqlite3.IntegrityError as exc:
                raise _insert_conflict(exc, rec.decision_id) from exc
            conn.executemany("INSERT INTO decision_rules (seq, rule_id) VALUES (?, ?)",
                             [(stored.seq, rule_id) for rule_id in stored.fired_rule_ids()])
            conn.execute("UPDATE chain_head SET seq = ?, hash = ? WHERE id = 1",
                         (stored.seq, stored.hash))
            return stored

        return self._run(append, write=True).to_logged(rec)

    def get_decision(self, decision_id: str) -> LoggedDecision | None:
        row = self._run(
            lambda conn: conn.execute(
                f"SELECT {', '.join(DECISION_COLUMNS)} FROM decisions WHERE decision_id = ?",
                (decision_id,)).fetchone(),
            write=False)
        return StoredDecision.from_row(row).to_logged() if row else None

    def _select_decisions(self, filters: DecisionFilter, *, after_seq: int,
                          upto_seq: int | None, limit: int,
                          with_payloads: bool) -> list[StoredDecision]:
        sql, params = decision_query(filters, after_seq=after_seq, upto_seq=upto_seq, limit=limit,
                                     with_payloads=with_payloads, placeholder="?", time_param=timestamp_text)
        rows = self._run(lambda conn: conn.execute(sql, params).fetchall(),
                         write=False)
        return [StoredDecision.from_row(row) for row in rows]

    def _head_seq(self) -> int:
        return self._run(
            lambda conn: conn.execute("SELECT seq FROM chain_head WHERE id = 1").fetchone()[0],
            write=False)

    def verify(self, *, expected_head: tuple[int, str] | None = None) -> VerifyReport:
        def walk(conn: sqlite3.Connection) -> VerifyReport:
            # Inside one read transaction: every SELECT sees the same snapshot.
            head = conn.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
            anchor = latest_anchor(conn)
            rows = conn.execute(
                f"SELECT {', '.join(DECISION_COLUMNS)}, "
                "(SELECT json_group_array(rule_id) FROM decision_rules r WHERE r.seq = d.seq) "
                "FROM decisions d WHERE d.seq >= ? ORDER BY d.seq",
                (anchor.first_seq if anchor else 1,))
            records = (StoredDecision.from_row(row[:-1], json.loads(row[-1])) for row in rows)
            return verify_chain(records, head=(head[0], head[1]), anchor=anchor, key=self._key,
                                expected_head=expected_head,
                                find_orphan_index_seq=lambda: orphan_index_seq(conn))

        return self._run(walk, write=False)

    def purge_before(self, cutoff: dt.datetime) -> int:
        def purge(conn: sqlite3.Connection) -> int:
            head_seq = conn.execute("SELECT seq FROM chain_head WHERE id = 1").fetchone()[0]
            anchor = latest_anchor(conn)
            floor = anchor.first_seq if anchor else 1
            first_kept = conn.execute(
                "SELECT seq FROM decisions WHERE evaluated_at >= ? ORDER BY seq LIMIT 1",
                (timestamp_text(cutoff),)).fetchone()
            first_kept_seq = first_kept[0] if first_kept else head_seq + 1
            if first_kept_seq <= floor:
                return 0
            last_purged = conn.execute("SELECT hash FROM decisions WHERE seq = ?",
                                       (first_kept_seq - 1,)).fetchone()
            if last_purged is None:
                raise StoreError(f"cannot purge: record seq {first_kept_seq - 1} is missing "
                                 "(run verify)")
            deleted = conn.execute("DELETE FROM decisions WHERE seq < ?",
                                   (first_kept_seq,)).rowcount
            conn.execute("DELETE FROM decision_rules WHERE seq < ?", (first_kept_seq,))
            new_anchor = RetentionAnchor(first_kept_seq, last_purged[0], cutoff, _now(),
                                         deleted, anchor_hash="")
            conn.execute(
                "INSERT INTO retention_anchor (first_seq, prev_hash, purged_before, purged_at, "
                "purged_count, anchor_hash) VALUES (?, ?, ?, ?, ?, ?)",
                (new_anchor.first_seq, new_anchor.prev_hash, timestamp_text(cutoff),
                 timestamp_text(new_anchor.purged_at), deleted,
                 new_anchor.expected_hash(self._key)))
            return deleted

        return self._run(purge, write=True)


# --- helpers ----------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _unavailable(exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"decision log (SQLite) unavailable: {exc}")


def _is_busy_error(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _is_read_only_error(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_READONLY


def _insert_conflict(exc: sqlite3.IntegrityError, decision_id: str) -> StoreError:
    if "decisions.decision_id" in str(exc):
        return DuplicateDecision(f"decision {decision_id} is already in the log")
    # seq taken: chain_head is behind the stored records, the log needs an audit
    return StoreUnavailable(f"decision log is inconsistent ({exc}); run verify")


def _bump_generation(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE registry_state SET generation = generation + 1 WHERE id = 1")


def _select_version(conn: sqlite3.Connection, name: str, version: str) -> RulesetVersionRow | None:
    row = conn.execute(f"SELECT {_RULESET_COLUMNS} FROM ruleset_versions "
                       "WHERE name = ? AND version = ?", (name, version)).fetchone()
    return ruleset_row(row) if row else None


