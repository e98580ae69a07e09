"""Stored-row forms shared by both backends, and their conversion to public records.

A `StoredDecision` keeps the payloads as the canonical JSON text read from the
database: that text is what the chain hashes, and it is parsed (with Decimals) only
when a caller asks for a `LoggedDecision`.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field, replace

import orjson

from service import canonical

from . import chain
from .store import OUTCOMES, DecisionSummary, LoggedDecision, NewDecision, RulesetVersionRow

# Column order of every decision SELECT in both backends.
SUMMARY_COLUMNS = (
    "seq", "decision_id", "application_id", "ruleset_name", "ruleset_version",
    "ruleset_sha256", "outcome", "as_of", "evaluated_at", "fired_rules",
)
PAYLOAD_COLUMNS = ("request", "response", "trace", "prev_hash", "hash")
DECISION_COLUMNS = SUMMARY_COLUMNS + PAYLOAD_COLUMNS
_EVALUATED_AT = SUMMARY_COLUMNS.index("evaluated_at")


@dataclass(frozen=True)
class StoredDecision:
    seq: int
    decision_id: str
    application_id: str | None
    ruleset_name: str
    ruleset_version: str
    ruleset_sha256: str
    outcome: str
    as_of: str
    evaluated_at: str  # chain.timestamp_text form
    fired_rules_json: str
    request_json: str | None = None  # None when selected without payloads
    response_json: str | None = None
    trace_json: str | None = None
    prev_hash: str | None = None
    hash: str | None = None
    indexed_rule_ids: tuple[str, ...] | None = None  # only when selected for verify
    integrity: dict[str, bool] | None = None  # only when read with its previous record's hash
    # prepare_decision's hashed_text_around_seq(), made before the chain lock is taken
    hashed_text: tuple[str, str] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_row(cls, row: tuple, indexed_rule_ids: list[str] | None = None) -> "StoredDecision":
        """From a row in SUMMARY_COLUMNS or DECISION_COLUMNS order; evaluated_at may be
        a datetime (PostgreSQL) or the stored text (SQLite)."""
        values = list(row)
        if isinstance(values[_EVALUATED_AT], dt.datetime):
            values[_EVALUATED_AT] = chain.timestamp_text(values[_EVALUATED_AT])
        indexed = tuple(indexed_rule_ids) if indexed_rule_ids is not None else None
        return cls(*values, indexed_rule_ids=indexed)

    def chained(self, seq: int, prev_hash: str, key: bytes | None) -> "StoredDecision":
        """This record placed at `seq` after a record hashed `prev_hash`, with its hash
        (chain.record_hash of its hashed_fields, from the text prepared around the seq)."""
        before, after = self.hashed_text_around_seq()
        message = f"{prev_hash}{before}{seq}{after}".encode("utf-8")
        return replace(self, seq=seq, prev_hash=prev_hash, hash=chain.message_hash(message, key))

    def hashed_text_around_seq(self) -> tuple[str, str]:
        """The canonical text chain.record_hash hashes (after prev_hash), as the parts before and
        after the seq number: with sorted keys, "seq" and "trace" are its last two members.
        Made once, by prepare_decision; a record read back makes it again."""
        if self.hashed_text is not None:
            return self.hashed_text
        head = canonical.dumps({name: value for name, value in self.hashed_fields().items()
                                if name not in ("seq", "trace")})
        return head[:-1] + ',"seq":', ',"trace":' + self.trace_json + "}"

    def checked(self, previous_hash: str | None, key: bytes | None) -> "StoredDecision":
        """This record with `integrity` recomputed: its stored fields against its hash,
        its prev_hash against `previous_hash` (None: the record before is missing)."""
        return replace(self, integrity={
            "hash_ok": chain.record_hash(self.prev_hash, self.hashed_fields(), key) == self.hash,
            "link_ok": previous_hash is not None and previous_hash == self.prev_hash,
        })

    def answer_matches(self, filters) -> bool:
        """Whether the hashed payload — the response as answered, and the hashed fired
        rules — matches `filters`. The columns the database filters on first are
        copies of these; an altered copy must not make a record match."""
        try:
            answer = orjson.loads(self.response_json)
            ruleset = answer.get("ruleset", {})
            # (a response without a field — none the service sends — falls back to the
            # hashed column of the same name)
            evaluated_at = parse_timestamp_text(answer.get("evaluated_at", self.evaluated_at))
            fired = self.fired_rules()
            answered = ((filters.application_id, answer.get("application_id", self.application_id)),
                        (filters.ruleset, ruleset.get("name", self.ruleset_name)),
                        (filters.version, ruleset.get("version", self.ruleset_version)),
                        (filters.outcome, answer.get("outcome", self.outcome)))
        except (ValueError, TypeError, AttributeError):
            return False  # an unreadable payload matches nothing (GET shows it, verify flags it)
        for wanted, value in answered:
            if wanted is not None and wanted != value:
                return False
        if filters.rule_id is not None and filters.rule_id not in fired:
            return False
        if filters.time_from is not None and evaluated_at < chain.to_utc(filters.time_from):
            return False
        if filters.time_to is not None and evaluated_at >= chain.to_utc(filters.time_to):
            return False
        return True

    def column_values(self) -> tuple:
        """Values in DECISION_COLUMNS order (evaluated_at as its stored text)."""
        return (
            self.seq, self.decision_id, self.application_id, self.ruleset_name,
            self.ruleset_version, self.ruleset_sha256, self.outcome, self.as_of,
            self.evaluated_at, self.fired_rules_json, self.request_json,
            self.response_json, self.trace_json, self.prev_hash, self.hash,
        )

    def fired_rule_ids(self) -> list[str]:
        """Distinct fired rule ids: the rows of the decision_rules search index."""
        return sorted(set(self.fired_rules()))

    def fired_rules(self) -> list[str]:
        return json.loads(self.fired_rules_json)

    def hashed_fields(self) -> dict:
        return chain.decision_fields(
            seq=self.seq,
            decision_id=self.decision_id,
            application_id=self.application_id,
            ruleset_name=self.ruleset_name,
            ruleset_version=self.ruleset_version,
            ruleset_sha256=self.ruleset_sha256,
            outcome=self.outcome,
            as_of=self.as_of,
            evaluated_at=self.evaluated_at,
            fired_rules_json=self.fired_rules_json,
            request_json=self.request_json,
            response_json=self.response_json,
            trace_json=self.trace_json,
        )

    def to_summary(self) -> DecisionSummary:
        return DecisionSummary(**self._summary_fields(self.fired_rules()))

    def to_logged(self, appended: "NewDecision | None" = None) -> LoggedDecision:
        """The full record; right after an append, the caller's own payloads are reused
        instead of parsing back the texts just written (prepare_decision wrote
        fired_rules_json from exactly its list of strings)."""
        return LoggedDecision(
            **self._summary_fields(list(appended.fired_rules) if appended else self.fired_rules()),
            request=appended.request if appended else canonical.loads(self.request_json),
            response=appended.response if appended else canonical.loads(self.response_json),
            trace=appended.trace if appended else canonical.loads(self.trace_json),
            prev_hash=self.prev_hash,
            hash=self.hash,
        )

    def _summary_fields(self, fired_rules: list[str]) -> dict:
        return {"seq": self.seq, "decision_id": self.decision_id, "application_id": self.application_id,
                "ruleset_name": self.ruleset_name, "ruleset_version": self.ruleset_version,
                "ruleset_sha256": self.ruleset_sha256, "outcome": self.outcome, "as_of": self.as_of,
                "evaluated_at": parse_timestamp_text(self.evaluated_at), "fired_rules": fired_rules,
                "integrity": self.integrity}


def prepare_decision(rec: NewDecision) -> StoredDecision:
    """Validate and serialise a new decision before any transaction starts; the store
    then places it with `chained` while it holds the chain lock."""
    if not isinstance(rec.decision_id, str) or not rec.decision_id:
        raise ValueError("decision_id must be a non-empty string")
    if rec.outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
    if not all(isinstance(rule_id, str) for rule_id in rec.fired_rules):
        raise ValueError("fired_rules must be rule id strings")
    if not isinstance(rec.evaluated_at, dt.datetime):
        raise ValueError("evaluated_at must be a datetime")
    record = StoredDecision(
        seq=0,
        decision_id=rec.decision_id,
        application_id=rec.application_id,
        ruleset_name=rec.ruleset_name,
        ruleset_version=rec.ruleset_version,
        ruleset_sha256=rec.ruleset_sha256,
        outcome=rec.outcome,
        as_of=_iso_date(rec.as_of),
        evaluated_at=chain.timestamp_text(rec.evaluated_at),
        fired_rules_json=canonical.dumps(list(rec.fired_rules)),
        request_json=rec.request_json if rec.request_json is not None else canonical.dumps(rec.request),
        response_json=rec.response_json if rec.response_json is not None else canonical.dumps(rec.response),
        trace_json=rec.trace_json if rec.trace_json is not None else canonical.dumps(rec.trace),
    )
    return replace(record, hashed_text=record.hashed_text_around_seq())


def _iso_date(value: str | dt.date) -> str:
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return value.isoformat()
    return dt.date.fromisoformat(value).isoformat()  # ValueError if not a date


@dataclass(frozen=True)
class RetentionAnchor:
    """Where the chain starts after a purge: the first kept seq and its prev_hash."""

    first_seq: int
    prev_hash: str
    purged_before: dt.datetime
    purged_at: dt.datetime
    purged_count: int
    anchor_hash: str

    def expected_hash(self, key: bytes | None) -> str:
        return chain.anchor_hash(
            first_seq=self.first_seq,
            prev_hash=self.prev_hash,
            purged_before=chain.timestamp_text(self.purged_before),
            purged_at=chain.timestamp_text(self.purged_at),
            purged_count=self.purged_count,
            key=key,
        )

    def to_dict(self) -> dict:
        return {
            "first_seq": self.first_seq,
            "prev_hash": self.prev_hash,
            "purged_before": chain.timestamp_text(self.purged_before),
            "purged_at": chain.timestamp_text(self.purged_at),
            "purged_count": self.purged_count,
        }


def parse_timestamp_text(text: str) -> dt.datetime:
    """Inverse of chain.timestamp_text (also accepts any ISO text with an offset)."""
    value = dt.datetime.fromisoformat(text)
    return chain.to_utc(value)


def timestamp_value(value: str | dt.datetime | None) -> dt.datetime | None:
    """A column value (text in SQLite, datetime in PostgreSQL) as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return chain.to_utc(value)
    return parse_timestamp_text(value)


