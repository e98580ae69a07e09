"""Jobs as the API sees them: create an impact job, read it, cancel it, its changes as CSV."""
from __future__ import annotations

import csv
import datetime as dt
import io

from service import canonical
from service.boundary import store_errors_translated
from service.catalog import Catalog
from service.errors import InvalidRequest, JobFinished, JobNotFinished, Problem, UnknownJob
from service.jobs.queue import Job, JobQueue
from service.jobs.work import KIND_IMPACT, SOURCE_LOG, impact_params, source_of

CSV_COLUMNS = ("application_id", "as_of", "from_outcome", "to_outcome", "from_reasons", "to_reasons",
               "rules_responsible", "from_results", "to_results")


@store_errors_translated
class JobService:
    def __init__(self, queue: JobQueue, catalog: Catalog):
        self.queue, self.catalog = queue, catalog

    def create_impact(self, name: str, request: dict, created_by: str | None, today: dt.date) -> Job:
        if request["applications"] is None and (request["logged_from"] is None or request["logged_to"] is None):
            missing = [f for f in ("logged_from", "logged_to") if request[f] is None]
            problems = [Problem("invalid_request", f, "required unless applications are given") for f in missing]
            if len(missing) == 2:
                problems.insert(0, Problem("invalid_request", "applications", "required unless logged_from/logged_to are given"))
            raise InvalidRequest("give `applications`, or `logged_from` and `logged_to` to replay the log", problems)
        if request["logged_from"] is not None and request["logged_to"] is not None \
                and request["logged_from"] >= request["logged_to"]:
            raise InvalidRequest("the period is empty", [Problem("invalid_request", "logged_to", "must be after logged_from")])
        # Unknown versions are refused now (404), not discovered by a job later.
        self.catalog.get(name, request["from_version"])
        self.catalog.get(name, request["to_version"])
        return self.queue.create(KIND_IMPACT, name, impact_params(request, today), created_by)

    def get(self, job_id: str) -> Job:
        job = self.queue.get(job_id) if _plausible_id(job_id) else None
        if job is None:
            raise UnknownJob(f"no job {job_id!r}")
        return job

    def recent(self, limit: int = 20, ruleset: str | None = None) -> list[Job]:
        return self.queue.recent(limit, ruleset)

    def cancel(self, job_id: str) -> Job:
        self.get(job_id)
        job = self.queue.cancel(job_id)
        if job.status in ("done", "failed"):
            raise JobFinished(f"job {job_id} is already {job.status}; there is nothing to cancel")
        return job

    def changes_csv(self, job_id: str) -> str:
        job = self.get(job_id)
        if job.status != "done":
            raise JobNotFinished(f"job {job_id} is {job.status}; its changes are there when it is done")
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        for c in job.result["changed"]:
            writer.writerow([_cell(c["application_id"]), c["as_of"], c["from"]["outcome"], c["to"]["outcome"],
                             " ".join(c["from"]["reasons"]), " ".join(c["to"]["reasons"]),
                             " ".join(c["rules_responsible"]),
                             canonical.dumps(c["from"]["results"]), canonical.dumps(c["to"]["results"])])
        return out.getvalue()


_cell = canonical.spreadsheet_safe


def _plausible_id(job_id: str) -> bool:
    return 0 < len(job_id) <= 64 and all(ch in "0123456789abcdef-" for ch in job_id)


def job_view(job: Job) -> dict:
    """The contract's job object: id, kind, status, progress, created_by, result (null until done)."""
    params = job.params
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "ruleset": job.ruleset,
        "from": params["from"],
        "to": params["to"],
        "source": source_of(params),
        "progress": {"done": job.done, "total": job.total},
        "created_by": job.created_by,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "error": job.error,
        "result": job.result if job.status == "done" else None,
        "links": {"self": f"/v1/jobs/{job.id}", "changes_csv": f"/v1/jobs/{job.id}/changes.csv",
                  "cancel": f"/v1/jobs/{job.id}:cancel"},
    }


__all__ = ["JobService", "job_view", "SOURCE_LOG"]
