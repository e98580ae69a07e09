"""The gunicorn worker (gunicorn.conf.py: worker_class): threads, and a deadline on reading requests.

Sync workers serve one connection each: a client that sends its headers and then one
byte of body every few seconds holds a whole worker, and a handful of such clients hold
them all. Here each worker is gunicorn's gthread worker — the main thread accepts and
polls connections, a pool of threads reads and answers them — so a slow client holds one
thread, not a worker, and evaluations still run one at a time per process (the engine's
own lock, service/engine/durable.py). On top of that, reading one request (its headers
and its body) must finish within REQUEST_READ_TIMEOUT seconds of its first byte, however
the bytes are spaced: then the client gets a 408 and the thread is free again.

gthread already hands a connection that sends nothing back to the poller after a few
seconds; what it lacks is a bound once bytes trickle in, which is what this adds.
"""
from __future__ import annotations

import html
import json
import os
import re
import socket
import time
import uuid

from gunicorn.workers import gthread

# Seconds from a request's first byte to the end of its body (headers included).
REQUEST_READ_TIMEOUT = float(os.environ.get("REQUEST_READ_TIMEOUT", "15"))


class HeaderTimeout(Exception):
    """The request line and headers did not arrive within the read deadline."""


class _DeadlineSocket:
    """The connection's socket as the request parser sees it: every recv of one request
    shares one deadline, started by the request's first read."""

    def __init__(self, sock: socket.socket, budget: float):
        self._sock = sock
        self._budget = budget
        self._deadline: float | None = None
        self.in_body = False

    def next_request(self) -> None:
        self._deadline = None
        self.in_body = False

    def recv(self, size: int) -> bytes:
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + self._budget
        remaining = self._deadline - now
        if remaining <= 0:
            self._expired()
        previous = self._sock.gettimeout()
        self._sock.settimeout(remaining if previous is None else min(previous, remaining))
        try:
            return self._sock.recv(size)
        except TimeoutError:
            if time.monotonic() >= self._deadline:
                self._expired()
            raise
        finally:
            self._sock.settimeout(previous)

    def _expired(self):
        if self.in_body:
            # Inside the application: service/api/http.py answers 408 problem+json.
            raise TimeoutError(f"the request was not received within {self._budget:g} s")
        raise HeaderTimeout(f"the request headers were not received within {self._budget:g} s")

    def __getattr__(self, name):
        return getattr(self._sock, name)


class _Conn(gthread.TConn):
    def init(self):
        already = self.initialized
        super().init()
        if not already and not self.is_http2 and self.parser is not None:
            self.deadline = _DeadlineSocket(self.parser.unreader.sock, REQUEST_READ_TIMEOUT)
            self.parser.unreader.sock = self.deadline


class BoundedThreadWorker(gthread.ThreadWorker):
    """gthread, with a read deadline per request (the budget is REQUEST_READ_TIMEOUT), that
    stops accepting while all its threads are busy: a new connection then waits in the
    listening socket's backlog for whichever worker frees a thread first, instead of
    queueing inside a worker whose threads are all held (gthread balances connections,
    not requests, between workers)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._in_flight = 0  # connections handed to the pool and not finished (main thread only)

    def enqueue_req(self, conn):
        self._in_flight += 1
        super().enqueue_req(conn)
        if self._in_flight >= self.cfg.threads:
            self.set_accept_enabled(False)

    def finish_request(self, conn, fs):
        self._in_flight -= 1
        super().finish_request(conn, fs)

    def set_accept_enabled(self, enabled):
        super().set_accept_enabled(enabled and self._in_flight < self.cfg.threads)

    def accept(self, listener):
        # gthread.ThreadWorker.accept, building our connection type.
        try:
            client_sock, client_addr = listener.accept()
            self.nr_conns += 1
            client_sock.setblocking(True)
            conn = _Conn(self.cfg, client_sock, client_addr, listener.getsockname())
            self.enqueue_req(conn)
        except OSError as e:
            if e.errno not in (gthread.errno.EAGAIN, gthread.errno.ECONNABORTED, gthread.errno.EWOULDBLOCK):
                raise

    def handle(self, conn):
        deadline = getattr(conn, "deadline", None)
        if deadline is not None:
            deadline.next_request()
        return super().handle(conn)

    def handle_request(self, req, conn):
        deadline = getattr(conn, "deadline", None)
        if deadline is not None:
            deadline.in_body = True
        return super().handle_request(req, conn)

    def handle_error(self, req, client, addr, exc):
        """Errors gunicorn answers itself (before the application runs: a bad request line or
        header, headers too slow) as problem+json like every other error of the service."""
        if isinstance(exc, HeaderTimeout):
            self.log.warning("request from %s not received in time: %s", (addr or ("",))[0], exc)
            _write_problem(client, 408, "Request Timeout", str(exc))
            return
        captured = _Captured()
        super().handle_error(req, captured, addr, exc)
        status, reason, detail = captured.parsed()
        _write_problem(client, status, reason, detail)


class _Captured:
    """Stands in for the client socket while gunicorn writes its HTML error page."""

    _STATUS = re.compile(rb"^HTTP/1\.1 (\d{3}) ([^\r]*)\r\n")
    _MESSAGE = re.compile(rb"</h1>\s*(.*?)\s*</body>", re.S)

    def __init__(self):
        self.data = b""

    def gettimeout(self):
        return 0.0

    def sendall(self, data):
        self.data += data

    def parsed(self) -> tuple[int, str, str]:
        status = self._STATUS.match(self.data)
        message = self._MESSAGE.search(self.data)
        code, reason = (int(status.group(1)), status.group(2).decode("latin-1")) if status else (400, "Bad Request")
        detail = html.unescape(message.group(1).decode("latin-1")) if message else ""
        return code, reason, detail or reason


def _write_problem(client, status: int, reason: str, detail: str) -> None:
    from service.api.errors import PROBLEM_TYPE_BASE

    code = re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_") or "bad_request"
    body = json.dumps({"type": PROBLEM_TYPE_BASE + code.replace("_", "-"), "title": reason, "status": status,
                       "detail": detail, "code": code, "request_id": uuid.uuid4().hex},
                      ensure_ascii=True).encode("ascii")
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/problem+json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    try:
        client.sendall(head + body)
    except OSError:  # the client is gone already
        pass
