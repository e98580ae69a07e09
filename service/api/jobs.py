"""Jobs: impact analyses and backtests that run outside the request workers. Reading: any valid token."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from service.api.errors import ApiError

from service.api.http import json_response, require
from service.api.rulesets import require_any_role
from service.jobs.service import job_view

bp = Blueprint("jobs", __name__)


def _jobs():
    return current_app.extensions["jobs"]


@bp.get("/v1/jobs")
@require("read")
def list_jobs():
    """The newest jobs first, without their results (read one job for that)."""
    problems = []
    try:
        limit = int(request.args.get("limit", "20"))
        if not 1 <= limit <= 200:
            raise ValueError
    except ValueError:
        limit = 0
        problems.append({"path": "limit", "message": "an integer from 1 to 200", "code": "invalid_request"})
    ruleset = request.args.get("ruleset") or None
    unknown = sorted(set(request.args) - {"limit", "ruleset"})
    problems += [{"path": k, "message": "unknown query parameter", "code": "invalid_request"} for k in unknown]
    if problems:
        raise ApiError(422, "invalid-request", "the query is invalid", errors=problems)
    jobs = [{**job_view(j), "result": None} for j in _jobs().recent(limit, ruleset)]
    return json_response({"jobs": jobs})


@bp.get("/v1/jobs/<id>")
@require("read")
def get_job(id: str):  # noqa: A002 - the path parameter of openapi.yaml
    return json_response(job_view(_jobs().get(id)))


@bp.get("/v1/jobs/<id>/changes.csv")
@require("read")
def changes_csv(id: str):  # noqa: A002
    return Response(_jobs().changes_csv(id), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="job-{id}-changes.csv"'})


@bp.post("/v1/jobs/<id>:cancel")
@require("read")
def cancel_job(id: str):  # noqa: A002
    # Whoever may create an impact job may cancel one (publish or audit).
    require_any_role("publish", "audit")
    return json_response(job_view(_jobs().cancel(id)))


__all__ = ["bp"]
