"""verify() against someone with write access to the database.

Each case edits the stored log the way an attacker (or a bad migration) would, with
plain SQL, and checks that verify reports the exact first broken record and why."""
from __future__ import annotations

import json

import pytest

from service import canonical
from service.decisionlog.chain import record_hash
from service.decisionlog.rows import DECISION_COLUMNS, StoredDecision

from .factories import make_decision

RECORDS = 6
KEY = b"decision-log-test-key"


def fill(store, count=RECORDS):
    return [store.append_decision(make_decision(f"d-{seq}", fired_rules=[f"R-{seq}", "COMMON"]))
            for seq in range(1, count + 1)]


def stored(target, seq):
    row = target.sql(f"SELECT {', '.join(DECISION_COLUMNS)} FROM decisions WHERE seq = ?", (seq,))
    return StoredDecision.from_row(row[0])


def set_response_field(target, seq):
    (text,), = target.sql("SELECT response FROM decisions WHERE seq = ?", (seq,))
    response = canonical.loads(text)
    response["outcome"] = "DECLINE"
    target.sql("UPDATE decisions SET response = ? WHERE seq = ?", (canonical.dumps(response), seq))


def swap_payloads(target, seq_a, seq_b):
    columns = "request, response, trace"
    a = target.sql(f"SELECT {columns} FROM decisions WHERE seq = ?", (seq_a,))[0]
    b = target.sql(f"SELECT {columns} FROM decisions WHERE seq = ?", (seq_b,))[0]
    update = "UPDATE decisions SET request = ?, response = ?, trace = ? WHERE seq = ?"
    target.sql(update, (*b, seq_a))
    target.sql(update, (*a, seq_b))


def delete_record(target, seq):
    target.sql("DELETE FROM decisions WHERE seq = ?", (seq,))
    target.sql("DELETE FROM decision_rules WHERE seq = ?", (seq,))


TAMPERINGS = {
    "response field changed": (lambda t: set_response_field(t, 3), 3, "altered"),
    "outcome changed": (lambda t: t.sql("UPDATE decisions SET outcome = 'DECLINE' WHERE seq = 4"),
                        4, "altered"),
    "prev_hash changed": (lambda t: t.sql("UPDATE decisions SET prev_hash = ? WHERE seq = 3",
                                          ("f" * 64,)), 3, "broken_link"),
    "middle record deleted": (lambda t: delete_record(t, 3), 3, "missing"),
    "middle record deleted, index rows left": (
        lambda t: t.sql("DELETE FROM decisions WHERE seq = 2"), 2, "missing"),
    "last record deleted": (lambda t: delete_record(t, RECORDS), RECORDS, "head_mismatch"),
    "payloads of two records swapped": (lambda t: swap_payloads(t, 2, 5), 2, "altered"),
    "fired-rule index row altered": (
        lambda t: t.sql("UPDATE decision_rules SET rule_id = 'R-X' "
                        "WHERE seq = 4 AND rule_id = 'R-4'"),
        4, "index_mismatch"),
    "fired-rule index row deleted": (
        lambda t: t.sql("DELETE FROM decision_rules WHERE seq = 5 AND rule_id = 'COMMON'"),
        5, "index_mismatch"),
    "fired-rule index row added": (
        lambda t: t.sql("INSERT INTO decision_rules (seq, rule_id) VALUES (2, 'R-9')"),
        2, "index_mismatch"),
    "index row for a record that never existed": (
        lambda t: t.sql("INSERT INTO decision_rules (seq, rule_id) VALUES (99, 'R-9')"),
        99, "index_mismatch"),
    "evaluated_at changed": (
        lambda t: t.sql("UPDATE decisions SET evaluated_at = ? WHERE seq = 1",
                        ("2026-11-24T09:00:00.123457Z" if t.backend == "sqlite"
                         else "2026-11-24 09:00:00.123457+00",)), 1, "altered"),
    "chain_head rewound": (
        lambda t: t.sql("UPDATE chain_head SET seq = 5, hash = (SELECT hash FROM decisions "
                        "WHERE seq = 5)"), 6, "head_mismatch"),
    "chain_head hash altered": (lambda t: t.sql("UPDATE chain_head SET hash = ?", ("e" * 64,)),
                                RECORDS, "head_mismatch"),
}


