"""Start-up: each version compiled once per process (shared by registries and, through fork,
by gunicorn workers), accepted versions loaded without re-running their checks, readiness
logged — and forked workers evaluating exactly as a fresh process does (docs/durable-rules.md)."""
from __future__ import annotations

import datetime as dt
import os
import time

import pytest
import requests

from service import canonical
from service.decision_engine import Engine, load_engine
from service.decision_engine.registry import Registry, read_document, warm
from service.engine.durable import live_sessions
from service.rulesets.document import parse_document
from tests.engine.samples import sample_inputs
from tests.server import ROOT, GunicornServer

AS_OF = dt.date(2026, 1, 15)
TOY = (ROOT / "tests" / "fixtures" / "rulesets" / "toy" / "1.0.0.yaml").read_text(encoding="utf-8")
# The same toy with two rules that can fire together and set in_scope differently.
CONFLICTING = TOY.replace("name: toy\n", "name: toy-conflict\n", 1).replace(
    "when: {field: applicant.code, starts_with: {param: transport}}\n    then: {set: {in_scope: false}",
    "when: {field: amount, gt: 1000}\n    then: {set: {in_scope: false}")


def _answers(engine: Engine) -> list[str]:
    return [canonical.dumps(engine.evaluate("sme-credit-policy", raw, as_of=AS_OF, trace="full").as_dict())
            for raw in sample_inputs()]


def test_registries_share_one_compiled_version_but_not_its_retired_flag():
    a, b = Registry(), Registry()
    assert not a.load_directory(ROOT / "rulesets", run_tests=False)
    assert not b.load_directory(ROOT / "rulesets", run_tests=False)
    for lv in a.all():
        other = b.get(lv.name, lv.version)
        assert other.compiled is lv.compiled and other.validator is lv.validator
    a.mark_retired("sme-credit-policy", "1.0.0")
    assert a.get("sme-credit-policy", "1.0.0").retired and not b.get("sme-credit-policy", "1.0.0").retired
    text = (ROOT / "rulesets" / "coal-industry-policy" / "1.0.0.yaml").read_bytes()
    assert read_document(text, "yaml") is read_document(text, "yaml")


def test_checks_are_skipped_only_for_accepted_versions():
    # Loaded as accepted (checks=False), a version's conflict is not looked for...
    accepted, problems = Registry().prepare(parse_document(CONFLICTING), run_tests=False, checks=False)
    assert accepted is not None and not accepted.checked
    Registry().add(accepted)  # now in the process cache, unchecked
    # ...but that never lets the same content through a real check (publishing, `check`).
    refused, problems = Registry().prepare(parse_document(CONFLICTING))
    assert refused is None and "conflicting_rules" in {p.code for p in problems}
    # A checked version found in the cache keeps its warnings and its test report.
    first, _ = Registry().prepare(parse_document(TOY))
    reg = Registry()
    reg.add(first)
    again, problems = Registry().prepare(parse_document(TOY))
    assert again.compiled is first.compiled and again.test_report is first.test_report
    assert problems == first.warnings


def test_a_process_forked_after_compiling_evaluates_like_a_fresh_one():
    assert warm(ROOT / "rulesets") > 10
    parent = load_engine(ROOT / "rulesets", run_tests=False)  # from the cache warm filled
    expected = _answers(parent)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: what a gunicorn worker is after the master compiled
        status = 1
        try:
            os.close(read_fd)
            child = load_engine(ROOT / "rulesets", run_tests=False)
            ok = all(child.registry.get(lv.name, lv.version).compiled is lv.compiled for lv in parent.registry.all())
            out = "\n".join(_answers(child) * 20) if ok else "not shared"
            with os.fdopen(write_fd, "w") as f:
                f.write(out + f"\nlive={live_sessions()}")
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        got = f.read().split("\n")
    _, status = os.waitpid(pid, 0)
    assert status == 0
    assert got[-1] == "live=0"
    assert got[:-1] == expected * 20
    assert _answers(parent) == expected  # the parent is unaffected too


@pytest.fixture(scope="module")
def shipped_server(tmp_path_factory):
    started = time.monotonic()
    server = GunicornServer({"RULESETS_DIR": str(ROOT / "rulesets"), "RULES_API_TOKENS": None}, workers=2,
                            data_dir=str(tmp_path_factory.mktemp("startup"))).start(timeout=120)
    server.started_in = time.monotonic() - started
    yield server
    server.stop()


def test_forked_workers_answer_as_the_in_process_engine_and_log_readiness(shipped_server):
    engine = load_engine(ROOT / "rulesets", run_tests=False)
    volatile = ("decision_id", "evaluated_at", "duration_ms")
    pids = set()
    for n in range(40):  # new connections: both workers answer
        raw = sample_inputs()[n % len(sample_inputs())]
        answer = requests.post(shipped_server.url + "/v1/decisions", timeout=30, headers={"Content-Type": "application/json", "Connection": "close"},
                               data=canonical.dumps({"ruleset": "sme-credit-policy", "application_id": f"S-{n}",
                                                     "as_of": "2026-01-15", "trace": "full", "input": raw}))
        assert answer.status_code == 200, answer.text
        got = {k: v for k, v in canonical.loads(answer.text).items() if k not in volatile}
        want = engine.evaluate("sme-credit-policy", raw, as_of=AS_OF, trace="full", application_id=f"S-{n}").as_dict()
        assert got == canonical.loads(canonical.dumps(want))
    log = shipped_server.log()
    assert "shipped ruleset versions in" in log  # compiled once, in the master
    ready = [line for line in log.splitlines() if "ready in" in line]
    assert len(ready) >= 2, log[-2000:]
    pids = {line.split("worker ")[1].split()[0] for line in ready}
    assert len(pids) >= 2


def test_a_restart_on_the_same_store_loads_accepted_versions_without_checks(tmp_path, monkeypatch):
    from service.catalog import Catalog
    from service.decision_engine import registry as registry_module
    from service.decisionlog import open_store

    fixtures = ROOT / "tests" / "fixtures" / "rulesets"
    store = open_store(None, str(tmp_path), hmac_key=None)
    store.migrate()
    first = Catalog(store, fixtures)
    first.start()  # a first start: every check and test, then published
    assert {lv.name for lv in first.registry.all()} == {"toy", "operators"}

    # A new process on the same store (empty caches): no check or test may run again.
    monkeypatch.setattr(registry_module, "_PREPARED", {})
    monkeypatch.setattr(registry_module, "_DOCUMENTS", {})

    def forbidden(*args, **kwargs):
        raise AssertionError("an accepted version was checked or tested again")
    monkeypatch.setattr(registry_module, "static_check", forbidden)
    monkeypatch.setattr(registry_module, "run_embedded_tests", forbidden)
    monkeypatch.setattr(Catalog, "_stage_shipped", forbidden)
    second = Catalog(store, fixtures)
    second.start()
    assert {(lv.name, lv.version, lv.checked) for lv in second.registry.all()} == {("toy", "1.0.0", False), ("operators", "1.0.0", False)}
    decision = second.engine.evaluate("toy", {"applicant": {"rating": "CCC", "code": "C3670"}, "amount": 100}, as_of=AS_OF)
    assert decision.outcome == "DECLINE"
