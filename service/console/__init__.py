"""The web console under /console/: server-rendered pages (Jinja2) for auditors and product
teams over the same service objects the API uses, with the API's own role check.

No JavaScript at all: pages are plain HTML forms and links; a running job's page refreshes
itself with a meta refresh. Every asset is served from /console/static/, and the
Content-Security-Policy forbids anything else (no script, no external origin).
"""
from __future__ import annotations

import datetime as dt

from flask import Flask

from service.console.session import SESSION_SECONDS, secret_key


def init_console(app: Flask) -> None:
    from service.console.views import bp

    settings = app.config["SETTINGS"]
    app.secret_key = secret_key(settings.console_secret_key)
    app.config.update(
        SESSION_COOKIE_NAME="console_session",
        SESSION_COOKIE_PATH="/console/",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.console_cookie_secure,
        PERMANENT_SESSION_LIFETIME=dt.timedelta(seconds=SESSION_SECONDS),
    )
    app.register_blueprint(bp)