@pytest.mark.parametrize("tamper, seq, kind", TAMPERINGS.values(), ids=TAMPERINGS.keys())
def test_verify_points_at_the_first_broken_record(target, store, tamper, seq, kind):
    records = fill(store)
    assert store.verify().ok
    tamper(target)
    report = store.verify()
    assert not report.ok
    problem = report.first_problem
    assert (problem["seq"], problem["kind"]) == (seq, kind), problem
    if kind in ("altered", "broken_link") or (kind == "index_mismatch" and seq <= RECORDS):
        assert problem["decision_id"] == records[seq - 1].decision_id
    if kind == "head_mismatch" or seq > RECORDS:  # every stored record itself is fine
        assert report.checked == len(target.sql("SELECT seq FROM decisions"))
    else:
        assert report.checked == seq - 1
    assert problem["detail"]


def test_untouched_log_verifies(store):
    records = fill(store)
    report = store.verify()
    assert report.ok and report.first_problem is None
    assert report.checked == RECORDS
    assert report.head == {"seq": RECORDS, "hash": records[-1].hash}
    assert report.retention_floor is None
    json.dumps(report.to_dict())  # the CLI and the API print it as is


def test_empty_log_verifies(store):
    report = store.verify()
    assert report.ok and report.checked == 0 and report.head["seq"] == 0


def rebuild_chain_from(target, first_seq, key=None):
    """What an attacker without the key does after editing record `first_seq`:
    recompute that hash and every later link and hash, then move chain_head."""
    seq, prev_hash = first_seq, stored(target, first_seq).prev_hash
    while target.sql("SELECT 1 FROM decisions WHERE seq = ?", (seq,)):
        record = stored(target, seq)
        new_hash = record_hash(prev_hash, record.hashed_fields(), key)
        target.sql("UPDATE decisions SET prev_hash = ?, hash = ? WHERE seq = ?",
                   (prev_hash, new_hash, seq))
        prev_hash, seq = new_hash, seq + 1
    target.sql("UPDATE chain_head SET seq = ?, hash = ?", (seq - 1, prev_hash))


def test_edit_with_one_hash_recomputed_breaks_the_next_link(target, store):
    fill(store)
    set_response_field(target, 3)
    record = stored(target, 3)
    target.sql("UPDATE decisions SET hash = ? WHERE seq = 3",
               (record_hash(record.prev_hash, record.hashed_fields()),))
    problem = store.verify().first_problem
    assert (problem["seq"], problem["kind"]) == (4, "broken_link")


def test_hmac_key_defeats_recomputed_sha256_hashes(target):
    store = target.open(hmac_key=KEY)
    fill(store)
    set_response_field(target, 3)
    record = stored(target, 3)
    target.sql("UPDATE decisions SET hash = ? WHERE seq = 3",
               (record_hash(record.prev_hash, record.hashed_fields(), None),))
    problem = store.verify().first_problem
    assert (problem["seq"], problem["kind"]) == (3, "altered")


def test_hmac_key_defeats_a_fully_rebuilt_chain(target):
    keyed = target.open(hmac_key=KEY)
    fill(keyed)
    set_response_field(target, 3)
    rebuild_chain_from(target, 3)  # with sha256: the attacker has no key
    problem = keyed.verify().first_problem
    assert (problem["seq"], problem["kind"]) == (3, "altered")


def test_without_key_a_fully_rebuilt_chain_needs_an_expected_head(target, store):
    records = fill(store)
    set_response_field(target, 3)
    rebuild_chain_from(target, 3)
    assert store.verify().ok  # the documented limit of an unkeyed chain...
    report = store.verify(expected_head=(RECORDS, records[-1].hash))  # ...unless pinned
    assert (report.first_problem["seq"], report.first_problem["kind"]) == (RECORDS, "head_mismatch")


def test_expected_head_catches_a_truncation_that_rewrote_chain_head(target, store):
    records = fill(store)
    delete_record(target, RECORDS)
    target.sql("UPDATE chain_head SET seq = ?, hash = ?", (RECORDS - 1, records[-2].hash))
    assert store.verify().ok
    assert store.verify(expected_head=(3, records[2].hash)).ok
    report = store.verify(expected_head=(RECORDS, records[-1].hash))
    assert not report.ok
    assert (report.first_problem["seq"], report.first_problem["kind"]) == (RECORDS, "head_mismatch")


def test_expected_head_with_a_wrong_hash_is_reported(store):
    fill(store)
    report = store.verify(expected_head=(2, "0" * 64))
    assert (report.first_problem["seq"], report.first_problem["kind"]) == (2, "head_mismatch")


def test_a_chain_written_with_a_key_does_not_verify_without_it(target):
    fill(target.open(hmac_key=KEY))
    assert target.open(hmac_key=KEY, migrate=False).verify().ok
    problem = target.open(migrate=False).verify().first_problem
    assert (problem["seq"], problem["kind"]) == (1, "altered")
