"""The one place exceptions become HTTP answers: application/problem+json (RFC 9457).

Every error has `type`, `title`, `status`, `detail`; validation errors add `errors`, a
list of {path, message, code}. Nothing else reaches the client: no stack traces, no
framework HTML pages, no 500 for anything a request can do.
"""
from __future__ import annotations

import logging

from flask import Flask, Response, g
from werkzeug.exceptions import HTTPException

from service import canonical
from service.decisionlog import DuplicateDecision, NotFound, StoreUnavailable, VersionConflict
from service.errors import (
    EvaluationError, InvalidInput, InvalidRequest, InvalidRollout, InvalidRuleset, NoRollout, ReleaseConflict,
    RulesetUnavailable, SelfApproval, ServiceError, UnknownRuleset, UnresolvableDependency, VersionNotActive,
)
from service.errors import JobFinished, JobNotFinished, UnknownJob

log = logging.getLogger("service.api")
PROBLEM_TYPE_BASE = "https://credit-rules.example/problems/"


class ApiError(Exception):
    """An HTTP-level failure raised by the API layer itself (auth, parsing, routing)."""

    def __init__(self, status: int, code: str, detail: str, *, errors: list[dict] | None = None, headers=None):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


TITLES = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 409: "Conflict", 413: "Payload Too Large",
    415: "Unsupported Media Type", 422: "Unprocessable Content", 500: "Internal Server Error",
    503: "Service Unavailable",
}

# Domain errors -> (status, problem type code)
_DOMAIN = (
    (InvalidRequest, 422, "invalid-request"),
    (InvalidInput, 422, "invalid-input"),
    (InvalidRuleset, 422, "invalid-ruleset"),
    (UnresolvableDependency, 422, "unresolvable-dependency"),
    (RulesetUnavailable, 422, "ruleset-retired"),
    (EvaluationError, 422, "evaluation-error"),
    (UnknownRuleset, 404, "not-found"),
    (VersionNotActive, 422, "version-not-active"),
    (SelfApproval, 403, "self-approval"),
    (ReleaseConflict, 409, "release-conflict"),
    (InvalidRollout, 422, "invalid-rollout"),
    (NoRollout, 404, "no-rollout"),
    (UnknownJob, 404, "not-found"),
    (JobNotFinished, 409, "job-not-finished"),
    (JobFinished, 409, "job-finished"),
)


def status_for(exc: ServiceError) -> int:
    return next((status for cls, status, _ in _DOMAIN if isinstance(exc, cls)), 422)


def problem(status: int, code: str, detail: str, *, errors: list[dict] | None = None, headers=None, extra=None) -> Response:
    body = {"type": PROBLEM_TYPE_BASE + code, "title": TITLES.get(status, "Error"), "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    if extra:
        body.update(extra)
    request_id = getattr(g, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    response = Response(canonical.dumps(body, sort_keys=False), status=status, mimetype="application/problem+json")
    for k, v in (headers or {}).items():
        response.headers[k] = v
    return response


def problem_errors(problems) -> list[dict]:
    return [p.as_dict() for p in problems]


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return problem(exc.status, exc.code, exc.detail, errors=exc.errors, headers=exc.headers)

    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError):
        status, code = next(((s, c) for cls, s, c in _DOMAIN if isinstance(exc, cls)), (422, "unprocessable"))
        return problem(status, code, exc.message, errors=problem_errors(exc.problems) if exc.problems else None,
                       extra={"code": exc.code})

    @app.errorhandler(StoreUnavailable)
    def _store_unavailable(exc: StoreUnavailable):
        log.error("decision store unavailable: %s", exc)
        return problem(503, "store-unavailable",
                       "the decision log cannot be written or read right now; nothing was decided, retry later",
                       headers={"Retry-After": "5"})

    @app.errorhandler(VersionConflict)
    def _conflict(exc: VersionConflict):
        return problem(409, "version-conflict", str(exc))

    @app.errorhandler(DuplicateDecision)
    def _duplicate(exc: DuplicateDecision):
        return problem(409, "duplicate-decision", "a decision with this id is already logged; retry")

    @app.errorhandler(NotFound)
    def _not_found(exc: NotFound):
        return problem(404, "not-found", str(exc) or "not found")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        status = exc.code or 500
        code = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large", 400: "bad-request"}.get(status, "http-error")
        detail = {
            404: "no such resource",
            405: "method not allowed on this resource",
            413: "request body is larger than the service accepts",
        }.get(status, exc.description or TITLES.get(status, "error"))
        headers = {"Allow": ", ".join(exc.valid_methods)} if status == 405 and getattr(exc, "valid_methods", None) else None
        return problem(status, code, detail, headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        # A bug, never the client's fault: log it with the request id, answer without details.
        log.exception("unhandled error")
        return problem(500, "internal", "an internal error occurred; it has been logged")
