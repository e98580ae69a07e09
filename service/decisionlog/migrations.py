"""Numbered schema migrations for both dialects, applied in order.

Applied ids are recorded in `schema_migrations`. Never edit a released migration:
add a new one. Each backend applies them in one transaction under a lock, so two
processes migrating at once apply each migration exactly once.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import releases
from .chain import GENESIS_HASH


@dataclass(frozen=True)
class Migration:
    id: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


_INITIAL_SQLITE = (
    """CREATE TABLE ruleset_versions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,  -- publish order
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        canonical_json TEXT NOT NULL,
        source_text TEXT NOT NULL,
        source_format TEXT NOT NULL CHECK (source_format IN ('yaml', 'json')),
        published_at TEXT NOT NULL,
        published_by TEXT,
        retired_at TEXT,
        retired_by TEXT,
        UNIQUE (name, version)
    )""",
    """CREATE TABLE registry_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        generation INTEGER NOT NULL
    )""",
    "INSERT INTO registry_state (id, generation) VALUES (1, 0)",
    """CREATE TABLE decisions (
        seq INTEGER PRIMARY KEY,
        decision_id TEXT NOT NULL UNIQUE,
        application_id TEXT,
        ruleset_name TEXT NOT NULL,
        ruleset_version TEXT NOT NULL,
        ruleset_sha256 TEXT NOT NULL,
        outcome TEXT NOT NULL,
        as_of TEXT NOT NULL,
        evaluated_at TEXT NOT NULL,  -- YYYY-MM-DDTHH:MM:SS.ffffffZ, sorts as time
        fired_rules TEXT NOT NULL,   -- canonical JSON texts, exactly as hashed
        request TEXT NOT NULL,
        response TEXT NOT NULL,
        trace TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )""",
    "CREATE INDEX decisions_application_idx ON decisions (application_id, seq)",
    "CREATE INDEX decisions_ruleset_idx ON decisions (ruleset_name, ruleset_version, seq)",
    "CREATE INDEX decisions_evaluated_at_idx ON decisions (evaluated_at)",
    """CREATE TABLE decision_rules (
        seq INTEGER NOT NULL,
        rule_id TEXT NOT NULL,
        PRIMARY KEY (seq, rule_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX decision_rules_rule_idx ON decision_rules (rule_id, seq)",
    """CREATE TABLE chain_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL
    )""",
    f"INSERT INTO chain_head (id, seq, hash) VALUES (1, 0, '{GENESIS_HASH}')",
    """CREATE TABLE retention_anchor (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        first_seq INTEGER NOT NULL,
        prev_hash TEXT NOT NULL,
        purged_before TEXT NOT NULL,
        purged_at TEXT NOT NULL,
        purged_count INTEGER NOT NULL,
        anchor_hash TEXT NOT NULL
    )""",
    """CREATE TABLE heartbeat (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        beat INTEGER NOT NULL
    )""",
    "INSERT INTO heartbeat (id, beat) VALUES (1, 0)",
)

_INITIAL_POSTGRES = (
    """CREATE TABLE ruleset_versions (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- publish order
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        canonical_json TEXT NOT NULL,
        source_text TEXT NOT NULL,
        source_format TEXT NOT NULL CHECK (source_format IN ('yaml', 'json')),
        published_at TIMESTAMPTZ NOT NULL,
        published_by TEXT,
        retired_at TIMESTAMPTZ,
        retired_by TEXT,
        UNIQUE (name, version)
    )""",
    """CREATE TABLE registry_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        generation BIGINT NOT NULL
    )""",
    "INSERT INTO registry_state (id, generation) VALUES (1, 0)",
    """CREATE TABLE decisions (
        seq BIGINT PRIMARY KEY,
        decision_id TEXT NOT NULL UNIQUE,
        application_id TEXT,
        ruleset_name TEXT NOT NULL,
        ruleset_version TEXT NOT NULL,
        ruleset_sha256 TEXT NOT NULL,
        outcome TEXT NOT NULL,
        as_of TEXT NOT NULL,
        evaluated_at TIMESTAMPTZ NOT NULL,  -- microseconds, same as the hashed text
        fired_rules TEXT NOT NULL,          -- canonical JSON texts, exactly as hashed
        request TEXT NOT NULL,
        response TEXT NOT NULL,
        trace TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )""",
    "CREATE INDEX decisions_application_idx ON decisions (application_id, seq)",
    "CREATE INDEX decisions_ruleset_idx ON decisions (ruleset_name, ruleset_version, seq)",
    "CREATE INDEX decisions_evaluated_at_idx ON decisions (evaluated_at)",
    """CREATE TABLE decision_rules (
        seq BIGINT NOT NULL,
        rule_id TEXT NOT NULL,
        PRIMARY KEY (seq, rule_id)
    )""",
    "CREATE INDEX decision_rules_rule_idx ON decision_rules (rule_id, seq)",
    """CREATE TABLE chain_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq BIGINT NOT NULL,
        hash TEXT NOT NULL
    )""",
    f"INSERT INTO chain_head (id, seq, hash) VALUES (1, 0, '{GENESIS_HASH}')",
    """CREATE TABLE retention_anchor (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        first_seq BIGINT NOT NULL,
        prev_hash TEXT NOT NULL,
        purged_before TIMESTAMPTZ NOT NULL,
        purged_at TIMESTAMPTZ NOT NULL,
        purged_count BIGINT NOT NULL,
        anchor_hash TEXT NOT NULL
    )""",
    """CREATE TABLE heartbeat (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        beat BIGINT NOT NULL
    )""",
    "INSERT INTO heartbeat (id, beat) VALUES (1, 0)",
)

# Impact/backtest jobs (service/jobs/): a job row, and its work split into chunks that
# processes claim with expiring leases. Times of leases are epoch seconds.
def _jobs_tables(big_int: str, real: str) -> tuple[str, ...]:
    return (
        f"""CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            ruleset TEXT NOT NULL,
            params TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
            created_by TEXT,
            created_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT,
            total {big_int},
            done {big_int} NOT NULL DEFAULT 0,
            plan_owner TEXT,
            plan_expires {real},
            result TEXT,
            error TEXT
        )""",
        "CREATE INDEX jobs_status_idx ON jobs (status, created_at)",
        f"""CREATE TABLE job_chunks (
            job_id TEXT NOT NULL,
            chunk_no INTEGER NOT NULL,
            lo {big_int} NOT NULL,
            hi {big_int} NOT NULL,
            cases {big_int} NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done')),
            lease_owner TEXT,
            lease_expires {real},
            attempts INTEGER NOT NULL DEFAULT 0,
            result TEXT,
            PRIMARY KEY (job_id, chunk_no)
        )""",
        "CREATE INDEX job_chunks_claim_idx ON job_chunks (status, job_id, chunk_no)",
    )


MIGRATIONS: tuple[Migration, ...] = (
    Migration("0001_initial", sqlite=_INITIAL_SQLITE, postgres=_INITIAL_POSTGRES),
    Migration("0010_release", sqlite=releases.SQLITE_0010, postgres=releases.POSTGRES_0010),
    Migration("0020_jobs", sqlite=_jobs_tables("INTEGER", "REAL"), postgres=_jobs_tables("BIGINT", "DOUBLE PRECISION")),
)


def pending(applied: set[str]) -> list[str]:
    """Known migration ids not in `applied`, in order. Ids applied by a newer release
    that this code does not know are tolerated (rolling deploys)."""
    return [m.id for m in MIGRATIONS if m.id not in applied]
