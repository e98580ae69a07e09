"""The hash chain of the decision log.

Each record's hash is

    hex( H( prev_hash_ascii || canonical_json(fields) ) )

where H is SHA-256, or HMAC-SHA256 keyed with the configured secret. `prev_hash` is the
hash of the record before (64 zeros for the first record), so changing, removing or
reordering any record breaks every later link. With a key, someone who can write to
the database but does not hold the key cannot rebuild a consistent chain after
tampering; without one, the chain still detects any edit that is not followed by
recomputing every later hash (and `chain_head` catches a truncated tail).

`canonical_json` is `service.canonical.dumps`: sorted keys, no whitespace, exact
Decimals. The request/response/trace/fired_rules payloads are hashed as the exact
canonical text the store keeps, so an auditor can recompute a hash from the stored
columns alone.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from typing import Any, Mapping

import simplejson

from service import canonical

GENESIS_HASH = "0" * 64


def record_hash(prev_hash: str, fields: Mapping[str, Any], key: bytes | None = None) -> str:
    """Hex SHA-256 (or HMAC-SHA256 when `key` is given) of prev_hash + canonical fields."""
    return message_hash(prev_hash.encode("ascii") + canonical.dumps(fields).encode("utf-8"), key)


def message_hash(message: bytes, key: bytes | None = None) -> str:
    """Hex SHA-256 (or HMAC-SHA256 when `key` is given) of the hashed text of a record."""
    if key:
        return hmac.new(key, message, hashlib.sha256).hexdigest()
    return hashlib.sha256(message).hexdigest()


def decision_fields(
    *,
    seq: int,
    decision_id: str,
    application_id: str | None,
    ruleset_name: str,
    ruleset_version: str,
    ruleset_sha256: str,
    outcome: str,
    as_of: str,
    evaluated_at: str,
    fired_rules_json: str,
    request_json: str,
    response_json: str,
    trace_json: str,
) -> dict[str, Any]:
    """The hashed fields of one decision record (prev_hash is hashed as the prefix).

    `evaluated_at` is the stored UTC text (YYYY-MM-DDTHH:MM:SS.ffffffZ); the *_json
    arguments are the stored canonical JSON texts, embedded verbatim."""
    return {
        "seq": seq,
        "decision_id": decision_id,
        "application_id": application_id,
        "ruleset_name": ruleset_name,
        "ruleset_version": ruleset_version,
        "ruleset_sha256": ruleset_sha256,
        "outcome": outcome,
        "as_of": as_of,
        "evaluated_at": evaluated_at,
        "fired_rules": simplejson.RawJSON(fired_rules_json),
        "request": simplejson.RawJSON(request_json),
        "response": simplejson.RawJSON(response_json),
        "trace": simplejson.RawJSON(trace_json),
    }


def anchor_hash(
    *,
    first_seq: int,
    prev_hash: str,
    purged_before: str,
    purged_at: str,
    purged_count: int,
    key: bytes | None,
) -> str:
    """Hash of a retention anchor row, so that (with a key) a forged anchor hiding a
    deleted prefix is detected."""
    fields = {
        "kind": "retention_anchor",
        "first_seq": first_seq,
        "purged_before": purged_before,
        "purged_at": purged_at,
        "purged_count": purged_count,
    }
    return record_hash(prev_hash, fields, key)


def timestamp_text(value: dt.datetime) -> str:
    """The one text form of a UTC instant used in hashes and in SQLite columns."""
    return canonical.utc_text(value)


def to_utc(value: dt.datetime) -> dt.datetime:
    """Aware UTC datetime; a naive value is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)
