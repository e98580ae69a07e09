"""Fixtures for end-to-end tests of the decision log: real gunicorn servers, real PostgreSQL."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.decisionlog.pgserver import PgServer
from tests.server import ROOT, TOKENS

FIXTURE_RULESETS = str(ROOT / "tests" / "fixtures" / "rulesets")
TOY = (Path(FIXTURE_RULESETS) / "toy" / "1.0.0.yaml").read_text(encoding="utf-8")


def toy_decision(application_id: str, rating: str = "BBB") -> dict:
    return {"ruleset": "toy", "as_of": "2024-06-01", "application_id": application_id,
            "input": {"applicant": {"rating": rating, "code": "C3670"}, "amount": 100}}


def base_env(**extra) -> dict:
    return {"RULES_API_TOKENS": TOKENS, "RULESETS_DIR": FIXTURE_RULESETS, **extra}


def require_postgres(reason: str):
    if os.environ.get("REQUIRE_POSTGRES") == "1":
        pytest.fail(f"REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def pg_cluster():
    """A private PostgreSQL cluster this module may stop and start."""
    if not PgServer.available():
        require_postgres("PostgreSQL binaries are not installed")
    server = PgServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def pg_database(pg_cluster) -> str:
    """A fresh, migrated database on the private cluster."""
    name = f"it_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_cluster.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = pg_cluster.url_for(name)
    migrate(url)
    return url


def migrate(database_url: str) -> None:
    out = subprocess.run([sys.executable, "-m", "service.decisionlog", "migrate"], cwd=ROOT,
                         env={**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
