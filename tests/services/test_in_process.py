"""The services in-process, with a frozen clock: catalog, decisions, audit and impact over a real
SQLite store in a temporary directory, no HTTP server. Fast, and exact about time: the business
date is the clock's instant in Asia/Shanghai, and `evaluated_at` is the clock's instant."""
from __future__ import annotations

import datetime as dt

import pytest

from service import canonical, decisionlog
from service.audit import AuditService, SearchFilters
from service.catalog import Catalog
from service.decisionlog import open_store
from service.decisions import Clock, DecisionService
from service.errors import StorageUnavailable, UnknownDecision, UnknownRuleset, VersionConflict
from service.impact import Tally, VersionPair, case_from_record, impact, report
from service.schemas.api import EvaluateRequest, ImpactRequest, load
from tests.api.conftest import FIXTURE_RULESETS, toy_input, toy_v2_yaml, toy_yaml

UTC = dt.timezone.utc


class FrozenClock(Clock):
    """A clock that says what the test says."""

    def __init__(self, instant: dt.datetime):
        super().__init__()
        self.instant = instant

    def now(self) -> dt.datetime:
        return self.instant


@pytest.fixture
def store(tmp_path):
    s = open_store(None, str(tmp_path))
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def catalog(store):
    c = Catalog(store, FIXTURE_RULESETS, refresh_seconds=0)
    c.start()
    return c


def _decide(service: DecisionService, application_id: str, **fields) -> dict:
    raw = {"ruleset": "toy", "application_id": application_id, "input": toy_input(), **fields}
    return canonical.loads(service.decide(load(EvaluateRequest(), raw), raw))


# -- catalog ----------------------------------------------------------------------------------------


def test_catalog_publishes_shipped_rulesets_and_sees_what_another_instance_publishes(store, tmp_path):
    first = Catalog(store, FIXTURE_RULESETS, refresh_seconds=0)
    first.start()
    assert [lv.version for lv in first.versions("toy")] == ["1.0.0"]
    other_store = open_store(None, str(tmp_path))  # a second instance on the same file
    try:
        second = Catalog(other_store, FIXTURE_RULESETS, refresh_seconds=0)
        second.start()  # the shipped version is already there: no conflict, no second copy
        assert [row.version for row in store.list_versions("toy")] == ["1.0.0"]

        created = first.publish("toy", toy_v2_yaml("toy", "1.1.0"), "yaml", "tester")
        assert created.created is True
        assert first.publish("toy", toy_v2_yaml("toy", "1.1.0"), "yaml", "tester").created is False  # idempotent
        assert [lv.version for lv in second.versions("toy")] == ["1.0.0", "1.1.0"]

        with pytest.raises(VersionConflict):  # same version, other content: published versions are immutable
            second.publish("toy", toy_yaml("toy", "1.1.0"), "yaml", "tester")
        second.retire("toy", "1.0.0", "tester")
        assert first.get("toy", "1.0.0").retired is True
        with pytest.raises(UnknownRuleset):
            first.get("toy", "9.9.9")
    finally:
        other_store.close()


# -- decisions ----------------------------------------------------------------------------------------


def test_the_business_date_is_the_clock_in_shanghai_and_picks_the_version(catalog):
    catalog.publish("toy", toy_yaml("toy", "2.0.0", effective_from="2026-01-15"), "yaml", "tester")
    clock = FrozenClock(dt.datetime(2026, 1, 14, 15, 59, 59, 999999, tzinfo=UTC))  # 23:59:59 in Shanghai
    service = DecisionService(catalog, catalog.store, clock)
    before = _decide(service, "CLOCK-1")
    assert (before["as_of"], before["ruleset"]["version"]) == ("2026-01-14", "1.0.0")
    assert before["evaluated_at"] == "2026-01-14T15:59:59.999999Z"
    clock.instant = dt.datetime(2026, 1, 14, 16, 0, tzinfo=UTC)  # midnight in Shanghai
    after = _decide(service, "CLOCK-2")
    assert (after["as_of"], after["ruleset"]["version"]) == ("2026-01-15", "2.0.0")
    assert after["evaluated_at"] == "2026-01-14T16:00:00.000000Z"


def test_a_decision_is_logged_as_answered_and_replays_identically(catalog):
    clock = FrozenClock(dt.datetime(2026, 11, 24, 8, 0, tzinfo=UTC))
    service = DecisionService(catalog, catalog.store, clock)
    audit = AuditService(catalog, catalog.store)
    answer = _decide(service, "LOGGED-1", version="1.0.0", trace="full")
    record = audit.logged(answer["decision_id"])
    assert record.response == answer and record.evaluated_at == clock.instant
    assert audit.expanded_trace(record)["rules"] == answer["trace"]
    clock.instant += dt.timedelta(days=400)  # replay later: the logged as_of and version are used
    replay = service.replay(record)
    assert replay["identical"] is True, replay["differences"]
    with pytest.raises(UnknownDecision):
        audit.logged("00000000-0000-7000-8000-000000000000")


