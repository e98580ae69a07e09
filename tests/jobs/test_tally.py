"""The map/reduce a job (or a Dask/Ray cluster) runs is the inline impact: cut the cases into
parts anywhere, tally each part, merge in order — the same matrix, changed cases, errors and
breakdowns as one tally over everything."""
from __future__ import annotations

import datetime as dt
import random

import pytest

from service import canonical
from service.decision_engine import Registry, load_engine
from service.impact import Case, Tally, VersionPair
from tests.api.conftest import toy_input, toy_v2_yaml
from tests.conftest import FIXTURES

RATINGS = ["AAA", "AA", "A", "BBB", "BB", "B", "CCC", "D", None, "XX"]   # XX: refused as input


@pytest.fixture(scope="module")
def pair() -> VersionPair:
    engine = load_engine(FIXTURES / "rulesets")
    registry: Registry = engine.registry
    new = registry.load_text(toy_v2_yaml("toy", "1.1.0"))
    return VersionPair(engine, registry.get("toy", "1.0.0"), new)


def cases(n: int) -> list[Case]:
    rng = random.Random(20261201)
    return [Case(f"T-{i}", toy_input(rng.choice(RATINGS), amount=rng.choice([50, 100, 5000000]),
                                     **({"mines": [{"cap": rng.randint(1, 60)}]} if rng.random() < 0.3 else {})),
                 dt.date(2026, 1, 15)) for i in range(n)]


def test_merged_parts_equal_the_whole_for_any_cut(pair):
    all_cases = cases(120)
    results = [pair.compare(c) for c in all_cases]
    whole = Tally()
    for r in results:
        whole.add(r)
    assert whole.evaluated > 0 and whole.changed and whole.errors           # every kind of case occurs
    rng = random.Random(7)
    for _ in range(5):
        cuts = sorted(rng.sample(range(1, len(results)), 6))
        merged = Tally()
        for lo, hi in zip([0, *cuts], [*cuts, len(results)]):
            part = Tally()
            for r in results[lo:hi]:
                part.add(r)
            # each part travels as JSON, as between job processes or cluster workers
            merged.merge(Tally.from_dict(canonical.loads(canonical.dumps(part.as_dict()))))
        assert canonical.dumps(merged.as_dict()) == canonical.dumps(whole.as_dict())


def test_breakdowns_count_each_case_under_its_from_results(pair):
    tally = Tally()
    for c in cases(60):
        tally.add(pair.compare(c))
    as_dict = tally.as_dict()
    total = sum(n for row in as_dict["matrix"].values() for n in row.values())
    assert total == tally.evaluated
    # toy has no segments / region tier / size class: every case is "unknown", with the whole matrix
    for name in ("by_segment", "by_region_tier", "by_size_class"):
        assert as_dict[name] == {"unknown": as_dict["matrix"]}


def test_the_changes_csv_never_hands_a_spreadsheet_a_formula():
    from service.jobs.service import _cell

    assert [_cell(v) for v in ("=HYPERLINK(1)", "+1", "-1", "@SUM(A1)", "APP-1")] == \
        ["'=HYPERLINK(1)", "'+1", "'-1", "'@SUM(A1)", "APP-1"]
