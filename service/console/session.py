"""Who is signed in to the console, and the CSRF token of their session.

The session is Flask's signed cookie (HttpOnly, SameSite=Strict, path /console/). The API
token it carries is encrypted (Fernet, keyed from the same secret), so the cookie never
shows it; every request decrypts it and asks the API's own role lookup
(`service.api.http.token_roles`) what it may do, so a token removed from RULES_API_TOKENS
loses the console at its next click.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app, g, request, session

from service.errors import ServiceError
from service.api.http import check_roles, token_roles, token_identity

log = logging.getLogger("service.console")

SESSION_SECONDS = 8 * 3600
CSRF_FIELD = "csrf_token"


class CsrfRefused(Exception):
    """A state-changing form arrived without this session's CSRF token."""


class SignInRequired(Exception):
    """The page needs a signed-in user."""


def secret_key(configured: str | None) -> str:
    if configured:
        return configured
    log.warning("CONSOLE_SECRET_KEY is not set: the console signs its sessions with a key generated for this "
                "process (shared by its gunicorn workers); sessions end when it restarts and are not valid on "
                "other instances")
    return os.environ.get("CONSOLE_SECRET_KEY_GENERATED") or secrets.token_urlsafe(48)


def _fernet() -> Fernet:
    digest = hashlib.sha256(b"console-token-encryption\0" + current_app.secret_key.encode("utf-8")).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


@dataclass(frozen=True)
class User:
    identity: str | None
    roles: frozenset[str]

    def can(self, *roles: str) -> bool:
        return all(r in self.roles for r in roles)


def sign_in(token: str) -> User:
    """Check the token with the API's role lookup (401 if unknown) and open a session for it."""
    roles = token_roles(token or None)
    session.clear()
    session.permanent = True
    session["tok"] = _fernet().encrypt(token.encode("utf-8")).decode("ascii")
    session["csrf"] = secrets.token_urlsafe(32)
    return User(token_identity(token or None), roles)


def sign_out() -> None:
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


def current_user() -> User | None:
    """The signed-in user of this request, roles looked up afresh; None when not signed in."""
    if "console_user" in g:
        return g.console_user
    user = None
    sealed = session.get("tok")
    if sealed:
        try:
            token = _fernet().decrypt(sealed.encode("ascii"), ttl=SESSION_SECONDS).decode("utf-8")
            user = User(token_identity(token or None), token_roles(token or None))
        except (InvalidToken, ServiceError):
            session.pop("tok", None)  # expired, or the token is no longer configured
    g.console_user = user
    return user


def require_roles(*roles: str) -> User:
    """The signed-in user, if they hold every role (the API's own check: same 403 wording)."""
    user = current_user()
    if user is None:
        raise SignInRequired()
    check_roles(user.roles, roles)
    return user


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    expected = session.get("csrf")
    sent = request.form.get(CSRF_FIELD, "")
    if not expected or not hmac.compare_digest(expected.encode(), sent.encode()):
        raise CsrfRefused()
