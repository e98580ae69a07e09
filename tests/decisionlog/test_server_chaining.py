"""PostgreSQL chains batches on the server (migration 0004, `chain_append`): the same hashes
the client would compute (verify agrees), one statement per batch, the client's own chaining
where the server cannot (an HMAC key, idempotency keys), and a retried statement that had
committed meets its own rows instead of failing."""
from __future__ import annotations

import dataclasses

import pytest

from service import canonical
from service.decisionlog import StoreUnavailable, base, postgres
from service.decisionlog.rows import StoredDecision, prepare_decision

from .factories import make_decision


@pytest.fixture
def pg(target):
    if target.backend != "postgres":
        pytest.skip("server-side chaining is PostgreSQL's")
    return target


def _client_chaining_refused(monkeypatch):
    def refuse(self, conn, batch):
        raise AssertionError("the client chained a batch the server should have chained")
    monkeypatch.setattr(base.SQLStore, "_chain", refuse)


def test_the_server_chains_and_verify_agrees_with_its_hashes(pg, monkeypatch):
    store = pg.open()
    _client_chaining_refused(monkeypatch)
    text = "杭州ABC贸易 \\u00e9 \"quoted\" é"
    for n in range(30):
        record = store.append_decision(make_decision(f"s{n}", application_id=f"APP-{text}-{n}",
                                                     fired_rules=["B-2", "A-1", "B-2"][: 1 + n % 3]))
        assert record.seq == n + 1
    report = store.verify()
    assert report.ok and report.checked == 30, report.first_problem
    assert store.search_decisions(rule_id="A-1", limit=100)[0]  # the fired-rule index rows are there


def test_one_statement_chains_a_large_batch_in_order_after_what_is_there(pg, monkeypatch):
    """Every record of a batch comes back in the order sent, numbered after the head, each
    hashed after the one before (verify agrees), its fired rules indexed."""
    store = pg.open()
    store.append_decision(make_decision("first"))
    _client_chaining_refused(monkeypatch)
    batch = [(prepare_decision(make_decision(f"b{n}", fired_rules=[f"R-{n % 5}", "R-X"])), None) for n in range(40)]
    placed = store._chain_batch(batch)
    assert [r.decision_id for r in placed] == [record.decision_id for record, _ in batch]
    assert [r.seq for r in placed] == list(range(2, 42))
    assert all(b.prev_hash == a.hash for a, b in zip(placed, placed[1:]))
    report = store.verify()
    assert report.ok and report.checked == 41, report.first_problem
    assert {r.decision_id for r in store.search_decisions(rule_id="R-3", limit=100)[0]} == {"b3", "b8", "b13", "b18", "b23", "b28", "b33", "b38"}


def test_the_text_sent_around_seq_is_exactly_the_hashed_text(pg):
    record = prepare_decision(make_decision("t1", trace={"seq": 5, "x": "\"seq\":7"}))
    before, after = record.hashed_text_around_seq()
    placed = record.chained(123, "f" * 64, None)
    assert before + "123" + after == canonical.dumps(placed.hashed_fields())


def test_with_an_hmac_key_the_client_chains(pg, monkeypatch):
    store = pg.open(hmac_key=b"k" * 32)
    chained = []
    real = base.SQLStore._chain
    monkeypatch.setattr(base.SQLStore, "_chain", lambda self, conn, batch: chained.append(len(batch)) or real(self, conn, batch))
    store.append_decision(make_decision("h1"))
    assert chained == [1] and store.verify().ok


def test_with_an_idempotency_key_the_client_chains(pg, monkeypatch):
    store = pg.open()
    chained = []
    real = base.SQLStore._chain
    monkeypatch.setattr(base.SQLStore, "_chain", lambda self, conn, batch: chained.append(len(batch)) or real(self, conn, batch))
    store.append_decision(make_decision("i1", idempotency=("caller", "key-1", "0" * 64)))
    assert chained == [1] and store.verify().ok


def test_a_retried_statement_that_had_committed_meets_its_own_rows(pg, monkeypatch):
    """The statement ran and committed, then the connection broke before the answer came:
    _transaction runs it again on a fresh connection, which finds the rows already there."""
    store = pg.open()
    real = postgres.PostgresStore._transaction

    def commits_then_retries(self, work, **options):
        if options.get("single_statement"):
            real(self, work, **options)  # committed; its answer "lost"
        return real(self, work, **options)

    monkeypatch.setattr(postgres.PostgresStore, "_transaction", commits_then_retries)
    batch = [(prepare_decision(make_decision(f"r{n}")), None) for n in range(3)]
    placed = store._chain_batch(batch)
    monkeypatch.undo()
    assert [r.seq for r in placed] == [1, 2, 3]
    report = store.verify()
    assert report.ok and report.checked == 3  # logged once each


def test_appending_the_same_record_again_is_a_duplicate_not_a_retry(pg):
    from service.decisionlog import DuplicateDecision
    store = pg.open()
    batch = [(prepare_decision(make_decision("again")), None)]
    store._chain_batch(batch)
    with pytest.raises(DuplicateDecision):
        store._chain_batch(batch)


def test_a_real_duplicate_id_is_still_refused(pg):
    from service.decisionlog import DuplicateDecision
    store = pg.open()
    store.append_decision(make_decision("dup"))
    with pytest.raises(DuplicateDecision):
        store.append_decision(make_decision("dup", outcome="DECLINE"))
    assert store.verify().ok


def test_a_server_hash_unlike_the_services_is_refused_not_answered(pg, monkeypatch):
    """If the database hashed other bytes than the service would (a non-UTF8 database), the
    append fails with 503 now instead of leaving a chain verify rejects at the next audit."""
    store = pg.open()
    chained = StoredDecision.chained

    def other_text(self, seq, prev_hash, key):
        return dataclasses.replace(chained(self, seq, prev_hash, key), hash="0" * 64)
    monkeypatch.setattr(StoredDecision, "chained", other_text)
    with pytest.raises(StoreUnavailable, match="is the database UTF8"):
        store.append_decision(make_decision("u1"))
