"""Audit endpoints (role `audit`): a logged decision, search and CSV export, replay, chain verification.

Views read the log through service.audit.AuditService (app.extensions["audit"]), never the store."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, request, stream_with_context

from service.api.http import json_response, require
from service.audit import SearchFilters
from service.canonical import utc_text
from service.errors import UnknownDecision
from service.identifiers import DECISION_ID_RE
from service.schemas.api import load
from service.schemas.query import CheckpointsQuery, DecisionSearchQuery, VerifyQuery

bp = Blueprint("audit", __name__)

_search_query = DecisionSearchQuery()
_verify_query = VerifyQuery()
_checkpoints_query = CheckpointsQuery()


def _audit():
    return current_app.extensions["audit"]


def _logged(decision_id: str):
    if not DECISION_ID_RE.match(decision_id):
        raise UnknownDecision(f"no decision {decision_id!r}")
    return _audit().logged(decision_id)


def logged_view(record) -> dict:
    full = _audit().expanded_trace(record)
    return {
        "decision_id": record.decision_id,
        "seq": record.seq,
        "application_id": record.application_id,
        "ruleset": {"name": record.ruleset_name, "version": record.ruleset_version, "sha256": record.ruleset_sha256},
        "outcome": record.outcome,
        "as_of": record.as_of,
        "evaluated_at": utc_text(record.evaluated_at),
        "fired_rules": record.fired_rules,
        "request": record.request,
        "response": record.response,
        "trace": full["rules"] if full else None,
        "uses_trace": full.get("uses") if full else None,
        "trace_record": record.trace,
        # champion/challenger: how it was routed, and the other arm's answer (service/rollouts.py)
        "rollout": record.trace.get("rollout") if isinstance(record.trace, dict) else None,
        "shadow": record.trace.get("shadow") if isinstance(record.trace, dict) else None,
        # who asked: the caller's identity from RULES_API_TOKENS (null in open mode), never a token
        "decided_by": record.trace.get("decided_by") if isinstance(record.trace, dict) else None,
        "chain": {"prev_hash": record.prev_hash, "hash": record.hash},
        "integrity": record.integrity,
    }


@bp.get("/v1/decisions/<decision_id>")
@require("audit")
def get_decision(decision_id: str):
    return json_response(logged_view(_logged(decision_id)))


def _search_filters(query: dict) -> SearchFilters:
    return SearchFilters(**{k: query.get(k) for k in SearchFilters.__dataclass_fields__})


@bp.get("/v1/decisions")
@require("audit")
def search():
    query = load(_search_query, request.args)
    filters = _search_filters(query)
    if query["format"] == "csv" or request.accept_mimetypes.best == "text/csv":
        return _csv(filters)
    items, cursor = _audit().search(filters, limit=query["limit"], cursor=query["cursor"])
    return json_response({
        "items": [{"seq": s.seq, "decision_id": s.decision_id, "application_id": s.application_id,
                   "ruleset": {"name": s.ruleset_name, "version": s.ruleset_version, "sha256": s.ruleset_sha256},
                   "outcome": s.outcome, "as_of": s.as_of, "evaluated_at": utc_text(s.evaluated_at),
                   "fired_rules": s.fired_rules, "integrity": s.integrity} for s in items],
        "next_cursor": cursor,
    })


def _csv(filters: SearchFilters) -> Response:
    rows = _audit().export_csv(filters)  # an outage is a 503 here, before the stream starts
    return Response(stream_with_context(rows), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=decisions.csv"})


@bp.post("/v1/decisions/<decision_id>/replay")
@require("audit")
def replay(decision_id: str):
    return json_response(current_app.extensions["decisions"].replay(_logged(decision_id)))


@bp.get("/v1/audit/checkpoints")
@require("audit")
def checkpoints():
    query = load(_checkpoints_query, request.args)
    return json_response({"items": _audit().checkpoints(limit=query["limit"], before=query["before"])})


@bp.get("/v1/audit/public-key")
@require("audit")
def public_key():
    return Response(_audit().public_key_pem(), mimetype="application/x-pem-file")


@bp.get("/v1/audit/verify")
@require("audit")
def verify():
    query = load(_verify_query, request.args)
    expected = None
    if query["expected_head_seq"] is not None:
        expected = (query["expected_head_seq"], query["expected_head_hash"])
    return json_response(_audit().verify(expected_head=expected, since=query["since"]))
