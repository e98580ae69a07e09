"""Impact analysis before a release: the same applications under two versions.

Applications come from the request or from the decision log (the logged requests of a
period for that ruleset). Each is evaluated under both versions with the same `as_of`
(the application's own, the logged one, or the request's), nothing is logged, and the
answer is the outcome change matrix plus every case that changed, with the rules
responsible: rules whose firing differs between the versions, and changed rules that
fired in either (a rule counts as changed when it was edited, added or removed, or when
a parameter it reads — in its condition, its stage's gate, a named condition it refers to,
or its effect — changed).

The work is split so it can run anywhere: `VersionPair.compare` is the pure case-pair
function (one case in, one `CaseResult` out, no store, no clock), and `Tally` is its
mergeable reduction (matrices, changed cases, errors, and the breakdowns by segment,
region tier and size class). The inline answer, the persistent jobs (service/jobs/) and a
bank's own distributed run (README, "Jobs at scale") all use these two, so they agree.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from service.boundary import store_errors_translated
from service.catalog import Catalog
from service.contract import MAX_ITEMS_PER_REQUEST, OUTCOMES
from service.decisionlog import Store
from service.errors import InvalidRequest, Problem, ServiceError
from service.rulesets.diff import diff_rulesets
from service.decision_engine import Engine, LoadedVersion
from service.rulesets.model import Ruleset

# The results a job's breakdowns group by (sme-credit-policy's names; other rulesets
# without them land under "unknown"). A list result (segments) counts the case once per value.
BREAKDOWNS = {"by_segment": "segments", "by_region_tier": "region_tier", "by_size_class": "size_class"}
UNKNOWN = "unknown"

# Inline answers stay small and quick; anything larger runs as a job.
MAX_INLINE_APPLICATIONS = MAX_ITEMS_PER_REQUEST


def empty_matrix() -> dict:
    return {a: {b: 0 for b in OUTCOMES} for a in OUTCOMES}


def _add_matrix(into: dict, other: dict) -> None:
    for a, row in other.items():
        for b, n in row.items():
            into[a][b] += n


@dataclass(frozen=True)
class Case:
    application_id: str
    input: dict
    as_of: dt.date


@dataclass
class CaseResult:
    application_id: str
    from_outcome: str | None = None
    to_outcome: str | None = None
    changed: dict | None = None      # the `changed` entry, when anything differs
    error: dict | None = None        # the `errors` entry, when the input is refused
    groups: dict = field(default_factory=dict)  # breakdown -> values this case counts under


class VersionPair:
    """Two loaded versions of one ruleset and what changed between them."""

    def __init__(self, engine: Engine, old: LoadedVersion, new: LoadedVersion):
        self.engine, self.old, self.new = engine, old, new
        version_diff = diff_rulesets(old.ruleset, new.ruleset)
        rule_diff = version_diff["rules"]
        self.rule_changes = {part: [r["id"] for r in rule_diff[part]] for part in ("added", "removed", "changed")}
        changed_params = {p["id"] for part in ("added", "removed", "changed") for p in version_diff["parameters"][part]}
        # A rule is "changed" when its text changed, and also when a parameter it reads did.
        changed_rules = {rule_id for ids in self.rule_changes.values() for rule_id in ids}
        changed_rules |= _rules_reading(old.ruleset, changed_params) | _rules_reading(new.ruleset, changed_params)
        self.changed_rules = changed_rules

    def header(self) -> dict:
        return {"from": {"version": self.old.version, "sha256": self.old.ruleset.sha256},
                "to": {"version": self.new.version, "sha256": self.new.ruleset.sha256}}

    def compare(self, case: Case) -> CaseResult:
        """The pure case-pair function: one case under both versions."""
        try:
            a = self.engine.decide(self.old, case.input, as_of=case.as_of, trace="none").evaluation
            b = self.engine.decide(self.new, case.input, as_of=case.as_of, trace="none").evaluation
        except ServiceError as exc:
            return CaseResult(case.application_id, error={
                "application_id": case.application_id, "detail": exc.message,
                "errors": [p.as_dict() for p in exc.problems]})
        out = CaseResult(case.application_id, a.outcome, b.outcome, groups=_groups(a.results))
        reasons_a = [r["code"] for r in a.reasons]
        reasons_b = [r["code"] for r in b.reasons]
        if a.outcome != b.outcome or reasons_a != reasons_b or a.results != b.results:
            fired_a, fired_b = set(a.fired), set(b.fired)
            responsible = sorted((fired_a ^ fired_b) | (self.changed_rules & (fired_a | fired_b)))
            out.changed = {
                "application_id": case.application_id,
                "as_of": case.as_of.isoformat(),
                "from": {"outcome": a.outcome, "reasons": reasons_a, "results": a.results},
                "to": {"outcome": b.outcome, "reasons": reasons_b, "results": b.results},
                "rules_responsible": responsible,
            }
        return out


def _groups(results: dict) -> dict:
    """The breakdown values of a case, from the `from` version's results (the baseline's
    classification of the applicant)."""
    out = {}
    for breakdown, key in BREAKDOWNS.items():
        value = results.get(key)
        if isinstance(value, list):
            values = [str(v) for v in value] or [UNKNOWN]
        else:
            values = [UNKNOWN if value is None else str(value)]
        out[breakdown] = values
    return out


@dataclass
class Tally:
    """The mergeable reduction of case results: merging tallies of consecutive parts in
    order gives exactly the tally of the whole (changed cases and errors keep case order)."""

    evaluated: int = 0
    matrix: dict = field(default_factory=empty_matrix)
    changed: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    breakdowns: dict = field(default_factory=lambda: {name: {} for name in BREAKDOWNS})

    def add(self, result: CaseResult) -> None:
        if result.error is not None:
            self.errors.append(result.error)
            return
        self.evaluated += 1
        self.matrix[result.from_outcome][result.to_outcome] += 1
        for name, values in result.groups.items():
            table = self.breakdowns[name]
            for value in values:
                table.setdefault(value, empty_matrix())[result.from_outcome][result.to_outcome] += 1
        if result.changed is not None:
            self.changed.append(result.changed)

    def merge(self, other: "Tally") -> "Tally":
        self.evaluated += other.evaluated
        _add_matrix(self.matrix, other.matrix)
        self.changed.extend(other.changed)
        self.errors.extend(other.errors)
        for name, table in other.breakdowns.items():
            mine = self.breakdowns[name]
            for value, matrix in table.items():
                _add_matrix(mine.setdefault(value, empty_matrix()), matrix)
        return self

    def as_dict(self) -> dict:
        return {"evaluated": self.evaluated, "matrix": self.matrix, "changed": self.changed,
                "errors": self.errors, **{name: dict(sorted(t.items())) for name, t in self.breakdowns.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "Tally":
        return cls(evaluated=data["evaluated"], matrix=data["matrix"], changed=data["changed"],
                   errors=data["errors"], breakdowns={name: data[name] for name in BREAKDOWNS})


def report(pair: VersionPair, name: str, source: dict, tally: Tally, *, breakdowns: bool) -> dict:
    """The impact answer (inline) or a job's result (with the breakdowns)."""
    out = {
        "ruleset": name,
        **pair.header(),
        "source": source,
        "evaluated": tally.evaluated,
        "changed_count": len(tally.changed),
        "matrix": tally.matrix,
        "outcome_matrix": tally.matrix,  # the name inline answers had first; same matrix
        "changed": tally.changed,
        "errors": tally.errors,
        "rule_changes": pair.rule_changes,
    }
    if breakdowns:
        out.update({name: dict(sorted(tally.breakdowns[name].items())) for name in BREAKDOWNS})
    return out


