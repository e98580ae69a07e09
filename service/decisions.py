"""Making, logging and replaying decisions — the one place a decision is written to the log.

`decide` evaluates a validated request and appends the decision (request, response, full
trace, ruleset name/version/sha256, the used rulesets' versions) to the hash-chained log
before returning it; if the log cannot be written the caller gets StorageUnavailable
(503) and no decision. `replay` re-evaluates a logged decision (service.audit finds it)
with the logged versions and `as_of` and reports any difference.
"""
from __future__ import annotations

import datetime as dt
import time
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal

from uuid6 import uuid7

from service import canonical, rollouts
from service.boundary import store_errors_translated
from service.catalog import Catalog
from service.decision_engine import BANK_ZONE, Decision, LoadedVersion
from service.decisionlog import IdempotencyConflict, LoggedDecision, NewDecision, Store
from service.engine.evaluator import Evaluation, ruleset_ref
from service.errors import IdempotencyKeyReused, RulesetUnavailable, UnknownRuleset

VOLATILE = ("decision_id", "evaluated_at", "duration_ms")


@dataclass
class Clock:
    """Time, passed in (tests freeze it). The business date is taken in the bank's zone."""

    zone: zoneinfo.ZoneInfo = BANK_ZONE

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)

    def business_date(self) -> dt.date:
        return self.now().astimezone(self.zone).date()


def decision_response(*, decision_id: str, decision: Decision, evaluated_at: dt.datetime, duration_ms: float,
                      extra: dict | None = None) -> dict:
    """The HTTP answer: the engine's decision (Decision.as_dict) framed by its volatile fields;
    `extra`: "rollout" (the split arm that answered), "dry_run"."""
    response = {"decision_id": decision_id, **decision.as_dict(), **(extra or {})}
    response["evaluated_at"] = canonical.utc_text(evaluated_at)
    response["duration_ms"] = round(duration_ms, 3)
    return response


def full_trace(evaluation: Evaluation) -> dict:
    """What the log keeps of the trace: the normalised record (see Evaluation.record)."""
    return evaluation.record()


@dataclass
class Idempotency:
    """An idempotency key sent with a decision request, scoped to the caller's identity.
    `replayed` is set when the answer is the decision logged the first time."""

    identity: str
    key: str
    request_sha256: str
    replayed: bool = False

    @classmethod
    def of(cls, identity: str, key: str, raw_request: dict) -> "Idempotency":
        return cls(identity, key, canonical.sha256_hex(raw_request))


