"""An impact job as plain map/reduce, for a distributed engine a bank already runs (Dask, Ray,
Spark): partition the logged decisions by seq range, map the same pure case-pair function over
each partition on any worker, reduce the tallies in partition order.

    parts = plan_partitions(url, None, "sme-credit-policy", t0, t1, size=50_000)
    tallies = client.gather(client.map(map_partition, *zip(*[(url, None, name, "1.0.0", "1.1.0", t0, t1, lo, hi)
                                                            for lo, hi, _ in parts])))     # Dask
    result = reduce_partitions(tallies)

Each worker reads its own partition straight from the shared PostgreSQL log (nothing big is
shipped from the driver) and loads the two versions from the store once per process. The map
is `impact.VersionPair.compare` over `impact_of_range` — exactly what the service's own job
processes run — so the answers agree with the job API and the inline impact.
"""
from __future__ import annotations

import datetime as dt
from typing import Iterable

from service.catalog import Catalog
from service import canonical
from service.decisionlog import open_store
from service.impact import Tally, VersionPair
from service.jobs.work import PLAN_PAGE, SOURCE_LOG, impact_of_range

_per_process: dict = {}


def _params(from_version: str, to_version: str, logged_from: dt.datetime, logged_to: dt.datetime) -> dict:
    return {"from": from_version, "to": to_version, "source": SOURCE_LOG, "logged_from": canonical.utc_text(logged_from),
            "logged_to": canonical.utc_text(logged_to), "limit": None}


def _store(database_url: str | None, data_dir: str | None):
    key = ("store", database_url, data_dir)
    if key not in _per_process:
        _per_process[key] = open_store(database_url, data_dir or "./var")
    return _per_process[key]


def _pair(database_url, data_dir, name, from_version, to_version) -> VersionPair:
    key = ("pair", database_url, data_dir, name, from_version, to_version)
    if key not in _per_process:
        catalog = Catalog(_store(database_url, data_dir), None)
        _per_process[key] = VersionPair(catalog.engine, catalog.get(name, from_version), catalog.get(name, to_version))
    return _per_process[key]


def plan_partitions(database_url: str | None, data_dir: str | None, name: str, logged_from: dt.datetime,
                    logged_to: dt.datetime, size: int) -> list[tuple[int, int, int]]:
    """(after_seq, upto_seq, cases) ranges of at most `size` logged decisions, in seq order."""
    store = _store(database_url, data_dir)
    parts, seqs, cursor = [], [], None
    while True:
        page, cursor = store.search_decisions(ruleset=name, time_from=logged_from, time_to=logged_to,
                                              limit=PLAN_PAGE, cursor=cursor)
        for summary in page:
            seqs.append(summary.seq)
            if len(seqs) == size:
                parts.append((seqs[0] - 1, seqs[-1], len(seqs)))
                seqs = []
        if cursor is None:
            break
    if seqs:
        parts.append((seqs[0] - 1, seqs[-1], len(seqs)))
    return parts


def map_partition(database_url: str | None, data_dir: str | None, name: str, from_version: str, to_version: str,
                  logged_from: dt.datetime, logged_to: dt.datetime, after_seq: int, upto_seq: int) -> dict:
    """The map step: the tally (a plain dict, cheap to ship back) of one seq range."""
    pair = _pair(database_url, data_dir, name, from_version, to_version)
    params = _params(from_version, to_version, logged_from, logged_to)
    return impact_of_range(_store(database_url, data_dir), pair, name, params, after_seq, upto_seq).as_dict()


def reduce_partitions(tallies: Iterable[dict]) -> dict:
    """The reduce step: tallies merged in partition order (matrices add, changed cases concatenate)."""
    total = Tally()
    for part in tallies:
        total.merge(Tally.from_dict(part))
    return total.as_dict()
