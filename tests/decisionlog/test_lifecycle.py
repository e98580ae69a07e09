"""Migrations, the schema guard, ping and open_store."""
from __future__ import annotations

import pytest

from service.decisionlog import SchemaNotMigrated, StoreUnavailable, open_store
from service.decisionlog.migrations import MIGRATIONS

from .conftest import run_processes
from .factories import make_decision
from .workers import migrate_once

ALL_IDS = [migration.id for migration in MIGRATIONS]


def test_fresh_store_migrates_once_then_is_a_no_op(target):
    store = target.open(migrate=False)
    assert store.is_fresh()
    assert store.pending_migrations() == ALL_IDS
    assert store.migrate() == ALL_IDS
    assert not store.is_fresh()
    assert store.pending_migrations() == []
    assert store.migrate() == []
    store.ping()


def test_unmigrated_schema_refuses_every_operation(target):
    store = target.open(migrate=False)
    operations = [
        store.ping,
        lambda: store.append_decision(make_decision("d-1")),
        lambda: store.get_decision("d-1"),
        lambda: store.search_decisions(),
        store.verify,
        store.list_versions,
        store.registry_generation,
        lambda: store.publish_version("r", "1.0.0", "a" * 64, "{}", "{}", "json", None),
    ]
    for operation in operations:
        with pytest.raises(SchemaNotMigrated) as raised:
            operation()
        assert isinstance(raised.value, StoreUnavailable)  # -> 503
        assert "migrate" in str(raised.value)
    store.migrate()
    store.ping()


def test_schema_migrated_by_another_process_is_seen(target):
    target.open()  # migrates
    store = target.open(migrate=False)
    assert not store.is_fresh()
    store.ping()


def test_concurrent_migrate_applies_each_migration_once(target):
    results = run_processes(migrate_once, [(target.database_url, target.data_dir)] * 2)
    assert sorted(results, key=len) == [[], ALL_IDS]
    store = target.open(migrate=False)
    assert store.pending_migrations() == []


def test_open_store_rejects_unknown_url_without_echoing_it(tmp_path):
    with pytest.raises(ValueError) as raised:
        open_store("mysql://user:hunter2@db/x", str(tmp_path))
    assert "hunter2" not in str(raised.value)


def test_open_store_sqlite_file_location(tmp_path):
    store = open_store(None, str(tmp_path / "var"))
    store.migrate()
    store.close()
    assert (tmp_path / "var" / "decisions.sqlite3").exists()


def test_closed_store_raises_unavailable(target):
    store = target.open()
    store.close()
    with pytest.raises(StoreUnavailable):
        store.ping()
