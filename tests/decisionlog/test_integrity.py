"""Integrity checked where records are read, file permissions, idempotency keys."""
from __future__ import annotations

import dataclasses
import os
import stat

import pytest

from service.decisionlog import SQLITE_FILENAME, IdempotencyConflict, chain, open_store
from service.decisionlog.rows import prepare_decision

from .conftest import run_processes
from .factories import BASE_TIME, make_decision
from .workers import append_with_key

INTACT = {"hash_ok": True, "link_ok": True}


def fill(store, count=4):
    return [store.append_decision(make_decision(f"d-{n}")) for n in range(1, count + 1)]


def test_a_record_read_back_says_it_is_intact(store):
    fill(store)
    assert store.get_decision("d-1").integrity == INTACT  # its link is to the genesis hash
    assert store.get_decision("d-3").integrity == INTACT
    assert all(s.integrity == INTACT for s in store.search_decisions()[0])


def test_an_altered_column_shows_on_read_and_does_not_match_searches(target, store):
    fill(store)
    target.sql("UPDATE decisions SET outcome = 'DECLINE' WHERE seq = 2")
    record = store.get_decision("d-2")
    assert record.integrity == {"hash_ok": False, "link_ok": True}
    # The column says DECLINE, the hashed answer says APPROVE: not matched by the column.
    assert [s.decision_id for s in store.search_decisions(outcome="DECLINE")[0]] == []
    assert [r.decision_id for r in store.iter_decisions(outcome="DECLINE")] == []
    listed = {s.decision_id: s.integrity for s in store.search_decisions()[0]}
    assert listed["d-2"] == {"hash_ok": False, "link_ok": True}
    assert listed["d-3"] == INTACT  # its link (prev_hash) still equals d-2's stored hash


def test_an_altered_hash_breaks_the_next_records_link(target, store):
    fill(store)
    target.sql("UPDATE decisions SET hash = ? WHERE seq = 2", ("f" * 64,))
    assert store.get_decision("d-2").integrity == {"hash_ok": False, "link_ok": True}
    assert store.get_decision("d-3").integrity == {"hash_ok": True, "link_ok": False}


def test_a_deleted_previous_record_breaks_the_link(target, store):
    fill(store)
    target.sql("DELETE FROM decisions WHERE seq = 2")
    assert store.get_decision("d-3").integrity == {"hash_ok": True, "link_ok": False}


def test_the_first_record_after_a_purge_links_to_the_anchor(store):
    import datetime as dt
    for n in range(1, 5):
        store.append_decision(make_decision(f"d-{n}", evaluated_at=BASE_TIME + dt.timedelta(days=n)))
    assert store.purge_before(BASE_TIME + dt.timedelta(days=3)) == 2
    assert store.get_decision("d-3").integrity == INTACT


def test_search_pages_skip_unmatched_candidates_and_keep_the_cursor_going(target, store):
    fill(store, 6)
    for seq in (1, 2, 3):
        target.sql("UPDATE decisions SET outcome = 'REFER' WHERE seq = ?", (seq,))
    assert store.search_decisions(outcome="REFER")[0] == []
    page, cursor = store.search_decisions(outcome="APPROVE", limit=2)
    assert [s.seq for s in page] == [4, 5] and cursor
    page, cursor = store.search_decisions(outcome="APPROVE", limit=2, cursor=cursor)
    assert [s.seq for s in page] == [6] and cursor is None


def test_sqlite_files_are_private(tmp_path):
    data_dir = tmp_path / "var"
    store = open_store(None, str(data_dir))
    try:
        store.migrate()
        store.append_decision(make_decision("d-1"))
        assert stat.S_IMODE(os.stat(data_dir).st_mode) == 0o700
        names = [SQLITE_FILENAME + suffix for suffix in ("", "-wal", "-shm", ".writer-lock")]
        present = [name for name in names if (data_dir / name).exists()]
        assert SQLITE_FILENAME + "-wal" in present
        assert {name: stat.S_IMODE(os.stat(data_dir / name).st_mode) for name in present} == \
            {name: 0o600 for name in present}
    finally:
        store.close()


