"""PostgreSQL store: one registry and one decision log shared by every instance.

Concurrency: an append locks the single `chain_head` row (SELECT ... FOR UPDATE) for
its transaction, so "read head -> insert -> update head" is serialized across every
thread, process and instance; waiting is capped by LOCK_TIMEOUT_MS (then 503, never
a hung request). Publishing relies on INSERT ... ON CONFLICT DO NOTHING: of two
instances publishing the same version at once, exactly one inserts.

Reconnection: connections are pooled per Store. A connection that saw an error is
discarded. An idle connection that died while pooled (server restarted) fails on its
first statement; that call is retried once on a fresh connection, which is safe
because nothing was committed.
"""
from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import replace
from typing import Callable, Iterator, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from .base import SQLStore
from .chain import to_utc
from .pool import ConnectionPool, PoolClosed
from .releases import ReleaseRecords
from .rows import DECISION_COLUMNS, StoredDecision, parse_timestamp_text
from .store import DuplicateDecision, StoreUnavailable

# %b: binary parameters (a text-format array would quote and escape every 10 KB JSON text).
_CHAIN_APPEND = "SELECT o_seq, o_prev_hash, o_hash FROM chain_append(" + ", ".join(["%b"] * 16) + ")"

CONNECT_TIMEOUT_S = 5
LOCK_TIMEOUT_MS = 10_000
VERIFY_FETCH_SIZE = 2000
_MIGRATION_LOCK_ID = 7_301_116_021  # pg_advisory_xact_lock key for `migrate`
_SIGNER_LOCK_ID = 7_301_116_022  # pg_try_advisory_xact_lock key of the checkpoint signer

T = TypeVar("T")


