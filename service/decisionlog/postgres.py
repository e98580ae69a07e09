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

import datetime as dt
from typing import Any, Callable, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from . import migrations
from .chain import to_utc
from .releases import ReleaseRecords
from .pool import ConnectionPool, PoolClosed
from .rows import (
    DECISION_COLUMNS,
    RetentionAnchor,
    StoredDecision,
    parse_timestamp_text,
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

CONNECT_TIMEOUT_S = 5
LOCK_TIMEOUT_MS = 10_000
VERIFY_FETCH_SIZE = 2000
_MIGRATION_LOCK_ID = 7_301_116_021  # pg_advisory_xact_lock key for `migrate`

T = TypeVar("T")

_RULESET_COLUMNS = (
    "name, version, sha256, canonical_json, source_text, source_format, "
    "published_at, published_by, retired_at, retired_by"
)


class PostgresStore(ReleaseRecords, Store):
    backend = "postgresql"

    def __init__(self, url: str, *, hmac_key: bytes | None = None) -> None:
        try:
            self._password = conninfo_to_dict(url).get("password")
        except psycopg.Error:
            raise ValueError("DATABASE_URL is not a valid PostgreSQL URL") from None
        self._url = url
        self._key = hmac_key
        self._schema_ok = False
        self._pool: ConnectionPool[psycopg.Connection] = ConnectionPool(
            self._connect, lambda conn: conn.close())

    # --- connections and transactions ---------------------------------------------

    def _connect(self) -> psycopg.Connection:
        # keepalives: notice a vanished server on an idle connection instead of hanging
        return psycopg.connect(self._url, autocommit=False, connect_timeout=CONNECT_TIMEOUT_S,
                               keepalives=1, keepalives_idle=30, keepalives_interval=10,
                               keepalives_count=3)

    def _run(self, work: Callable[[psycopg.Connection], T], *, check_schema: bool = True,
             snapshot: bool = False, commit: bool = True) -> T:
        """Run `work` in one transaction on a pooled connection (see module doc).
        snapshot: a REPEATABLE READ READ ONLY transaction (one consistent view).
        commit=False: roll back at the end instead of committing."""
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
                result = work(conn)
                committing = True
                conn.commit() if commit else conn.rollback()
            except psycopg.Error as exc:
                died_while_idle = reused and conn.broken and not committing
                self._pool.discard(conn)
                if died_while_idle and attempt == 1:
                    continue
                raise self._unavailable(exc) from exc
            except BaseException:
                self._rollback_and_release(conn)
                raise
            self._pool.release(conn)
            return result
        raise AssertionError("unreachable")

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

    def _check_schema(self, conn: psycopg.Connection) -> None:
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
        def apply(conn: psycopg.Connection) -> list[str]:
            # Transaction-scoped lock: a second migrating process waits here, then
            # finds everything applied. DDL is transactional in PostgreSQL.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_ID,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                         "id TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)")
            applied = {row[0] for row in conn.execute("SELECT id FROM schema_migrations")}
            done = []
            for migration in migrations.MIGRATIONS:
                if migration.id in applied:
                    continue
                for statement in migration.postgres:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations (id, applied_at) VALUES (%s, now())",
                             (migration.id,))
                done.append(migration.id)
            return done

        applied = self._run(apply, check_schema=False)
        self._schema_ok = False
        return applied

    def is_fresh(self) -> bool:
        return self._run(
            lambda conn: conn.execute(
                "SELECT to_regclass('schema_migrations') IS NULL").fetchone()[0],
            check_schema=False)

    def pending_migrations(self) -> list[str]:
        return self._run(self._pending, check_schema=False)

    def _pending(self, conn: psycopg.Connection) -> list[str]:
        tracked = conn.execute(
            "SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()[0]
        applied = ({row[0] for row in conn.execute("SELECT id FROM schema_migrations")}
                   if tracked else set())
        return migrations.pending(applied)

    def ping(self) -> None:
        # A real write, rolled back: proves the server accepts writes (not down, not a
        # read-only standby) without piling up heartbeat rows from every instance.
        self._run(lambda conn: conn.execute("UPDATE heartbeat SET beat = beat + 1 WHERE id = 1"),
                  commit=False)

    def close(self) -> None:
        self._pool.close()

    # --- ruleset registry ---------------------------------------------------------

    def publish_version(self, name: str, version: str, sha256: str, canonical_json: str,
                        source_text: str, source_format: str,
                        published_by: str | None, *,
                        after_insert: Callable | None = None) -> tuple[RulesetVersionRow, bool]:
        if source_format not in SOURCE_FORMATS:
            raise ValueError(f"source_format must be one of {', '.join(SOURCE_FORMATS)}")

        def publish(conn: psycopg.Connection) -> tuple[RulesetVersionRow, bool]:
            # A concurrent insert of the same (name, version) waits for ours to end,
            # then does nothing; the SELECT below then sees the winner's row.
            inserted = conn.execute(
                "INSERT INTO ruleset_versions (name, version, sha256, canonical_json, "
                "source_text, source_format, published_at, published_by) "
                "VALUES (%s, %s, %s, %s, %s, %s, now(), %s) "
                f"ON CONFLICT (name, version) DO NOTHING RETURNING {_RULESET_COLUMNS}",
                (name, version, sha256, canonical_json, source_text, source_format,
                 published_by),
            ).fetchone()
            if inserted:
                _bump_generation(conn)
                if after_insert is not None:  # release records, in the same transaction
                    after_insert(conn)
                return ruleset_row(inserted), True
            existing = _select_version(conn, name, version)
            if existing.sha256 != sha256:
                raise VersionConflict(
                    f"{name} {version} is already published with different content "
                    f"(sha256 {existing.sha256})")
            return existing, False

        return self._run(publish)

    def list_versions(self, name: str | None = None) -> list[RulesetVersionRow]:
        where, params = ("WHERE name = %s", (name,)) if name is not None else ("", ())
        sql = f"SELECT {_RULESET_COLUMNS} FROM ruleset_versions {where} ORDER BY name, id"
        rows = self._run(lambda conn: conn.execute(sql, params).fetchall())
        return [ruleset_row(row) for row in rows]

    def get_version(self, name: str, version: str) -> RulesetVersionRow | None:
        return self._run(lambda conn: _select_version(conn, name, version))

    def retire_version(self, name: str, version: str, retired_by: str | None, *,
                       after_retire: Callable | None = None) -> RulesetVersionRow:
        def retire(conn: psycopg.Connection) -> RulesetVersionRow:
            updated = conn.execute(
                "UPDATE ruleset_versions SET retired_at = now(), retired_by = %s "
                "WHERE name = %s AND version = %s AND retired_at IS NULL "
                f"RETURNING {_RULESET_COLUMNS}", (retired_by, name, version)).fetchone()
            if updated:
                _bump_generation(conn)
                if after_retire is not None:
                    after_retire(conn)
                return ruleset_row(updated)
            existing = _select_version(conn, name, version)
            if existing is None:
                raise NotFound(f"ruleset {name} version {version} is not published")
            return existing  # already retired

        return self._run(retire)

    def registry_generation(self) -> int:
        return self._run(lambda conn: conn.execute(
            "SELECT generation FROM registry_state WHERE id = 1").fetchone()[0])

    # --- decision log -------------------------------------------------------------

    def append_decision(self, rec: NewDecision) -> LoggedDecision:
        prepared = prepare_decision(rec)  # serialise outside the lock

        def append(conn: psycopg.Connection) -> StoredDecision:
            conn.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
            head_seq, head_hash = conn.execute(
                "SELECT seq, hash FROM chain_head WHERE id = 1 FOR UPDATE").fetchone()
            stored = prepared.chained(head_seq + 1, head_hash, self._key)
            try:
                conn.execute(f"INSERT INTO decisions ({', '.join(DECISION_COLUMNS)}) "
                             f"VALUES ({', '.join(['%s'] * len(DECISION_COLUMNS))})",
                             _decision_params(stored))
            except pg_errors.UniqueViolation as exc:
                raise _insert_conflict(exc, rec.decision_id) from exc
            rule_ids = stored.fired_rule_ids()
            if rule_ids:
                conn.execute("INSERT INTO decision_rules (seq, rule_id) "
                             "SELECT %s, unnest(%s::text[])", (stored.seq, rule_ids))
            conn.execute("UPDATE chain_head SET seq = %s, hash = %s WHERE id = 1",
                         (stored.seq, stored.hash))
            return stored

        return self._run(append).to_logged(rec)

    def get_decision(self, decision_id: str) -> LoggedDecision | None:
        row = self._run(lambda conn: conn.execute(
            f"SELECT {', '.join(DECISION_COLUMNS)} FROM decisions WHERE decision_id = %s",
            (decision_id,)).fetchone())
        return StoredDecision.from_row(row).to_logged() if row else None

    def _select_decisions(self, filters: DecisionFilter, *, after_seq: int,
                          upto_seq: int | None, limit: int,
                          with_payloads: bool) -> list[StoredDecision]:
        sql, params = decision_query(filters, after_seq=after_seq, upto_seq=upto_seq, limit=limit,
                                     with_payloads=with_payloads, placeholder="%s", time_param=to_utc)
        rows = self._run(lambda conn: conn.execute(sql, params).fetchall())
        return [StoredDecision.from_row(row) for row in rows]

    def _head_seq(self) -> int:
        return self._run(lambda conn: conn.execute(
            "SELECT seq FROM chain_head WHERE id = 1").fetchone()[0])

    def verify(self, *, expected_head: tuple[int, str] | None = None) -> VerifyReport:
        def walk(conn: psycopg.Connection) -> VerifyReport:
            head = conn.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
            anchor = latest_anchor(conn)
            # A server-side cursor streams the records: bounded memory at any size.
            with conn.cursor(name="decisionlog_verify") as cursor:
                cursor.itersize = VERIFY_FETCH_SIZE
                cursor.execute(
                    f"SELECT {', '.join(DECISION_COLUMNS)}, "
                    "ARRAY(SELECT rule_id FROM decision_rules r WHERE r.seq = d.seq) "
                    "FROM decisions d WHERE d.seq >= %s ORDER BY d.seq",
                    (anchor.first_seq if anchor else 1,))
                records = (StoredDecision.from_row(row[:-1], row[-1]) for row in cursor)
                return verify_chain(records, head=(head[0], head[1]), anchor=anchor,
                                    key=self._key, expected_head=expected_head,
                                    find_orphan_index_seq=lambda: orphan_index_seq(conn))

        return self._run(walk, snapshot=True)

    def purge_before(self, cutoff: dt.datetime) -> int:
        cutoff = to_utc(cutoff)

        def purge(conn: psycopg.Connection) -> int:
            conn.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")
            # the chain_head lock also serializes purges with appends and each other
            head_seq = conn.execute(
                "SELECT seq FROM chain_head WHERE id = 1 FOR UPDATE").fetchone()[0]
            anchor = latest_anchor(conn)
            floor = anchor.first_seq if anchor else 1
            first_kept = conn.execute(
                "SELECT seq FROM decisions WHERE evaluated_at >= %s ORDER BY seq LIMIT 1",
                (cutoff,)).fetchone()
            first_kept_seq = first_kept[0] if first_kept else head_seq + 1
            if first_kept_seq <= floor:
                return 0
            last_purged = conn.execute("SELECT hash FROM decisions WHERE seq = %s",
                                       (first_kept_seq - 1,)).fetchone()
            if last_purged is None:
                raise StoreError(f"cannot purge: record seq {first_kept_seq - 1} is missing "
                                 "(run verify)")
            deleted = conn.execute("DELETE FROM decisions WHERE seq < %s",
                                   (first_kept_seq,)).rowcount
            conn.execute("DELETE FROM decision_rules WHERE seq < %s", (first_kept_seq,))
            new_anchor = RetentionAnchor(first_kept_seq, last_purged[0], cutoff, _now(),
                                         deleted, anchor_hash="")
            conn.execute(
                "INSERT INTO retention_anchor (first_seq, prev_hash, purged_before, purged_at, "
                "purged_count, anchor_hash) VALUES (%s, %s, %s, %s, %s, %s)",
                (new_anchor.first_seq, new_anchor.prev_hash, cutoff, new_anchor.purged_at,
                 deleted, new_anchor.expected_hash(self._key)))
            return deleted

        return self._run(purge)


# --- helpers ----------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _decision_params(stored: StoredDecision) -> list[Any]:
    values = list(stored.column_values())
    evaluated_at_index = DECISION_COLUMNS.index("evaluated_at")
    values[evaluated_at_index] = parse_timestamp_text(values[evaluated_at_index])
    return values


def _insert_conflict(exc: pg_errors.UniqueViolation, decision_id: str) -> StoreError:
    if exc.diag.constraint_name == "decisions_decision_id_key":
        return DuplicateDecision(f"decision {decision_id} is already in the log")
    # seq taken: chain_head is behind the stored records, the log needs an audit
    return StoreUnavailable("decision log is inconsistent (chain_head is behind the "
                            "stored records); run verify")


def _bump_generation(conn: psycopg.Connection) -> None:
    conn.execute("UPDATE registry_state SET generation = generation + 1 WHERE id = 1")


def _select_version(conn: psycopg.Connection, name: str,
                    version: str) -> RulesetVersionRow | None:
    row = conn.execute(f"SELECT {_RULESET_COLUMNS} FROM ruleset_versions "
                       "WHERE name = %s AND version = %s", (name, version)).fetchone()
    return ruleset_row(row) if row else None


