"""Test data builders shared by the tests and the worker processes."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from service.decisionlog import NewDecision

BASE_TIME = dt.datetime(2026, 11, 24, 9, 0, 0, 123456, tzinfo=dt.timezone.utc)
RULESET_SHA = "5" * 64


def make_decision(decision_id: str, **overrides: Any) -> NewDecision:
    fields: dict[str, Any] = dict(
        decision_id=decision_id,
        application_id=f"APP-{decision_id}",
        ruleset_name="sme-credit-policy",
        ruleset_version="1.0.0",
        ruleset_sha256=RULESET_SHA,
        outcome="APPROVE",
        as_of="2026-11-24",
        evaluated_at=BASE_TIME,
        fired_rules=["SCOPE-001", "MODE-002"],
        request={"application_id": f"APP-{decision_id}",
                 "input": {"applicant": {"credit_rating": "A", "revenue": Decimal("8.1527")}}},
        trace=[{"rule_id": "SCOPE-001", "fired": True, "inputs": {"x": Decimal("1.50")}}],
    )
    fields.update(overrides)
    # The response as the service answers it: it repeats the record's searchable fields
    # (the store matches searches against this hashed payload).
    fields.setdefault("response", {
        "decision_id": decision_id, "application_id": fields["application_id"],
        "ruleset": {"name": fields["ruleset_name"], "version": fields["ruleset_version"],
                    "sha256": fields["ruleset_sha256"]},
        "outcome": fields["outcome"],
        "results": {"rate": Decimal("0.10"), "limit": Decimal("1E+6")},
        "evaluated_at": fields["evaluated_at"].isoformat(timespec="microseconds").replace("+00:00", "Z"),
    })
    return NewDecision(**fields)
