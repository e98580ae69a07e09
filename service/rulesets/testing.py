"""Run a ruleset's embedded `tests:` and measure rule coverage.

A case gives an input (and optionally `as_of`) and expects any of: the outcome, the
exact set of reason codes, result values, results that must be absent, rules that
must / must not fire, or that the input is refused naming given paths. Coverage counts,
per rule, the cases that made it fire; a rule no case fires is reported.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from service.errors import InvalidInput, Problem, ServiceError
from service.rulesets.model import TestCase


@dataclass
class CaseResult:
    name: str
    index: int
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class TestReport:
    ruleset: str
    cases: list[CaseResult]
    coverage: dict[str, int]  # rule id -> number of cases that fired it

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.cases)

    @property
    def uncovered(self) -> list[str]:
        return [rule_id for rule_id, n in self.coverage.items() if n == 0]

    @property
    def coverage_ratio(self) -> float:
        return (len(self.coverage) - len(self.uncovered)) / len(self.coverage) if self.coverage else 1.0

    def problems(self) -> list[Problem]:
        out = [Problem("test_failed", f"tests[{c.index}]", f"test {c.name!r}: {f}") for c in self.cases for f in c.failures]
        if not self.cases:
            out.append(Problem("no_tests", "tests", "the ruleset has no embedded tests", severity="warning"))
        for rule_id in self.uncovered:
            out.append(Problem("rule_not_covered", "tests", f"no test makes rule {rule_id} fire", severity="warning"))
        return out

    def as_dict(self) -> dict:
        return {
            "ruleset": self.ruleset,
            "passed": self.passed,
            "cases": [{"name": c.name, "passed": c.passed, "failures": c.failures} for c in self.cases],
            "coverage": {"rules": len(self.coverage), "fired": len(self.coverage) - len(self.uncovered),
                         "ratio": round(self.coverage_ratio, 4), "uncovered": self.uncovered},
        }


def run_tests(lv, registry) -> TestReport:
    ruleset = lv.ruleset
    coverage = {rule.id: 0 for rule in ruleset.rules}
    cases = []
    for case in ruleset.tests:
        result = CaseResult(case.name, case.index)
        cases.append(result)
        try:
            fired = _run_case(case, lv, registry, result)
        except ServiceError as exc:
            result.failures.append(f"evaluation failed: {exc.message}")
            continue
        for rule_id in fired:
            coverage[rule_id] += 1
    return TestReport(ruleset=ruleset.key, cases=cases, coverage=coverage)


def _run_case(case: TestCase, lv, registry, result: CaseResult) -> list[str]:
    as_of = case.as_of or lv.ruleset.effective_from
    try:
        data = lv.validator.load(case.input)
    except InvalidInput as exc:
        if case.invalid is None:
            result.failures.append("input was refused: " + "; ".join(f"{p.path}: {p.message}" for p in exc.problems))
            return []
        named = {p.path for p in exc.problems}
        for path in case.invalid:
            if f"input.{path}" not in named:
                result.failures.append(f"expected a problem at input.{path}; got {sorted(named)}")
        return []
    if case.invalid is not None:
        result.failures.append(f"expected the input to be refused at {list(case.invalid)}, but it was accepted")
        return []
    evaluation = registry.evaluate_loaded(lv, data, as_of=as_of)
    fail = result.failures.append
    if case.outcome is not None and evaluation.outcome != case.outcome:
        fail(f"outcome {evaluation.outcome}, expected {case.outcome} (reasons: {[r['code'] for r in evaluation.reasons]})")
    if case.reasons is not None:
        got = sorted(r["code"] for r in evaluation.reasons)
        if got != sorted(case.reasons):
            fail(f"reasons {got}, expected {sorted(case.reasons)}")
    for name, want in case.results.items():
        if name not in evaluation.results:
            fail(f"result {name} is absent, expected {want!r}")
        elif evaluation.results[name] != want:
            fail(f"result {name} = {evaluation.results[name]!r}, expected {want!r}")
    for name in case.absent:
        if name in evaluation.results:
            fail(f"result {name} = {evaluation.results[name]!r}, expected it absent")
    for rule_id in case.fired:
        if rule_id not in evaluation.fired:
            fail(f"rule {rule_id} did not fire")
    for rule_id in case.not_fired:
        if rule_id in evaluation.fired:
            fail(f"rule {rule_id} fired")
    return evaluation.fired
