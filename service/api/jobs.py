"""Jobs: impact analyses and backtests that run outside the request workers. Reading: any valid token."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from service.api.http import json_response, require
from service.api.rulesets import require_any_role
from service.jobs.service import job_view
from service.schemas.api import load
from service.schemas.query import JobListQuery

bp = Blueprint("jobs", __name__)
_list_query = JobListQuery()


def _jobs():
    return current_app.extensions["jobs"]


@bp.get("/v1/jobs")
@require("read")
def list_jobs():
    """The newest jobs first, without their results (read one job for that)."""
    query = load(_list_query, request.args)
    limit, ruleset = query["limit"], query["ruleset"] or None
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
