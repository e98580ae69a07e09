"""openapi.yaml as a checker of real responses.

`check(method, path, response)` finds the documented operation for a request, and asserts
that the response status is documented for it, that its media type is one documented for
that status, that a JSON body validates against the documented schema (JSON Schema 2020-12,
the dialect of OpenAPI 3.1, `$ref`s resolved inside openapi.yaml, formats checked), that
errors are application/problem+json, and that X-Request-Id is set. Requests to paths or
methods openapi.yaml does not describe must be answered by a problem+json error.
"""
from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import urlsplit

import requests
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.server import ROOT

OPENAPI_PATH = ROOT / "openapi.yaml"
BASE_URI = "urn:openapi"
JSON_MEDIA = ("application/json", "application/problem+json")
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


@lru_cache(maxsize=1)
def spec() -> dict:
    return yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _registry() -> Registry:
    return Registry().with_resource(BASE_URI, Resource.from_contents(spec(), default_specification=DRAFT202012))


def validator(pointer: str) -> Draft202012Validator:
    """A validator for the schema at this JSON pointer of openapi.yaml (e.g. /components/schemas/Decision)."""
    return Draft202012Validator({"$ref": f"{BASE_URI}#{pointer}"}, registry=_registry(),
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def schema_errors(instance, pointer: str) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator(pointer).iter_errors(instance)]


def _pointer_escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


@lru_cache(maxsize=1)
def _templates() -> list[tuple[re.Pattern, str]]:
    out = []
    for template in spec()["paths"]:
        parts = re.split(r"(\{[^}]+\})", template)
        regex = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
        literal = sum(len(p) for p in parts if not p.startswith("{"))
        out.append((re.compile(f"^{regex}$"), template, literal))
    # Like Flask: the template with the most literal text wins (`{version}:retire` over `{version}`).
    out.sort(key=lambda t: -t[2])
    return [(regex, template) for regex, template, _ in out]


def find_template(path: str) -> str | None:
    path = urlsplit(path).path
    return next((template for regex, template in _templates() if regex.match(path)), None)


def _resolve(obj: dict) -> tuple[dict, str | None]:
    """Follow a local $ref; returns the object and its pointer (None when inline)."""
    pointer = None
    while "$ref" in obj:
        pointer = obj["$ref"][1:]
        obj = spec()
        for token in pointer.strip("/").split("/"):
            obj = obj[token.replace("~1", "/").replace("~0", "~")]
    return obj, pointer


def media_type(response: requests.Response) -> str:
    return response.headers.get("Content-Type", "").split(";")[0].strip().lower()


def check(method: str, path: str, response: requests.Response) -> None:
    """Assert that this response is one openapi.yaml documents (see module docstring)."""
    where = f"{method.upper()} {path} -> {response.status_code}"
    request_id = response.headers.get("X-Request-Id", "")
    assert REQUEST_ID_RE.match(request_id), f"{where}: X-Request-Id missing or malformed: {request_id!r}"
    if response.status_code >= 400:
        assert media_type(response) == "application/problem+json", \
            f"{where}: errors are application/problem+json, got {media_type(response)!r}: {response.text[:300]}"
    template = find_template(path)
    operation = spec()["paths"].get(template, {}).get(method.lower()) if template else None
    if operation is None:
        assert response.status_code in (404, 405), f"{where}: undocumented operation answered {response.status_code}"
        _check_body(where, response, "/components/schemas/Problem")
        return
    responses = operation["responses"]
    status = str(response.status_code)
    assert status in responses, f"{where}: status {status} is not documented for {method.upper()} {template} " \
                                f"(documented: {sorted(responses)}): {response.text[:300]}"
    documented, pointer = _resolve(responses[status])
    if pointer is None:
        pointer = f"/paths/{_pointer_escape(template)}/{method.lower()}/responses/{status}"
    content = documented.get("content", {})
    media = media_type(response)
    if not content:
        return
    assert media in content, f"{where}: media type {media!r} not documented (documented: {sorted(content)})"
    if media in JSON_MEDIA:
        _check_body(where, response, f"{pointer}/content/{_pointer_escape(media)}/schema")


def _check_body(where: str, response: requests.Response, schema_pointer: str) -> None:
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"{where}: body is not JSON: {response.text[:300]}") from None
    errors = schema_errors(body, schema_pointer)
    assert not errors, f"{where}: body does not match {schema_pointer}:\n  " + "\n  ".join(errors[:20])


def documented_operations() -> set[tuple[str, str]]:
    """{(METHOD, template)} of openapi.yaml."""
    return {(method.upper(), template) for template, item in spec()["paths"].items()
            for method in item if method in METHODS}
