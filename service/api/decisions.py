"""POST /v1/decisions and /v1/decisions:batch (role `evaluate`)."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, request as http_request
from simplejson import RawJSON

from service.api.errors import problem_body
from service.api.http import caller_identity, caller_name, json_body, json_response, require
from service.decisions import Idempotency
from service.errors import InvalidRequest, Problem, ServiceError, StorageUnavailable
from service.schemas.api import BatchRequest, evaluate_request, load

bp = Blueprint("decisions", __name__)

_batch_schema = BatchRequest()


def _service():
    return current_app.extensions["decisions"]


MAX_IDEMPOTENCY_KEY = 128


def _idempotency(key, path: str, raw_request: dict) -> Idempotency | None:
    """The caller's idempotency key (None when not sent); 422 naming `path` if invalid.
    Keys are scoped to the caller's identity (open mode: one shared anonymous caller)."""
    if key is None:
        return None
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable():
        message = f"an idempotency key is 1 to {MAX_IDEMPOTENCY_KEY} printable characters"
        raise InvalidRequest(f"{path}: {message}", [Problem("invalid_request", path, message)])
    return Idempotency.of(caller_identity() or "anonymous", key, raw_request)


@bp.post("/v1/decisions")
@require("evaluate")
def evaluate():
    body = json_body()
    request = evaluate_request(body)
    idempotency = _idempotency(http_request.headers.get("Idempotency-Key"), "Idempotency-Key", body)
    response = Response(_service().decide(request, body, idempotency, caller_name()), mimetype="application/json")
    if idempotency is not None and idempotency.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.post("/v1/decisions:batch")
@require("evaluate")
def evaluate_batch():
    body = json_body()
    items = load(_batch_schema, body)["items"]
    results = []
    ok = 0
    unavailable = None
    for index, item in enumerate(items):
        if unavailable is not None:
            # The log stopped taking writes at item `unavailable`: the rest are not evaluated (each
            # would wait for the store in turn); they are safe to retry.
            results.append(_not_evaluated(index, unavailable))
            continue
        try:
            if not isinstance(item, dict):
                raise InvalidRequest("an item must be a JSON object", [Problem("invalid_request", "", "must be an object")])
            fields = {k: v for k, v in item.items() if k != "idempotency_key"}
            idempotency = _idempotency(item.get("idempotency_key"), "idempotency_key", item)
            request = evaluate_request(fields)
            decision = RawJSON(_service().decide(request, item, idempotency, caller_name()))
        except StorageUnavailable:
            # docs/api-contract.md: logged items keep their decisions; this one and the rest answer 503.
            if ok == 0:
                raise  # nothing was logged: a plain 503 for the whole batch, safe to retry as it is
            unavailable = index
            exc = StorageUnavailable("the decision log cannot be written right now; this item was not decided")
            results.append({"index": index, "status": 503, "error": problem_body(exc)})
            continue
        except ServiceError as exc:
            # One bad item does not fail the others; the log only holds real decisions. Its error
            # is the problem document a single request would get, paths located inside the batch.
            error = problem_body(exc, path_prefix=f"items.{index}.")
            results.append({"index": index, "status": error["status"], "error": error})
            continue
        ok += 1
        result = {"index": index, "status": 200, "decision": decision}
        if idempotency is not None and idempotency.replayed:
            result["idempotent_replayed"] = True
        results.append(result)
    return json_response({"items": results, "summary": {"total": len(items), "decided": ok, "failed": len(items) - ok}})


def _not_evaluated(index: int, failed_at: int) -> dict:
    exc = StorageUnavailable(f"not evaluated: the decision log became unavailable at item {failed_at}; retry this item")
    return {"index": index, "status": 503, "error": problem_body(exc)}
