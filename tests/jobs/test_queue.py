"""The store-backed job queue on both backends: planning, leases, expiry, idempotent completion,
the reduce on the last chunk, cancel, release, and the retry limit."""
from __future__ import annotations

import time

import pytest

from service.jobs.queue import MAX_ATTEMPTS, JobQueue


@pytest.fixture
def queue(target, store):
    q = JobQueue(target.database_url, target.data_dir)
    yield q
    q.close()


def joined(parts):
    return "+".join(parts)


def planned(queue, chunks=((0, 10, 10), (10, 20, 10), (20, 25, 5))):
    job = queue.create("impact", "toy", {"from": "1.0.0", "to": "1.1.0"}, "token:abc")
    assert queue.claim_plan("planner", 30).id == job.id
    assert queue.claim_plan("other", 30) is None                 # leased to the planner
    assert queue.finish_plan(job.id, "planner", list(chunks), lambda: "empty")
    return queue.get(job.id)


def test_a_job_is_planned_once_run_in_chunks_and_reduced_by_the_last(queue):
    job = planned(queue)
    assert (job.status, job.total, job.done, job.created_by) == ("running", 25, 0, "token:abc")
    first = queue.claim_chunk("a", 30)[1]
    second = queue.claim_chunk("b", 30)[1]
    third = queue.claim_chunk("a", 30)[1]
    assert [c.chunk_no for c in (first, second, third)] == [0, 1, 2]
    assert queue.claim_chunk("c", 30) is None                    # all leased
    assert queue.complete_chunk(second, "b", "two", joined) == "recorded"
    assert queue.complete_chunk(third, "a", "three", joined) == "recorded"
    assert queue.get(job.id).done == 15
    assert queue.complete_chunk(first, "a", "one", joined) == "finished"
    done = queue.get(job.id)
    assert (done.status, done.done, done.result_json) == ("done", 25, "one+two+three")   # chunk order


def test_an_expired_lease_is_claimed_again_and_a_chunk_counts_once(queue):
    job = planned(queue, [(0, 10, 10)])
    dead = queue.claim_chunk("dead", 0.2)[1]
    assert queue.claim_chunk("alive", 30) is None
    deadline = time.monotonic() + 10  # poll until the 0.2 s lease has expired
    while (claimed := queue.claim_chunk("alive", 30)) is None:
        assert time.monotonic() < deadline, "the expired lease was never claimed again"
        time.sleep(0.02)
    again = claimed[1]
    assert (again.chunk_no, again.attempts) == (0, 2)
    assert not queue.renew(dead, "dead", 30)                     # the dead owner lost its lease
    assert queue.complete_chunk(again, "alive", "x", joined) == "finished"
    assert queue.complete_chunk(dead, "dead", "x", joined) == "dropped"   # late duplicate: not counted
    assert queue.get(job.id).done == 10


def test_cancel_stops_claims_renewals_and_results(queue):
    job = planned(queue)
    running = queue.claim_chunk("a", 30)[1]
    assert queue.cancel(job.id).status == "cancelled"
    assert not queue.renew(running, "a", 30)                     # how a running chunk learns of it
    assert queue.claim_chunk("b", 30) is None
    assert queue.complete_chunk(running, "a", "x", joined) == "dropped"
    after = queue.get(job.id)
    assert (after.status, after.done, after.result_json) == ("cancelled", 0, None)
    assert queue.cancel(job.id).status == "cancelled"            # idempotent


def test_release_hands_leases_back_at_once(queue):
    planned(queue, [(0, 10, 10)])
    queue.claim_chunk("leaving", 300)
    queue.release("leaving")
    assert queue.claim_chunk("next", 30)[1].chunk_no == 0


def test_a_chunk_whose_claimers_keep_dying_fails_the_job(queue):
    job = planned(queue, [(0, 10, 10)])
    for n in range(MAX_ATTEMPTS):
        assert queue.claim_chunk(f"dies-{n}", 0.01) is not None
        time.sleep(0.02)
    assert queue.claim_chunk("last", 30) is None
    failed = queue.get(job.id)
    assert failed.status == "failed" and "never finished" in failed.error


def test_a_planner_that_died_is_replaced_and_an_empty_plan_is_done(queue):
    job = queue.create("impact", "toy", {}, None)
    assert queue.claim_plan("dies", 0.1).id == job.id
    time.sleep(0.2)
    assert queue.claim_plan("next", 30).id == job.id
    assert not queue.finish_plan(job.id, "dies", [], lambda: "late")    # no longer its plan
    assert queue.finish_plan(job.id, "next", [], lambda: "nothing to do")
    done = queue.get(job.id)
    assert (done.status, done.total, done.result_json) == ("done", 0, "nothing to do")


def test_a_cancelled_queued_job_is_never_planned(queue):
    job = queue.create("impact", "toy", {}, None)
    queue.cancel(job.id)
    assert queue.claim_plan("p", 30) is None