# -- row helpers shared by both backends (their SQL has no parameters) -----------------------


def ruleset_row(row: tuple) -> RulesetVersionRow:
    (name, version, sha256, canonical_json, source_text, source_format,
     published_at, published_by, retired_at, retired_by) = row
    return RulesetVersionRow(name, version, sha256, canonical_json, source_text, source_format,
                             timestamp_value(published_at), published_by,
                             timestamp_value(retired_at), retired_by)


def latest_anchor(conn) -> RetentionAnchor | None:
    row = conn.execute("SELECT first_seq, prev_hash, purged_before, purged_at, purged_count, "
                       "anchor_hash FROM retention_anchor ORDER BY first_seq DESC LIMIT 1"
                       ).fetchone()
    if row is None:
        return None
    first_seq, prev_hash, purged_before, purged_at, purged_count, anchor_hash = row
    return RetentionAnchor(first_seq, prev_hash, timestamp_value(purged_before),
                           timestamp_value(purged_at), purged_count, anchor_hash)


def orphan_index_seq(conn, from_seq: int = 0) -> int | None:
    """The first fired-rule index row (seq >= from_seq) whose decision record is gone."""
    row = conn.execute("SELECT r.seq FROM decision_rules r WHERE r.seq >= %d AND NOT EXISTS "
                       "(SELECT 1 FROM decisions d WHERE d.seq = r.seq) "
                       "ORDER BY r.seq LIMIT 1" % int(from_seq)).fetchone()
    return row[0] if row else None


