"""Credit-decision rules service: `create_app` wires the pieces together, nothing more."""
from __future__ import annotations

import logging
import time


def create_app(config: dict | None = None) -> Flask:
    """Build the WSGI app. `config` overrides settings read from the environment
    (keys of service.config.Settings, plus `clock` for tests)."""
    from flask import Flask, g, request  # here, not at module level: `import service` stays cheap

    from service.api import audit, decisions, jobs, ops, releases, rulesets
    from service.api.errors import register_error_handlers
    from service.api.http import assign_request_id
    from service.audit import AuditService
    from service.catalog import Catalog
    from service.config import Settings
    from service.console import init_console
    from service.decisionlog import open_store
    from service.decisions import Clock, DecisionService
    from service.errors import StorageUnavailable
    from service.rollouts import Rollouts
    from service.jobs.queue import JobQueue
    from service.jobs.service import JobService
    from service.metrics import get_metrics

    config = dict(config or {})
    clock = config.pop("clock", None) or Clock()
    settings = Settings.from_env().override(config)

    app = Flask(__name__, static_folder=None)  # no static files: every route is an API route
    app.config["SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.ensure_ascii = False

    store = open_store(settings.database_url, settings.data_dir, hmac_key=settings.hmac_key)
    _prepare_store(store, settings)
    catalog = Catalog(store, settings.rulesets_dir, settings.registry_refresh_seconds, settings.publish_approvals)
    try:
        catalog.start()
    except StorageUnavailable as exc:
        # Start anyway: /readyz says why, and the catalog loads when the store is back.
        logging.getLogger("service").error("store not available at start: %s", exc)
    metrics = get_metrics()
    _start_checkpoints(app, store, settings)
    app.extensions["store"] = store
    app.extensions["catalog"] = catalog
    app.extensions["rollouts"] = Rollouts(catalog, store)
    app.extensions["decisions"] = DecisionService(catalog, store, clock, metrics)
    app.extensions["audit"] = AuditService(catalog, store, app.extensions["signing_public_key"])
    app.extensions["metrics"] = metrics
    app.extensions["jobs"] = JobService(JobQueue.from_settings(settings), catalog)

    register_error_handlers(app)
    for blueprint in (decisions.bp, audit.bp, rulesets.bp, releases.bp, jobs.bp, ops.bp):
        app.register_blueprint(blueprint)
    init_console(app)

    @app.before_request
    def _start():
        assign_request_id()
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.request(request.method, endpoint, response.status_code, time.perf_counter() - g.get("started", time.perf_counter()))
        return response

    return app


def load_engine(directory="rulesets", **options):
    """The in-process decision engine over a rulesets directory (docs/api-contract.md, "In-process API");
    see service.decision_engine.load_engine. Imported on call: `import service` stays cheap."""
    from service.decision_engine import load_engine as _load_engine

    return _load_engine(directory, **options)


def _start_checkpoints(app, store, settings) -> None:
    """With DECISION_LOG_SIGNING_KEY, this process signs checkpoints of the chain head
    (the store makes sure only one process signs per interval)."""
    from service.config import ConfigError
    from service.decisionlog.checkpoints import Checkpointer, SigningKeyError, load_signing_key

    app.extensions["signing_public_key"] = None
    if not settings.signing_key:
        return
    try:
        key = load_signing_key(settings.signing_key)
    except SigningKeyError as exc:
        raise ConfigError(str(exc)) from None
    app.extensions["signing_public_key"] = key.public_key()
    app.extensions["checkpointer"] = Checkpointer(store, key, settings.checkpoint_seconds).start()


def _prepare_store(store, settings) -> None:
    """A brand-new embedded SQLite file is created and migrated; anything else must be
    migrated explicitly (`python -m service.decisionlog migrate`)."""
    from service.decisionlog import StoreUnavailable

    if settings.database_url:
        return
    import os
    os.makedirs(settings.data_dir, mode=0o700, exist_ok=True)  # the log holds personal data
    try:
        if store.is_fresh():
            store.migrate()
    except StoreUnavailable as exc:
        logging.getLogger("service").error("cannot prepare the embedded store: %s", exc)
