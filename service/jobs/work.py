"""What one job process does: plan queued jobs into chunks, and run chunks.

Every step is a pure function of what the store holds (the job's parameters, the
immutable ruleset versions, the append-only decision log), so any process may do any step
again after another died half-way: a chunk's answer does not depend on who computes it.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass

from service import canonical
from service.contract import MAX_ITEMS_PER_REQUEST
from service.catalog import Catalog
from service.decisionlog import StoreUnavailable, open_store
from service.errors import ServiceError, StorageUnavailable
from service.impact import Tally, VersionPair, case_from_record, cases_from_request, report
from service.jobs.queue import Chunk, Job, JobQueue

# The store down, as the queue says it (its own error) and as the catalog says it (translated at
# the service boundary): either way the lease expires and the work is retried, never failed.
UNAVAILABLE = (StoreUnavailable, StorageUnavailable)

log = logging.getLogger("service.jobs")

KIND_IMPACT = "impact"
SOURCE_LOG = "decision_log"
SOURCE_GIVEN = "given"
PLAN_PAGE = MAX_ITEMS_PER_REQUEST  # the largest page the store answers


@dataclass(frozen=True)
class JobSettings:
    """JOB_PROCESSES: processes the runner keeps (0: no runner in this gunicorn; run
    `python -m service.jobs run` elsewhere). JOB_LEASE_SECONDS: how long a claim lives without
    renewal (a SIGKILLed process's chunk is claimable again after it). JOB_CHUNK_SIZE: cases
    per chunk (the unit of progress, of retry and of parallelism)."""

    processes: int = 2
    lease_seconds: float = 30.0
    chunk_size: int = 200
    poll_seconds: float = 0.5

    @classmethod
    def from_env(cls, env=None) -> "JobSettings":
        env = os.environ if env is None else env
        d = cls()
        out = cls(processes=int(env.get("JOB_PROCESSES", d.processes)),
                  lease_seconds=float(env.get("JOB_LEASE_SECONDS", d.lease_seconds)),
                  chunk_size=int(env.get("JOB_CHUNK_SIZE", d.chunk_size)),
                  poll_seconds=float(env.get("JOB_POLL_SECONDS", d.poll_seconds)))
        if out.processes < 0 or out.lease_seconds <= 0 or out.chunk_size < 1 or out.poll_seconds <= 0:
            raise ValueError("JOB_PROCESSES >= 0, JOB_LEASE_SECONDS > 0, JOB_CHUNK_SIZE >= 1, JOB_POLL_SECONDS > 0")
        return out


def impact_params(request: dict, default_as_of: dt.date) -> dict:
    """A job's stored parameters, from a validated impact request (service.schemas.api)."""
    params = {"from": request["from_version"], "to": request["to_version"]}
    if request["applications"] is not None:
        return {**params, "source": SOURCE_GIVEN, "as_of": (request["as_of"] or default_as_of).isoformat(),
                "applications": request["applications"]}
    return {**params, "source": SOURCE_LOG, "logged_from": canonical.utc_text(request["logged_from"]),
            "logged_to": canonical.utc_text(request["logged_to"]), "limit": request["limit"]}


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def source_of(params: dict) -> dict:
    if params["source"] == SOURCE_GIVEN:
        return {"kind": SOURCE_GIVEN, "count": len(params["applications"])}
    return {"kind": SOURCE_LOG, "from": params["logged_from"], "to": params["logged_to"], "limit": params["limit"]}


def log_cases(store, name: str, params: dict, after_seq: int, upto_seq: int):
    """The logged decisions of a job's period within (after_seq, upto_seq], as cases."""
    for record in store.iter_decisions(ruleset=name, time_from=_time(params["logged_from"]),
                                       time_to=_time(params["logged_to"]), after_seq=after_seq, upto_seq=upto_seq):
        yield case_from_record(record)


def impact_of_range(store, pair: VersionPair, name: str, params: dict, lo: int, hi: int, stop=None) -> Tally | None:
    """The tally of one part of a job: the map step (the same on a Dask/Ray worker as here).
    `stop()` is asked between cases; a True answer abandons the part (None)."""
    if params["source"] == SOURCE_GIVEN:
        cases = cases_from_request(params["applications"][lo:hi], dt.date.fromisoformat(params["as_of"]), offset=lo)
    else:
        cases = log_cases(store, name, params, lo, hi)
    tally = Tally()
    for case in cases:
        if stop is not None and stop():
            return None
        tally.add(pair.compare(case))
    return tally


class JobContext:
    """One process's handles: the store, the queue, the catalog of versions (store only)."""

    def __init__(self, settings, job_settings: JobSettings):
        self.settings, self.job_settings = settings, job_settings
        self.store = open_store(settings.database_url, settings.data_dir, hmac_key=settings.hmac_key)
        self.queue = JobQueue.from_settings(settings)
        # The app publishes the shipped rulesets; a job reads versions from the store only.
        self.catalog = Catalog(self.store, None, settings.registry_refresh_seconds)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._pairs: dict[tuple[str, str, str], VersionPair] = {}

    def pair(self, job: Job) -> VersionPair:
        key = (job.ruleset, job.params["from"], job.params["to"])
        if key not in self._pairs:
            self._pairs[key] = VersionPair(self.catalog.engine, self.catalog.get(key[0], key[1]),
                                           self.catalog.get(key[0], key[2]))
        return self._pairs[key]

    def close(self) -> None:
        self.queue.close()
        self.store.close()


def plan(ctx: JobContext, job: Job) -> list[tuple[int, int, int]]:
    """Chunks of at most chunk_size cases: (lo, hi, cases), ranges of seqs (lo exclusive,
    hi inclusive) over the log, or of application indexes (lo inclusive, hi exclusive)."""
    size = ctx.job_settings.chunk_size
    params = job.params
    if params["source"] == SOURCE_GIVEN:
        n = len(params["applications"])
        return [(lo, min(lo + size, n), min(lo + size, n) - lo) for lo in range(0, n, size)]
    limit = params["limit"]
    chunks, seqs, cursor, seen = [], [], None, 0
    while True:
        page, cursor = ctx.store.search_decisions(ruleset=job.ruleset, time_from=_time(params["logged_from"]),
                                                  time_to=_time(params["logged_to"]), limit=PLAN_PAGE, cursor=cursor)
        for summary in page:
            if limit is not None and seen >= limit:
                break
            seen += 1
            seqs.append(summary.seq)
            if len(seqs) == size:
                chunks.append((seqs[0] - 1, seqs[-1], len(seqs)))
                seqs = []
        if cursor is None or (limit is not None and seen >= limit):
            break
    if seqs:
        chunks.append((seqs[0] - 1, seqs[-1], len(seqs)))
    return chunks


def _result_text(ctx: JobContext, job: Job, tally: Tally) -> str:
    return canonical.dumps(report(ctx.pair(job), job.ruleset, source_of(job.params), tally, breakdowns=True),
                           sort_keys=False)


def reduce_parts(ctx: JobContext, job: Job, parts: list[str]) -> str:
    """The reduce step: chunk tallies merged in chunk order."""
    tally = Tally()
    for part in parts:
        tally.merge(Tally.from_dict(canonical.loads(part)))
    return _result_text(ctx, job, tally)


def step(ctx: JobContext, stopping=lambda: False) -> bool:
    """Do one piece of work if there is any: plan a job, or run a chunk. True if it did."""
    js = ctx.job_settings
    job = ctx.queue.claim_plan(ctx.owner, js.lease_seconds)
    if job is not None:
        try:
            ctx.pair(job)  # both versions must exist
            chunks = plan(ctx, job)
        except UNAVAILABLE:
            raise  # the lease expires; planned again when the store is back
        except ServiceError as exc:
            ctx.queue.fail(job.id, exc.message)
            return True
        except Exception:  # noqa: BLE001 - a bug must fail this job, not loop on it
            log.exception("planning job %s failed", job.id)
            ctx.queue.fail(job.id, "internal error while planning the job; it has been logged")
            return True
        ctx.queue.finish_plan(job.id, ctx.owner, chunks, lambda: _result_text(ctx, job, Tally()))
        return True
    claimed = ctx.queue.claim_chunk(ctx.owner, js.lease_seconds)
    if claimed is None:
        return False
    job, chunk = claimed
    run_chunk(ctx, job, chunk, stopping)
    return True


def run_chunk(ctx: JobContext, job: Job, chunk: Chunk, stopping=lambda: False) -> str:
    js = ctx.job_settings
    renewed = [time.monotonic()]
    lost = [False]

    def stop() -> bool:
        if stopping():
            return True
        if time.monotonic() - renewed[0] > js.lease_seconds / 3:
            # The renewal is also how a cancel reaches a chunk that is running.
            if not ctx.queue.renew(chunk, ctx.owner, js.lease_seconds):
                lost[0] = True
                return True
            renewed[0] = time.monotonic()
        return False

    try:
        pair = ctx.pair(job)
        tally = impact_of_range(ctx.store, pair, job.ruleset, job.params, chunk.lo, chunk.hi, stop)
    except UNAVAILABLE:
        raise
    except ServiceError as exc:
        ctx.queue.fail(job.id, exc.message)
        return "failed"
    if tally is None:
        return "lost" if lost[0] else "stopped"
    part = canonical.dumps(tally.as_dict(), sort_keys=False)
    outcome = ctx.queue.complete_chunk(chunk, ctx.owner, part, lambda parts: reduce_parts(ctx, job, parts))
    if outcome == "finished":
        log.info("job %s done (%s cases)", job.id, job.total)
    return outcome
