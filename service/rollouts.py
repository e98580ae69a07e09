"""Champion / challenger rollouts: arm assignment, the shadow record, and the rollout report.

A rollout applies to decisions that do not pin a version. The champion is the version
`as_of` selects; the challenger is the rollout's version (active or proposed).

- shadow: the champion answers, exactly as without the rollout (the answer is built
  before the challenger runs); the challenger's outcome, reasons, results and fired
  rules are logged with the decision under `shadow`. Any failure of the challenger is
  logged there as an error and never reaches the caller.
- split: a stable hash of ruleset name + sticky key puts an applicant in the challenger
  arm when it falls below `share`; the same applicant lands in the same arm on every
  instance and every day. The other arm runs as the shadow.

The logged trace record carries `rollout` (mode, arm, both versions) and `shadow`; both are
part of the hashed record, so the report reads what was answered and cannot be edited
unnoticed.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal

from service import canonical
from service.boundary import store_errors_translated
from service.catalog import Catalog
from service.decisionlog import Store
from service.decisionlog.releases import MODES, RolloutRow
from service.engine.evaluator import Evaluation, ruleset_ref
from service.errors import InvalidRollout, Problem
from service.impact import _rules_reading
from service.rulesets.diff import diff_rulesets
from service.contract import OUTCOMES
from service.decision_engine import LoadedVersion

_SCALE = 2 ** 64
MAX_CHANGED = 1000


def arm_for(name: str, sticky_value, share: Decimal) -> str:
    """"challenger" when sha256(name, key) falls below `share` of the hash space, else "champion".

    Only the ruleset name and the key go in: not the version, the date or the instance, so an
    applicant keeps its arm for the whole rollout. A missing key stays with the champion."""
    if sticky_value is None:
        return "champion"
    key = sticky_value if isinstance(sticky_value, str) else canonical.dumps(sticky_value)
    digest = hashlib.sha256(f"{name}\x1f{key}".encode("utf-8")).digest()
    bucket = int.from_bytes(digest[:8], "big")
    return "challenger" if Decimal(bucket) < share * _SCALE else "champion"


def sticky_value(raw_input, path: str | None):
    value = raw_input
    for part in (path or "").split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def declared_scalar(ruleset, path: str) -> bool:
    """True when `path` is a declared scalar (not object or list) field of the ruleset's input."""
    spec = ruleset.input
    for part in path.split("."):
        if spec is None or spec.kind != "object":
            return False
        spec = next((f.type for f in spec.fields if f.name == part), None)
    return spec is not None and spec.kind not in ("object", "list")


def check_rollout(champion_lv: LoadedVersion | None, challenger_lv: LoadedVersion, mode: str,
                  share: Decimal | None, sticky_by: str | None) -> None:
    problems = []
    if mode not in MODES:
        problems.append(Problem("invalid_rollout", "mode", "shadow or split"))
    if mode == "split":
        if share is None:
            problems.append(Problem("invalid_rollout", "share", "a split needs a share from 0 to 1"))
        if not sticky_by:
            problems.append(Problem("invalid_rollout", "sticky_by", "a split needs the input field that keeps an applicant in its arm"))
    elif share is not None:
        problems.append(Problem("invalid_rollout", "share", "only a split has a share"))
    if sticky_by:
        for lv in filter(None, (champion_lv, challenger_lv)):
            if not declared_scalar(lv.ruleset, sticky_by):
                problems.append(Problem("invalid_rollout", "sticky_by",
                                        f"{sticky_by!r} is not a declared scalar input field of {lv.name} {lv.version}"))
    if problems:
        raise InvalidRollout("the rollout is invalid", problems)


def rollout_view(row: RolloutRow) -> dict:
    return {
        "name": row.name,
        "challenger": row.challenger,
        "mode": row.mode,
        "share": Decimal(row.share) if row.share is not None else None,
        "sticky_by": row.sticky_by,
        "started_by": row.started_by,
        "started_at": canonical.utc_text(row.started_at),
    }


def shadow_record(lv: LoadedVersion, evaluation: Evaluation | None, error: Exception | None) -> dict:
    out = {"ruleset": ruleset_ref(lv.ruleset)}
    if evaluation is None:
        code = getattr(error, "code", "evaluation_failed")
        message = getattr(error, "message", None) or type(error).__name__
        out["error"] = {"code": code if isinstance(code, str) else "evaluation_failed", "message": str(message)[:500]}
        return out
    out.update({"outcome": evaluation.outcome, "reasons": evaluation.reasons, "results": evaluation.results,
                "fired": list(evaluation.fired)})
    return out


