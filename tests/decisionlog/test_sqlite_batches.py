"""SQLite inserts a batch's rows with one INSERT per table (many VALUES rows), split into
several statements when the rows would bind more parameters than the connection allows."""
from __future__ import annotations

import sqlite3

import pytest

from service.decisionlog import DuplicateDecision
from service.decisionlog.rows import prepare_decision
from service.decisionlog.sqlite import SQLiteStore

from .factories import make_decision


@pytest.fixture
def lite(target):
    if target.backend != "sqlite":
        pytest.skip("the multi-row INSERT is SQLite's")
    return target


def _limit_variables(monkeypatch, limit: int) -> None:
    """Every connection the store opens binds at most `limit` parameters per statement (an
    INSERT binding more fails with "too many SQL variables")."""
    connect = SQLiteStore._connect

    def limited(self):
        conn = connect(self)
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)
        return conn
    monkeypatch.setattr(SQLiteStore, "_connect", limited)


@pytest.mark.parametrize("max_variables", [32_766, 31, 15])
def test_a_batch_split_over_several_statements_is_stored_whole(lite, monkeypatch, max_variables):
    # 31 variables: 2 decisions (15 columns each) and 15 fired-rule rows per statement;
    # 15: one decision per statement.
    _limit_variables(monkeypatch, max_variables)
    store = lite.open()
    batch = [(prepare_decision(make_decision(f"m{n}", fired_rules=[f"R-{k}" for k in range(n % 4 + 1)])), None)
             for n in range(7)]
    placed = store._chain_batch(batch)
    assert [r.seq for r in placed] == list(range(1, 8))
    report = store.verify()
    assert report.ok and report.checked == 7, report.first_problem
    rows = lite.sql("SELECT seq, rule_id FROM decision_rules ORDER BY seq, rule_id")
    assert rows == [(n + 1, f"R-{k}") for n in range(7) for k in range(n % 4 + 1)]
    assert [r.decision_id for r in store.search_decisions(rule_id="R-3", limit=10)[0]] == ["m3"]


def test_a_duplicate_id_in_a_split_batch_fails_the_whole_batch(lite, monkeypatch):
    _limit_variables(monkeypatch, 31)
    store = lite.open()
    store.append_decision(make_decision("taken"))
    batch = [(prepare_decision(make_decision(name)), None) for name in ("d1", "d2", "d3", "taken")]
    with pytest.raises(DuplicateDecision):
        store._chain_batch(batch)
    assert lite.sql("SELECT decision_id FROM decisions ORDER BY seq") == [("taken",)]  # nothing half-written
    assert store.verify().ok
