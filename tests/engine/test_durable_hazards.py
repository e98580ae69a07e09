"""durable-rules 2.0.28 hazards, each shown on the raw engine, and shown unable to reach a decision.

The raw-engine half of each test documents the hazard on this machine (if a future
durable-rules fixes one, that test fails and tells us); the other half shows the
service's path (strict input, one live session, unique fact ids, conjunction-only
patterns) is immune.
"""
from __future__ import annotations

import copy
import datetime as dt
import json
import subprocess
import sys
import textwrap
import threading

import pytest

from service.engine import durable
from service.engine.facts import EncodingError, encode_scalar
from service.errors import InvalidInput
from service.rulesets.types import TypeSpec


def fnv1a32(text: str) -> int:
    h = 0x811C9DC5
    for byte in text.encode():
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return h


def colliding_session_ids() -> tuple[str, str]:
    seen = {}
    i = 0
    while True:
        sid = f"s{i}"
        h = fnv1a32(sid)
        if h in seen:
            return seen[h], sid
        seen[h] = sid
        i += 1


_PRELUDE = """
import json, sys, durable_rules_engine as raw
def ruleset(rules):
    return raw.create_ruleset("hazard", json.dumps(rules))
def fired(handle, fact):
    status, state = raw.assert_fact(handle, json.dumps(fact))
    names = set()
    if status == 0:
        started = raw.start_action_for_state(handle, state)
        message = started[1] if started else None
        while message:
            names.add(message[2:message.index('"', 2)])
            message = raw.complete_and_start_action(handle, state)
    return sorted(names)
"""


def run_raw(body: str, timeout: int = 60) -> subprocess.CompletedProcess:
    """Run a raw-engine demonstration in its own process: some of them crash it."""
    return subprocess.run([sys.executable, "-c", _PRELUDE + textwrap.dedent(body)],
                          capture_output=True, text=True, timeout=timeout)


def raw_result(body: str):
    proc = run_raw(body)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- session-id hash collisions ---------------------------------------------------------


def test_raw_engine_merges_sessions_whose_ids_collide():
    a, b = colliding_session_ids()
    assert a != b and fnv1a32(a) == fnv1a32(b)
    state_of_b = raw_result(f"""
        h = ruleset({{"r": {{"all": [{{"m": {{"x": 1}}}}]}}}})
        raw.assert_fact(h, json.dumps({{"sid": "{a}", "id": "f1", "x": 1}}))
        print(raw.get_state(h, "{b}"))
    """)
    # Session b was never created, yet asking for it returns session a's state.
    assert state_of_b["sid"] == a


def test_service_never_has_two_live_sessions(shipped):
    lv = shipped.versions("sme-credit-policy")[-1]
    engine = lv.compiled.engine
    with engine.session():
        assert durable.live_sessions() == 1
        with pytest.raises(durable.EngineFailure):
            with engine.session():
                pass
    assert durable.live_sessions() == 0


def test_threads_share_the_engine_without_crossing_answers(shipped):
    """4 threads evaluating different inputs at once all get the single-threaded answers."""
    from tests.engine.samples import sample_inputs

    lv = shipped.versions("sme-credit-policy")[-1]
    inputs = sample_inputs()
    expected = [shipped.evaluate_loaded(lv, lv.validator.load(i), as_of=dt.date(2026, 1, 15)).summary("full") for i in inputs]
    errors = []

    def work(offset):
        for n in range(300):
            k = (n + offset) % len(inputs)
            got = shipped.evaluate_loaded(lv, lv.validator.load(inputs[k]), as_of=dt.date(2026, 1, 15)).summary("full")
            if got != expected[k]:
                errors.append(k)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert durable.live_sessions() == 0


# -- 1,024 live sessions ------------------------------------------------------------------


def test_raw_engine_fails_at_1024_live_sessions():
    proc = run_raw("""
        h = raw.create_ruleset("leak", json.dumps({"r": {"all": [{"m": {"x": 1}}]}}))
        try:
            for i in range(1100):
                raw.assert_fact(h, json.dumps({"sid": str(i), "id": "f", "x": 1}))
        except MemoryError:
            print("MemoryError", i, flush=True)
        try:
            raw.assert_fact(h, json.dumps({"sid": "another", "id": "f", "x": 1}))
            print("recovered", flush=True)
        except MemoryError:
            print("still failing", flush=True)
    """)
    assert "MemoryError 1024" in proc.stdout
    # Here the ruleset keeps refusing new sessions (docs/durable-rules.md: a SIGSEGV comes next).
    assert "recovered" not in proc.stdout


def test_service_deletes_every_session(shipped):
    from tests.engine.samples import sample_inputs

    lv = shipped.versions("sme-credit-policy")[-1]
    data = [lv.validator.load(i) for i in sample_inputs()]
    for n in range(3000):  # three times the engine's live-session limit
        shipped.evaluate_loaded(lv, data[n % len(data)], as_of=dt.date(2026, 1, 15))
    assert durable.live_sessions() == 0


# -- duplicate facts ----------------------------------------------------------------------


