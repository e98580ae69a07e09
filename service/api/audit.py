"""Audit endpoints (role `audit`): a logged decision, search and CSV export, replay, chain verification."""
from __future__ import annotations

import csv
import datetime as dt
import io
import re

from flask import Blueprint, Response, current_app, request, stream_with_context

from service.api.errors import ApiError
from service.api.http import json_response, require
from service.decisionlog import LoggedDecision, NotFound
from service.decisions import expand_trace
from service.errors import ServiceError
from service.rulesets.model import OUTCOMES
from service.rulesets.parse import RULE_ID_RE, RULESET_NAME_RE, SEMVER_RE

bp = Blueprint("audit", __name__)

_DECISION_ID_RE = re.compile(r"^[0-9a-fA-F-]{36}$")
CSV_COLUMNS = ("seq", "decision_id", "evaluated_at", "application_id", "ruleset", "version", "sha256", "as_of",
               "outcome", "fired_rules")


def _service():
    return current_app.extensions["decisions"]


def _store():
    return current_app.extensions["store"]


def _check_id(decision_id: str) -> None:
    if not _DECISION_ID_RE.match(decision_id):
        raise NotFound(f"no decision {decision_id!r}")


def logged_view(record: LoggedDecision) -> dict:
    try:
        full = expand_trace(current_app.extensions["catalog"], record.ruleset_name, record.ruleset_version, record.trace)
    except ServiceError:
        full = None  # the version is not loaded here: the record is still shown as stored
    return {
        "decision_id": record.decision_id,
        "seq": record.seq,
        "application_id": record.application_id,
        "ruleset": {"name": record.ruleset_name, "version": record.ruleset_version, "sha256": record.ruleset_sha256},
        "outcome": record.outcome,
        "as_of": record.as_of,
        "evaluated_at": _iso(record.evaluated_at),
        "fired_rules": record.fired_rules,
        "request": record.request,
        "response": record.response,
        "trace": full["rules"] if full else None,
        "uses_trace": full.get("uses") if full else None,
        "trace_record": record.trace,
        # champion/challenger: how it was routed, and the other arm's answer (service/rollouts.py)
        "rollout": record.trace.get("rollout") if isinstance(record.trace, dict) else None,
        "shadow": record.trace.get("shadow") if isinstance(record.trace, dict) else None,
        "chain": {"prev_hash": record.prev_hash, "hash": record.hash},
    }


def _iso(value) -> str:
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z") if isinstance(value, dt.datetime) else str(value)


@bp.get("/v1/decisions/<decision_id>")
@require("audit")
def get_decision(decision_id: str):
    _check_id(decision_id)
    return json_response(logged_view(_service().logged(decision_id)))


def _parse_time(name: str):
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        # In UTC now: an offset that pushes the instant outside years 1..9999 is refused here.
        value = value.astimezone(dt.timezone.utc) if value.tzinfo is not None else None
    except (ValueError, OverflowError):
        value = None
    if value is None:
        raise ApiError(422, "invalid-request", f"`{name}` must be an ISO 8601 date-time with a time zone",
                       errors=[{"path": name, "message": "e.g. 2026-11-24T00:00:00Z", "code": "invalid_request"}])
    return value


def _filters() -> dict:
    args = request.args
    problems = []
    checks = {
        "application_id": lambda v: 0 < len(v) <= 100,
        "ruleset": lambda v: bool(RULESET_NAME_RE.match(v)),
        "version": lambda v: bool(SEMVER_RE.match(v)),
        "outcome": lambda v: v in OUTCOMES,
        "rule_id": lambda v: bool(RULE_ID_RE.match(v)),
    }
    for key, ok in checks.items():
        if key in args and not ok(args[key]):
            problems.append({"path": key, "message": f"invalid {key}", "code": "invalid_request"})
    known = set(checks) | {"from", "to", "limit", "cursor", "format"}
    for key in args:
        if key not in known:
            problems.append({"path": key, "message": "unknown query parameter", "code": "invalid_request"})
    if args.get("format", "json") not in ("json", "csv"):
        problems.append({"path": "format", "message": "json or csv", "code": "invalid_request"})
    if problems:
        raise ApiError(422, "invalid-request", "invalid search parameters", errors=problems)
    filters = {k: args[k] for k in checks if k in args}
    filters["time_from"] = _parse_time("from")
    filters["time_to"] = _parse_time("to")
    return filters


@bp.get("/v1/decisions")
@require("audit")
def search():
    filters = _filters()
    if request.args.get("format") == "csv" or request.accept_mimetypes.best == "text/csv":
        return _csv(filters)
    try:
        limit = int(request.args.get("limit", "50"))
    except ValueError:
        limit = -1
    if not 1 <= limit <= 1000:
        raise ApiError(422, "invalid-request", "`limit` is 1..1000",
                       errors=[{"path": "limit", "message": "an integer 1..1000", "code": "invalid_request"}])
    try:
        items, cursor = _store().search_decisions(limit=limit, cursor=request.args.get("cursor"), **filters)
    except ValueError:
        raise ApiError(422, "invalid-request", "the cursor is not one this service issued",
                       errors=[{"path": "cursor", "message": "invalid cursor", "code": "invalid_request"}]) from None
    return json_response({
        "items": [{"seq": s.seq, "decision_id": s.decision_id, "application_id": s.application_id,
                   "ruleset": {"name": s.ruleset_name, "version": s.ruleset_version, "sha256": s.ruleset_sha256},
                   "outcome": s.outcome, "as_of": s.as_of, "evaluated_at": _iso(s.evaluated_at),
                   "fired_rules": s.fired_rules} for s in items],
        "next_cursor": cursor,
    })


def _csv(filters: dict) -> Response:
    store = _store()
    # Touch the store now so an outage is a 503 before the stream starts.
    store.search_decisions(limit=1, **filters)

    def rows():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        yield buffer.getvalue()
        for record in store.iter_decisions(**filters):
            buffer.seek(0)
            buffer.truncate()
            writer.writerow((record.seq, record.decision_id, _iso(record.evaluated_at), record.application_id or "",
                             record.ruleset_name, record.ruleset_version, record.ruleset_sha256, record.as_of,
                             record.outcome, " ".join(record.fired_rules)))
            yield buffer.getvalue()

    return Response(stream_with_context(rows()), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=decisions.csv"})


@bp.post("/v1/decisions/<decision_id>/replay")
@require("audit")
def replay(decision_id: str):
    _check_id(decision_id)
    return json_response(_service().replay(decision_id))


@bp.get("/v1/audit/verify")
@require("audit")
def verify():
    expected = None
    seq, digest = request.args.get("expected_head_seq"), request.args.get("expected_head_hash")
    if seq or digest:
        if not (seq and seq.isdigit() and digest and re.fullmatch(r"[0-9a-f]{64}", digest)):
            raise ApiError(422, "invalid-request", "give expected_head_seq (integer) and expected_head_hash (64 hex) together",
                           errors=[{"path": "expected_head_seq", "message": "invalid", "code": "invalid_request"}])
        expected = (int(seq), digest)
    report = _store().verify(expected_head=expected)
    return json_response(report.to_dict())
