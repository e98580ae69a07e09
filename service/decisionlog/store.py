"""The store interface shared by the SQLite and PostgreSQL implementations.

One `Store` holds (a) the registry of published ruleset versions and (b) the
tamper-evident decision log. The API layer maps the exceptions defined here to HTTP:
`StoreUnavailable` -> 503, `VersionConflict` -> 409, `NotFound` -> 404.
"""
from __future__ import annotations

import abc
import base64
import binascii
import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from service.contract import MAX_ITEMS_PER_REQUEST as MAX_PAGE_SIZE
from service.contract import OUTCOMES  # re-exported: rows.py checks outcomes against it

if TYPE_CHECKING:  # rows.py imports this module
    from .rows import StoredDecision

SOURCE_FORMATS = ("yaml", "json")
ITER_BATCH_SIZE = 500


# --- errors -------------------------------------------------------------------------


class StoreError(Exception):
    """Base of every error raised by the store."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or written right now (HTTP 503)."""


class SchemaNotMigrated(StoreUnavailable):
    """The database schema is missing migrations: run `python -m service.decisionlog migrate`."""


class VersionConflict(StoreError):
    """The ruleset version is already published with different content (HTTP 409)."""


class NotFound(StoreError, LookupError):
    """The ruleset version does not exist (HTTP 404)."""


class DuplicateDecision(StoreError):
    """A decision with this decision_id is already in the log (a caller bug: ids are unique)."""


class IdempotencyConflict(StoreError):
    """Another decision was logged first under the same (identity, idempotency key):
    nothing was appended. The caller answers with that decision (or refuses)."""

    def __init__(self, identity: str, key: str) -> None:
        super().__init__(f"idempotency key {key!r} of {identity} is already used")
        self.identity = identity
        self.key = key


# --- records ------------------------------------------------------------------------


@dataclass(frozen=True)
class RulesetVersionRow:
    name: str
    version: str
    sha256: str
    canonical_json: str
    source_text: str
    source_format: str
    published_at: dt.datetime
    published_by: str | None
    retired_at: dt.datetime | None
    retired_by: str | None

    @property
    def retired(self) -> bool:
        return self.retired_at is not None


@dataclass(frozen=True)
class NewDecision:
    """A decision as handed to `append_decision`; the store adds seq and the hashes."""

    decision_id: str
    application_id: str | None
    ruleset_name: str
    ruleset_version: str
    ruleset_sha256: str
    outcome: str
    as_of: str
    evaluated_at: dt.datetime
    fired_rules: list[str]
    request: dict[str, Any]
    response: dict[str, Any]
    trace: Any
    # The exact JSON texts to store, when the caller already has them (the response is
    # then stored byte-identical to the body that was sent); else canonical JSON is used.
    request_json: str | None = None
    response_json: str | None = None
    trace_json: str | None = None
    # Logged under this key: (identity, key, sha256 of the request); appended only if
    # the key is still free (else IdempotencyConflict), atomically with the decision.
    idempotency: tuple[str, str, str] | None = None


@dataclass(frozen=True)
class IdempotentDecision:
    """What an idempotency key points at: the request it was first used with, and the
    decision logged for it (its response exactly as answered)."""

    decision_id: str
    request_sha256: str
    response_json: str


@dataclass(frozen=True)
class DecisionSummary:
    seq: int
    decision_id: str
    application_id: str | None
    ruleset_name: str
    ruleset_version: str
    ruleset_sha256: str
    outcome: str
    as_of: str
    evaluated_at: dt.datetime
    fired_rules: list[str]
    # Recomputed when read: {"hash_ok": the stored fields still hash to the record's
    # hash, "link_ok": its prev_hash is the hash of the record before}. None right
    # after an append (nothing to recompute).
    integrity: dict[str, bool] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class LoggedDecision(DecisionSummary):
    request: dict[str, Any] = None
    response: dict[str, Any] = None
    trace: list[Any] = None
    prev_hash: str = ""
    hash: str = ""

    def summary(self) -> DecisionSummary:
        fields = {name: getattr(self, name) for name in DecisionSummary.__dataclass_fields__}
        return DecisionSummary(**fields)


