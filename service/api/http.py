"""Request plumbing shared by the blueprints: bodies, JSON answers, roles, request ids."""
from __future__ import annotations

import hmac
import re
import uuid
from decimal import Decimal
from functools import wraps

import simplejson
from flask import Response, current_app, g, request

from service import canonical
from service.config import token_identity as fingerprint_identity
from service.errors import (
    Forbidden, InvalidRequest, MalformedBody, MalformedJson, Problem, TooLarge, TooSlow, Unauthenticated,
    UnsupportedMedia,
)

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
JSON_TYPES = ("application/json",)


def json_response(body, status: int = 200, headers=None) -> Response:
    response = Response(canonical.dumps(body, sort_keys=False), status=status, mimetype="application/json")
    for k, v in (headers or {}).items():
        response.headers[k] = v
    return response


def read_body(allowed_types=JSON_TYPES) -> tuple[bytes, str]:
    """The raw body and its media type; 415 for anything not allowed, 413 when too large.

    Read here from the WSGI stream, not by werkzeug: a chunked body has no Content-Length,
    and it must be refused with 413 as soon as it passes the limit (never cut at the limit
    and parsed), and a broken chunked encoding is the client's fault (400), like a body
    that stops short of its Content-Length or a client too slow to send it (408)."""
    media_type = (request.mimetype or "").lower()
    if media_type not in allowed_types:
        raise UnsupportedMedia(f"send the body as {' or '.join(allowed_types)}" + (f", not {media_type}" if media_type else ""))
    limit = current_app.config["SETTINGS"].max_body_bytes
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(limit)
    cached = getattr(request, "_cached_data", None)
    if cached is not None:
        return cached, media_type
    stream = request.environ["wsgi.input"]
    parts, size = [], 0
    try:
        while size <= limit:
            data = stream.read(min(BODY_READ_CHUNK, limit + 1 - size))
            if not data:
                break
            parts.append(data)
            size += len(data)
    except TimeoutError:
        raise TooSlow("the request body did not arrive in time") from None
    except Exception as exc:  # noqa: BLE001 - whatever the server's body reader says, the body is broken
        raise MalformedBody(f"the request body could not be read: {_short(exc)}") from None
    if size > limit:
        raise _too_large(limit)
    body = b"".join(parts)
    if declared is not None and len(body) < declared:
        raise MalformedBody(f"the body ended after {len(body)} of its {declared} bytes")
    request._cached_data = body  # later get_data() calls see the same bytes
    return body, media_type


BODY_READ_CHUNK = 64 * 1024


