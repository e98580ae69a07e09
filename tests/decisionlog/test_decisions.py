"""Appending, reading and searching the decision log."""
from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest

from service import canonical
from service.decisionlog import DecisionSummary, DuplicateDecision, LoggedDecision
from service.decisionlog.chain import GENESIS_HASH, record_hash

from .factories import BASE_TIME, RULESET_SHA, make_decision

HOUR = dt.timedelta(hours=1)


def test_append_get_round_trip_keeps_decimals_exact(store):
    new = make_decision("d-1")
    logged = store.append_decision(new)
    fetched = store.get_decision("d-1")
    assert fetched == logged
    assert isinstance(fetched, LoggedDecision)
    assert (fetched.seq, fetched.prev_hash) == (1, GENESIS_HASH)
    assert fetched.evaluated_at == BASE_TIME and fetched.evaluated_at.tzinfo is not None
    assert fetched.fired_rules == ["SCOPE-001", "MODE-002"]  # order kept
    assert (fetched.ruleset_name, fetched.ruleset_version, fetched.ruleset_sha256) == (
        "sme-credit-policy", "1.0.0", RULESET_SHA)
    revenue = fetched.request["input"]["applicant"]["revenue"]
    rate = fetched.response["results"]["rate"]
    assert revenue == Decimal("8.1527") and isinstance(revenue, Decimal)
    assert rate == Decimal("0.10") and str(rate) == "0.10"  # trailing zero survives
    for name in ("request", "response", "trace"):
        assert canonical.dumps(getattr(fetched, name)) == canonical.dumps(getattr(new, name))
    assert store.get_decision("nope") is None


def test_records_are_chained_in_order(store):
    first = store.append_decision(make_decision("d-1"))
    second = store.append_decision(make_decision("d-2", application_id=None))
    assert (first.seq, second.seq) == (1, 2)
    assert second.prev_hash == first.hash
    assert second.application_id is None
    assert store.verify().ok


def test_hash_is_recomputable_from_the_documented_fields(store):
    logged = store.append_decision(make_decision("d-1"))
    fields = {
        "seq": 1, "decision_id": "d-1", "application_id": "APP-d-1",
        "ruleset_name": "sme-credit-policy", "ruleset_version": "1.0.0",
        "ruleset_sha256": RULESET_SHA, "outcome": "APPROVE", "as_of": "2026-11-24",
        "evaluated_at": "2026-11-24T09:00:00.123456Z",
        "fired_rules": logged.fired_rules, "request": logged.request,
        "response": logged.response, "trace": logged.trace,
    }
    assert record_hash(GENESIS_HASH, fields) == logged.hash


def test_duplicate_decision_id_is_refused(store):
    store.append_decision(make_decision("d-1"))
    with pytest.raises(DuplicateDecision):
        store.append_decision(make_decision("d-1"))
    assert store.append_decision(make_decision("d-2")).seq == 2
    assert store.verify().ok


@pytest.mark.parametrize("overrides", [
    {"outcome": "MAYBE"},
    {"as_of": "24/11/2026"},
    {"fired_rules": ["R-1", 7]},
    {"decision_id": ""},
])
def test_invalid_decisions_are_rejected_before_storing(store, overrides):
    fields = {"decision_id": "d-1", **overrides}
    with pytest.raises(ValueError):
        store.append_decision(make_decision(**fields))
    assert store.search_decisions()[0] == []


def test_naive_evaluated_at_is_taken_as_utc(store):
    store.append_decision(make_decision("d-1", evaluated_at=BASE_TIME.replace(tzinfo=None)))
    shifted = BASE_TIME.astimezone(dt.timezone(dt.timedelta(hours=8)))
    store.append_decision(make_decision("d-2", evaluated_at=shifted))
    assert store.get_decision("d-1").evaluated_at == BASE_TIME
    assert store.get_decision("d-2").evaluated_at == BASE_TIME


