"""Many writers, one chain: appends from several processes must form one gapless line."""
from __future__ import annotations

from .conftest import run_processes
from .workers import append_many

PROCESSES, APPENDS_EACH = 4, 250


def test_four_processes_append_into_one_gapless_chain(target):
    store = target.open()  # migrated before the workers start
    run_processes(append_many,
                  [(target.database_url, target.data_dir, worker, APPENDS_EACH)
                   for worker in range(PROCESSES)],
                  timeout_s=120)
    total = PROCESSES * APPENDS_EACH

    records = list(store.iter_decisions())
    assert [record.seq for record in records] == list(range(1, total + 1))
    assert len({record.decision_id for record in records}) == total
    for worker in range(PROCESSES):  # each worker's own appends stay in its order
        mine = [record.decision_id for record in records
                if record.decision_id.startswith(f"w{worker}-")]
        assert mine == sorted(mine) and len(mine) == APPENDS_EACH

    report = store.verify()
    assert report.ok, report.first_problem
    assert report.checked == total
    assert report.head == {"seq": total, "hash": records[-1].hash}