def test_a_world_readable_file_of_an_older_release_is_tightened(tmp_path):
    path = tmp_path / SQLITE_FILENAME
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    store = open_store(None, str(tmp_path))
    try:
        store.migrate()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    finally:
        store.close()


# --- idempotency keys -------------------------------------------------------------


def test_a_key_is_claimed_once_and_points_at_its_decision(store):
    first = store.append_decision(make_decision("d-1", idempotency=("alice", "k-1", "a" * 64)))
    with pytest.raises(IdempotencyConflict):
        store.append_decision(make_decision("d-2", idempotency=("alice", "k-1", "b" * 64)))
    found = store.find_idempotent("alice", "k-1")
    assert (found.decision_id, found.request_sha256) == ("d-1", "a" * 64)
    assert found.response_json == store._transaction(  # the response exactly as stored
        lambda conn: store._x(conn, "SELECT response FROM decisions WHERE seq = ?", (first.seq,)).fetchone()[0],
        write=False)
    # nothing was appended for the refused one, and the chain has no gap
    assert store.get_decision("d-2") is None
    assert store.verify().ok and store.verify().head["seq"] == 1
    # keys are per identity
    store.append_decision(make_decision("d-3", idempotency=("bob", "k-1", "a" * 64)))
    assert store.find_idempotent("bob", "k-1").decision_id == "d-3"
    assert store.find_idempotent("alice", "k-2") is None


def test_keys_go_with_their_decisions_at_retention(store):
    import datetime as dt
    store.append_decision(make_decision("old", evaluated_at=BASE_TIME,
                                        idempotency=("alice", "k-old", "a" * 64)))
    store.append_decision(make_decision("new", evaluated_at=BASE_TIME + dt.timedelta(days=9),
                                        idempotency=("alice", "k-new", "a" * 64)))
    assert store.purge_before(BASE_TIME + dt.timedelta(days=1)) == 1
    assert store.find_idempotent("alice", "k-old") is None
    assert store.find_idempotent("alice", "k-new").decision_id == "new"


def test_concurrent_processes_with_one_key_log_once(target, store):
    results = run_processes(append_with_key, [(target.backend, target.database_url, target.data_dir, n)
                                              for n in range(4)])
    assert sorted(results) == ["conflict"] * 3 + ["logged"]
    report = store.verify()
    assert report.ok and report.head["seq"] == 1


@pytest.mark.parametrize("key", [None, b"k" * 32])
@pytest.mark.parametrize("application_id", ["APP-1", None, "申请-\u2028-\"quoted\""])
def test_chaining_from_the_prepared_text_is_the_record_hash(key, application_id):
    """StoredDecision.chained hashes the text prepared before the chain lock; it must be the
    hash of the record's hashed fields, which verify recomputes."""
    record = prepare_decision(make_decision("d-1", application_id=application_id))
    for seq, prev in ((1, chain.GENESIS_HASH), (10**12, "ab" * 32)):
        placed = record.chained(seq, prev, key)
        assert placed.hash == chain.record_hash(prev, placed.hashed_fields(), key)
        assert (placed.seq, placed.prev_hash) == (seq, prev)
        # the same without the prepared text (a record read back from the store)
        assert placed == dataclasses.replace(record, hashed_text=None).chained(seq, prev, key)


def test_the_record_answered_after_an_append_is_the_one_read_back():
    """to_logged(appended) reuses the caller's payloads and fired rules instead of parsing
    the texts just written; it must be the record a later read returns."""
    rec = make_decision("d-2", fired_rules=["B-2", "A-1", "B-2"])
    placed = prepare_decision(rec).chained(7, chain.GENESIS_HASH, None)
    assert placed.to_logged(rec) == placed.to_logged()
    assert placed.to_logged(rec).fired_rules == ["B-2", "A-1", "B-2"]
