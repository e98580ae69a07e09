"""Four-eyes publishing and rollouts (docs/api-contract.md, "Releases").

Approving, rejecting and changing rollouts: role `approve`. Reading history, rollouts
and reports: any valid token (or open mode)."""
from __future__ import annotations


from flask import Blueprint, current_app, request

from service import rollouts
from service.api.http import caller_identity, json_body, json_response, require
from service.api.rulesets import _check_name, _check_version
from service.errors import NoRollout
from service.schemas.api import ReleaseComment, RolloutRequest, load
from service.schemas.query import RolloutReportQuery

bp = Blueprint("releases", __name__)

_comment_schema = ReleaseComment()
_rollout_schema = RolloutRequest()
_report_query = RolloutReportQuery()


def _catalog():
    return current_app.extensions["catalog"]


def _optional_body(schema) -> dict:
    """An empty body is allowed (no comment); anything sent must be a valid JSON object."""
    if not request.content_length and not request.get_data(cache=True):
        return schema.load({})
    return load(schema, json_body())


@bp.post("/v1/rulesets/<name>/versions/<version>:approve")
@require("approve")
def approve(name: str, version: str):
    _check_name(name)
    _check_version(version)
    comment = _optional_body(_comment_schema)["comment"]
    approval = _catalog().approve(name, version, caller_identity(), comment)
    return json_response({"name": name, "version": version, "status": approval.state.status,
                          "approvals": len(approval.approvers), "needed": max(1, _catalog().publish_approvals),
                          "approved_by": approval.approvers, "proposed_by": approval.state.proposed_by})


@bp.post("/v1/rulesets/<name>/versions/<version>:reject")
@require("approve")
def reject(name: str, version: str):
    _check_name(name)
    _check_version(version)
    comment = _optional_body(_comment_schema)["comment"]
    state = _catalog().reject(name, version, caller_identity(), comment)
    return json_response({"name": name, "version": version, "status": state.status,
                          "proposed_by": state.proposed_by})


@bp.get("/v1/rulesets/<name>/versions/<version>/history")
@require("read")
def history(name: str, version: str):
    _check_name(name)
    _check_version(version)
    lv = _catalog().get(name, version)
    events = _catalog().history(name, version)
    return json_response({"name": name, "version": version, "status": lv.status,
                          "history": events})


@bp.get("/v1/rulesets/<name>/rollout")
@require("read")
def get_rollout(name: str):
    _check_name(name)
    _catalog().versions(name)
    row = _catalog().rollout(name)
    if row is None:
        raise NoRollout(f"{name} has no rollout running")
    return json_response(rollouts.rollout_view(row))


@bp.put("/v1/rulesets/<name>/rollout")
@require("approve")
def put_rollout(name: str):
    _check_name(name)
    req = load(_rollout_schema, json_body())
    catalog = _catalog()
    challenger = catalog.get(name, req["challenger"])
    service = current_app.extensions["decisions"]
    try:  # the sticky key must mean something to today's champion as well
        champion = catalog.registry.resolve(name, None, service.clock.business_date())
    except Exception:
        champion = None
    rollouts.check_rollout(champion, challenger, req["mode"], req["share"], req["sticky_by"])
    share = format(req["share"].normalize(), "f") if req["share"] is not None else None
    row, created = catalog.start_rollout(name, req["challenger"], req["mode"], share, req["sticky_by"],
                                         caller_identity(), req["comment"])
    return json_response(rollouts.rollout_view(row), 201 if created else 200)


@bp.delete("/v1/rulesets/<name>/rollout")
@require("approve")
def delete_rollout(name: str):
    _check_name(name)
    row = _catalog().end_rollout(name, caller_identity())
    return json_response({**rollouts.rollout_view(row), "ended": True})


@bp.get("/v1/rulesets/<name>/rollout/report")
@require("read")
def rollout_report(name: str):
    _check_name(name)
    catalog = _catalog()
    catalog.versions(name)
    query = load(_report_query, request.args)
    time_from, time_to = query["time_from"], query["time_to"]
    return json_response(rollouts.report(catalog, catalog.store, name, time_from, time_to))