@dataclass(frozen=True)
class VerifyReport:
    """Result of walking the chain. `first_problem` is None when ok, else
    {seq, decision_id, kind, detail} with kind one of altered | missing | broken_link |
    head_mismatch | index_mismatch | checkpoint_mismatch (the chain does not pass
    through a signed checkpoint: truncated or rewritten) | bad_checkpoint (a signature
    does not verify, or the checkpoint to start from is not there)."""

    ok: bool
    checked: int
    first_problem: dict[str, Any] | None
    head: dict[str, Any]
    retention_floor: dict[str, Any] | None
    # {checked, signatures: verified | unchecked, latest, since}
    checkpoints: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DecisionFilter:
    """Search criteria; None means "any". Time range: from inclusive, to exclusive."""

    application_id: str | None = None
    ruleset: str | None = None
    version: str | None = None
    outcome: str | None = None
    rule_id: str | None = None
    time_from: dt.datetime | None = None
    time_to: dt.datetime | None = None
    newest_first: bool = False  # order by seq descending (the console lists the latest first)


def _filter(**criteria: Any) -> DecisionFilter:
    for name in ("time_from", "time_to"):
        if criteria[name] is not None and not isinstance(criteria[name], dt.datetime):
            raise ValueError(f"{name} must be a datetime")
    return DecisionFilter(**criteria)


