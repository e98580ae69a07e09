"""What both SQL backends share: the registry, the hash chain (append, retention,
verify) and search, written once against a few per-dialect hooks.

A backend supplies connections and transactions (`_transaction`), how it spells a
parameter and a timestamp (`_q`, `_time`), how it takes the chain lock
(`_lock_chain_head`), how it inserts many rows and streams the chain for verify, and
which database error means "duplicate decision id". Everything that decides what is
written — seq, prev_hash, hash, the retention anchor — lives here only.
"""
from __future__ import annotations

import abc
import datetime as dt
import os
from typing import Any, Callable, Iterator, TypeVar

from . import migrations
from . import checkpoints as signing
from .chain import GENESIS_HASH, timestamp_text
from .checkpoints import Checkpoint
from .group import GroupCommit
from .rows import (
    DECISION_COLUMNS,
    RetentionAnchor,
    StoredDecision,
    decision_query,
    latest_anchor,
    orphan_index_seq,
    parse_timestamp_text,
    prepare_decision,
    ruleset_row,
)
from .store import (SOURCE_FORMATS, DecisionFilter, DuplicateDecision, IdempotencyConflict,
                    IdempotentDecision, LoggedDecision, NewDecision,
                    NotFound, RulesetVersionRow, SchemaNotMigrated, Store, StoreError, StoreUnavailable,
                    VersionConflict, VerifyReport)
from .verify import verify_chain

T = TypeVar("T")

