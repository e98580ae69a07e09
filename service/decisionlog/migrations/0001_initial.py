"""The first schema: registry, decision log (records, fired-rule index, chain head,
retention anchors) and the heartbeat row used by readiness checks."""
from service.decisionlog.chain import GENESIS_HASH

SQLITE = (
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

POSTGRESQL = (
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
