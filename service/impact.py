"""Impact analysis before a release: the same applications under two versions.

Applications come from the request or from the decision log (the logged requests of a
period for that ruleset). Each is evaluated under both versions with the same `as_of`
(the application's own, the logged one, or the request's), nothing is logged, and the
answer is the outcome change matrix plus every case that changed, with the rules
responsible: rules whose firing differs between the versions, and changed rules that
fired in either (a rule counts as changed when it was edited, added or removed, or when
a parameter it reads — in its condition, its stage's gate, a named condition it refers to,
or its effect — changed).
"""
from __future__ import annotations

import datetime as dt

from service.catalog import Catalog
from service.decisionlog import Store
from service.errors import InvalidRequest, Problem, ServiceError
from service.rulesets.diff import diff_rulesets
from service.rulesets.model import OUTCOMES, Ruleset


def _cases_from_request(applications: list[dict], default_as_of: dt.date):
    for i, app in enumerate(applications):
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
        yield str(app.get("application_id", f"#{i}")), app["input"], as_of or default_as_of


def _cases_from_log(store: Store, name: str, time_from, time_to, limit: int):
    n = 0
    for record in store.iter_decisions(ruleset=name, time_from=time_from, time_to=time_to):
        if n >= limit:
            break
        n += 1
        yield record.application_id or record.decision_id, record.request.get("input", {}), dt.date.fromisoformat(record.as_of)


def impact(catalog: Catalog, store: Store, name: str, request: dict, today: dt.date) -> dict:
    old = catalog.get(name, request["from_version"])
    new = catalog.get(name, request["to_version"])
    if request["applications"] is not None:
        cases = _cases_from_request(request["applications"], request["as_of"] or today)
        source = {"kind": "given", "count": len(request["applications"])}
    else:
        if request["logged_from"] is None or request["logged_to"] is None:
            raise InvalidRequest("give `applications`, or `logged_from` and `logged_to` to replay the log",
                                 [Problem("invalid_request", "applications", "required unless logged_from/logged_to are given")])
        cases = _cases_from_log(store, name, request["logged_from"], request["logged_to"], request["limit"])
        source = {"kind": "decision_log", "from": request["logged_from"].isoformat(), "to": request["logged_to"].isoformat()}
    engine = catalog.engine
    version_diff = diff_rulesets(old.ruleset, new.ruleset)
    rule_diff = version_diff["rules"]
    rule_changes = {part: [r["id"] for r in rule_diff[part]] for part in ("added", "removed", "changed")}
    changed_params = {p["id"] for part in ("added", "removed", "changed") for p in version_diff["parameters"][part]}
    # A rule is "changed" when its text changed, and also when a parameter it reads did.
    changed_rules = {rule_id for ids in rule_changes.values() for rule_id in ids}
    changed_rules |= _rules_reading(old.ruleset, changed_params) | _rules_reading(new.ruleset, changed_params)
    matrix = {a: {b: 0 for b in OUTCOMES} for a in OUTCOMES}
    changed, errors, evaluated = [], [], 0
    for case_id, raw_input, as_of in cases:
        try:
            a = engine.decide(old, raw_input, as_of=as_of, trace="none").evaluation
            b = engine.decide(new, raw_input, as_of=as_of, trace="none").evaluation
        except ServiceError as exc:
            errors.append({"application_id": case_id, "detail": exc.message,
                           "errors": [p.as_dict() for p in exc.problems]})
            continue
        evaluated += 1
        matrix[a.outcome][b.outcome] += 1
        reasons_a = [r["code"] for r in a.reasons]
        reasons_b = [r["code"] for r in b.reasons]
        if a.outcome != b.outcome or reasons_a != reasons_b or a.results != b.results:
            fired_a, fired_b = set(a.fired), set(b.fired)
            responsible = sorted((fired_a ^ fired_b) | (changed_rules & (fired_a | fired_b)))
            changed.append({
                "application_id": case_id,
                "as_of": as_of.isoformat(),
                "from": {"outcome": a.outcome, "reasons": reasons_a, "results": a.results},
                "to": {"outcome": b.outcome, "reasons": reasons_b, "results": b.results},
                "rules_responsible": responsible,
            })
    return {
        "ruleset": name,
        "from": {"version": old.version, "sha256": old.ruleset.sha256},
        "to": {"version": new.version, "sha256": new.ruleset.sha256},
        "source": source,
        "evaluated": evaluated,
        "changed_count": len(changed),
        "outcome_matrix": matrix,
        "changed": changed,
        "errors": errors,
        "rule_changes": rule_changes,
    }


def _rules_reading(ruleset: Ruleset, params: set[str]) -> set[str]:
    """Ids of the rules that read any of these parameters (the parsed model says what each reads)."""
    return {rule.id for rule in ruleset.rules if rule.params_read & params}
