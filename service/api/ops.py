"""Operations endpoints, open to all: health, readiness, metrics, the API description and its docs."""
from __future__ import annotations

import logging
from pathlib import Path

import swagger_ui_bundle
from flask import Blueprint, Response, current_app, send_from_directory

from service.api.http import json_response
from service.errors import NotFound, NotReady
from service.metrics import Metrics

bp = Blueprint("ops", __name__)
log = logging.getLogger("service.api")

OPENAPI_PATH = Path(__file__).resolve().parent.parent.parent / "openapi.yaml"
SWAGGER_ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png",
                  "favicon-16x16.png", "index.css")
# validatorUrl: null — otherwise Swagger UI sends the spec's URL to validator.swagger.io (not offline).
DOCS_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Credit decision service — API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"><link rel="icon" href="/docs/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script><script src="/docs/swagger-ui-standalone-preset.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/openapi.yaml", dom_id: "#swagger-ui", deepLinking: true,
validatorUrl: null,
presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "StandaloneLayout"});</script>
</body></html>"""


@bp.get("/healthz")
def healthz():
    return json_response({"status": "ok"})


@bp.get("/readyz")
def readyz():
    readiness = current_app.extensions["audit"].readiness()
    if not readiness.ready:
        # An error like any other: problem+json, with the checks as extension members.
        missing = ", ".join(k for k, ok in readiness.checks.items() if not ok)
        raise NotReady(readiness.detail or f"not ready: {missing}",
                       extensions={"checks": readiness.checks, "rulesets_loaded": readiness.rulesets_loaded})
    return json_response({"status": "ready", "checks": readiness.checks, "rulesets_loaded": readiness.rulesets_loaded})


@bp.get("/metrics")
def metrics():
    payload, content_type = Metrics.exposition()
    return Response(payload, content_type=content_type)


@bp.get("/openapi.yaml")
def openapi():
    return Response(OPENAPI_PATH.read_bytes(), mimetype="application/yaml")


@bp.get("/docs")
def docs():
    return Response(DOCS_PAGE, mimetype="text/html")


@bp.get("/docs/<asset>")
def docs_asset(asset: str):
    if asset not in SWAGGER_ASSETS:
        raise NotFound("no such resource")
    return send_from_directory(swagger_ui_bundle.swagger_ui_path, asset)
