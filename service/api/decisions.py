"""POST /v1/decisions and /v1/decisions:batch (role `evaluate`)."""
from __future__ import annotations

from flask import Blueprint, Response, current_app
from simplejson import RawJSON

from service.api.errors import problem_body
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
    results = []
    ok = 0
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise InvalidRequest("an item must be a JSON object", [Problem("invalid_request", "", "must be an object")])
            request = load(_evaluate_schema, item)
            decision = RawJSON(_service().decide(request, item))
        except ServiceError as exc:
            # One bad item does not fail the others; the log only holds real decisions. Its error
            # is the problem document a single request would get, paths located inside the batch.
            error = problem_body(exc, path_prefix=f"items.{index}.")
            results.append({"index": index, "status": error["status"], "error": error})
            continue
        ok += 1
        results.append({"index": index, "status": 200, "decision": decision})
    return json_response({"items": results, "summary": {"total": len(items), "decided": ok, "failed": len(items) - ok}})
