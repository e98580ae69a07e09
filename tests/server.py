"""Start a real gunicorn server for end-to-end tests, on a free loopback port."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
TOKENS = ("core-7f3a9c:evaluate,prod-91c2aa:publish+evaluate,audit-55d0bb:audit,ops-all-4e1f:evaluate+publish+audit+approve,"
          "wang.fang=appr-6a2d11:approve")
EVALUATE, PUBLISH, AUDIT, ALL = "core-7f3a9c", "prod-91c2aa", "audit-55d0bb", "ops-all-4e1f"
APPROVE = "appr-6a2d11"  # a release manager, named: its identity is wang.fang


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GunicornServer:
    """`with GunicornServer(env) as server: requests.get(server.url + "/healthz")`"""

    def __init__(self, env: dict | None = None, workers: int = 2, data_dir: str | None = None, preexec_fn=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # Directories this server made are its own: stop() removes them (a given data_dir is the caller's).
        self._own_dirs: list[str] = []
        self.data_dir = data_dir or self._own_dir("credit-rules-data-")
        os.makedirs(self.data_dir, exist_ok=True)
        self.env = {
            **os.environ,
            "PORT": str(self.port),
            "DATA_DIR": self.data_dir,
            "WEB_CONCURRENCY": str(workers),
            "REGISTRY_REFRESH_SECONDS": "0",
            # Publish-is-active unless a test exercises four-eyes publishing (it sets PUBLISH_APPROVALS)
            "PUBLISH_APPROVALS": "0",
            "PROMETHEUS_MULTIPROC_DIR": self._own_dir("credit-rules-metrics-"),
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
        self.env = {k: v for k, v in self.env.items() if v is not None}
        self.preexec_fn = preexec_fn  # e.g. resource limits for the server process (tests/hostile)
        self.process: subprocess.Popen | None = None
        self.log_path = Path(self.data_dir) / "gunicorn.log"

    def start(self, timeout: float = 60) -> "GunicornServer":
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", "service.wsgi:app"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=self.preexec_fn)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.log()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()  # never leave a half-started server (and its job runner) behind
        raise RuntimeError(f"gunicorn did not start in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def worker_pids(self) -> list[int]:
        """The request workers (not the job runner, the master's other child)."""
        return [p for p in self._children(self.process.pid) if p not in self.job_runner_pids()]

    @staticmethod
    def _children(pid: int) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def job_runner_pids(self) -> list[int]:
        """The job runner the master started (service/jobs/embedded.py): 0 or 1 pid."""
        out = subprocess.run(["pgrep", "-P", str(self.process.pid), "-f", "service.jobs run"],
                             capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def job_process_pids(self) -> list[int]:
        """The runner's worker processes."""
        return [c for r in self.job_runner_pids() for c in self._children(r)
                if "resource_tracker" not in _cmdline(c)]

    def _own_dir(self, prefix: str) -> str:
        path = tempfile.mkdtemp(prefix=prefix)
        self._own_dirs.append(path)
        return path

    def stop(self) -> None:
        """Stop gunicorn and remove the directories this server created (its log goes with them)."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        for path in self._own_dirs:
            shutil.rmtree(path, ignore_errors=True)

    def __enter__(self) -> "GunicornServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}
