"""Numbered schema migrations, one module per migration, keyed by dialect.

Each module here is named `<id>.py` (`0002_idempotency.py`) and defines one tuple of
SQL statements per dialect: `SQLITE` and `POSTGRESQL`. Both must be present (the two
backends hold the same schema); a statement list may be empty. Ids sort as text and
are applied in that order; blocks of ids belong to their owners: 0001-0009 the store,
0010-0019 releases, 0020-0029 jobs. Never edit a released migration: add a new one.

Applied ids are recorded in `schema_migrations`. Each backend applies them in one
transaction under a lock, so two processes migrating at once apply each exactly once.
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from importlib import resources

DIALECTS = ("sqlite", "postgresql")
_ID_RE = re.compile(r"^(\d{4}_[a-z0-9_]+)\.py$")
_ATTRIBUTE = {"sqlite": "SQLITE", "postgresql": "POSTGRESQL"}

# The bookkeeping table itself, created before any migration runs.
SCHEMA_MIGRATIONS_TABLE = {
    "sqlite": "CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at TEXT NOT NULL)",
    "postgresql": "CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)",
}


@dataclass(frozen=True)
class Migration:
    id: str
    statements: dict[str, tuple[str, ...]]  # dialect -> SQL statements

    def for_dialect(self, dialect: str) -> tuple[str, ...]:
        return self.statements[dialect]


def _discover() -> tuple[Migration, ...]:
    found = []
    for entry in resources.files(__name__).iterdir():
        match = _ID_RE.match(entry.name)
        if not match:
            continue
        module = importlib.import_module(f"{__name__}.{match.group(1)}")
        missing = [name for name in _ATTRIBUTE.values() if not hasattr(module, name)]
        if missing:
            raise RuntimeError(f"migration {match.group(1)} lacks {', '.join(missing)}")
        found.append(Migration(match.group(1), {dialect: tuple(getattr(module, name))
                                                for dialect, name in _ATTRIBUTE.items()}))
    ids = [m.id[:4] for m in found]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise RuntimeError(f"two migrations share the number {', '.join(duplicated)}")
    return tuple(sorted(found, key=lambda m: m.id))


MIGRATIONS: tuple[Migration, ...] = _discover()


def pending(applied: set[str]) -> list[str]:
    """Known migration ids not in `applied`, in order. Ids applied by a newer release
    that this code does not know are tolerated (rolling deploys)."""
    return [m.id for m in MIGRATIONS if m.id not in applied]
