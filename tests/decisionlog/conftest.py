"""Every store test runs twice: against embedded SQLite and a real PostgreSQL.

PostgreSQL comes from TEST_DATABASE_URL (a server where we may CREATE DATABASE), or
else a throwaway cluster started here (pgserver.py). Without either, the postgres
cases are skipped, or fail when REQUIRE_POSTGRES=1 (CI sets it: a silent skip there
would hide that half the suite never ran). Each test module gets its own database
and each test a fresh, empty schema in it (search_path), dropped afterwards.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import sqlite3
import uuid
from typing import Any, Callable, Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from service.decisionlog import SQLITE_FILENAME, Store, open_store

from .pgserver import PgServer

BACKENDS = ["sqlite", "postgres"]


def postgres_missing(reason: str) -> None:
    if os.environ.get("REQUIRE_POSTGRES") == "1":
        pytest.fail(f"REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A server URL on which tests may create and drop databases."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    if not PgServer.available():
        postgres_missing("no PostgreSQL: set TEST_DATABASE_URL or install it "
                         "(eval \"$(.ci/postgres.sh)\")")
    server = PgServer()
    try:
        server.start()
    except RuntimeError as exc:
        server.cleanup()
        postgres_missing(f"could not start a PostgreSQL cluster: {exc}")
    yield server.url
    server.cleanup()


def url_with_dbname(url: str, dbname: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + dbname))


def url_with_search_path(url: str, schema: str) -> str:
    """`url` with the session search_path set to `schema` (libpq `options`)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["options"] = (query.get("options", "") + f" -csearch_path={schema}").strip()
    return urlunsplit(parts._replace(query=urlencode(query)))


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    import psycopg
    from psycopg import sql

    name = f"decisionlog_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield url_with_dbname(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(name)))


@contextlib.contextmanager
def fresh_schema(database_url: str) -> Iterator[str]:
    """A new empty schema, as a URL whose connections use only that schema: as good
    as a fresh database for the store, and ~100x cheaper to create than one."""
    import psycopg
    from psycopg import sql

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield url_with_search_path(database_url, name)
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def postgres_module_database(postgres_admin_url: str) -> Iterator[str]:
    """One database per test module; each test then gets its own schema in it."""
    with fresh_database(postgres_admin_url) as url:
        yield url


class StoreTarget:
    """Where one test's store lives; opens stores on it and runs raw SQL against it
    (how the tampering tests play the attacker with database write access)."""

    def __init__(self, backend: str, database_url: str | None, data_dir: str) -> None:
        self.backend = backend
        self.database_url = database_url
        self.data_dir = data_dir
        self._stores: list[Store] = []

    def open(self, *, hmac_key: bytes | None = None, migrate: bool = True) -> Store:
        store = open_store(self.database_url, self.data_dir, hmac_key=hmac_key)
        self._stores.append(store)
        if migrate:
            store.migrate()
        return store

    def sql(self, statement: str, params: tuple = ()) -> list[tuple]:
        """Run one statement written with `?` placeholders; return its rows."""
        if self.backend == "sqlite":
            conn = sqlite3.connect(os.path.join(self.data_dir, SQLITE_FILENAME))
            try:
                with conn:
                    return conn.execute(statement, params).fetchall()
            finally:
                conn.close()
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cursor = conn.execute(statement.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []

    def close_all(self) -> None:
        for store in self._stores:
            store.close()


@pytest.fixture(params=BACKENDS)
def target(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[StoreTarget]:
    if request.param == "sqlite":
        target = StoreTarget("sqlite", None, str(tmp_path))
        yield target
        target.close_all()
        return
    database_url = request.getfixturevalue("postgres_module_database")
    with fresh_schema(database_url) as url:
        target = StoreTarget("postgres", url, str(tmp_path))
        yield target
        target.close_all()


@pytest.fixture
def store(target: StoreTarget) -> Store:
    """A migrated store on a fresh database."""
    return target.open()


def run_processes(worker: Callable[..., None], argument_lists: list[tuple],
                  timeout_s: float = 60.0) -> list[Any]:
    """Run `worker(start, results, *arguments)` in one spawned process per argument
    tuple. `start` is a shared event set once all are started, so they contend for
    real; returns whatever the workers put on `results`. All must exit 0."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    processes = [context.Process(target=worker, args=(start, results, *arguments))
                 for arguments in argument_lists]
    for process in processes:
        process.start()
    start.set()
    collected = []
    for process in processes:
        process.join(timeout_s)
    for process in processes:
        if process.is_alive():
            process.kill()
    while not results.empty():
        collected.append(results.get(timeout=5))
    assert [process.exitcode for process in processes] == [0] * len(processes)
    return collected