def test_threads_share_one_store(store):
    def append(worker: int) -> None:
        for number in range(25):
            store.append_decision(make_decision(f"t{worker}-{number}"))

    threads = [threading.Thread(target=append, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = store.verify()
    assert report.ok and report.checked == 100 and report.head["seq"] == 100


# --- search -------------------------------------------------------------------------


@pytest.fixture
def populated(store):
    """Ten decisions an hour apart with varied attributes."""
    outcomes = ["APPROVE", "REFER", "DECLINE"]
    for number in range(10):
        store.append_decision(make_decision(
            f"d-{number}",
            application_id="APP-EVEN" if number % 2 == 0 else "APP-ODD",
            ruleset_version="1.0.0" if number < 6 else "1.1.0",
            ruleset_name="sme-credit-policy" if number != 9 else "sme-size-classification",
            outcome=outcomes[number % 3],
            evaluated_at=BASE_TIME + number * HOUR,
            fired_rules=["COMMON"] + (["RARE-7"] if number == 7 else []),
        ))
    return store


def ids(page):
    return [summary.decision_id for summary in page]


def test_search_without_filters_returns_everything_in_seq_order(populated):
    page, cursor = populated.search_decisions()
    assert ids(page) == [f"d-{n}" for n in range(10)]
    assert cursor is None
    assert all(type(summary) is DecisionSummary for summary in page)
    assert [summary.seq for summary in page] == list(range(1, 11))


@pytest.mark.parametrize("filters, expected", [
    ({"application_id": "APP-ODD"}, [1, 3, 5, 7, 9]),
    ({"ruleset": "sme-size-classification"}, [9]),
    ({"version": "1.1.0"}, [6, 7, 8, 9]),
    ({"ruleset": "sme-credit-policy", "version": "1.1.0"}, [6, 7, 8]),
    ({"outcome": "DECLINE"}, [2, 5, 8]),
    ({"rule_id": "RARE-7"}, [7]),
    ({"rule_id": "COMMON", "outcome": "REFER"}, [1, 4, 7]),
    ({"rule_id": "NEVER-FIRED"}, []),
    ({"time_from": BASE_TIME + 3 * HOUR}, [3, 4, 5, 6, 7, 8, 9]),
    ({"time_to": BASE_TIME + 3 * HOUR}, [0, 1, 2]),  # `to` is exclusive
    ({"time_from": BASE_TIME + 2 * HOUR, "time_to": BASE_TIME + 5 * HOUR}, [2, 3, 4]),
    ({"time_from": (BASE_TIME + 2 * HOUR).astimezone(dt.timezone(dt.timedelta(hours=8))),
      "time_to": BASE_TIME + 3 * HOUR - dt.timedelta(microseconds=1)}, [2]),
    ({"application_id": "APP-EVEN", "outcome": "APPROVE", "version": "1.0.0"}, [0]),
])
def test_search_filters(populated, filters, expected):
    page, cursor = populated.search_decisions(**filters)
    assert ids(page) == [f"d-{n}" for n in expected]
    assert cursor is None


def test_search_paginates_with_cursor(populated):
    first, cursor1 = populated.search_decisions(limit=4)
    second, cursor2 = populated.search_decisions(limit=4, cursor=cursor1)
    third, cursor3 = populated.search_decisions(limit=4, cursor=cursor2)
    assert ids(first) == ["d-0", "d-1", "d-2", "d-3"]
    assert ids(second) == ["d-4", "d-5", "d-6", "d-7"]
    assert ids(third) == ["d-8", "d-9"]
    assert isinstance(cursor1, str) and isinstance(cursor2, str) and cursor3 is None


def test_search_paginates_within_a_filter(populated):
    seen, cursor = [], None
    while True:
        page, cursor = populated.search_decisions(rule_id="COMMON", outcome="APPROVE",
                                                  limit=1, cursor=cursor)
        seen += ids(page)
        if cursor is None:
            break
    assert seen == ["d-0", "d-3", "d-6", "d-9"]


def test_exactly_full_last_page_has_no_next_cursor(populated):
    page, cursor = populated.search_decisions(limit=5)
    page, cursor = populated.search_decisions(limit=5, cursor=cursor)
    assert ids(page) == [f"d-{n}" for n in range(5, 10)] and cursor is None


@pytest.mark.parametrize("cursor", ["", "garbage!", "e30", "W10", "eyJhZnRlciI6LTF9",
                                    "eyJhZnRlciI6IngifQ", "bm90IGpzb24"])
def test_bad_cursor_is_a_value_error(populated, cursor):
    with pytest.raises(ValueError):
        populated.search_decisions(cursor=cursor)


@pytest.mark.parametrize("limit", [0, 1001, -1, True, 2.5])
def test_limit_out_of_range_is_a_value_error(populated, limit):
    with pytest.raises(ValueError):
        populated.search_decisions(limit=limit)


def test_limit_bounds_are_accepted(populated):
    assert len(populated.search_decisions(limit=1)[0]) == 1
    assert len(populated.search_decisions(limit=1000)[0]) == 10


def test_iter_decisions_streams_full_records_with_filters(populated):
    records = list(populated.iter_decisions(application_id="APP-EVEN"))
    assert [record.decision_id for record in records] == ["d-0", "d-2", "d-4", "d-6", "d-8"]
    assert all(isinstance(record, LoggedDecision) for record in records)
    assert records[0].response["results"]["rate"] == Decimal("0.10")
    window = populated.iter_decisions(time_from=BASE_TIME + 8 * HOUR)
    assert [record.seq for record in window] == [9, 10]


def test_iter_decisions_crosses_batches(store, monkeypatch):
    from service.decisionlog import store as store_module

    monkeypatch.setattr(store_module, "ITER_BATCH_SIZE", 3)
    for number in range(8):
        store.append_decision(make_decision(f"d-{number}"))
    assert [record.seq for record in store.iter_decisions()] == list(range(1, 9))
    iterator = store.iter_decisions()
    next(iterator)
    store.append_decision(make_decision("late"))  # after the iteration started
    assert [record.seq for record in iterator] == list(range(2, 9))