def test_when_the_log_cannot_be_written_there_is_no_decision(catalog, monkeypatch):
    service = DecisionService(catalog, catalog.store, FrozenClock(dt.datetime(2026, 11, 24, tzinfo=UTC)))

    def refuse(record):
        raise decisionlog.StoreUnavailable("disk full")

    monkeypatch.setattr(catalog.store, "append_decision", refuse)
    with pytest.raises(StorageUnavailable):  # translated at the service boundary
        _decide(service, "OUTAGE-1", version="1.0.0")
    monkeypatch.undo()
    assert AuditService(catalog, catalog.store).search(SearchFilters(application_id="OUTAGE-1"), limit=10,
                                                       cursor=None) == ([], None)


# -- audit ----------------------------------------------------------------------------------------


def test_search_export_and_verify_through_the_audit_service(catalog):
    clock = FrozenClock(dt.datetime(2026, 3, 1, tzinfo=UTC))
    service = DecisionService(catalog, catalog.store, clock)
    made = []
    for n in range(5):
        clock.instant = dt.datetime(2026, 3, 1, tzinfo=UTC) + dt.timedelta(hours=n)
        made.append(_decide(service, f"AUDIT-{n}", version="1.0.0"))
    audit = AuditService(catalog, catalog.store)
    window = SearchFilters(time_from=dt.datetime(2026, 3, 1, 1, tzinfo=UTC), time_to=dt.datetime(2026, 3, 1, 4, tzinfo=UTC))
    page, cursor = audit.search(window, limit=2, cursor=None)
    rest, last = audit.search(window, limit=2, cursor=cursor)
    assert [s.application_id for s in page + rest] == ["AUDIT-1", "AUDIT-2", "AUDIT-3"] and last is None
    assert [r.decision_id for r in audit.export(window)] == [m["decision_id"] for m in made[1:4]]
    report = audit.verify()
    assert report["ok"] is True and report["checked"] == 5
    readiness = audit.readiness()
    assert readiness.ready and readiness.rulesets_loaded >= 1


# -- impact ----------------------------------------------------------------------------------------


def test_impact_of_a_raised_floor_over_given_applications_and_over_the_log(catalog):
    catalog.publish("toy", toy_v2_yaml("toy", "1.1.0"), "yaml", "tester")  # floor B -> BB
    clock = FrozenClock(dt.datetime(2026, 5, 20, 2, 0, tzinfo=UTC))
    applications = [{"application_id": f"IMPACT-{r}", "input": toy_input(r)} for r in ("BBB", "B", "CCC")]
    given = load(ImpactRequest(), {"from": "1.0.0", "to": "1.1.0", "applications": applications})
    result = impact(catalog, catalog.store, "toy", given, clock.business_date())
    assert result["outcome_matrix"]["APPROVE"] == {"APPROVE": 1, "REFER": 0, "DECLINE": 1}
    assert result["outcome_matrix"]["DECLINE"]["DECLINE"] == 1
    [changed] = [c for c in result["changed"] if c["from"]["outcome"] != c["to"]["outcome"]]
    assert changed["application_id"] == "IMPACT-B" and changed["as_of"] == "2026-05-20"
    assert {"R-LOW", "R-FLOOR"} <= set(changed["rules_responsible"])

    service = DecisionService(catalog, catalog.store, clock)
    for a in applications:
        raw = {"ruleset": "toy", "version": "1.0.0", **a}
        service.decide(load(EvaluateRequest(), raw), raw)
    # Over the log, as a job does it: logged cases through the same case-pair function, one tally.
    pair = VersionPair(catalog.engine, catalog.get("toy", "1.0.0"), catalog.get("toy", "1.1.0"))
    tally = Tally()
    period = SearchFilters(ruleset="toy", time_from=dt.datetime(2026, 5, 20, tzinfo=UTC),
                           time_to=dt.datetime(2026, 5, 21, tzinfo=UTC))
    for record in AuditService(catalog, catalog.store).export(period):
        tally.add(pair.compare(case_from_record(record)))
    over_log = report(pair, "toy", {"kind": "decision_log"}, tally, breakdowns=True)
    assert over_log["evaluated"] == 3 and over_log["matrix"] == result["outcome_matrix"]
    assert [c["application_id"] for c in over_log["changed"]] == [c["application_id"] for c in result["changed"]]
