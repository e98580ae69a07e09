"""Settings, read from the environment once per process (docs/api-contract.md, "Running it")."""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

ROLES = ("evaluate", "publish", "audit", "approve")
IDENTITY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class ConfigError(ValueError):
    """The deployment's configuration is unusable; the service refuses to start."""


@dataclass(frozen=True)
class Settings:
    data_dir: str = "./var"
    rulesets_dir: str = str(Path(__file__).resolve().parent.parent / "rulesets")
    database_url: str | None = None
    # token -> roles; None means RULES_API_TOKENS is unset (open evaluate, no publish/audit)
    tokens: dict[str, frozenset[str]] | None = None
    # token -> the identity recorded for its holder (never the token itself)
    identities: dict[str, str] = field(default_factory=dict)
    # approvals a proposed version needs before it is active; 0 = publishing activates
    publish_approvals: int = 1
    max_body_bytes: int = 8 * 1024 * 1024
    registry_refresh_seconds: float = 1.0
    hmac_key: bytes | None = None
    retention_days: int | None = None
    console_secret_key: str | None = None  # signs the console's session cookie (CONSOLE_SECRET_KEY)
    console_cookie_secure: bool = False  # CONSOLE_COOKIE_SECURE=1 behind TLS: the cookie is sent over https only
    signing_key: str | None = None  # DECISION_LOG_SIGNING_KEY: Ed25519, signs checkpoints
    checkpoint_seconds: float = 60.0
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, env=None) -> "Settings":
        env = os.environ if env is None else env
        defaults = cls()
        key = env.get("DECISION_LOG_HMAC_KEY")
        retention = env.get("DECISION_RETENTION_DAYS")
        entries = parse_token_entries(env["RULES_API_TOKENS"]) if "RULES_API_TOKENS" in env else None
        try:
            approvals = int(env.get("PUBLISH_APPROVALS", defaults.publish_approvals))
            if approvals < 0:
                raise ValueError("PUBLISH_APPROVALS must be 0 or more")
            return cls(
                data_dir=env.get("DATA_DIR") or defaults.data_dir,
                rulesets_dir=env.get("RULESETS_DIR") or defaults.rulesets_dir,
                database_url=env.get("DATABASE_URL") or None,
                tokens=None if entries is None else {t: roles for _, t, roles in entries},
                identities={} if entries is None else {t: who for who, t, _ in entries},
                publish_approvals=approvals,
                max_body_bytes=_number(env, "MAX_BODY_BYTES", int, defaults.max_body_bytes, minimum=1),
                registry_refresh_seconds=_number(env, "REGISTRY_REFRESH_SECONDS", float,
                                                 defaults.registry_refresh_seconds, minimum=0),
                hmac_key=key.encode("utf-8") if key else None,
                retention_days=_number(env, "DECISION_RETENTION_DAYS", int, None, minimum=1) if retention else None,
                console_secret_key=env.get("CONSOLE_SECRET_KEY") or None,
                console_cookie_secure=env.get("CONSOLE_COOKIE_SECURE", "") in ("1", "true", "yes"),
                signing_key=env.get("DECISION_LOG_SIGNING_KEY") or None,
                checkpoint_seconds=_positive(float(env.get("CHECKPOINT_SECONDS", defaults.checkpoint_seconds)),
                                             "CHECKPOINT_SECONDS"),
            )
        except ValueError as exc:
            raise ConfigError(f"invalid configuration: {exc}") from None

    def override(self, values: dict | None) -> "Settings":
        if not values:
            return self
        known = {f.name for f in fields(self)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
        values = dict(values)
        if isinstance(values.get("tokens"), str):
            entries = parse_token_entries(values["tokens"])
            values["tokens"] = {t: roles for _, t, roles in entries}
            values.setdefault("identities", {t: who for who, t, _ in entries})
        return replace(self, **values)


def token_identity(token: str) -> str:
    """The identity of an unnamed token: a stable, non-secret fingerprint of it."""
    return "token:" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:12]


def _positive(value: float, name: str) -> float:
    if not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds")
    return value


def _number(env, name: str, kind, default, *, minimum):
    text = env.get(name)
    if text is None or text == "":
        return default
    try:
        value = kind(text)
    except ValueError:
        raise ConfigError(f"{name} must be {'an integer' if kind is int else 'a number'}, not {text[:40]!r}") from None
    if not value >= minimum:  # also refuses NaN
        raise ConfigError(f"{name} must be at least {minimum}")
    return value


# What a bearer token may hold (RFC 6750 b64token): a token with a space, a comma or a
# colon could never be sent back in an Authorization header, or be read from this list.
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~+/=-]+")


def parse_tokens(text: str) -> dict[str, frozenset[str]]:
    """`[name=]token:role+role,…` -> {token: roles}."""
    return {token: roles for _, token, roles in parse_token_entries(text)}


def parse_token_entries(text: str) -> list[tuple[str, str, frozenset[str]]]:
    """`[name=]token:role+role,…` -> [(identity, token, roles)]. Never echoes a token in errors.

    `li.wei=prod-91c2aa:publish` names its holder li.wei; an unnamed entry's identity is
    `token:<first 12 hex of sha256(token)>`."""
    out: list[tuple[str, str, frozenset[str]]] = []
    seen_tokens: set[str] = set()
    seen_names: set[str] = set()
    for n, entry in enumerate(e.strip() for e in text.split(",")):
        if not entry:
            continue
        name, eq, rest = entry.partition("=")
        if not eq:
            name, rest = "", entry
        name = name.strip()
        token, sep, roles = rest.partition(":")
        token = token.strip()
        if not sep or not token or not roles.strip() or (eq and not name):
            raise ConfigError(f"RULES_API_TOKENS entry {n + 1} is not [name=]token:role+role")
        if eq and (not IDENTITY_RE.match(name) or name.startswith("token:")):
            raise ConfigError(f"RULES_API_TOKENS entry {n + 1}: a name is 1-64 letters, digits, . _ @ -")
        role_set = frozenset(r.strip() for r in roles.split("+"))
        bad = role_set - set(ROLES)
        if bad:
            raise ConfigError(f"RULES_API_TOKENS entry {n + 1} has unknown role(s) {', '.join(sorted(bad))}; roles: {', '.join(ROLES)}")
        if not _TOKEN_CHARS.fullmatch(token):
            raise ConfigError(f"RULES_API_TOKENS entry {n + 1}: a token may hold only letters, digits and ._~+/=-")
        if len(token) < 8:
            raise ConfigError(f"RULES_API_TOKENS entry {n + 1}: tokens must be at least 8 characters")
        if token in seen_tokens:
            raise ConfigError(f"RULES_API_TOKENS entry {n + 1} repeats a token")
        identity = name or token_identity(token)
        if name and name in seen_names:
            raise ConfigError(f"RULES_API_TOKENS entry {n + 1} repeats the name {name}")
        seen_tokens.add(token)
        seen_names.add(name)
        out.append((identity, token, role_set))
    return out
