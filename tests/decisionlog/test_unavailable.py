"""The store under failure: the database goes away, then comes back.

Every failure must surface as StoreUnavailable (the API answers 503, never a decision
that is not logged), and the same Store object must work again once the database
does, without being recreated.

SQLite as root: root ignores file permissions, so chmod cannot make the file
unwritable. Two mechanisms that do work for root:
  * `chattr +i` (immutable) on the database file and its -wal file: every write fails
    with EPERM, even through descriptors already open. The -shm file is left alone:
    SQLite writes it through mmap, and an immutable mmapped file raises SIGBUS,
    killing the process instead of failing the write.
  * RLIMIT_FSIZE = 0 (the "disk full" of one process): every write() to a regular
    file fails with EFBIG, for root too. It is process-wide, so it runs in a child.
Both are checked to really block writes before the test relies on them.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from typing import Iterator

import pytest

from service.decisionlog import SQLITE_FILENAME, StoreUnavailable, open_store

from .conftest import fresh_database, postgres_missing, run_processes
from .factories import make_decision
from .pgserver import PgServer
from .workers import sqlite_disk_full_scenario

SECRET = "s3cret-pw"


# --- PostgreSQL ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_server() -> Iterator[PgServer]:
    """A cluster of our own, since these tests stop and restart it."""
    if not PgServer.available():
        postgres_missing("PostgreSQL binaries not found: cannot run the outage tests")
    server = PgServer()
    try:
        server.start()
    except RuntimeError as exc:
        server.cleanup()
        postgres_missing(f"could not start a PostgreSQL cluster: {exc}")
    yield server
    server.cleanup()


@pytest.fixture
def pg_store(own_server, tmp_path):
    with fresh_database(own_server.url) as url:
        # trust auth ignores the password, so it can be in the URL to prove it never
        # shows up in an error message
        store = open_store(url.replace("postgres@", f"postgres:{SECRET}@"), str(tmp_path))
        store.migrate()
        yield store
        store.close()
        own_server.start()  # in case a failed test left it stopped


def test_postgres_stopped_then_restarted(own_server, pg_store):
    pg_store.append_decision(make_decision("d-1"))
    own_server.stop()

    failures = {
        "append": lambda: pg_store.append_decision(make_decision("d-2")),
        "ping": pg_store.ping,
        "get": lambda: pg_store.get_decision("d-1"),
        "search": pg_store.search_decisions,
        "verify": pg_store.verify,
        "publish": lambda: pg_store.publish_version("r", "1.0.0", "a" * 64, "{}", "{}",
                                                    "json", None),
        "generation": pg_store.registry_generation,
    }
    for name, operation in failures.items():
        with pytest.raises(StoreUnavailable) as raised:
            operation()
        assert SECRET not in str(raised.value), name
        assert "PostgreSQL" in str(raised.value)

    own_server.start()
    pg_store.ping()
    assert pg_store.append_decision(make_decision("d-2")).seq == 2  # same Store object
    report = pg_store.verify()
    assert report.ok and report.checked == 2


def test_postgres_restart_between_calls_is_invisible(own_server, pg_store):
    pg_store.append_decision(make_decision("d-1"))  # leaves an idle pooled connection
    own_server.stop()
    own_server.start()
    # the pooled connection is dead; the call retries once on a fresh one
    assert pg_store.append_decision(make_decision("d-2")).seq == 2
    assert pg_store.verify().ok


# --- SQLite -------------------------------------------------------------------------


@contextlib.contextmanager
def immutable(*paths: str) -> Iterator[None]:
    """chattr +i the files; skip if this machine cannot (no chattr, no
    CAP_LINUX_IMMUTABLE, or a filesystem without the flag)."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr not installed (the RLIMIT_FSIZE variant still runs)")
    result = subprocess.run(["chattr", "+i", *paths], capture_output=True, text=True)
    try:
        if result.returncode != 0:
            pytest.skip(f"chattr +i not possible here: {result.stderr.strip()}")
        with pytest.raises(PermissionError):  # the mechanism really blocks writes
            with open(paths[0], "ab"):
                pass
        yield
    finally:
        subprocess.run(["chattr", "-i", *paths], capture_output=True)


def test_sqlite_unwritable_file_then_writable_again(tmp_path):
    store = open_store(None, str(tmp_path))
    store.migrate()
    store.append_decision(make_decision("d-1"))
    database = os.path.join(tmp_path, SQLITE_FILENAME)
    assert os.path.exists(database + "-wal")
    try:
        with immutable(database, database + "-wal"):
            with pytest.raises(StoreUnavailable):
                store.append_decision(make_decision("d-2"))
            with pytest.raises(StoreUnavailable):
                store.ping()
            # reads keep working, so auditors can still look while writes fail
            assert store.get_decision("d-1").seq == 1
            assert store.verify().ok
            with pytest.raises(StoreUnavailable):
                store.append_decision(make_decision("d-2"))

        store.ping()  # same Store object, recovered
        assert store.append_decision(make_decision("d-2")).seq == 2
        report = store.verify()
        assert report.ok and report.checked == 2
    finally:
        store.close()


def test_sqlite_disk_full_then_space_again(tmp_path):
    (result,) = run_processes(sqlite_disk_full_scenario, [(str(tmp_path),)])
    assert result["blocked"], "RLIMIT_FSIZE did not block a plain file write"
    assert result["while_full"] == {"append": "StoreUnavailable", "ping": "StoreUnavailable"}
    assert result["after"] == {"seq": 2, "verify_ok": True, "checked": 2}
