"""Settings, read from the environment once per process (CONTRACT.md "Runtime")."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

ROLES = ("evaluate", "publish", "audit")


class ConfigError(ValueError):
    """The deployment's configuration is unusable; the service refuses to start."""


@dataclass(frozen=True)
class Settings:
    data_dir: str = "./var"
    rulesets_dir: str = str(Path(__file__).resolve().parent.parent / "rulesets")
    database_url: str | None = None
    # token -> roles; None means RULES_API_TOKENS is unset (open evaluate, no publish/audit)
    tokens: dict[str, frozenset[str]] | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch_items: int = 1000
    registry_refresh_seconds: float = 1.0
    hmac_key: bytes | None = None
    retention_days: int | None = None
    console_secret_key: str | None = None  # signs the console's session cookie (CONSOLE_SECRET_KEY)
    console_cookie_secure: bool = False  # CONSOLE_COOKIE_SECURE=1 behind TLS: the cookie is sent over https only
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, env=None) -> "Settings":
        env = os.environ if env is None else env
        defaults = cls()
        key = env.get("DECISION_LOG_HMAC_KEY")
        retention = env.get("DECISION_RETENTION_DAYS")
        try:
            return cls(
                data_dir=env.get("DATA_DIR") or defaults.data_dir,
                rulesets_dir=env.get("RULESETS_DIR") or defaults.rulesets_dir,
                database_url=env.get("DATABASE_URL") or None,
                tokens=parse_tokens(env["RULES_API_TOKENS"]) if "RULES_API_TOKENS" in env else None,
                max_body_bytes=int(env.get("MAX_BODY_BYTES", defaults.max_body_bytes)),
                registry_refresh_seconds=float(env.get("REGISTRY_REFRESH_SECONDS", defaults.registry_refresh_seconds)),
                hmac_key=key.encode("utf-8") if key else None,
                retention_days=int(retention) if retention else None,
                console_secret_key=env.get("CONSOLE_SECRET_KEY") or None,
                console_cookie_secure=env.get("CONSOLE_COOKIE_SECURE", "") in ("1", "true", "yes"),
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
            values["tokens"] = parse_tokens(values["tokens"])
        return replace(self, **values)


def parse_tokens(text: str) -> dict[str, frozenset[str]]:
    """`token:role+role,token:role` -> {token: roles}. Never echoes a token in errors."""
    tokens: dict[str, frozenset[str]] = {}
    for n, entry in enumerate(e.strip() for e in text.split(",")):
        if not entry:
            continue
        token, sep, roles = entry.partition(":")
        if not sep or not token.strip() or not roles.strip():
            raise ConfigError(f"RULES_API_TOKENS entry {n + 1} is not token:role+role")
        role_set = frozenset(r.strip() for r in roles.split("+"))
        bad = role_set - set(ROLES)
        if bad:
            raise ConfigError(f"RULES_API_TOKENS entry {n + 1} has unknown role(s) {', '.join(sorted(bad))}; roles: {', '.join(ROLES)}")
        if len(token.strip()) < 8:
            raise ConfigError(f"RULES_API_TOKENS entry {n + 1}: tokens must be at least 8 characters")
        if token.strip() in tokens:
            raise ConfigError(f"RULES_API_TOKENS entry {n + 1} repeats a token")
        tokens[token.strip()] = role_set
    return tokens