@store_errors_translated
class DecisionService:
    def __init__(self, catalog: Catalog, store: Store, clock: Clock | None = None, metrics=None):
        self.catalog = catalog
        self.store = store
        self.clock = clock or Clock()
        self.metrics = metrics

    def _resolve(self, name: str, version: str | None, as_of: dt.date, *, allow_proposed: bool = False) -> LoadedVersion:
        registry = self.catalog.registry
        try:
            return registry.resolve(name, version, as_of, allow_proposed=allow_proposed)
        except UnknownRuleset:
            self.catalog.refresh_for_miss()
            return registry.resolve(name, version, as_of, allow_proposed=allow_proposed)

    def _challenger(self, rollout, champion: LoadedVersion) -> LoadedVersion | None:
        lv = self.catalog.registry.get(champion.name, rollout.challenger)
        if lv is None or lv.version == champion.version or lv.status not in ("active", "proposed"):
            return None
        return lv

    def decide(self, request: dict, raw_request: dict, idempotency: Idempotency | None = None,
               caller: str | None = None) -> str:
        """`request` is the validated envelope; `raw_request` the body as received (logged).

        Returns the response body: the exact JSON text that was logged (a dry run is
        answered and not logged). With an idempotency key already used, the decision
        logged then is answered again and nothing is logged. `caller` is the identity that
        asked (never its token), kept in the hashed trace record as `decided_by`."""
        if idempotency is not None:
            earlier = self._idempotent_answer(idempotency)
            if earlier is not None:
                return earlier
        self.catalog.sync()
        started = time.perf_counter()
        as_of = request["as_of"] or self.clock.business_date()
        dry_run = bool(request.get("dry_run"))
        lv = self._resolve(request["ruleset"], request["version"], as_of, allow_proposed=dry_run)
        rollout = None if request["version"] is not None or dry_run else self.catalog.rollout(lv.name)
        challenger = self._challenger(rollout, lv) if rollout is not None else None
        champion, arm, extra = lv, None, {}
        decision = shadow_lv = shadow_decision = shadow_error = None
        if challenger is not None:
            arm = "champion"
            if rollout.mode == "split" and rollouts.arm_for(
                    lv.name, rollouts.sticky_value(request["input"], rollout.sticky_by), Decimal(rollout.share)) == "challenger":
                try:
                    decision = self._decide(challenger, request, as_of)
                    lv, arm = challenger, "challenger"
                except Exception as exc:  # the challenger never fails a request: the champion answers
                    shadow_lv, shadow_error = challenger, exc
            if rollout.mode == "split":
                extra["rollout"] = {"arm": arm, "mode": "split"}
        if decision is None:
            decision = self._decide(lv, request, as_of)
        evaluation = decision.evaluation
        if dry_run:
            extra["dry_run"] = True
        duration_ms = (time.perf_counter() - started) * 1000
        evaluated_at = self.clock.now()
        response = decision_response(decision_id=str(uuid7()), decision=decision, evaluated_at=evaluated_at,
                                     duration_ms=duration_ms, extra=extra)
        # The body is final before the other arm runs: in shadow mode it is the champion-only answer.
        body = canonical.dumps(response, sort_keys=False)
        if dry_run:
            return body
        trace = full_trace(evaluation)
        if arm is not None:
            if shadow_lv is None:
                shadow_lv = champion if arm == "challenger" else challenger
                try:
                    shadow_decision = self._decide(shadow_lv, request, as_of)
                except Exception as exc:  # logged as the shadow's error; the answer stands
                    shadow_error = exc
            trace = {**trace,
                     "rollout": {"mode": rollout.mode, "arm": arm, "champion": champion.version,
                                 "challenger": challenger.version},
                     "shadow": rollouts.shadow_record(shadow_lv, shadow_decision and shadow_decision.evaluation, shadow_error)}
        if caller is not None:
            trace = {**trace, "decided_by": caller}
        try:
            self.store.append_decision(NewDecision(
                decision_id=response["decision_id"],
                application_id=request["application_id"],
                ruleset_name=lv.name,
                ruleset_version=lv.version,
                ruleset_sha256=lv.ruleset.sha256,
                outcome=evaluation.outcome,
                as_of=as_of.isoformat(),
                evaluated_at=evaluated_at,
                fired_rules=list(evaluation.fired),
                request=raw_request,
                response=response,
                response_json=body,
                trace=trace,
                idempotency=((idempotency.identity, idempotency.key, idempotency.request_sha256)
                             if idempotency is not None else None),
            ))
        except IdempotencyConflict:  # a concurrent request with the same key was logged first
            return self._idempotent_answer(idempotency)
        if self.metrics is not None:
            self.metrics.decision(lv.name, lv.version, evaluation.outcome, duration_ms / 1000)
            if arm is not None:
                self.metrics.rollout(lv.name, rollout.mode, arm, shadow_decision is not None)
        return body

    def _idempotent_answer(self, idempotency: Idempotency) -> str | None:
        earlier = self.store.find_idempotent(idempotency.identity, idempotency.key)
        if earlier is None:
            return None
        if earlier.request_sha256 != idempotency.request_sha256:
            raise IdempotencyKeyReused(
                f"the Idempotency-Key {idempotency.key!r} was already used with a different request "
                f"(decision {earlier.decision_id}); use a new key for a new request")
        idempotency.replayed = True
        return earlier.response_json

    def _decide(self, lv: LoadedVersion, request: dict, as_of: dt.date) -> Decision:
        return self.catalog.engine.decide(lv, request["input"], as_of=as_of, trace=request["trace"],
                                          application_id=request["application_id"])

    # -- replay -----------------------------------------------------------------------

    def replay(self, record: LoggedDecision) -> dict:
        request, original = record.request, record.response
        pins = {u["ruleset"]["name"]: u["ruleset"]["version"] for u in original.get("uses", {}).values()}
        # The version replayed is the one the hashed answer names, not a column copy.
        answered = original.get("ruleset", {})
        name, version = answered.get("name", record.ruleset_name), answered.get("version", record.ruleset_version)
        try:
            lv = self.catalog.get(name, version)
        except UnknownRuleset:
            raise RulesetUnavailable(f"{name} {version} is not loaded; cannot replay") from None
        as_of = dt.date.fromisoformat(record.as_of)
        decision = self.catalog.engine.decide(lv, request["input"], as_of=as_of, trace=request.get("trace", "fired"),
                                              pins=pins, application_id=original["application_id"])
        evaluation = decision.evaluation
        replayed = decision_response(decision_id=record.decision_id, decision=decision, evaluated_at=self.clock.now(),
                                     duration_ms=0.0)
        differences = []
        # Altered data never replays as identical: the record must still match its hash
        # and its link to the record before.
        intact = {"hash_ok": True, "link_ok": True}
        if record.integrity is not None and record.integrity != intact:
            differences.append({"path": "/integrity", "logged": record.integrity, "replayed": intact,
                                "change": "changed"})
        if lv.ruleset.sha256 != record.ruleset_sha256:
            differences.append({"path": "/ruleset/sha256", "logged": record.ruleset_sha256, "replayed": lv.ruleset.sha256})
        # Compare as the log stores things: canonical JSON read back (exact decimals, ISO dates).
        replayed = canonical.loads(canonical.dumps(replayed))
        # A rollout's arm and shadow are about how the decision was routed, not what it evaluated to.
        differences += diff_values({k: v for k, v in original.items() if k not in VOLATILE and k != "rollout"},
                                   {k: v for k, v in replayed.items() if k not in VOLATILE}, "")
        logged_trace = {k: v for k, v in record.trace.items() if k not in ("rollout", "shadow", "decided_by")} \
            if isinstance(record.trace, dict) else record.trace
        differences += diff_values(logged_trace, canonical.loads(canonical.dumps(full_trace(evaluation))), "/trace_record")
        return {
            "decision_id": record.decision_id,
            "identical": not differences,
            "differences": differences,
            "integrity": record.integrity,
            "ruleset": ruleset_ref(lv.ruleset),
            "as_of": record.as_of,
            "pinned_uses": pins,
            "logged": {k: original[k] for k in ("outcome", "reasons", "results")},
            "replayed": {k: replayed[k] for k in ("outcome", "reasons", "results")},
        }


def diff_values(old, new, path: str) -> list[dict]:
    """Every place two JSON-like values differ, as JSON pointers (lists compared by position)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in list(old) + [k for k in new if k not in old]:
            sub = f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"
            if key not in new:
                out.append({"path": sub, "logged": old[key], "replayed": None, "change": "removed"})
            elif key not in old:
                out.append({"path": sub, "logged": None, "replayed": new[key], "change": "added"})
            else:
                out += diff_values(old[key], new[key], sub)
        return out
    if isinstance(old, list) and isinstance(new, list):
        out = []
        for i in range(max(len(old), len(new))):
            if i >= len(old):
                out.append({"path": f"{path}/{i}", "logged": None, "replayed": new[i], "change": "added"})
            elif i >= len(new):
                out.append({"path": f"{path}/{i}", "logged": old[i], "replayed": None, "change": "removed"})
            else:
                out += diff_values(old[i], new[i], f"{path}/{i}")
        return out
    if old != new or type(old) is not type(new):
        return [{"path": path or "/", "logged": old, "replayed": new, "change": "changed"}]
    return []