RULESET_COLUMNS = (
    "name, version, sha256, canonical_json, source_text, source_format, "
    "published_at, published_by, retired_at, retired_by"
)
_INSERT_DECISION = (f"INSERT INTO decisions ({', '.join(DECISION_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(DECISION_COLUMNS))})")
_EVALUATED_AT = DECISION_COLUMNS.index("evaluated_at")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class SQLStore(Store):
    """A `Store` over a SQL database; subclasses implement the dialect hooks below."""

    def __init__(self, *, hmac_key: bytes | None) -> None:
        self._key = hmac_key
        self._schema_ok = False
        self._group: GroupCommit | None = None
        self._group_pid: int | None = None

    # --- dialect hooks --------------------------------------------------------------

    @abc.abstractmethod
    def _transaction(self, work: Callable[[Any], T], *, write: bool, snapshot: bool = False,
                     check_schema: bool = True, pipeline: bool = False) -> T:
        """Run `work(conn)` in one transaction and commit. write: the transaction may
        take the chain lock; snapshot: every read sees one consistent state; pipeline:
        send statements without waiting where the dialect can (a database error may
        then surface only at COMMIT)."""

    def _q(self, sql: str) -> str:
        """SQL written with `?` placeholders, in this dialect's spelling."""
        return sql

    @abc.abstractmethod
    def _time(self, value: dt.datetime) -> Any:
        """A UTC instant as this dialect stores it (text or timestamptz)."""

    @abc.abstractmethod
    def _lock_chain_head(self, conn) -> tuple[int, str]:
        """(seq, hash) of chain_head, locked until the transaction ends: the lock every
        append and purge holds, so the chain stays one line."""

    @abc.abstractmethod
    def _executemany(self, conn, sql: str, rows: list[tuple]) -> None: ...

    @abc.abstractmethod
    def _chain_rows(self, conn, first_seq: int) -> Iterator[StoredDecision]:
        """Records with seq >= first_seq in seq order, each with its fired-rule index
        rows (`indexed_rule_ids`), streamed with bounded memory."""

    @abc.abstractmethod
    def _table_exists(self, conn, name: str) -> bool: ...

    def _signer_lock(self, conn) -> bool:
        """Try to become this round's checkpoint signer (False: another process is
        signing now). A write transaction may already be exclusive."""
        return True

    def _migration_lock(self, conn) -> None:
        """Serialise concurrent `migrate` calls (a write transaction may already do so)."""

    @abc.abstractmethod
    def _is_duplicate_decision_id(self, exc: Exception) -> bool:
        """`exc`, raised by inserting decisions, is the decision_id unique violation."""

    _integrity_errors: tuple[type[Exception], ...] = ()

    def _x(self, conn, sql: str, params: tuple | list = ()):
        return conn.execute(self._q(sql), params)

    # --- schema ---------------------------------------------------------------------

    def migrate(self) -> list[str]:
        def apply(conn) -> list[str]:
            self._migration_lock(conn)
            conn.execute(migrations.SCHEMA_MIGRATIONS_TABLE[self.backend])
            applied = {row[0] for row in conn.execute("SELECT id FROM schema_migrations")}
            done = []
            for migration in migrations.MIGRATIONS:
                if migration.id in applied:
                    continue
                for statement in migration.for_dialect(self.backend):
                    conn.execute(statement)
                self._x(conn, "INSERT INTO schema_migrations (id, applied_at) VALUES (?, ?)",
                        (migration.id, self._time(utc_now())))
                done.append(migration.id)
            return done

        applied = self._transaction(apply, write=True, check_schema=False)
        self._schema_ok = False
        return applied

    def pending_migrations(self) -> list[str]:
        return self._transaction(self._pending, write=False, check_schema=False)

    def _pending(self, conn) -> list[str]:
        applied = ({row[0] for row in conn.execute("SELECT id FROM schema_migrations")}
                   if self._table_exists(conn, "schema_migrations") else set())
        return migrations.pending(applied)

    def _check_schema(self, conn) -> None:
        if self._schema_ok:
            return
        missing = self._pending(conn)
        if missing:
            raise SchemaNotMigrated(
                f"decision log schema is not migrated (pending: {', '.join(missing)}); "
                "run `python -m service.decisionlog migrate`")
        self._schema_ok = True

    # --- ruleset registry -----------------------------------------------------------

    def publish_version(self, name: str, version: str, sha256: str, canonical_json: str,
                        source_text: str, source_format: str, published_by: str | None, *,
                        after_insert: Callable | None = None) -> tuple[RulesetVersionRow, bool]:
        if source_format not in SOURCE_FORMATS:
            raise ValueError(f"source_format must be one of {', '.join(SOURCE_FORMATS)}")

        def publish(conn) -> tuple[RulesetVersionRow, bool]:
            # Of two concurrent inserts of one (name, version) exactly one inserts; the
            # other does nothing and then reads the winner's row.
            inserted = self._x(
                conn,
                f"INSERT INTO ruleset_versions ({RULESET_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL) "
                f"ON CONFLICT (name, version) DO NOTHING RETURNING {RULESET_COLUMNS}",
                (name, version, sha256, canonical_json, source_text, source_format,
                 self._time(utc_now()), published_by)).fetchall()
            if inserted:
                self._bump_generation(conn)
                if after_insert is not None:  # release records, in the same transaction
                    after_insert(conn)
                return ruleset_row(inserted[0]), True
            existing = self._select_version(conn, name, version)
            if existing.sha256 != sha256:
                raise VersionConflict(
                    f"{name} {version} is already published with different content "
                    f"(sha256 {existing.sha256})")
            return existing, False

        return self._transaction(publish, write=True)

    def list_versions(self, name: str | None = None) -> list[RulesetVersionRow]:
        where, params = ("WHERE name = ?", (name,)) if name is not None else ("", ())
        sql = f"SELECT {RULESET_COLUMNS} FROM ruleset_versions {where} ORDER BY name, id"
        rows = self._transaction(lambda conn: self._x(conn, sql, params).fetchall(), write=False)
        return [ruleset_row(row) for row in rows]

    def get_version(self, name: str, version: str) -> RulesetVersionRow | None:
        return self._transaction(lambda conn: self._select_version(conn, name, version), write=False)

    def retire_version(self, name: str, version: str, retired_by: str | None, *,
                       after_retire: Callable | None = None) -> RulesetVersionRow:
        def retire(conn) -> RulesetVersionRow:
            updated = self._x(
                conn,
                "UPDATE ruleset_versions SET retired_at = ?, retired_by = ? "
                "WHERE name = ? AND version = ? AND retired_at IS NULL "
                f"RETURNING {RULESET_COLUMNS}",
                (self._time(utc_now()), retired_by, name, version)).fetchall()
            if updated:
                self._bump_generation(conn)
                if after_retire is not None:
                    after_retire(conn)
                return ruleset_row(updated[0])
            existing = self._select_version(conn, name, version)
            if existing is None:
                raise NotFound(f"ruleset {name} version {version} is not published")
            return existing  # already retired

        return self._transaction(retire, write=True)

    def registry_generation(self) -> int:
        return self._transaction(
            lambda conn: conn.execute("SELECT generation FROM registry_state WHERE id = 1").fetchone()[0],
            write=False)

    def _bump_generation(self, conn) -> None:
        conn.execute("UPDATE registry_state SET generation = generation + 1 WHERE id = 1")

    def _select_version(self, conn, name: str, version: str) -> RulesetVersionRow | None:
        row = self._x(conn, f"SELECT {RULESET_COLUMNS} FROM ruleset_versions "
                            "WHERE name = ? AND version = ?", (name, version)).fetchone()
        return ruleset_row(row) if row else None

    # --- the chain: append ------------------------------------------------------------

    def append_decision(self, rec: NewDecision) -> LoggedDecision:
        prepared = prepare_decision(rec)  # serialise outside the chain lock
        return self._group_commit().submit((prepared, rec.idempotency)).to_logged(rec)

    def _group_commit(self) -> GroupCommit:
        # one per process: a fork copies the queue and its lock in whatever state
        if self._group_pid != os.getpid():
            self._group, self._group_pid = GroupCommit(self._commit_batch), os.getpid()
        return self._group

    def _commit_batch(self, batch: list[tuple[StoredDecision, tuple[str, str, str] | None]]
                      ) -> list[StoredDecision | StoreError]:
        """Chain a batch of concurrent appends in one transaction. A duplicate id fails
        the transaction: then each is committed alone, so only its caller hears of it."""
        try:
            return self._chain_batch(batch)
        except DuplicateDecision:
            if len(batch) == 1:
                raise
        results: list[StoredDecision | StoreError] = []
        for item in batch:
            try:
                results.extend(self._chain_batch([item]))
            except DuplicateDecision as exc:
                results.append(exc)
        return results

    def _chain_batch(self, batch: list[tuple[StoredDecision, tuple[str, str, str] | None]]
                     ) -> list[StoredDecision | IdempotencyConflict]:
        """One transaction chaining `batch` (a dialect may chain on the server instead)."""
        return self._transaction(lambda conn: self._chain(conn, batch), write=True, pipeline=True)

    def _chain(self, conn, batch: list[tuple[StoredDecision, tuple[str, str, str] | None]]
               ) -> list[StoredDecision | IdempotencyConflict]:
        """The one chaining algorithm: under the chain lock, place each record after the
        head (seq + 1, prev_hash = head hash), insert them, move the head.

        A record carrying an idempotency key is placed only if it claims the key; one
        whose key is taken comes back as IdempotencyConflict and leaves no gap."""
        seq, prev_hash = self._lock_chain_head(conn)
        placed: list[StoredDecision | IdempotencyConflict] = []
        stored = []
        for record, idempotency in batch:
            if idempotency is not None and not self._claim_key(conn, idempotency, record, seq + 1):
                placed.append(IdempotencyConflict(idempotency[0], idempotency[1]))
                continue
            record = record.chained(seq + 1, prev_hash, self._key)
            placed.append(record)
            stored.append(record)
            seq, prev_hash = record.seq, record.hash
        if stored:
            self._insert_decisions(conn, stored)
            self._x(conn, "UPDATE chain_head SET seq = ?, hash = ? WHERE id = 1", (seq, prev_hash))
        return placed

    def _claim_key(self, conn, idempotency: tuple[str, str, str], record: StoredDecision,
                   seq: int) -> bool:
        # The primary key (identity, idem_key) makes this race-free: under the chain
        # lock the first claim has committed before a second one can look.
        identity, key, request_sha256 = idempotency
        return bool(self._x(conn, "INSERT INTO idempotency_keys (identity, idem_key, request_sha256, "
                                  "decision_id, seq) VALUES (?, ?, ?, ?, ?) "
                                  "ON CONFLICT (identity, idem_key) DO NOTHING RETURNING seq",
                            (identity, key, request_sha256, record.decision_id, seq)).fetchall())

    def find_idempotent(self, identity: str, key: str) -> IdempotentDecision | None:
        row = self._transaction(
            lambda conn: self._x(conn, "SELECT k.decision_id, k.request_sha256, d.response "
                                       "FROM idempotency_keys k JOIN decisions d ON d.seq = k.seq "
                                       "WHERE k.identity = ? AND k.idem_key = ?", (identity, key)).fetchone(),
            write=False)
        return IdempotentDecision(*row) if row else None

    def _insert_decisions(self, conn, stored: list[StoredDecision]) -> None:
        rows = []
        for record in stored:
            values = list(record.column_values())
            values[_EVALUATED_AT] = self._time(parse_timestamp_text(values[_EVALUATED_AT]))
            rows.append(tuple(values))
        try:
            self._executemany(conn, self._q(_INSERT_DECISION), rows)
        except self._integrity_errors as exc:
            if self._is_duplicate_decision_id(exc):
                which = stored[0].decision_id if len(stored) == 1 else "of this batch"
                raise DuplicateDecision(f"decision {which} is already in the log") from exc
            # seq taken: chain_head is behind the stored records, the log needs an audit
            raise StoreUnavailable("decision log is inconsistent (chain_head is behind the "
                                   "stored records); run verify") from exc
        index = [(record.seq, rule_id) for record in stored for rule_id in record.fired_rule_ids()]
        if index:
            self._executemany(conn, self._q("INSERT INTO decision_rules (seq, rule_id) VALUES (?, ?)"),
                              index)

    # --- reading ----------------------------------------------------------------------

    def get_decision(self, decision_id: str) -> LoggedDecision | None:
        def read(conn) -> StoredDecision | None:
            row = self._x(conn, f"SELECT {', '.join(DECISION_COLUMNS)} FROM decisions "
                                "WHERE decision_id = ?", (decision_id,)).fetchone()
            return self._checked(conn, [StoredDecision.from_row(row)])[0] if row else None

        record = self._transaction(read, write=False, snapshot=True)
        return record.to_logged() if record else None

    def _select_decisions(self, filters: DecisionFilter, *, after_seq: int, upto_seq: int | None,
                          limit: int, with_payloads: bool) -> list[StoredDecision]:
        sql, params = decision_query(filters, after_seq=after_seq, upto_seq=upto_seq, limit=limit,
                                     with_payloads=with_payloads, placeholder="?", time_param=self._time)

        def select(conn) -> list[StoredDecision]:
            records = [StoredDecision.from_row(row) for row in self._x(conn, sql, params).fetchall()]
            return self._checked(conn, records) if with_payloads else records

        return self._transaction(select, write=False, snapshot=with_payloads)

    def _checked(self, conn, records: list[StoredDecision]) -> list[StoredDecision]:
        """`records` with integrity recomputed against the hash of each one's previous
        record (read in the same transaction): genesis before seq 1, the retention
        anchor's prev_hash before the first kept record."""
        wanted = sorted({record.seq - 1 for record in records} - {0})
        previous = {0: GENESIS_HASH}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            previous.update(self._x(conn, f"SELECT seq, hash FROM decisions WHERE seq IN "
                                          f"({', '.join('?' * len(chunk))})", chunk).fetchall())
        anchor = latest_anchor(conn) if len(previous) <= len(wanted) else None
        if anchor is not None:
            previous.setdefault(anchor.first_seq - 1, anchor.prev_hash)
        return [record.checked(previous.get(record.seq - 1), self._key) for record in records]

    def _head_seq(self) -> int:
        return self._transaction(
            lambda conn: conn.execute("SELECT seq FROM chain_head WHERE id = 1").fetchone()[0],
            write=False)

    # --- the chain: verify and retention ----------------------------------------------

    def verify(self, *, expected_head: tuple[int, str] | None = None, public_key=None,
               since: int | None = None) -> VerifyReport:
        def walk(conn) -> VerifyReport:
            # One snapshot: head, anchor, checkpoints and records are read from one state.
            head = conn.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
            anchor = latest_anchor(conn)
            signed = self._checkpoints(conn, "ORDER BY seq")
            start = None
            if since is not None:
                start = next((c for c in signed if c.seq == since), None)
                if start is None:
                    return VerifyReport(False, 0, {"seq": since, "decision_id": None, "kind": "bad_checkpoint",
                                                   "detail": f"there is no checkpoint at seq {since} to start from"},
                                        {"seq": head[0], "hash": head[1]}, anchor.to_dict() if anchor else None,
                                        {"checked": 0, "signatures": "unchecked", "since": since,
                                         "latest": signed[-1].to_dict() if signed else None})
                if anchor and since < anchor.first_seq:
                    start = None  # that checkpoint is purged: walk from the retention floor
                signed = [c for c in signed if c.seq >= since]
            first_seq = start.seq if start else (anchor.first_seq if anchor else 1)
            records = self._chain_rows(conn, first_seq)
            try:
                return verify_chain(records, head=(head[0], head[1]), anchor=anchor, key=self._key,
                                    expected_head=expected_head,
                                    find_orphan_index_seq=lambda: orphan_index_seq(conn, first_seq),
                                    checkpoints=signed, public_key=public_key, since=start)
            finally:
                records.close()

        return self._transaction(walk, write=False, snapshot=True)

    # --- signed checkpoints -------------------------------------------------------------

    def sign_checkpoint(self, key, *, min_interval_s: float) -> Checkpoint | None:
        def attempt(conn) -> Checkpoint | None:
            if not self._signer_lock(conn):
                return None
            head_seq, head_hash = conn.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
            newest = self._checkpoints(conn, "ORDER BY seq DESC LIMIT 1")
            if head_seq == 0 or (newest and newest[0].seq >= head_seq):
                return None  # the head did not move
            now = utc_now()
            if newest and (now - parse_timestamp_text(newest[0].time)).total_seconds() < min_interval_s:
                return None  # signed recently (maybe by another process)
            checkpoint = signing.sign(key, head_seq, head_hash, timestamp_text(now))
            inserted = self._x(conn, "INSERT INTO checkpoints (seq, hash, time, signature) VALUES (?, ?, ?, ?) "
                                     "ON CONFLICT (seq) DO NOTHING RETURNING seq",
                               (checkpoint.seq, checkpoint.hash, checkpoint.time, checkpoint.signature)).fetchall()
            return checkpoint if inserted else None

        return self._transaction(attempt, write=True)

    def list_checkpoints(self, *, limit: int = 100, before_seq: int | None = None) -> list[Checkpoint]:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ValueError("limit must be an integer from 1 to 1000")
        where = f"WHERE seq < {int(before_seq)} " if before_seq is not None else ""
        return self._transaction(lambda conn: self._checkpoints(conn, f"{where}ORDER BY seq DESC LIMIT {limit}"),
                                 write=False)

    @staticmethod
    def _checkpoints(conn, clauses: str) -> list[Checkpoint]:
        return [Checkpoint(*row) for row in conn.execute(f"SELECT seq, hash, time, signature FROM checkpoints {clauses}")]

    def purge_before(self, cutoff: dt.datetime) -> int:
        def purge(conn) -> int:
            # the chain lock also serialises purges with appends and with each other
            head_seq, _ = self._lock_chain_head(conn)
            anchor = latest_anchor(conn)
            floor = anchor.first_seq if anchor else 1
            first_kept = self._x(conn, "SELECT seq FROM decisions WHERE evaluated_at >= ? "
                                       "ORDER BY seq LIMIT 1", (self._time(cutoff),)).fetchone()
            first_kept_seq = first_kept[0] if first_kept else head_seq + 1
            if first_kept_seq <= floor:
                return 0
            last_purged = self._x(conn, "SELECT hash FROM decisions WHERE seq = ?",
                                  (first_kept_seq - 1,)).fetchone()
            if last_purged is None:
                raise StoreError(f"cannot purge: record seq {first_kept_seq - 1} is missing "
                                 "(run verify)")
            # idempotency keys are kept as long as their decision is
            self._x(conn, "DELETE FROM idempotency_keys WHERE seq < ?", (first_kept_seq,))
            deleted = self._x(conn, "DELETE FROM decisions WHERE seq < ?", (first_kept_seq,)).rowcount
            self._x(conn, "DELETE FROM decision_rules WHERE seq < ?", (first_kept_seq,))
            new_anchor = RetentionAnchor(first_kept_seq, last_purged[0], cutoff, utc_now(),
                                         deleted, anchor_hash="")
            self._x(conn, "INSERT INTO retention_anchor (first_seq, prev_hash, purged_before, "
                          "purged_at, purged_count, anchor_hash) VALUES (?, ?, ?, ?, ?, ?)",
                    (new_anchor.first_seq, new_anchor.prev_hash, self._time(cutoff),
                     self._time(new_anchor.purged_at), deleted, new_anchor.expected_hash(self._key)))
            return deleted

        return self._transaction(purge, write=True)


__all__ = ["SQLStore", "RULESET_COLUMNS", "utc_now", "timestamp_text"]