@contextlib.contextmanager
def _autocommit(conn: psycopg.Connection):
    """The connection in autocommit for the block (BEGIN/COMMIT, if any, sent as statements).
    A block that leaves a transaction open or aborted closes the connection: never reused."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.commit()  # the schema check's read (once per store)
    conn.autocommit = True
    try:
        yield
    finally:
        if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            conn.autocommit = False
        else:
            conn.close()


class PostgresStore(ReleaseRecords, SQLStore):
    backend = "postgresql"

    def __init__(self, url: str, *, hmac_key: bytes | None = None) -> None:
        try:
            self._password = conninfo_to_dict(url).get("password")
        except psycopg.Error:
            raise ValueError("DATABASE_URL is not a valid PostgreSQL URL") from None
        super().__init__(hmac_key=hmac_key)
        self._url = url
        self._pool: ConnectionPool[psycopg.Connection] = ConnectionPool(
            self._connect, lambda conn: conn.close())

    # --- connections and transactions ---------------------------------------------

    def _connect(self) -> psycopg.Connection:
        # keepalives: notice a vanished server on an idle connection instead of hanging
        return psycopg.connect(self._url, autocommit=False, connect_timeout=CONNECT_TIMEOUT_S,
                               keepalives=1, keepalives_idle=30, keepalives_interval=10,
                               keepalives_count=3)

    def _transaction(self, work: Callable[[psycopg.Connection], T], *, write: bool = True,
                     snapshot: bool = False, check_schema: bool = True, commit: bool = True,
                     pipeline: bool = False, single_statement: bool = False) -> T:
        """Run `work` in one transaction on a pooled connection (see module doc).
        snapshot: a REPEATABLE READ READ ONLY transaction (one consistent view).
        commit=False: roll back at the end instead of committing.
        single_statement: `work` runs one statement, in autocommit (it is its own transaction)."""
        for attempt in (1, 2):
            try:
                conn, reused = self._pool.acquire()
            except PoolClosed as exc:
                raise StoreUnavailable(str(exc)) from None
            except psycopg.Error as exc:
                raise self._unavailable(exc) from exc
            committing = False
            try:
                if snapshot:
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                if check_schema:
                    self._check_schema(conn)
                if single_statement:
                    with _autocommit(conn):
                        # Not `committing`: a pooled connection found dead on this statement is
                        # retried once. Had the statement committed before the connection broke,
                        # the retry meets its own rows (see _chain_batch).
                        result = work(conn)
                elif pipeline:
                    # Statements go out without waiting for each answer: an append is two
                    # round trips (BEGIN + lock the head; insert + move the head + COMMIT), so
                    # the chain_head lock is held for about one round trip per batch. BEGIN
                    # and COMMIT are sent as statements: psycopg's implicit BEGIN waits for
                    # its answer, and conn.commit() syncs once more before the pipeline's own
                    # closing sync (measured at 1 ms each way: 4 round trips -> 2).
                    with _autocommit(conn), conn.pipeline():
                        conn.execute("BEGIN")
                        result = work(conn)
                        committing = True
                        conn.execute("COMMIT")
                    # (the pipeline's closing sync brought COMMIT's outcome, or the batch's error)
                else:
                    result = work(conn)
                    committing = True
                    conn.commit() if commit else conn.rollback()
            except psycopg.Error as exc:
                died_while_idle = reused and conn.broken and not committing
                self._pool.discard(conn)
                if died_while_idle and attempt == 1:
                    continue
                if isinstance(exc, pg_errors.UniqueViolation) and self._is_duplicate_decision_id(exc):
                    # pipelined: the insert's error arrives with the COMMIT
                    raise DuplicateDecision("a decision of this batch is already in the log") from exc
                raise self._unavailable(exc) from exc
            except BaseException:
                self._rollback_and_release(conn)
                raise
            self._pool.release(conn)
            return result
        raise AssertionError("unreachable")

    # --- chaining on the server (migration 0004) ------------------------------------

    def _chain_batch(self, batch):
        """Without an HMAC key or idempotency keys, `chain_append` chains the whole batch in one
        autocommit statement: one round trip, and the chain_head lock is held only while the
        function runs, not across the network (so instances do not queue on round trips).
        Otherwise the client chains it (base.SQLStore._chain), two round trips."""
        if self._key is not None or any(idempotency is not None for _, idempotency in batch):
            return super()._chain_batch(batch)
        records = [record for record, _ in batch]
        columns = [[] for _ in range(14)]
        rule_record, rule_id = [], []
        for n, record in enumerate(records, start=1):
            before, after = record.hashed_text_around_seq()
            for column, value in zip(columns, (
                    record.decision_id, record.application_id, record.ruleset_name, record.ruleset_version,
                    record.ruleset_sha256, record.outcome, record.as_of,
                    to_utc(parse_timestamp_text(record.evaluated_at)), record.fired_rules_json,
                    record.request_json, record.response_json, record.trace_json, before, after)):
                column.append(value)
            for rule in record.fired_rule_ids():
                rule_record.append(n)
                rule_id.append(rule)
        runs = 0

        def append(conn):
            nonlocal runs
            runs += 1
            return conn.execute(_CHAIN_APPEND, (*columns, rule_record, rule_id)).fetchall()

        try:
            rows = self._transaction(append, single_statement=True)
        except DuplicateDecision:
            # Run twice: the first connection broke, perhaps after the statement committed.
            already = self._already_logged(records) if runs > 1 else None
            if already is None:
                raise
            return already
        placed = []
        for record, (seq, prev_hash, hash_) in zip(records, rows):
            # The server's hash must be the one verify computes (chained: chain.record_hash, from
            # the text prepared for the append); a database whose text is not UTF-8 underneath
            # would break it, so say so now rather than at the next audit.
            record = record.chained(seq, prev_hash, None)
            if record.hash != hash_:
                raise StoreUnavailable(f"decision log (PostgreSQL): the database hashed record {seq} "
                                       "differently from the service (is the database UTF8?); run verify")
            placed.append(record)
        return placed

    def _already_logged(self, records: list[StoredDecision]) -> list[StoredDecision] | None:
        """The logged rows of `records` when every one of them is already in the log with the
        very content we are appending (a retried statement whose first run had committed);
        None otherwise (a real duplicate id)."""
        ids = [record.decision_id for record in records]
        found = self._transaction(lambda conn: {
            row[1]: StoredDecision.from_row(row) for row in conn.execute(
                f"SELECT {', '.join(DECISION_COLUMNS)} FROM decisions WHERE decision_id = ANY(%s)", (ids,))})
        placed = []
        for record in records:
            logged = found.get(record.decision_id)
            if logged is None or replace(record, seq=logged.seq, prev_hash=logged.prev_hash,
                                         hash=logged.hash).column_values() != logged.column_values():
                return None
            placed.append(logged)
        return placed

    def _rollback_and_release(self, conn: psycopg.Connection) -> None:
        try:
            conn.rollback()
        except psycopg.Error:
            self._pool.discard(conn)
            return
        self._pool.release(conn)

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        text = str(exc).strip()
        first_line = text.splitlines()[0][:300] if text else type(exc).__name__
        if self._password:  # libpq does not echo passwords; belt and braces
            first_line = first_line.replace(self._password, "***")
        return StoreUnavailable(f"decision log (PostgreSQL) unavailable: {first_line}")

    def is_fresh(self) -> bool:
        return self._transaction(
            lambda conn: conn.execute(
                "SELECT to_regclass('schema_migrations') IS NULL").fetchone()[0],
            check_schema=False)

    def ping(self) -> None:
        # A real write, rolled back: proves the server accepts writes (not down, not a
        # read-only standby) without piling up heartbeat rows from every instance.
        self._transaction(lambda conn: conn.execute("UPDATE heartbeat SET beat = beat + 1 WHERE id = 1"),
                  commit=False)

    def close(self) -> None:
        self._pool.close()

    # --- dialect hooks ------------------------------------------------------------

    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _time(self, value: dt.datetime) -> dt.datetime:
        return to_utc(value)

    def _lock_chain_head(self, conn: psycopg.Connection) -> tuple[int, str]:
        # Waiting is capped: a stuck holder means 503, never a hung request.
        conn.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
        seq, hash_ = conn.execute("SELECT seq, hash FROM chain_head WHERE id = 1 FOR UPDATE").fetchone()
        return seq, hash_

    def _executemany(self, conn: psycopg.Connection, sql: str, rows: list[tuple]) -> None:
        with conn.cursor() as cursor:
            cursor.executemany(sql, rows)  # pipelined: one round trip for all rows

    def _chain_rows(self, conn: psycopg.Connection, first_seq: int) -> Iterator[StoredDecision]:
        # A server-side cursor streams the records: bounded memory at any size.
        with conn.cursor(name="decisionlog_verify") as cursor:
            cursor.itersize = VERIFY_FETCH_SIZE
            cursor.execute(
                f"SELECT {', '.join(DECISION_COLUMNS)}, "
                "ARRAY(SELECT rule_id FROM decision_rules r WHERE r.seq = d.seq) "
                "FROM decisions d WHERE d.seq >= %s ORDER BY d.seq", (first_seq,))
            for row in cursor:
                yield StoredDecision.from_row(row[:-1], row[-1])

    def _table_exists(self, conn: psycopg.Connection, name: str) -> bool:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]

    def _signer_lock(self, conn: psycopg.Connection) -> bool:
        # Transaction-scoped and non-blocking: of the instances polling at once, the one
        # holding it signs; the others skip this round (and then see its checkpoint).
        return conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (_SIGNER_LOCK_ID,)).fetchone()[0]

    def _migration_lock(self, conn: psycopg.Connection) -> None:
        # Transaction-scoped: a second migrating process waits here, then finds
        # everything applied. DDL is transactional in PostgreSQL.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_ID,))

    _integrity_errors = (pg_errors.UniqueViolation,)

    def _is_duplicate_decision_id(self, exc: Exception) -> bool:
        return exc.diag.constraint_name == "decisions_decision_id_key"
