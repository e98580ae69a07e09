"""A worker killed with SIGKILL in the middle of load: the log verifies and holds every answered decision."""
from __future__ import annotations

import os
import signal
import threading
import time

import requests

from tests.integration.conftest import base_env, toy_decision
from tests.server import ALL, AUDIT, GunicornServer, bearer


def _until_answered(answered: list, more: int, seconds: float = 60) -> None:
    """Wait until `more` further decisions have been answered."""
    target, deadline = len(answered) + more, time.monotonic() + seconds
    while len(answered) < target:
        assert time.monotonic() < deadline, f"only {len(answered)} answered, waiting for {target}"
        time.sleep(0.05)


def test_sigkill_during_load_loses_no_answered_decision():
    with GunicornServer(base_env(), workers=3) as server:
        answered, stop = [], threading.Event()

        def client(k):
            session = requests.Session()
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    r = session.post(f"{server.url}/v1/decisions", json=toy_decision(f"CRASH-{k}-{n}"),
                                     headers=bearer(ALL), timeout=30)
                except requests.RequestException:
                    continue  # the connection died with the worker: that request was never answered
                if r.status_code == 200:
                    answered.append(r.json()["decision_id"])

        threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        # Under load before, between and after the kills: counted in answers, not in seconds.
        _until_answered(answered, 40)
        victims = server.worker_pids()
        os.kill(victims[0], signal.SIGKILL)
        _until_answered(answered, 40)
        os.kill(victims[1], signal.SIGKILL)
        _until_answered(answered, 40)
        stop.set()
        for t in threads:
            t.join()

        assert len(answered) > 100
        report = requests.get(f"{server.url}/v1/audit/verify", headers=bearer(AUDIT), timeout=120).json()
        assert report["ok"] is True, report
        assert report["checked"] >= len(answered)
        missing = [d for d in answered
                   if requests.get(f"{server.url}/v1/decisions/{d}", headers=bearer(AUDIT), timeout=30).status_code != 200]
        assert missing == []
