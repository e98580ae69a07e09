"""Signed checkpoints of the chain head (see checkpoints.py). `time` is kept as the exact
text that was signed."""

SQLITE = (
    """CREATE TABLE checkpoints (
        seq INTEGER PRIMARY KEY,  -- one checkpoint per chain position, never two
        hash TEXT NOT NULL,
        time TEXT NOT NULL,
        signature TEXT NOT NULL
    )""",
)

POSTGRESQL = (
    """CREATE TABLE checkpoints (
        seq BIGINT PRIMARY KEY,
        hash TEXT NOT NULL,
        time TEXT NOT NULL,
        signature TEXT NOT NULL
    )""",
)
