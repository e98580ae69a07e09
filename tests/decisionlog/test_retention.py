"""Retention: purging a prefix of the chain keeps everything after it verifiable."""
from __future__ import annotations

import datetime as dt

from service.decisionlog.chain import anchor_hash, timestamp_text

from .factories import BASE_TIME, make_decision

DAY = dt.timedelta(days=1)
KEY = b"retention-test-key"


def fill(store, count=10, late=()):
    """One decision a day; seqs in `late` are stamped a year later (clock skew)."""
    return [store.append_decision(make_decision(
        f"d-{seq}", evaluated_at=BASE_TIME + (365 if seq in late else seq) * DAY))
        for seq in range(1, count + 1)]


def test_purge_deletes_a_prefix_and_verify_starts_at_the_anchor(store):
    records = fill(store)
    cutoff = BASE_TIME + 6 * DAY  # records 1..5 are older
    assert store.purge_before(cutoff) == 5
    assert store.get_decision("d-5") is None
    assert [summary.seq for summary in store.search_decisions()[0]] == list(range(6, 11))

    report = store.verify()
    assert report.ok, report.first_problem
    assert report.checked == 5
    floor = report.retention_floor
    assert (floor["first_seq"], floor["prev_hash"]) == (6, records[4].hash)
    assert floor["purged_before"] == timestamp_text(cutoff) and floor["purged_count"] == 5
    assert store.purge_before(cutoff) == 0  # nothing more to do


def test_purge_stops_at_the_first_record_not_older_than_the_cutoff(store):
    fill(store, late={3})
    assert store.purge_before(BASE_TIME + 6 * DAY) == 2  # record 3 is "new": 4, 5 stay too
    assert store.verify().retention_floor["first_seq"] == 3
    assert store.verify().ok


def test_purges_accumulate(store):
    fill(store)
    assert store.purge_before(BASE_TIME + 3 * DAY) == 2
    assert store.purge_before(BASE_TIME + 8 * DAY) == 5
    report = store.verify()
    assert report.ok and report.checked == 3 and report.retention_floor["first_seq"] == 8


def test_tampering_after_the_anchor_is_still_caught(target, store):
    fill(store)
    store.purge_before(BASE_TIME + 6 * DAY)
    target.sql("UPDATE decisions SET outcome = 'DECLINE' WHERE seq = 8")
    problem = store.verify().first_problem
    assert (problem["seq"], problem["kind"]) == (8, "altered")


def test_deleting_the_first_kept_record_is_caught(target, store):
    fill(store)
    store.purge_before(BASE_TIME + 6 * DAY)
    target.sql("DELETE FROM decisions WHERE seq = 6")
    problem = store.verify().first_problem
    assert (problem["seq"], problem["kind"]) == (6, "missing")


def test_purging_everything_then_appending_continues_the_chain(store):
    records = fill(store, count=4)
    assert store.purge_before(BASE_TIME + 100 * DAY) == 4
    report = store.verify()
    assert report.ok and report.checked == 0
    assert report.retention_floor["first_seq"] == 5
    assert report.head == {"seq": 4, "hash": records[-1].hash}
    following = store.append_decision(make_decision("d-5"))
    assert (following.seq, following.prev_hash) == (5, records[-1].hash)
    assert store.verify().ok


def test_a_forged_anchor_is_caught_when_the_log_is_keyed(target):
    store = target.open(hmac_key=KEY)
    records = fill(store)
    # Without the key, hide the deletion of records 1..3 behind a fake purge.
    target.sql("DELETE FROM decisions WHERE seq < 4")
    target.sql("DELETE FROM decision_rules WHERE seq < 4")
    purged_at = BASE_TIME + 20 * DAY
    forged = anchor_hash(first_seq=4, prev_hash=records[2].hash,
                         purged_before=timestamp_text(purged_at),
                         purged_at=timestamp_text(purged_at), purged_count=3, key=None)
    stamp = (timestamp_text(purged_at) if target.backend == "sqlite"
             else purged_at.isoformat())
    target.sql("INSERT INTO retention_anchor (first_seq, prev_hash, purged_before, purged_at, "
               "purged_count, anchor_hash) VALUES (4, ?, ?, ?, 3, ?)",
               (records[2].hash, stamp, stamp, forged))
    problem = store.verify().first_problem
    assert (problem["seq"], problem["kind"]) == (4, "altered")
    assert "anchor" in problem["detail"]