def test_raw_engine_refuses_the_same_fact_twice():
    statuses = raw_result("""
        h = ruleset({"r": {"all": [{"m": {"x": 1}}]}})
        fact = json.dumps({"sid": "1", "id": "same", "x": 1})
        print(json.dumps([raw.assert_fact(h, fact)[0], raw.assert_fact(h, fact)[0]]))
    """)
    assert statuses == [0, 2]  # 2 = MessageObservedException in durable.engine


def test_service_gives_every_fact_of_a_session_its_own_id(shipped):
    lv = shipped.versions("sme-credit-policy")[-1]
    with lv.compiled.engine.session() as session:
        session.assert_fact({"_w": "none"})
        session.assert_fact({"_w": "none"})  # same content twice: no error


# -- loose typing -------------------------------------------------------------------------


def test_raw_engine_matches_1_against_true_and_numeric_strings_as_numbers():
    got = raw_result("""
        h = ruleset({"bool": {"all": [{"m": {"flag": True}}]}, "num": {"all": [{"m": {"$gt": {"amount": 100}}}]}})
        print(json.dumps([fired(h, {"sid": "1", "id": "a", "flag": 1}), fired(h, {"sid": "2", "id": "a", "amount": "500"})]))
    """)
    assert got == [["bool"], ["num"]]


def test_strict_typing_stops_loose_values_before_the_engine(shipped):
    lv = shipped.versions("sme-credit-policy")[-1]
    from tests.engine.samples import sample_inputs

    good = sample_inputs()[0]
    for path, bad in ((("applicant", "existing_customer"), 1), (("request", "amount"), "500000")):
        raw_input = copy.deepcopy(good)
        raw_input[path[0]][path[1]] = bad
        with pytest.raises(InvalidInput) as exc:
            lv.validator.load(raw_input)
        assert any(p.path == f"input.{path[0]}.{path[1]}" for p in exc.value.problems)
    # and the encoder refuses them even if validation were bypassed
    with pytest.raises(EncodingError):
        encode_scalar(TypeSpec("boolean"), 1)
    with pytest.raises(EncodingError):
        encode_scalar(TypeSpec("decimal", scale=2), "500")


# -- shapes the engine gets wrong -------------------------------------------------------------


def test_raw_engine_gets_or_inside_items_wrong():
    got = raw_result("""
        h = ruleset({"any": {"all": [{"m": {"$iany": {"items": {"$or": [{"$i.a": "y"}, {"$i.c": "y"}, {"$i.d": "y"}]}}}}]}})
        print(json.dumps(fired(h, {"sid": "1", "id": "f", "items": [{"a": "n", "c": "y", "d": "n"}]})))
    """)
    assert got == []  # the item satisfies the middle disjunct, yet the rule does not fire


def test_raw_engine_nex_fires_when_the_field_exists():
    got = raw_result("""
        h = ruleset({"nex": {"all": [{"m": {"$nex": {"z": 1}}}]}, "ex": {"all": [{"m": {"$ex": {"z": 1}}}]}})
        print(json.dumps(fired(h, {"sid": "1", "id": "f", "z": 3})))
    """)
    assert got == ["ex", "nex"]  # z exists, yet "z does not exist" fires


def test_raw_engine_reference_to_a_missing_field_is_true():
    got = raw_result("""
        h = ruleset({"lt": {"all": [{"m": {"$and": [{"w": 0}, {"$lt": {"x": {"$m": "missing"}}}]}}]}})
        print(json.dumps(fired(h, {"sid": "1", "id": "f", "w": 0, "x": 1})))
    """)
    assert got == ["lt"]


def test_raw_engine_fails_with_more_than_64_pending_branches():
    got = raw_result("""
        rules = {f"r{i}": {"all": [{"m": {"$and": [{"w": 0}, {"$gte": {f"p{i}": 0}}]}}]} for i in range(80)}
        h = ruleset(rules)
        fact = {"sid": "1", "id": "f", "w": 0, **{f"p{i}": 1 for i in range(80)}}
        try:
            fired(h, fact)
            print(json.dumps("ok"))
        except Exception as exc:
            print(json.dumps(str(exc)))
    """)
    assert "303" in got  # ERR_MAX_STACK_SIZE: the compiler keeps each fact to 60 alternatives


def test_compiled_patterns_use_only_the_safe_shape(shipped):
    """Every durable rule we emit is a conjunction of plain tests on one fact."""
    forbidden = ('"$or"', '"$iany"', '"$iall"', '"$nex"', '"$ex"', '"$not"')
    for lv in shipped.all():
        for name, pattern in lv.compiled.definition.items():
            text = json.dumps(pattern)
            assert not any(f in text for f in forbidden), (lv.ruleset.key, name, text)
            (match,) = pattern["all"]
            tests = match["m"]["$and"]
            assert tests[0].keys() == {"_w"}
            for test in tests[1:]:
                assert len(test) == 1
                ((key, value),) = test.items()
                if "$m" in json.dumps(value):
                    # a reference never meets a missing field: both sides are null-guarded first
                    guards = [t for t in tests if "___null" in next(iter(t))]
                    assert tests.index(test) > max((tests.index(g) for g in guards), default=0)