def encode_cursor(after_seq: int, direction: str = "after") -> str:
    """Opaque page cursor: the last seq of the previous page (`before` it when newest first)."""
    text = json.dumps({direction: after_seq}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, direction: str = "after") -> int:
    """The seq a cursor points after (or before); ValueError if it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        after_seq = value[direction]
    except (binascii.Error, UnicodeError, ValueError, TypeError, KeyError, AttributeError):
        raise ValueError("invalid cursor") from None
    if isinstance(after_seq, bool) or not isinstance(after_seq, int) or after_seq < 0:
        raise ValueError("invalid cursor")
    return after_seq


# --- the interface ------------------------------------------------------------------


class Store(abc.ABC):
    """Durable registry + decision log. Safe for concurrent use from threads; open one
    per process (after fork). Every database failure surfaces as `StoreUnavailable`
    and the next call reconnects."""

    backend: str = ""

    # lifecycle
    @abc.abstractmethod
    def migrate(self) -> list[str]:
        """Apply pending migrations (under a lock); return the ids applied."""

    @abc.abstractmethod
    def is_fresh(self) -> bool:
        """True if the database holds nothing yet (safe to auto-migrate)."""

    @abc.abstractmethod
    def pending_migrations(self) -> list[str]:
        """Ids of migrations not yet applied."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise StoreUnavailable unless the store can be read and written now."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close every connection; the store must not be used afterwards."""

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ruleset registry
    @abc.abstractmethod
    def publish_version(
        self,
        name: str,
        version: str,
        sha256: str,
        canonical_json: str,
        source_text: str,
        source_format: str,
        published_by: str | None,
        *,
        after_insert=None,
    ) -> tuple[RulesetVersionRow, bool]:
        """Store a version; (row, True) if new, (row, False) if already stored with the
        same sha256; VersionConflict if stored with a different sha256. `after_insert(conn)`
        runs in the same transaction when the row is new (release records, releases.py)."""

    @abc.abstractmethod
    def list_versions(self, name: str | None = None) -> list[RulesetVersionRow]:
        """Versions ordered by name, then publish order."""

    @abc.abstractmethod
    def get_version(self, name: str, version: str) -> RulesetVersionRow | None: ...

    @abc.abstractmethod
    def retire_version(self, name: str, version: str, retired_by: str | None, *,
                       after_retire=None) -> RulesetVersionRow:
        """Mark retired (idempotent); NotFound if unknown. `after_retire(conn)` runs in the
        same transaction when this call retired it."""

    @abc.abstractmethod
    def registry_generation(self) -> int:
        """A counter that increases on every publish and retire."""

    # decision log
    @abc.abstractmethod
    def append_decision(self, rec: NewDecision) -> LoggedDecision:
        """Append to the chain and commit before returning."""

    @abc.abstractmethod
    def get_decision(self, decision_id: str) -> LoggedDecision | None:
        """The record with its `integrity` recomputed, or None."""

    @abc.abstractmethod
    def find_idempotent(self, identity: str, key: str) -> IdempotentDecision | None:
        """The decision logged under an idempotency key of this identity, if any."""

    @abc.abstractmethod
    def verify(self, *, expected_head: tuple[int, str] | None = None, public_key=None,
               since: int | None = None) -> VerifyReport:
        """Walk the whole chain in seq order and report the first problem.

        Every signed checkpoint is checked against `public_key` (an Ed25519 public key;
        None: signatures are reported unchecked) and the chain must pass through each.
        `since`: the seq of a checkpoint to start from: only what is newer is walked.

        `expected_head` = (seq, hash) remembered from an earlier verify: also checks the
        record at that seq still has that hash (catches a rebuilt or truncated chain whose
        chain_head was rewritten to match). Seqs already purged by retention are skipped."""

    @abc.abstractmethod
    def sign_checkpoint(self, key, *, min_interval_s: float):
        """Sign the chain head with the Ed25519 private `key` and store the checkpoint,
        if the head moved since the newest checkpoint and that one is at least
        `min_interval_s` old; else None. Safe to call from every process at once."""

    @abc.abstractmethod
    def list_checkpoints(self, *, limit: int = 100, before_seq: int | None = None) -> list:
        """Checkpoints newest first (seq < before_seq when given)."""

    @abc.abstractmethod
    def purge_before(self, cutoff: dt.datetime) -> int:
        """Delete the longest prefix of the chain evaluated before `cutoff`; return count."""

    def search_decisions(
        self,
        *,
        application_id: str | None = None,
        ruleset: str | None = None,
        version: str | None = None,
        outcome: str | None = None,
        rule_id: str | None = None,
        time_from: dt.datetime | None = None,
        time_to: dt.datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
        newest_first: bool = False,
    ) -> tuple[list[DecisionSummary], str | None]:
        """One page in seq order (descending when `newest_first`) and the cursor of the next
        page (None on the last)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be an integer from 1 to {MAX_PAGE_SIZE}")
        direction = "before" if newest_first else "after"
        at_seq = decode_cursor(cursor, direction) if cursor is not None else None
        filters = _filter(application_id=application_id, ruleset=ruleset, version=version,
                          outcome=outcome, rule_id=rule_id, time_from=time_from, time_to=time_to,
                          newest_first=newest_first)
        # The database filters on columns; each candidate is then checked against its
        # hashed payload (StoredDecision.answer_matches). One extra row tells whether
        # there is a next page.
        page: list[DecisionSummary] = []
        last_seq, has_more = at_seq, False
        while not has_more:
            if newest_first:
                rows = self._select_decisions(filters, after_seq=0,
                                              upto_seq=None if last_seq is None else last_seq - 1,
                                              limit=limit + 1, with_payloads=True)
            else:
                rows = self._select_decisions(filters, after_seq=last_seq or 0, upto_seq=None,
                                              limit=limit + 1, with_payloads=True)
            for row in rows:
                if len(page) == limit:
                    has_more = True
                    break
                last_seq = row.seq
                if row.answer_matches(filters):
                    page.append(row.to_summary())
            if len(rows) <= limit and not has_more:
                break
        return page, encode_cursor(last_seq, direction) if has_more else None

    def iter_decisions(
        self,
        *,
        application_id: str | None = None,
        ruleset: str | None = None,
        version: str | None = None,
        outcome: str | None = None,
        rule_id: str | None = None,
        time_from: dt.datetime | None = None,
        time_to: dt.datetime | None = None,
        after_seq: int = 0,
        upto_seq: int | None = None,
    ) -> Iterator[LoggedDecision]:
        """Full records in seq order, fetched in batches (bounded memory). Records
        appended after the iteration started are not included. `after_seq`/`upto_seq`
        bound the seqs (a job's chunk is such a range)."""
        filters = _filter(application_id=application_id, ruleset=ruleset, version=version,
                          outcome=outcome, rule_id=rule_id, time_from=time_from, time_to=time_to)
        head = self._head_seq()
        upto_seq = head if upto_seq is None else min(upto_seq, head)
        while True:
            rows = self._select_decisions(filters, after_seq=after_seq, upto_seq=upto_seq,
                                          limit=ITER_BATCH_SIZE, with_payloads=True)
            for row in rows:
                if row.answer_matches(filters):
                    yield row.to_logged()
            if len(rows) < ITER_BATCH_SIZE:
                return
            after_seq = rows[-1].seq

    # hooks for the shared search/iterate code
    @abc.abstractmethod
    def _select_decisions(
        self,
        filters: DecisionFilter,
        *,
        after_seq: int,
        upto_seq: int | None,
        limit: int,
        with_payloads: bool,
    ) -> list[StoredDecision]:
        """Rows with seq > after_seq (and <= upto_seq) whose columns match filters, by
        seq; with payloads, each has its `integrity` recomputed."""

    @abc.abstractmethod
    def _head_seq(self) -> int:
        """The seq of the last appended record (0 if none)."""
