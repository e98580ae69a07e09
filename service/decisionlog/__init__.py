"""Durable store for published ruleset versions and the tamper-evident decision log.

    store = open_store(os.environ.get("DATABASE_URL"), data_dir, hmac_key=key)

Embedded SQLite by default; PostgreSQL for a postgresql:// URL, so that several
instances share one registry and one log. See store.py for the interface and
chain.py for how records are hashed.
"""
from __future__ import annotations

import os

from .store import (
    DecisionFilter,
    DecisionSummary,
    DuplicateDecision,
    IdempotencyConflict,
    IdempotentDecision,
    LoggedDecision,
    NewDecision,
    NotFound,
    RulesetVersionRow,
    SchemaNotMigrated,
    Store,
    StoreError,
    StoreUnavailable,
    VerifyReport,
    VersionConflict,
)

SQLITE_FILENAME = "decisions.sqlite3"
_POSTGRES_SCHEMES = ("postgresql", "postgres")

__all__ = [
    "open_store",
    "SQLITE_FILENAME",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "SchemaNotMigrated",
    "VersionConflict",
    "NotFound",
    "DuplicateDecision",
    "IdempotencyConflict",
    "IdempotentDecision",
    "RulesetVersionRow",
    "NewDecision",
    "DecisionSummary",
    "LoggedDecision",
    "DecisionFilter",
    "VerifyReport",
]


def open_store(database_url: str | None, data_dir: str, *, hmac_key: bytes | None = None) -> Store:
    """The store for this deployment. Nothing is connected yet: the first call does
    that (and raises StoreUnavailable if it cannot), so opening never fails on an
    outage. Open one store per process, after forking."""
    if hmac_key is not None and not hmac_key:
        raise ValueError("hmac_key must not be empty (pass None for no key)")
    if database_url:
        scheme = database_url.split(":", 1)[0].lower()
        if scheme not in _POSTGRES_SCHEMES:
            raise ValueError(f"unsupported DATABASE_URL scheme {scheme!r}: "
                             "expected postgresql:// (or unset for SQLite)")
        from .postgres import PostgresStore  # psycopg is only needed here

        return PostgresStore(database_url, hmac_key=hmac_key)
    from .sqlite import SQLiteStore

    return SQLiteStore(os.path.join(data_dir, SQLITE_FILENAME), hmac_key=hmac_key)
