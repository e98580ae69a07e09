"""Reading the decision log for auditors: one logged decision, search, export, chain
verification, and whether this instance is ready (store reachable, rulesets loaded).

The API's audit and ops views go through this service, never to the store; store errors
leave it as ServiceErrors (service.boundary).
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from typing import Iterator

from service.boundary import store_errors_translated
from service.canonical import spreadsheet_safe, utc_text
from service.catalog import Catalog
from service.decisionlog import DecisionSummary, LoggedDecision, Store
from service.errors import InvalidRequest, NoSigningKey, Problem, ServiceError, StorageUnavailable, UnknownDecision


@dataclass(frozen=True)
class SearchFilters:
    """What a search or export selects; None means "any". Time range: from inclusive, to exclusive."""

    application_id: str | None = None
    ruleset: str | None = None
    version: str | None = None
    outcome: str | None = None
    rule_id: str | None = None
    time_from: dt.datetime | None = None
    time_to: dt.datetime | None = None

    def as_store_criteria(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, bool]
    rulesets_loaded: int
    detail: str | None

    @property
    def ready(self) -> bool:
        return all(self.checks.values())


@store_errors_translated
class AuditService:
    def __init__(self, catalog: Catalog, store: Store, public_key=None):
        self.catalog = catalog
        self.store = store
        self.public_key = public_key  # Ed25519 key verifying checkpoint signatures, when signing is on

    def logged(self, decision_id: str) -> LoggedDecision:
        record = self.store.get_decision(decision_id)
        if record is None:
            raise UnknownDecision(f"no decision {decision_id!r} in the log")
        return record

    def expanded_trace(self, record: LoggedDecision) -> dict | None:
        """The full trace of a logged decision (its own rules, and `uses`), or None when its
        ruleset version is not loaded here: the record is still shown as stored."""
        try:
            return expand_trace(self.catalog, record.ruleset_name, record.ruleset_version, record.trace)
        except ServiceError:
            return None

    def search(self, filters: SearchFilters, *, limit: int, cursor: str | None,
               newest_first: bool = False) -> tuple[list[DecisionSummary], str | None]:
        try:
            return self.store.search_decisions(limit=limit, cursor=cursor, newest_first=newest_first,
                                               **filters.as_store_criteria())
        except ValueError:
            raise InvalidRequest("the cursor is not one this service issued",
                                 [Problem("invalid_request", "cursor", "invalid cursor")]) from None

    def export(self, filters: SearchFilters) -> Iterator[LoggedDecision]:
        """Every matching record, in log order. The store is touched before this returns, so
        an outage is an error now rather than a broken stream later."""
        criteria = filters.as_store_criteria()
        self.store.search_decisions(limit=1, **criteria)
        return self._records(criteria)

    def export_csv(self, filters: SearchFilters) -> Iterator[str]:
        """The matching records as CSV text, a row per chunk (the API's and the console's
        export alike). Like `export`, an outage is an error now, not a broken stream."""
        return _csv_rows(self.export(filters))

    def _records(self, criteria: dict) -> Iterator[LoggedDecision]:
        # Translated too, though a failure mid-stream can only end the stream.
        yield from store_errors_translated(self.store.iter_decisions)(**criteria)

    def verify(self, *, expected_head: tuple[int, str] | None = None, since: int | None = None) -> dict:
        return self.store.verify(expected_head=expected_head, since=since, public_key=self.public_key).to_dict()

    def checkpoints(self, *, limit: int, before: int | None = None) -> list[dict]:
        """Signed checkpoints of the chain head, newest first, as the API shows them."""
        return [c.to_dict() for c in self.list_checkpoints(limit=limit, before_seq=before)]

    def list_checkpoints(self, *, limit: int = 100, before_seq: int | None = None) -> list:
        """The checkpoint records themselves (the console reads the newest)."""
        return self.store.list_checkpoints(limit=limit, before_seq=before_seq)

    def public_key_pem(self) -> str:
        from service.decisionlog.checkpoints import public_key_pem

        if self.public_key is None:
            raise NoSigningKey("checkpoints are not signed here: DECISION_LOG_SIGNING_KEY is not set")
        return public_key_pem(self.public_key)

    def readiness(self) -> Readiness:
        checks = {"rulesets": False, "store": True}
        detail = None
        try:
            store_errors_translated(self.store.ping)()
            self.catalog.sync()  # loads what a start during an outage could not
        except StorageUnavailable as exc:
            checks["store"] = False
            detail = exc.message
        registry = self.catalog.registry
        checks["rulesets"] = bool(registry.names())
        loaded = sum(len(registry.versions(n)) for n in registry.names())
        return Readiness(checks, loaded, detail)


def expand_trace(catalog: Catalog, name: str, version: str, record: dict) -> dict:
    """The logged trace record, expanded to full trace entries for the ruleset and each used one."""
    out = {"rules": catalog.get(name, version).evaluator.expand(record)}
    for alias, used in record.get("uses", {}).items():
        ref = used["ruleset"]
        out.setdefault("uses", {})[alias] = catalog.get(ref["name"], ref["version"]).evaluator.expand(used)
    return out


CSV_COLUMNS = ("seq", "decision_id", "evaluated_at", "application_id", "ruleset", "version", "sha256", "as_of",
               "outcome", "fired_rules")


def _csv_rows(records: Iterator[LoggedDecision]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue()
    for record in records:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow((record.seq, record.decision_id, utc_text(record.evaluated_at),
                         spreadsheet_safe(record.application_id or ""), record.ruleset_name, record.ruleset_version,
                         record.ruleset_sha256, record.as_of, record.outcome, " ".join(record.fired_rules)))
        yield buffer.getvalue()
