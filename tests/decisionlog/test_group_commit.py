"""Group commit: concurrent appends share transactions, each caller still gets its own
committed record (or its own error), and the chain stays gapless and verifying."""
from __future__ import annotations

import threading

import pytest

from service.decisionlog import DuplicateDecision
from service.decisionlog.group import GroupCommit

from .factories import make_decision


def test_concurrent_appends_share_transactions_and_chain_gaplessly(store):
    commits = []
    real = store._commit_batch

    def counting(batch):
        commits.append(len(batch))
        return real(batch)

    store._commit_batch = counting
    barrier = threading.Barrier(16)
    logged = {}

    def worker(n):
        barrier.wait()
        for k in range(10):
            record = store.append_decision(make_decision(f"t{n}-{k}"))
            logged[record.decision_id] = record.seq

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(logged.values()) == list(range(1, 161))
    assert sum(commits) == 160 and len(commits) < 160  # some appends shared a commit
    report = store.verify()
    assert report.ok and report.checked == 160
    for decision_id, seq in list(logged.items())[:5]:
        assert store.get_decision(decision_id).seq == seq


def test_a_duplicate_in_a_batch_fails_only_its_own_caller(store):
    store.append_decision(make_decision("taken"))
    batch = [(store_prepared(make_decision(name)), None) for name in ("a", "taken", "b")]
    results = store._commit_batch(batch)
    assert [type(r).__name__ for r in results] == ["StoredDecision", "DuplicateDecision", "StoredDecision"]
    assert [r.seq for r in results if not isinstance(r, Exception)] == [2, 3]
    assert store.verify().ok


def store_prepared(rec):
    from service.decisionlog.rows import prepare_decision
    return prepare_decision(rec)


def test_a_failed_batch_reaches_every_caller():
    started, release = threading.Event(), threading.Event()

    def commit(batch):
        if batch == ["first"]:
            started.set()
            release.wait(10)
            return ["ok"]
        raise RuntimeError("log down")

    group = GroupCommit(commit)
    outcomes = []

    def submit(item):
        try:
            outcomes.append(group.submit(item))
        except RuntimeError as exc:
            outcomes.append(str(exc))

    first = threading.Thread(target=submit, args=("first",))
    first.start()
    started.wait(10)
    others = [threading.Thread(target=submit, args=(f"x{n}",)) for n in range(3)]
    for thread in others:
        thread.start()
    release.set()
    for thread in [first, *others]:
        thread.join(10)
    assert sorted(outcomes) == ["log down"] * 3 + ["ok"]


def test_duplicate_ids_still_raise_for_a_single_append(store):
    store.append_decision(make_decision("once"))
    with pytest.raises(DuplicateDecision):
        store.append_decision(make_decision("once"))


# -- SQLite across processes: which appends go through the spool ---------------------------


def _sqlite_only(store):
    if store.backend != "sqlite":
        pytest.skip("the spool is the embedded SQLite log's cross-process group commit")


def _spool_refuses(monkeypatch, store):
    def refuse(batch):
        raise AssertionError("this append should not have gone through the spool")
    monkeypatch.setattr(store._spool, "enqueue", refuse)


def test_a_batch_of_direct_batch_appends_commits_without_the_spool(store, monkeypatch):
    from service.decisionlog import sqlite
    _sqlite_only(store)
    _spool_refuses(monkeypatch, store)
    batch = [(store_prepared(make_decision(f"d{n}")), None) for n in range(sqlite.DIRECT_BATCH)]
    monkeypatch.setattr(store, "_spool_has_waiters", lambda spool: True)
    results = store._commit_batch(batch)
    assert [r.seq for r in results] == list(range(1, sqlite.DIRECT_BATCH + 1))
    assert store.verify().ok


def test_a_lone_append_with_the_turn_free_and_nobody_queued_commits_without_the_spool(store, monkeypatch):
    _sqlite_only(store)
    _spool_refuses(monkeypatch, store)
    assert store.append_decision(make_decision("alone")).seq == 1


def test_a_small_batch_that_finds_others_queued_goes_through_the_spool(store, monkeypatch):
    _sqlite_only(store)
    spooled = []
    real = store._spool.enqueue
    monkeypatch.setattr(store._spool, "enqueue", lambda batch: spooled.append(len(batch)) or real(batch))
    monkeypatch.setattr(store, "_spool_has_waiters", lambda spool: True)
    results = store._commit_batch([(store_prepared(make_decision(n)), None) for n in ("s1", "s2")])
    assert spooled == [2] and [r.seq for r in results] == [1, 2]
    assert store._spool.all_settled([0]) and store.verify().ok
