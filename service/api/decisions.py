"""POST /v1/decisions and /v1/decisions:batch (role `evaluate`)."""
from __future__ import annotations

from flask import Blueprint, Response, current_app
from simplejson import RawJSON

from service.api.errors import problem_errors, status_for
from service.api.http import json_body, json_response, require
from service.errors import InvalidRequest, Problem, ServiceError
from service.schemas.api import BatchRequest, EvaluateRequest, load

bp = Blueprint("decisions", __name__)

_evaluate_schema = EvaluateRequest()
_batch_schema = BatchRequest()


def _service():
    return current_app.extensions["decisions"]


@bp.post("/v1/decisions")
@require("evaluate")
def evaluate():
    body = json_body()
    request = load(_evaluate_schema, body)
    return Response(_service().decide(request, body), mimetype="application/json")


@bp.post("/v1/decisions:batch")
@require("evaluate")
def evaluate_batch():
    body = json_body()
    items = load(_batch_schema, body)["items"]
    limit = current_app.config["SETTINGS"].max_batch_items
    if len(items) > limit:
        raise InvalidRequest(f"at most {limit} items", [Problem("invalid_request", "items", f"at most {limit} items")])
    results = []
    ok = 0
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise InvalidRequest("an item must be a JSON object",
                                     [Problem("invalid_request", f"items.{index}", "must be an object")])
            request = load(_evaluate_schema, item, prefix=f"items.{index}")
            decision = RawJSON(_service().decide(request, item))
        except ServiceError as exc:
            # One bad item does not fail the others; the log only holds real decisions.
            results.append({"index": index, "status": status_for(exc),
                            "error": {"detail": exc.message, "errors": problem_errors(exc.problems)}})
            continue
        ok += 1
        results.append({"index": index, "status": 200, "decision": decision})
    return json_response({"items": results, "summary": {"total": len(items), "decided": ok, "failed": len(items) - ok}})