def decision_query(filters, *, after_seq: int, upto_seq: int | None, limit: int, with_payloads: bool,
                   placeholder: str, time_param) -> tuple[str, tuple]:
    """The search SQL of both backends: they differ only in the parameter placeholder and
    in how a timestamp is passed (`time_param`)."""
    columns = DECISION_COLUMNS if with_payloads else SUMMARY_COLUMNS
    clauses, params = [f"seq > {placeholder}"], [after_seq]
    if upto_seq is not None:
        clauses.append(f"seq <= {placeholder}")
        params.append(upto_seq)
    for column, value in (("application_id", filters.application_id),
                          ("ruleset_name", filters.ruleset),
                          ("ruleset_version", filters.version),
                          ("outcome", filters.outcome)):
        if value is not None:
            clauses.append(f"{column} = {placeholder}")
            params.append(value)
    if filters.rule_id is not None:
        clauses.append(f"seq IN (SELECT seq FROM decision_rules WHERE rule_id = {placeholder})")
        params.append(filters.rule_id)
    if filters.time_from is not None:
        clauses.append(f"evaluated_at >= {placeholder}")
        params.append(time_param(filters.time_from))
    if filters.time_to is not None:
        clauses.append(f"evaluated_at < {placeholder}")
        params.append(time_param(filters.time_to))
    sql = (f"SELECT {', '.join(columns)} FROM decisions WHERE {' AND '.join(clauses)} "
           f"ORDER BY seq{' DESC' if filters.newest_first else ''} LIMIT {placeholder}")
    return sql, (*params, limit)
