"""The loaded decision engine: every ruleset version parsed, checked and compiled once, and
the small public in-process API over it (docs/api-contract.md, "In-process API").

    engine = service.load_engine("rulesets")
    d = engine.evaluate("sme-credit-policy", input_dict, as_of=datetime.date(2026, 1, 15), trace="fired")
    d.outcome, d.reasons, d.results, d.trace, d.as_dict()

This package sits above rulesets/, engine/ and schemas/ (it joins them) and below the
services (decisions.py, catalog.py, impact.py), the API, the jobs and bench/, which all
evaluate through the same `Engine` objects. Nothing here writes the decision log.
"""
from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path

from service.decision_engine.registry import LoadedVersion, Registry, sub_input, version_key
from service.engine.evaluator import Evaluation, ruleset_ref
from service.errors import InvalidRequest, InvalidRuleset, Problem
from service.schemas.api import TRACE_LEVELS

# The business date of a decision without `as_of` is taken in the bank's zone.
BANK_ZONE = zoneinfo.ZoneInfo("Asia/Shanghai")


class Decision:
    """One evaluated (not logged) decision: its outcome, reasons, results and trace."""

    __slots__ = ("version", "evaluation", "trace_level", "application_id")

    def __init__(self, version: LoadedVersion, evaluation: Evaluation, trace_level: str = "fired",
                 application_id: str | None = None):
        self.version = version
        self.evaluation = evaluation
        self.trace_level = trace_level
        self.application_id = application_id

    @property
    def outcome(self) -> str:
        return self.evaluation.outcome

    @property
    def reasons(self) -> list[dict]:
        return self.evaluation.reasons

    @property
    def results(self) -> dict:
        return self.evaluation.results

    @property
    def trace(self) -> list[dict]:
        return self.evaluation.trace(self.trace_level)

    def as_dict(self) -> dict:
        """The HTTP answer without decision_id, evaluated_at and duration_ms (in the same key
        order); `application_id` is there when one was given."""
        summary = self.evaluation.summary(self.trace_level)
        out = {} if self.application_id is None else {"application_id": self.application_id}
        out["ruleset"] = ruleset_ref(self.version.ruleset)
        out["as_of"] = self.evaluation.as_of.isoformat()
        out.update(summary)
        return out


class Engine:
    """Evaluates raw input against loaded versions; validation exactly as the API does it."""

    def __init__(self, registry: Registry | None = None):
        self.registry = registry if registry is not None else Registry()

    def evaluate(self, name: str, input, *, as_of: dt.date | None = None, version: str | None = None,
                 trace: str = "fired", application_id: str | None = None) -> Decision:
        """Choose the version (pinned, or effective on `as_of`; default today in the bank's zone),
        validate `input` (raises InvalidInput with the API's problems), evaluate it."""
        as_of = _check_as_of(as_of)
        lv = self.registry.resolve(name, version, as_of)
        return self.decide(lv, input, as_of=as_of, trace=trace, application_id=application_id)

    def decide(self, lv: LoadedVersion, input, *, as_of: dt.date, trace: str = "fired",
               pins: dict[str, str] | None = None, application_id: str | None = None) -> Decision:
        """Validate and evaluate against a version already chosen (`pins` fix used versions, for replay)."""
        if trace not in TRACE_LEVELS:
            raise InvalidRequest("bad trace level", [Problem("invalid_request", "trace", f"must be one of: {', '.join(TRACE_LEVELS)}")])
        data = lv.validator.load(input)
        evaluation = self.registry.evaluate_loaded(lv, data, as_of=as_of, pins=pins)
        return Decision(lv, evaluation, trace, application_id)


def _check_as_of(as_of) -> dt.date:
    if as_of is None:
        return dt.datetime.now(BANK_ZONE).date()
    if type(as_of) is not dt.date:
        raise InvalidRequest("as_of must be a date", [Problem("invalid_request", "as_of", "must be a date YYYY-MM-DD")])
    return as_of


def load_engine(directory: str | Path = "rulesets", *, run_tests: bool = True) -> Engine:
    """Every `<name>/<version>.yaml|json` under `directory`, parsed, checked and compiled once
    (and its embedded tests run unless `run_tests=False`); no store. Raises InvalidRuleset
    listing every problem when any version does not load."""
    registry = Registry()
    failures = registry.load_directory(directory, run_tests=run_tests)
    if failures:
        raise InvalidRuleset(f"rulesets in {directory} do not load: {sorted(failures)}",
                             [Problem(p.code, f"{rel}: {p.path}" if p.path else rel, p.message, p.line, p.severity)
                              for rel, problems in sorted(failures.items()) for p in problems])
    return Engine(registry)


__all__ = ["BANK_ZONE", "Decision", "Engine", "LoadedVersion", "Registry", "TRACE_LEVELS", "load_engine",
           "sub_input", "version_key"]