def _too_large(limit: int) -> TooLarge:
    return TooLarge(f"request body is larger than {limit} bytes (MAX_BODY_BYTES)")


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def parse_json(body: bytes):
    """Strict JSON: UTF-8, no duplicate keys, no NaN/Infinity, no lone surrogates, exact decimals
    (numbers beyond ±1e1000 refused with 422)."""
    def pairs(items):
        out = {}
        for key, value in items:
            if key in out:
                raise MalformedJson(f"duplicate key {key!r} in the JSON body")
            out[key] = value
        return out

    def no_constants(name):
        raise MalformedJson(f"{name} is not valid JSON")

    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedJson("the body is not UTF-8 text") from None
    try:
        data = simplejson.loads(text, parse_float=_decimal, parse_int=_integer, object_pairs_hook=pairs,
                                parse_constant=no_constants)
    except simplejson.JSONDecodeError as exc:
        raise MalformedJson(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise MalformedJson("the JSON body is nested too deeply") from None
    if _SURROGATE_ESCAPE.search(text):
        _refuse_lone_surrogates(data)
    return data


# Numbers beyond these are never meaningful here, and would overflow decimal arithmetic
# (1e999999) or Python's int parsing (more than 4300 digits) further down: refuse them up front.
MAX_NUMBER_EXPONENT = 1000
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _number_out_of_range(literal: str) -> InvalidRequest:
    shown = literal if len(literal) <= 40 else literal[:20] + "…" + literal[-10:]
    return InvalidRequest(f"the number {shown} is out of the range this service accepts",
                          [Problem("number_out_of_range", "", f"numbers must lie within ±1e{MAX_NUMBER_EXPONENT}")])


def _decimal(literal: str) -> Decimal:
    value = Decimal(literal)
    if not value.is_zero() and not -MAX_NUMBER_EXPONENT <= value.adjusted() <= MAX_NUMBER_EXPONENT:
        raise _number_out_of_range(literal)
    return value


def _integer(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_NUMBER_EXPONENT:
        raise _number_out_of_range(literal)
    return int(literal)


def screen_json_document(body: bytes) -> None:
    """Ruleset documents sent as JSON are parsed by service.rulesets, which reports malformed
    JSON itself (with line numbers); refuse here, like any JSON body, the numbers out of range
    and the lone surrogates that would otherwise overflow or fail deep inside it."""
    try:
        text = body.decode("utf-8")
        data = simplejson.loads(text, parse_float=_decimal, parse_int=_integer)
    except (ValueError, RecursionError):
        return
    if _SURROGATE_ESCAPE.search(text):
        _refuse_lone_surrogates(data)


def _refuse_lone_surrogates(data) -> None:
    """JSON escapes can spell a lone UTF-16 surrogate (\\ud800), which no UTF-8 text can hold."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise MalformedJson("the JSON body contains a lone surrogate escape "
                                    "(such as \\ud800), which is not valid Unicode text") from None


def json_body(*, require_object: bool = True):
    body, _ = read_body()
    data = parse_json(body)
    if require_object and not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object", [Problem("invalid_request", "", "must be an object")])
    return data


# -- request ids ------------------------------------------------------------------------


def assign_request_id() -> None:
    incoming = request.headers.get("X-Request-Id", "")
    g.request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex


# -- roles ------------------------------------------------------------------------------


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("use Authorization: Bearer <token>")
    return token.strip()


def _roles_of(token: str, tokens: dict[str, frozenset[str]]) -> frozenset[str] | None:
    """Constant-time lookup: every configured token is compared, whatever matches."""
    found = None
    candidate = token.encode("utf-8")
    for known, roles in tokens.items():
        if hmac.compare_digest(candidate, known.encode("utf-8")):
            found = roles
    return found


def caller_roles() -> frozenset[str]:
    """Roles of this request's caller. Open mode (RULES_API_TOKENS unset): evaluate and read only."""
    return token_roles(_bearer_token() if current_app.config["SETTINGS"].tokens is not None else None)


def token_roles(token: str | None) -> frozenset[str]:
    """The roles `token` carries: the one role lookup, used by the API (bearer header) and the
    console (its signed session). Open mode: evaluate and read, whatever the token."""
    tokens = current_app.config["SETTINGS"].tokens
    if tokens is None:
        return frozenset({"evaluate", "read"})
    if token is None:
        raise Unauthenticated("a bearer token is required")
    roles = _roles_of(token, tokens)
    if roles is None:
        raise Unauthenticated("unknown token")
    return roles | {"read"}


def check_roles(roles: frozenset[str], needed) -> None:
    """403 unless `roles` holds every role in `needed`."""
    missing = [r for r in needed if r not in roles]
    if missing:
        if current_app.config["SETTINGS"].tokens is None:
            raise Forbidden(f"the {'/'.join(missing)} role is not available: "
                            "RULES_API_TOKENS is not set, so only evaluation and reading are open")
        raise Forbidden(f"this token lacks the {'/'.join(missing)} role")


def require(*needed: str):
    """Decorator: the caller needs every role in `needed` ("read" = any valid token)."""
    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            roles = caller_roles()
            check_roles(roles, needed)
            g.caller_roles = roles
            return view(*args, **kwargs)
        return wrapper
    return decorate


def caller_name() -> str | None:
    """The caller's identity, as the registry, history and log record it (never the token)."""
    if current_app.config["SETTINGS"].tokens is None:
        return None
    return token_identity(_bearer_token())


def token_identity(token: str | None) -> str | None:
    """The non-secret identity of a token: its entry's `name=` in RULES_API_TOKENS, else
    `token:<first 12 hex of sha256(token)>`. None in open mode."""
    settings = current_app.config["SETTINGS"]
    if token is None or settings.tokens is None:
        return None
    candidate = token.encode("utf-8")
    found = None
    for known in settings.identities:  # constant time, like the role lookup
        if hmac.compare_digest(candidate, known.encode("utf-8")):
            found = settings.identities[known]
    return found or fingerprint_identity(token)


caller_identity = caller_name
