"""The only module that talks to durable_rules.

We drive durable_rules' C engine (`durable_rules_engine`, the Rete network inside
durable-rules 2.0.28) directly instead of through `durable.engine.Host`:
- no Host means no background timer threads, which re-arm forever and can race an
  evaluation in another thread (see docs/durable-rules.md);
- actions are not Python callbacks that mutate state: an activation only tells us
  which rule matched, so we read the rule name and complete it.

Hazards of the engine this module contains (each has a test in tests/engine/):
- session state is looked up by a 32-bit hash of the session id without comparing the
  strings, so two live sessions with colliding ids share one state;
- 1,024 live sessions of a ruleset raise MemoryError and then crash the process;
- asserting the same fact twice into a live session is refused.
Hence: one process-wide lock, at most ONE session in use at any moment (sessions are
sequential even for `uses` compositions), and every ruleset keeps ONE session id of its
own. Creating and deleting a session state costs about as much as asserting all of an
evaluation's facts, so a session is reused: after every use each asserted fact is
retracted and the state is checked empty (no fact, no event, no pending action, ~3 µs).
If a use failed or the check finds anything, the state is deleted and the next use
starts a new one. Every fact of a use has its own id.
"""
from __future__ import annotations

import itertools
import json
import threading
from contextlib import contextmanager

import durable_rules_engine as _engine

_LOCK = threading.RLock()
_SESSION_IDS = itertools.count(1)
_RULESET_IDS = itertools.count(1)
_live_sessions = 0  # guarded by _LOCK; never above 1


class EngineFailure(RuntimeError):
    """durable_rules refused an operation; the evaluation cannot be trusted."""


class DurableRuleset:
    """One compiled ruleset version registered in the engine under a unique name."""

    def __init__(self, label: str, definition: dict):
        self.name = f"{label}#{next(_RULESET_IDS)}"
        self._handle = _engine.create_ruleset(self.name, json.dumps(definition, ensure_ascii=False))
        self._sid: str | None = None  # the reused session's id; None until the first use or after a failure

    def close(self) -> None:
        if self._handle is not None:
            with _LOCK:
                _engine.delete_ruleset(self._handle)
            self._handle = None

    def __del__(self):  # compiled rulesets for validation only are freed when dropped
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    @contextmanager
    def session(self):
        """An empty session; emptied (or deleted) again on exit whatever happens."""
        global _live_sessions
        with _LOCK:
            if _live_sessions:
                raise EngineFailure("a durable_rules session is already live in this process")
            if self._sid is None:
                self._sid = str(next(_SESSION_IDS))
            _live_sessions += 1
            session = _Session(self._handle, self._sid)
            emptied = False
            try:
                yield session
                emptied = session.empty_out()
            finally:
                try:
                    if session.asserted and not emptied:  # failed, or something survived: start over
                        sid, self._sid = self._sid, None
                        _engine.delete_state(self._handle, sid)
                finally:
                    _live_sessions -= 1

    def is_empty(self) -> bool:
        """No fact, no event and no pending action in this ruleset's session (for tests)."""
        with _LOCK:
            return self._sid is None or _state_is_empty(self._handle, self._sid)


def _state_is_empty(handle, sid: str) -> bool:
    return (_engine.get_facts(handle, sid) == "[]" and _engine.get_events(handle, sid) == "[]"
            and not _engine.start_action(handle))


def live_sessions() -> int:
    return _live_sessions


class _Session:
    __slots__ = ("_handle", "_sid", "_facts")

    def __init__(self, handle, sid: str):
        self._handle = handle
        self._sid = sid
        self._facts: list[str] = []  # every fact text asserted in this use, to retract

    @property
    def asserted(self) -> bool:
        return bool(self._facts)

    def empty_out(self) -> bool:
        """Retract every fact of this use; True if the state is then provably empty."""
        handle = self._handle
        try:
            for text in self._facts:
                _engine.retract_fact(handle, text)
            return _state_is_empty(handle, self._sid)
        except Exception:  # noqa: BLE001 - any refusal means: delete the state instead
            return False

    def assert_fact(self, fact: dict) -> set[str]:
        """Assert one fact (a dict); see assert_text."""
        body = json.dumps(fact, ensure_ascii=False)
        return self.assert_text(body[:-1])

    def assert_text(self, body: str) -> set[str]:
        """Assert one fact given as its JSON text without the closing brace (the session adds
        its `sid` and a fresh `id`); return the names of the rules it activated (each once).

        A condition with `$or` activates its rule once per satisfied branch, so names
        are collected into a set.
        """
        facts = self._facts
        text = f'{body}, "sid": "{self._sid}", "id": "f{len(facts) + 1}"}}'
        facts.append(text)
        status, state = _engine.assert_fact(self._handle, text)
        if status == 1:  # no rule is interested in this fact
            return set()
        if status != 0:
            raise EngineFailure(f"durable_rules refused a fact (status {status})")
        fired: set[str] = set()
        started = _engine.start_action_for_state(self._handle, state)
        message = started[1] if started else None
        while message:
            # The activation is '{"<rule name>": {...}}'; our rule names never need escaping.
            fired.add(message[2:message.index('"', 2)])
            message = _engine.complete_and_start_action(self._handle, state)
        return fired
