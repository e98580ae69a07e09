"""Query parameters of the API's GET endpoints, validated like bodies: marshmallow schemas
(unknown parameters refused), every problem reported with the parameter's name as its path."""
from __future__ import annotations

import datetime as dt

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from service.contract import DEFAULT_PAGE_SIZE, MAX_ITEMS_PER_REQUEST, OUTCOMES
from service.identifiers import (
    MAX_APPLICATION_ID_LENGTH, MAX_RULE_ID_LENGTH, MAX_RULESET_NAME_LENGTH, RULE_ID_RE, RULESET_NAME_RE,
    SEMVER_RE, SHA256_HEX_RE,
)
from service.schemas.api import UtcDateTime

_VERSION = validate.Regexp(SEMVER_RE, error="must be a version like 1.0.0")


class _Query(Schema):
    class Meta:
        unknown = RAISE


class DecisionSearchQuery(_Query):
    """GET /v1/decisions (search, and export with format=csv)."""

    application_id = fields.String(validate=validate.Length(min=1, max=MAX_APPLICATION_ID_LENGTH))
    ruleset = fields.String(validate=[validate.Length(max=MAX_RULESET_NAME_LENGTH),
                                      validate.Regexp(RULESET_NAME_RE, error="not a ruleset name")])
    version = fields.String(validate=_VERSION)
    outcome = fields.String(validate=validate.OneOf(OUTCOMES))
    rule_id = fields.String(validate=[validate.Length(max=MAX_RULE_ID_LENGTH),
                                      validate.Regexp(RULE_ID_RE, error="not a rule id")])
    time_from = UtcDateTime(data_key="from", load_default=None,
                            error_messages={"invalid": "an ISO 8601 date-time with a time zone, e.g. 2026-11-24T00:00:00Z",
                                            "invalid_awareness": "needs a time zone, e.g. 2026-11-24T00:00:00Z"})
    time_to = UtcDateTime(data_key="to", load_default=None,
                          error_messages={"invalid": "an ISO 8601 date-time with a time zone, e.g. 2026-11-24T00:00:00Z",
                                          "invalid_awareness": "needs a time zone, e.g. 2026-11-24T00:00:00Z"})
    limit = fields.Integer(load_default=DEFAULT_PAGE_SIZE,
                           validate=validate.Range(min=1, max=MAX_ITEMS_PER_REQUEST,
                                                   error=f"an integer 1..{MAX_ITEMS_PER_REQUEST}"))
    cursor = fields.String(load_default=None)
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "csv"), error="json or csv"))


class VerifyQuery(_Query):
    """GET /v1/audit/verify: optionally a chain head remembered from an earlier run."""

    expected_head_seq = fields.Integer(load_default=None, validate=validate.Range(min=0))
    expected_head_hash = fields.String(load_default=None,
                                       validate=validate.Regexp(SHA256_HEX_RE, error="64 lowercase hex digits"))

    since = fields.Integer(load_default=None, validate=validate.Range(min=1, max=10 ** 18),
                           metadata={"description": "verify incrementally, from the checkpoint at this seq"})

    @validates_schema
    def _together(self, data, **kwargs):
        if (data.get("expected_head_seq") is None) != (data.get("expected_head_hash") is None):
            raise ValidationError("give expected_head_seq and expected_head_hash together",
                                  field_name="expected_head_seq")


class CheckpointsQuery(_Query):
    """GET /v1/audit/checkpoints: newest first, `before` a seq to page back."""

    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=MAX_ITEMS_PER_REQUEST,
                                                                     error=f"an integer 1..{MAX_ITEMS_PER_REQUEST}"))
    before = fields.Integer(load_default=None, validate=validate.Range(min=1, max=10 ** 18))


class DiffQuery(_Query):
    """GET /v1/rulesets/{name}/diff?from=&to="""

    from_version = fields.String(data_key="from", required=True, validate=_VERSION)
    to_version = fields.String(data_key="to", required=True, validate=_VERSION)


class DateOrUtcDateTime(fields.Field):
    """A date (taken as midnight UTC) or an ISO 8601 date-time with a zone, as UTC; empty = not given."""

    def _deserialize(self, value, attr, data, **kwargs):
        if value == "":
            return None
        try:
            if not isinstance(value, str):
                raise ValueError
            if len(value) == 10:
                return dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), dt.timezone.utc)
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                raise ValueError
            return parsed.astimezone(dt.timezone.utc)
        except (ValueError, OverflowError):
            raise ValidationError("a date (2026-01-15) or date-time with zone") from None


class RolloutReportQuery(_Query):
    """GET /v1/rulesets/{name}/rollout/report?from=&to="""

    time_from = DateOrUtcDateTime(data_key="from", load_default=None)
    time_to = DateOrUtcDateTime(data_key="to", load_default=None)


class JobListQuery(_Query):
    """GET /v1/jobs?limit=&ruleset="""

    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=200, error="an integer from 1 to 200"))
    ruleset = fields.String(load_default=None)