def cases_from_request(applications: list[dict], default_as_of: dt.date, *, offset: int = 0):
    for i, app in enumerate(applications, start=offset):
        if "input" not in app or not isinstance(app.get("input"), dict):
            raise InvalidRequest("each application needs an `input` object",
                                 [Problem("invalid_request", f"applications.{i}.input", "required object")])
        as_of = app.get("as_of")
        if as_of is not None:
            try:
                as_of = dt.date.fromisoformat(as_of) if isinstance(as_of, str) and len(as_of) == 10 else None
            except ValueError:
                as_of = None
            if as_of is None:
                raise InvalidRequest("bad as_of", [Problem("invalid_request", f"applications.{i}.as_of", "must be a date YYYY-MM-DD")])
        yield Case(str(app.get("application_id", f"#{i}")), app["input"], as_of or default_as_of)


def case_from_record(record) -> Case:
    """A logged decision as an impact case: its own request input and as_of."""
    return Case(record.application_id or record.decision_id, record.request.get("input", {}),
                dt.date.fromisoformat(record.as_of))


@store_errors_translated
def impact(catalog: Catalog, store: Store, name: str, request: dict, today: dt.date) -> dict:
    """The inline impact of given applications."""
    pair = VersionPair(catalog.engine, catalog.get(name, request["from_version"]), catalog.get(name, request["to_version"]))
    applications = request["applications"]
    if applications is None:
        raise InvalidRequest("give `applications`, or `logged_from` and `logged_to` to replay the log",
                             [Problem("invalid_request", "applications", "required unless logged_from/logged_to are given")])
    cases = list(cases_from_request(applications, request["as_of"] or today))  # every as_of checked first
    tally = Tally()
    for case in cases:
        tally.add(pair.compare(case))
    return report(pair, name, {"kind": "given", "count": len(applications)}, tally, breakdowns=False)


def _rules_reading(ruleset: Ruleset, params: set[str]) -> set[str]:
    """Ids of the rules that read any of these parameters (the parsed model says what each reads)."""
    return {rule.id for rule in ruleset.rules if rule.params_read & params}