@store_errors_translated
class Rollouts:
    """The running rollouts and their reports, for in-process readers (the console)."""

    def __init__(self, catalog: Catalog, store: Store):
        self.catalog, self.store = catalog, store

    def list(self) -> list[dict]:
        self.catalog.sync()
        return [rollout_view(row) for _, row in sorted(self.catalog.rollouts.items())]

    def get(self, name: str) -> dict | None:
        row = self.catalog.rollout(name)
        return rollout_view(row) if row is not None else None

    def report(self, name: str, time_from: dt.datetime | None = None, time_to: dt.datetime | None = None) -> dict:
        return report(self.catalog, self.store, name, time_from, time_to)


# -- the report ----------------------------------------------------------------------------------


def _changed_rules(old: LoadedVersion, new: LoadedVersion) -> set[str]:
    """Rules edited, added or removed between two versions, and rules reading a changed parameter."""
    d = diff_rulesets(old.ruleset, new.ruleset)
    rules = {r["id"] for part in ("added", "removed", "changed") for r in d["rules"][part]}
    params = {p["id"] for part in ("added", "removed", "changed") for p in d["parameters"][part]}
    return rules | _rules_reading(old.ruleset, params) | _rules_reading(new.ruleset, params)


@store_errors_translated
def report(catalog: Catalog, store: Store, name: str, time_from: dt.datetime | None,
           time_to: dt.datetime | None) -> dict:
    """Arms, the champion -> challenger outcome matrix over shadow pairs, and the cases whose
    outcome differs with the rules responsible, over the rollout decisions logged in [from, to)."""
    arms = {"champion": 0, "challenger": 0}
    matrix = {a: {b: 0 for b in OUTCOMES} for a in OUTCOMES}
    changed: list[dict] = []
    changed_count = pairs = shadow_errors = 0
    changed_rules_cache: dict[tuple[str, str], set[str]] = {}
    for record in store.iter_decisions(ruleset=name, time_from=time_from, time_to=time_to):
        trace = record.trace if isinstance(record.trace, dict) else {}
        rollout, shadow = trace.get("rollout"), trace.get("shadow")
        if not isinstance(rollout, dict) or rollout.get("arm") not in arms:
            continue
        arms[rollout["arm"]] += 1
        if not isinstance(shadow, dict) or "outcome" not in shadow:
            shadow_errors += 1
            continue
        answered = {"version": record.ruleset_version, "outcome": record.outcome,
                    "reasons": [r["code"] for r in record.response.get("reasons", [])],
                    "results": record.response.get("results"), "fired": list(record.fired_rules)}
        other = {"version": shadow["ruleset"]["version"], "outcome": shadow["outcome"],
                 "reasons": [r["code"] for r in shadow.get("reasons", [])],
                 "results": shadow.get("results"), "fired": list(shadow.get("fired", []))}
        champion, challenger = (answered, other) if rollout["arm"] == "champion" else (other, answered)
        pairs += 1
        matrix[champion["outcome"]][challenger["outcome"]] += 1
        if champion["outcome"] == challenger["outcome"]:
            continue
        changed_count += 1
        if len(changed) >= MAX_CHANGED:
            continue
        key = (champion["version"], challenger["version"])
        if key not in changed_rules_cache:
            try:
                changed_rules_cache[key] = _changed_rules(catalog.get(name, key[0]), catalog.get(name, key[1]))
            except Exception:  # a version no longer loadable here: firing differences still say a lot
                changed_rules_cache[key] = set()
        fired_a, fired_b = set(champion.pop("fired")), set(challenger.pop("fired"))
        changed.append({
            "decision_id": record.decision_id,
            "application_id": record.application_id,
            "evaluated_at": canonical.utc_text(record.evaluated_at),
            "arm": rollout["arm"],
            "champion": champion,
            "challenger": challenger,
            "rules_responsible": sorted((fired_a ^ fired_b) | (changed_rules_cache[key] & (fired_a | fired_b))),
        })
    current = catalog.rollout(name)
    return {
        "ruleset": name,
        "from": time_from.isoformat().replace("+00:00", "Z") if time_from else None,
        "to": time_to.isoformat().replace("+00:00", "Z") if time_to else None,
        "rollout": rollout_view(current) if current is not None else None,
        "arms": arms,
        "pairs": pairs,
        "shadow_errors": shadow_errors,
        "matrix": matrix,
        "changed_count": changed_count,
        "changed": changed,
    }
