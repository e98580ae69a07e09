"""Impact/backtest jobs (service/jobs/): a job row, and its work split into chunks that
processes claim with expiring leases."""

# Times of leases are epoch seconds.
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


SQLITE = _jobs_tables("INTEGER", "REAL")
POSTGRESQL = _jobs_tables("BIGINT", "DOUBLE PRECISION")
