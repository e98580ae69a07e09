"""Functions run in child processes (multiprocessing, spawn) by the concurrency tests.

Each takes (start, results, ...): it waits for `start` so that all contend at once,
and reports on the `results` queue."""
from __future__ import annotations

from typing import Any

from service.decisionlog import VersionConflict, open_store

from .factories import make_decision


def append_many(start: Any, results: Any, database_url: str | None, data_dir: str,
                worker: int, count: int) -> None:
    store = open_store(database_url, data_dir)
    try:
        start.wait(30)
        for number in range(count):
            store.append_decision(make_decision(f"w{worker}-{number:04d}"))
    finally:
        store.close()


def publish_once(start: Any, results: Any, database_url: str | None, data_dir: str,
                 sha256: str) -> None:
    store = open_store(database_url, data_dir)
    try:
        start.wait(30)
        try:
            _, created = store.publish_version("sme-credit-policy", "2.0.0", sha256,
                                               '{"v":2}', "v: 2", "yaml", "publisher")
            results.put(("created" if created else "existing", sha256))
        except VersionConflict:
            results.put(("conflict", sha256))
    finally:
        store.close()


def migrate_once(start: Any, results: Any, database_url: str | None, data_dir: str) -> None:
    store = open_store(database_url, data_dir)
    try:
        start.wait(30)
        results.put(store.migrate())
    finally:
        store.close()


def sqlite_disk_full_scenario(start: Any, results: Any, data_dir: str) -> None:
    """Append, hit RLIMIT_FSIZE=0 (every file write fails, even as root), lift it,
    append again with the same Store object. Reports what happened."""
    import os
    import resource

    from service.decisionlog import StoreUnavailable

    store = open_store(None, data_dir)
    store.migrate()
    store.append_decision(make_decision("d-1"))
    probe = os.path.join(data_dir, "probe")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    outcome: dict[str, Any] = {"while_full": {}}
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))
    try:
        try:
            with open(probe, "wb") as file:
                file.write(b"x")
            outcome["blocked"] = False
        except OSError:
            outcome["blocked"] = True
        for name, operation in (("append", lambda: store.append_decision(make_decision("d-2"))),
                                ("ping", store.ping)):
            try:
                operation()
                outcome["while_full"][name] = "ok"
            except StoreUnavailable:
                outcome["while_full"][name] = "StoreUnavailable"
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    logged = store.append_decision(make_decision("d-2"))
    report = store.verify()
    outcome["after"] = {"seq": logged.seq, "verify_ok": report.ok, "checked": report.checked}
    store.close()
    results.put(outcome)


def append_until_killed(start: Any, results: Any, database_url: str | None, data_dir: str,
                        answered_path: str) -> None:
    """Append forever; after each append returns, note the decision id in
    `answered_path` (the equivalent of sending the HTTP answer)."""
    import os

    store = open_store(database_url, data_dir)
    start.wait(30)
    answered = os.open(answered_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    number = 0
    while True:
        decision_id = f"k-{number:06d}"
        store.append_decision(make_decision(decision_id))
        os.write(answered, f"{decision_id}\n".encode())
        number += 1


def append_with_key(start: Any, results: Any, backend: str, database_url: str | None,
                    data_dir: str, worker: int) -> None:
    """Every worker appends its own decision under the same idempotency key."""
    from service.decisionlog import IdempotencyConflict

    store = open_store(database_url, data_dir)
    try:
        start.wait(30)
        try:
            store.append_decision(make_decision(f"k{worker}", idempotency=("alice", "same-key", "c" * 64)))
            results.put("logged")
        except IdempotencyConflict:
            results.put("conflict")
    finally:
        store.close()


def sign_checkpoints(start: Any, results: Any, database_url: str | None, data_dir: str) -> None:
    """Every worker tries to sign the same head at the same moment."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    store = open_store(database_url, data_dir)
    try:
        key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
        start.wait(30)
        results.put(store.sign_checkpoint(key, min_interval_s=30) is not None)
    finally:
        store.close()
