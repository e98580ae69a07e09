"""Jobs: impact analyses and backtests that run outside the request workers. Reading: any valid token."""
from __future__ import annotations

from flask import Blueprint, Response, current_app

from service.api.http import json_response, require
from service.api.rulesets import require_any_role
from service.jobs.service import job_view

bp = Blueprint("jobs", __name__)


def _jobs():
    return current_app.extensions["jobs"]


@bp.get("/v1/jobs/<job_id>")
@require("read")
def get_job(job_id: str):
    return json_response(job_view(_jobs().get(job_id)))


@bp.get("/v1/jobs/<job_id>/changes.csv")
@require("read")
def changes_csv(job_id: str):
    return Response(_jobs().changes_csv(job_id), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="job-{job_id}-changes.csv"'})


@bp.post("/v1/jobs/<job_id>:cancel")
@require("read")
def cancel_job(job_id: str):
    # Whoever may create an impact job may cancel one (publish or audit).
    require_any_role("publish", "audit")
    return json_response(job_view(_jobs().cancel(job_id)))


__all__ = ["bp"]
