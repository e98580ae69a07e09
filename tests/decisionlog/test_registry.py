"""Published ruleset versions: immutable, idempotent, conflict-checked, observable."""
from __future__ import annotations

import datetime as dt

import pytest

from service.decisionlog import NotFound, VersionConflict

from .conftest import run_processes
from .workers import publish_once

SHA_A, SHA_B = "a" * 64, "b" * 64


def publish(store, name="sme-credit-policy", version="1.0.0", sha256=SHA_A, by="alice"):
    return store.publish_version(name, version, sha256, f'{{"sha":"{sha256[:4]}"}}',
                                 "name: sme-credit-policy\n", "yaml", by)


def test_publish_then_get_round_trip(store):
    before = dt.datetime.now(dt.timezone.utc)
    row, created = publish(store)
    assert created
    assert (row.name, row.version, row.sha256, row.source_format, row.published_by) == (
        "sme-credit-policy", "1.0.0", SHA_A, "yaml", "alice")
    assert row.canonical_json == '{"sha":"aaaa"}'
    assert row.source_text == "name: sme-credit-policy\n"
    assert row.published_at.tzinfo is not None
    assert abs(row.published_at - before) < dt.timedelta(minutes=1)
    assert row.retired_at is None and not row.retired
    assert store.get_version("sme-credit-policy", "1.0.0") == row
    assert store.get_version("sme-credit-policy", "9.9.9") is None


def test_publish_same_content_is_idempotent(store):
    first, created = publish(store)
    again, created_again = publish(store, by="bob")
    assert created and not created_again
    assert again == first  # the original publisher and time are kept


def test_publish_different_content_conflicts(store):
    publish(store)
    with pytest.raises(VersionConflict):
        publish(store, sha256=SHA_B)
    assert store.get_version("sme-credit-policy", "1.0.0").sha256 == SHA_A


def test_publish_rejects_unknown_source_format(store):
    with pytest.raises(ValueError):
        store.publish_version("r", "1.0.0", SHA_A, "{}", "{}", "toml", None)


def test_list_versions_by_name_then_publish_order(store):
    publish(store, "zeta", "2.0.0")
    publish(store, "alpha", "1.1.0")
    publish(store, "zeta", "1.0.0")
    publish(store, "alpha", "1.0.0")
    assert [(row.name, row.version) for row in store.list_versions()] == [
        ("alpha", "1.1.0"), ("alpha", "1.0.0"), ("zeta", "2.0.0"), ("zeta", "1.0.0")]
    assert [row.version for row in store.list_versions("zeta")] == ["2.0.0", "1.0.0"]
    assert store.list_versions("nope") == []


def test_retire_is_idempotent_and_unknown_is_not_found(store):
    publish(store)
    retired = store.retire_version("sme-credit-policy", "1.0.0", "carol")
    assert retired.retired and retired.retired_by == "carol"
    again = store.retire_version("sme-credit-policy", "1.0.0", "dave")
    assert again == retired
    assert store.get_version("sme-credit-policy", "1.0.0") == retired
    with pytest.raises(NotFound):
        store.retire_version("sme-credit-policy", "7.0.0", "carol")
    with pytest.raises(LookupError):  # KeyError-like
        store.retire_version("nope", "1.0.0", "carol")


def test_registry_generation_increases_on_publish_and_retire_only(store):
    seen = [store.registry_generation()]
    publish(store)
    seen.append(store.registry_generation())
    publish(store)  # idempotent: nothing changed
    seen.append(store.registry_generation())
    publish(store, version="1.1.0")
    seen.append(store.registry_generation())
    store.retire_version("sme-credit-policy", "1.0.0", "x")
    seen.append(store.registry_generation())
    store.retire_version("sme-credit-policy", "1.0.0", "x")
    seen.append(store.registry_generation())
    assert seen[1] > seen[0]
    assert seen[2] == seen[1]
    assert seen[3] > seen[2]
    assert seen[4] > seen[3]
    assert seen[5] == seen[4]


def test_generation_is_shared_between_store_objects(target):
    first, second = target.open(), target.open(migrate=False)
    before = second.registry_generation()
    publish(first)
    assert second.registry_generation() > before
    assert second.get_version("sme-credit-policy", "1.0.0") is not None


@pytest.mark.parametrize("shas, expected", [
    ((SHA_A, SHA_A), ["created", "existing"]),
    ((SHA_A, SHA_B), ["conflict", "created"]),
])
def test_concurrent_publish_from_two_processes(target, shas, expected):
    target.open()  # migrate first
    results = run_processes(publish_once,
                            [(target.database_url, target.data_dir, sha) for sha in shas])
    assert sorted(outcome for outcome, _ in results) == expected
    winner = [sha for outcome, sha in results if outcome == "created"][0]
    store = target.open(migrate=False)
    assert store.get_version("sme-credit-policy", "2.0.0").sha256 == winner
    assert len(store.list_versions("sme-credit-policy")) == 1
