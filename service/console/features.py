"""What the console shows of features that live in other parts of the service (four-eyes
publishing, rollouts, jobs, record integrity, signed checkpoints). Each is read from the
service object that implements it; when this deployment has no such object, the page says
"not available" instead of pretending.
"""
from __future__ import annotations

from typing import Any


# -- decision log -----------------------------------------------------------------------------


def integrity(record, store) -> dict[str, Any] | None:
    """{"hash_ok", "link_ok"} of a logged record, recomputed by the store; None if it cannot."""
    value = getattr(record, "integrity", None)
    if value is None and hasattr(store, "check_integrity"):
        value = store.check_integrity(record)
    if value is None:
        return None
    return value if isinstance(value, dict) else {"hash_ok": value.hash_ok, "link_ok": value.link_ok}


def shadow_of(record) -> dict | None:
    """The challenger's (or the other arm's) result logged beside the answer, if any."""
    trace = record.trace if isinstance(record.trace, dict) else {}
    return trace.get("shadow") or getattr(record, "shadow", None)


def rollout_of(record) -> dict | None:
    trace = record.trace if isinstance(record.trace, dict) else {}
    return record.response.get("rollout") or trace.get("rollout")


def chain_head(store) -> dict[str, Any] | None:
    """The newest record's seq and hash (the chain head when the chain is intact)."""
    if hasattr(store, "chain_head"):
        head = store.chain_head()
        return head if isinstance(head, dict) else {"seq": head[0], "hash": head[1]}
    items, _ = store.search_decisions(limit=1, newest_first=True)
    if not items:
        return {"seq": 0, "hash": "0" * 64, "evaluated_at": None}
    record = store.get_decision(items[0].decision_id)
    return {"seq": record.seq, "hash": record.hash, "evaluated_at": record.evaluated_at}


def checkpoints_available(app) -> bool:
    return hasattr(app.extensions.get("audit"), "checkpoints")


def signing_configured(app) -> bool:
    return "checkpointer" in app.extensions or getattr(app.extensions.get("audit"), "public_key", None) is not None


def latest_checkpoint(app) -> dict | None:
    """The newest signed checkpoint, as GET /v1/audit/checkpoints lists it."""
    if not checkpoints_available(app):
        return None
    items = app.extensions["audit"].checkpoints(limit=1)
    return items[0] if items else None


# -- registry: status, history, four-eyes ----------------------------------------------------


def version_status(catalog, lv) -> str:
    """The registry status (proposed | active | rejected | retired) where four-eyes publishing
    keeps one, else the document's own status."""
    status = getattr(lv, "status", None)
    if isinstance(status, str):
        return status
    return "retired" if lv.retired else lv.ruleset.status


def history(catalog, name: str, version: str) -> list[dict] | None:
    """Every release transition of a version, oldest first; None where there is no history."""
    if not hasattr(catalog, "history"):
        return None
    return [e.as_dict() if hasattr(e, "as_dict") else dict(e) for e in catalog.history(name, version)]


def approver(catalog, name: str, version: str) -> str | None:
    names = [e.get("identity") for e in history(catalog, name, version) or [] if e.get("event") == "approved"]
    return ", ".join(n for n in names if n) or None


def four_eyes_available(catalog) -> bool:
    return hasattr(catalog, "approve") and hasattr(catalog, "reject")


def proposals(catalog, store) -> list[dict]:
    out = []
    rows = {(r.name, r.version): r for r in store.list_versions()}
    for name in catalog.registry.names():
        for lv in catalog.versions(name):
            if version_status(catalog, lv) == "proposed":
                row = rows.get((name, lv.version))
                out.append({"name": name, "lv": lv, "proposer": row.published_by if row else None,
                            "published_at": row.published_at if row else None})
    return out


def version_in_force(catalog, name: str, lv) -> str | None:
    """The version a proposal would take over from: the newest active one already in force on
    the proposal's effective date (else the newest active one)."""
    active = [v for v in catalog.versions(name) if v.version != lv.version and version_status(catalog, v) == "active"]
    before = [v for v in active if v.ruleset.effective_from <= lv.ruleset.effective_from]
    pick = max(before or active, key=lambda v: (v.ruleset.effective_from, v.ruleset.version), default=None)
    return pick.version if pick is not None else None


def review(catalog, name: str, version: str, decision: str, identity: str | None, comment: str | None):
    action = catalog.approve if decision == "approve" else catalog.reject
    return action(name, version, identity, comment)


# -- rollouts and jobs ----------------------------------------------------------------------


def rollouts_available(app) -> bool:
    return "rollouts" in app.extensions


def rollouts(app) -> list[dict]:
    return app.extensions["rollouts"].list()


def rollout_report(app, name: str, time_from=None, time_to=None):
    app.extensions["catalog"].versions(name)  # an unknown ruleset is a 404
    service = app.extensions["rollouts"]
    return service.get(name), service.report(name, time_from, time_to)


def jobs_available(app) -> bool:
    return "jobs" in app.extensions


def jobs(app, limit: int = 20) -> list[dict] | None:
    """The newest jobs, as the API shows them; None when the job service cannot list."""
    from service.jobs.service import job_view

    service = app.extensions["jobs"]
    if not hasattr(service, "recent"):
        return None
    return [job_view(j) for j in service.recent(limit)]


def job(app, job_id: str) -> dict:
    from service.jobs.service import job_view

    return job_view(app.extensions["jobs"].get(job_id))


def job_changes_csv(app, job_id: str) -> str:
    return app.extensions["jobs"].changes_csv(job_id)
