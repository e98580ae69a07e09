"""Group commit: the appends of concurrent threads share one transaction (one fsync,
one chain-lock hold), and each caller still returns only once its own record is
committed.

The first thread to arrive becomes the leader: it takes everything queued (up to
MAX_BATCH), commits it with `commit_batch`, hands each caller its result, and — if more
arrived meanwhile — passes leadership to the oldest waiting caller rather than serving
forever itself (so no request waits behind an endless stream of others).
"""
from __future__ import annotations

import threading
from typing import Any, Callable

MAX_BATCH = 256


class _Pending:
    __slots__ = ("item", "result", "error", "done", "wake", "lead")

    def __init__(self, item: Any) -> None:
        self.item = item
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False
        self.lead = False
        self.wake = threading.Event()


class GroupCommit:
    def __init__(self, commit_batch: Callable[[list[Any]], list[Any]], max_batch: int = MAX_BATCH) -> None:
        """`commit_batch(items)` commits them in one transaction and returns one result
        per item, in order; a result that is an exception is raised to that caller only.
        If it raises, every caller of the batch gets that error."""
        self._commit_batch = commit_batch
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._leader = False

    def submit(self, item: Any) -> Any:
        pending = _Pending(item)
        with self._lock:
            self._queue.append(pending)
            if not self._leader:
                self._leader = pending.lead = True
        while not pending.lead:
            pending.wake.wait()
            if pending.done:
                return _outcome(pending)
        return self._lead(pending)

    def _lead(self, own: _Pending) -> Any:
        while not own.done:
            with self._lock:
                batch, self._queue = self._queue[:self._max_batch], self._queue[self._max_batch:]
            self._commit(batch)
        with self._lock:
            if self._queue:  # hand over to the oldest waiter
                successor = self._queue[0]
                successor.lead = True
                successor.wake.set()
            else:
                self._leader = False
        return _outcome(own)

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            results = self._commit_batch([p.item for p in batch])
            for pending, result in zip(batch, results):
                if isinstance(result, BaseException):
                    pending.error = result
                else:
                    pending.result = result
        except BaseException as exc:  # noqa: BLE001 — every caller of the batch must hear of it
            for pending in batch:
                pending.error = exc
        finally:
            for pending in batch:
                pending.done = True
                pending.wake.set()


def _outcome(pending: _Pending) -> Any:
    if pending.error is not None:
        raise pending.error
    return pending.result
