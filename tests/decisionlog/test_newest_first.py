"""Search newest first (the console lists the latest decisions first), on both backends."""
from __future__ import annotations

import datetime as dt

import pytest

from .factories import BASE_TIME, make_decision

HOUR = dt.timedelta(hours=1)


@pytest.fixture
def seven(store):
    for number in range(7):
        store.append_decision(make_decision(f"d-{number}", outcome="DECLINE" if number % 2 else "APPROVE",
                                            evaluated_at=BASE_TIME + number * HOUR))
    return store


def ids(page):
    return [summary.decision_id for summary in page]


def test_newest_first_pages_backwards_through_the_log(seven):
    first, cursor = seven.search_decisions(limit=3, newest_first=True)
    second, cursor2 = seven.search_decisions(limit=3, newest_first=True, cursor=cursor)
    third, cursor3 = seven.search_decisions(limit=3, newest_first=True, cursor=cursor2)
    assert ids(first) == ["d-6", "d-5", "d-4"]
    assert ids(second) == ["d-3", "d-2", "d-1"]
    assert ids(third) == ["d-0"] and cursor3 is None


def test_newest_first_within_filters(seven):
    page, cursor = seven.search_decisions(outcome="DECLINE", newest_first=True, limit=2)
    rest, end = seven.search_decisions(outcome="DECLINE", newest_first=True, limit=2, cursor=cursor)
    assert ids(page) == ["d-5", "d-3"] and ids(rest) == ["d-1"] and end is None
    page, _ = seven.search_decisions(time_from=BASE_TIME + 2 * HOUR, time_to=BASE_TIME + 5 * HOUR, newest_first=True)
    assert ids(page) == ["d-4", "d-3", "d-2"]


def test_cursors_do_not_cross_directions(seven):
    _, oldest_first_cursor = seven.search_decisions(limit=2)
    with pytest.raises(ValueError):
        seven.search_decisions(limit=2, newest_first=True, cursor=oldest_first_cursor)
