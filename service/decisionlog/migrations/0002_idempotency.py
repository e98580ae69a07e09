"""Idempotency keys of POST /v1/decisions: one row per (caller identity, key), pointing
at the decision logged for it; deleted with that decision by retention."""

SQLITE = (
    """CREATE TABLE idempotency_keys (
        identity TEXT NOT NULL,
        idem_key TEXT NOT NULL,
        request_sha256 TEXT NOT NULL,  -- canonical JSON of the request first sent with the key
        decision_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (identity, idem_key)
    ) WITHOUT ROWID""",
    "CREATE INDEX idempotency_keys_seq_idx ON idempotency_keys (seq)",
)

POSTGRESQL = (
    """CREATE TABLE idempotency_keys (
        identity TEXT NOT NULL,
        idem_key TEXT NOT NULL,
        request_sha256 TEXT NOT NULL,
        decision_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        PRIMARY KEY (identity, idem_key)
    )""",
    "CREATE INDEX idempotency_keys_seq_idx ON idempotency_keys (seq)",
)
