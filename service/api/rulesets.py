"""Ruleset registry endpoints. Reading: any valid token (or open mode). Writing: role `publish`."""
from __future__ import annotations

from decimal import Decimal

import yaml
from flask import Blueprint, Response, current_app, g, request

from service import canonical
from service.api.errors import listed_warnings
from service.api.http import caller_name, json_body, json_response, read_body, require, screen_json_document
from service.errors import Forbidden, InvalidRuleset, UnknownRuleset
from service.identifiers import is_ruleset_name, is_version
from service.impact import MAX_INLINE_APPLICATIONS, cases_from_request, impact as run_impact
from service.jobs.service import job_view
from service.rulesets.diff import diff_rulesets
from service.decision_engine.registry import LoadedVersion
from service.rulesets.testing import run_tests
from service.schemas.api import ImpactRequest, load
from service.schemas.query import DiffQuery

bp = Blueprint("rulesets", __name__)

DOCUMENT_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "application/json")
_impact_schema = ImpactRequest()
_diff_query = DiffQuery()


def _catalog():
    return current_app.extensions["catalog"]


def _check_name(name: str) -> None:
    if not is_ruleset_name(name):
        raise UnknownRuleset(f"unknown ruleset {name!r}")


def _check_version(version: str) -> None:
    if not is_version(version):
        raise UnknownRuleset(f"no version {version!r}: versions look like 1.0.0")


def version_summary(lv: LoadedVersion) -> dict:
    rs = lv.ruleset
    return {
        "version": rs.version,
        "status": lv.status,
        "effective_from": rs.effective_from.isoformat(),
        "effective_to": rs.effective_to.isoformat() if rs.effective_to else None,
        "sha256": rs.sha256,
        "owner": rs.owner,
        "rules": len(rs.rules),
        "uses": [u.ruleset for u in rs.uses],
    }


@bp.get("/v1/rulesets")
@require("read")
def list_rulesets():
    catalog = _catalog()
    catalog.sync()
    out = []
    for name in catalog.registry.names():
        versions = catalog.registry.versions(name)
        latest = versions[-1].ruleset
        out.append({"name": name, "description": {"zh": latest.description_zh, "en": latest.description_en},
                    "versions": [version_summary(lv) for lv in versions]})
    return json_response({"rulesets": out})


@bp.get("/v1/rulesets/<name>/versions")
@require("read")
def list_versions(name: str):
    _check_name(name)
    return json_response({"name": name, "versions": [version_summary(lv) for lv in _catalog().versions(name)]})


@bp.get("/v1/rulesets/<name>/versions/<version>")
@require("read")
def get_version(name: str, version: str):
    _check_name(name)
    _check_version(version)
    lv = _catalog().get(name, version)
    wanted = request.accept_mimetypes.best_match(["application/json", "application/yaml", "text/yaml"], default="application/json")
    if wanted in ("application/yaml", "text/yaml"):
        text = lv.source_text if lv.source_format == "yaml" else yaml.dump(
            canonical.loads(lv.ruleset_canonical_json), Dumper=_DecimalDumper, allow_unicode=True, sort_keys=False)
        return Response(text, mimetype="application/yaml",
                        headers={"X-Ruleset-Sha256": lv.ruleset.sha256})
    return json_response({**version_summary(lv), "name": name,
                          "document": canonical.loads(lv.ruleset_canonical_json)},
                         headers={"X-Ruleset-Sha256": lv.ruleset.sha256})


class _DecimalDumper(yaml.SafeDumper):
    """YAML for a document published as JSON: its exact decimals written as plain YAML numbers."""


def _represent_decimal(dumper: yaml.SafeDumper, value: Decimal) -> yaml.ScalarNode:
    value = canonical.normalize_decimal(value)
    if value == value.to_integral_value():
        return dumper.represent_scalar("tag:yaml.org,2002:int", str(int(value)))
    return dumper.represent_scalar("tag:yaml.org,2002:float", format(value, "f"))


_DecimalDumper.add_representer(Decimal, _represent_decimal)


def _document_body() -> tuple[bytes, str]:
    body, media_type = read_body(DOCUMENT_TYPES)
    if media_type == "application/json":
        screen_json_document(body)
        return body, "json"
    return body, "yaml"


@bp.post("/v1/rulesets/<name>/versions")
@require("publish")
def publish(name: str):
    _check_name(name)
    body, source_format = _document_body()
    result = _catalog().publish(name, body, source_format, caller_name())
    lv = result.version
    report = (lv.test_report or run_tests(lv, _catalog().registry)).as_dict()
    out = {"name": name, **version_summary(lv), "created": result.created,
           **listed_warnings(result.warnings), "tests": report}
    status = 201 if result.created else 200
    return json_response(out, status, headers={"Location": f"/v1/rulesets/{name}/versions/{lv.version}"})


@bp.post("/v1/rulesets/<name>/versions/<version>:retire")
@require("publish")
def retire(name: str, version: str):
    _check_name(name)
    _check_version(version)
    row = _catalog().retire(name, version, caller_name())
    return json_response({"name": name, "version": version, "status": "retired",
                          "retired_at": row.retired_at.isoformat() if row.retired_at else None})


@bp.post("/v1/rulesets:validate")
@require("publish")
def validate():
    body, source_format = _document_body()
    lv, problems = _catalog().check(body, source_format)
    if lv is None:
        raise InvalidRuleset("the ruleset is invalid; nothing was stored", problems)
    report = (lv.test_report or run_tests(lv, _catalog().registry)).as_dict()
    return json_response({"valid": True, "name": lv.name, "version": lv.version, "sha256": lv.ruleset.sha256,
                          **listed_warnings(p for p in problems if p.severity != "error"),
                          "tests": report})


@bp.get("/v1/rulesets/<name>/diff")
@require("read")
def diff(name: str):
    _check_name(name)
    query = load(_diff_query, request.args)
    a, b = query["from_version"], query["to_version"]
    catalog = _catalog()
    return json_response(diff_rulesets(catalog.get(name, a).ruleset, catalog.get(name, b).ruleset))


@bp.post("/v1/rulesets/<name>/impact")
@require("read")
def impact(name: str):
    """Given applications (up to 1,000): answered inline. Logged decisions of a period, or more
    applications: a job (202 + Location), run by the job processes."""
    _check_name(name)
    body = json_body()
    req = load(_impact_schema, body)
    catalog = _catalog()
    service = current_app.extensions["decisions"]
    given = req["applications"]
    if given is not None:
        require_any_role("publish")
        if len(given) <= MAX_INLINE_APPLICATIONS:
            return json_response(run_impact(catalog, catalog.store, name, req, service.clock.business_date()))
        list(cases_from_request(given, service.clock.business_date()))  # bad as_of: 422 now, not in the job
    else:
        require_any_role("publish", "audit")
    job = current_app.extensions["jobs"].create_impact(name, req, caller_name(), service.clock.business_date())
    return json_response(job_view(job), 202, headers={"Location": f"/v1/jobs/{job.id}"})


def require_any_role(*roles: str) -> None:
    """403 unless the caller holds one of `roles` (the endpoint already required a valid token)."""
    held = _roles()
    if not any(r in held for r in roles):
        if current_app.config["SETTINGS"].tokens is None:
            raise Forbidden(f"the {' or '.join(roles)} role is not available: "
                            "RULES_API_TOKENS is not set, so only evaluation and reading are open")
        raise Forbidden(f"this needs the {' or '.join(roles)} role")


def _roles():
    return getattr(g, "caller_roles", frozenset())


__all__ = ["bp"]
