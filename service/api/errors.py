"""The one place errors become HTTP answers: application/problem+json (RFC 9457).

Every problem document has `type`, `title`, `status`, `detail` and `code` (the stable
snake_case code of the ServiceError, service/errors.py); validation errors add `errors`, a
list of {path, message, code}. Single answers and each failed item of a batch use the same
body (`problem_body`). Nothing else reaches the client: no stack traces, no framework HTML
pages, no 500 for anything a request can do.
"""
from __future__ import annotations

import logging

from flask import Flask, Response, g
from werkzeug.exceptions import HTTPException

from service import canonical, errors
from service.errors import Problem, ServiceError

log = logging.getLogger("service.api")
PROBLEM_TYPE_BASE = "https://credit-rules.example/problems/"

TITLES = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 408: "Request Timeout", 409: "Conflict", 413: "Payload Too Large",
    415: "Unsupported Media Type", 422: "Unprocessable Content", 500: "Internal Server Error",
    503: "Service Unavailable",
}

# Each kind of ServiceError -> its HTTP status. A new error subclasses a kind; nothing here changes.
STATUS_BY_KIND: tuple[tuple[type[ServiceError], int], ...] = (
    (errors.Malformed, 400),
    (errors.Unauthenticated, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.TooSlow, 408),
    (errors.Conflict, 409),
    (errors.TooLarge, 413),
    (errors.UnsupportedMedia, 415),
    (errors.Unprocessable, 422),
    (errors.Unavailable, 503),
    (errors.Internal, 500),
)

# Werkzeug's own refusals (routing, body limit) in the same vocabulary.
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 406: "not_acceptable",
               413: "payload_too_large", 415: "unsupported_media_type"}
_HTTP_DETAILS = {
    404: "no such resource",
    405: "method not allowed on this resource",
    413: "request body is larger than the service accepts",
}


def status_for(exc: ServiceError) -> int:
    return next((status for kind, status in STATUS_BY_KIND if isinstance(exc, kind)), 422)


def headers_for(exc: ServiceError) -> dict[str, str]:
    if isinstance(exc, errors.Unauthenticated):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, errors.Unavailable):
        return {"Retry-After": "5"}
    return {}


def problem_errors(problems: list[Problem], prefix: str = "") -> list[dict]:
    """Problem items; `prefix` (e.g. ``items.3.``) locates them inside a larger request."""
    out = []
    for p in problems:
        item = p.as_dict()
        if prefix:
            item["path"] = prefix + item["path"] if item["path"] else prefix.rstrip(".")
        out.append(item)
    return out


# A problem lists at most this many errors and says how many it left out: 100,000 unknown
# input keys must not become a 13 MB error document.
MAX_LISTED_ERRORS = 100


def listed_warnings(problems) -> dict:
    """`warnings` of a publish or validate answer, capped like a problem's `errors`: a valid
    1 MiB document must not answer with 20,000 warnings."""
    items = problem_errors(list(problems))
    out = {"warnings": items[:MAX_LISTED_ERRORS]}
    if len(items) > MAX_LISTED_ERRORS:
        out["warnings_omitted"] = len(items) - MAX_LISTED_ERRORS
    return out


def _body(status: int, code: str, detail: str, errors_: list[dict] | None, extensions: dict | None) -> dict:
    body = {"type": PROBLEM_TYPE_BASE + code.replace("_", "-"), "title": TITLES.get(status, "Error"),
            "status": status, "code": code, "detail": detail}
    if errors_ is not None:
        body["errors"] = errors_[:MAX_LISTED_ERRORS]
        if len(errors_) > MAX_LISTED_ERRORS:
            body["errors_omitted"] = len(errors_) - MAX_LISTED_ERRORS
            body["detail"] = f"{detail} ({body['errors_omitted']} more problems not listed)"
    for key, value in (extensions or {}).items():
        body.setdefault(key, value)
    return body


def problem_body(exc: ServiceError, *, path_prefix: str = "") -> dict:
    """The problem document for a ServiceError (also each failed batch item's `error`)."""
    status = status_for(exc)
    if isinstance(exc, errors.Internal):
        log.error("internal error: %s", exc.message)
        detail = "an internal error occurred; it has been logged"
    else:
        detail = exc.message
    return _body(status, exc.code, detail, problem_errors(exc.problems, path_prefix) if exc.problems else None,
                 exc.extensions)


def _response(body: dict, headers: dict | None = None) -> Response:
    request_id = getattr(g, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    response = Response(canonical.dumps(body, sort_keys=False), status=body["status"],
                        mimetype="application/problem+json")
    for k, v in (headers or {}).items():
        response.headers[k] = v
    return response


def problem_response(exc: ServiceError) -> Response:
    return _response(problem_body(exc), headers_for(exc))


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError):
        return problem_response(exc)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        status = exc.code or 500
        detail = _HTTP_DETAILS.get(status, exc.description or TITLES.get(status, "error"))
        headers = {"Allow": ", ".join(exc.valid_methods)} if status == 405 and getattr(exc, "valid_methods", None) else None
        return _response(_body(status, _HTTP_CODES.get(status, "http_error"), detail, None, None), headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        # A bug, never the client's fault: log it with the request id, answer without details.
        log.exception("unhandled error")
        return _response(_body(500, "internal", "an internal error occurred; it has been logged", None, None))
