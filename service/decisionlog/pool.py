"""A minimal thread-safe pool of database connections.

One connection serves one thread at a time. A connection that saw a database error
is discarded instead of returned, so the next call opens a fresh one: that is how
the store recovers from a restarted server or a file that became writable again.
"""
from __future__ import annotations

import os
import threading
from typing import Callable, Generic, TypeVar

C = TypeVar("C")


class PoolClosed(Exception):
    pass


class ConnectionPool(Generic[C]):
    def __init__(self, connect: Callable[[], C], close: Callable[[C], None],
                 max_idle: int = 8) -> None:
        self._connect = connect
        self._close = close
        self._max_idle = max_idle
        self._idle: list[C] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False

    def acquire(self) -> tuple[C, bool]:
        """A connection and whether it was reused (False: freshly opened)."""
        with self._lock:
            if self._closed:
                raise PoolClosed("the store is closed")
            self._forget_if_forked()
            if self._idle:
                return self._idle.pop(), True
        return self._connect(), False

    def release(self, conn: C) -> None:
        with self._lock:
            if not self._closed and os.getpid() == self._pid and len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        self.discard(conn)

    def discard(self, conn: C) -> None:
        try:
            self._close(conn)
        except Exception:  # closing a broken connection may fail; it is gone either way
            pass

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            forked = os.getpid() != self._pid
        if not forked:
            for conn in idle:
                self.discard(conn)

    def _forget_if_forked(self) -> None:
        # Connections inherited across fork() belong to the parent: drop them without
        # closing (closing would end the parent's session on the shared socket).
        if os.getpid() != self._pid:
            self._idle = []
            self._pid = os.getpid()
