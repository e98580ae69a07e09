"""Envelopes of API requests (marshmallow, unknown=RAISE). The ruleset-specific `input`
is validated separately, by the schema built from the ruleset's declared input."""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from service.contract import MAX_ITEMS_PER_REQUEST, TRACE_LEVELS
from service.errors import InvalidRequest, Problem
from service.identifiers import MAX_APPLICATION_ID_LENGTH, RULESET_NAME_RE, SEMVER_RE
from service.schemas.ruleset_input import StrictDate, _flatten, iso_date


class StrictString(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        if type(value) is not str:
            raise ValidationError("must be a string")
        return super()._deserialize(value, attr, data, **kwargs)


class JsonObject(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise ValidationError("must be a JSON object")
        return value


class StrictBoolean(fields.Boolean):
    def _deserialize(self, value, attr, data, **kwargs):
        if type(value) is not bool:
            raise ValidationError("must be true or false")
        return value


class Share(fields.Field):
    """A JSON number from 0 to 1, kept exact (Decimal)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            raise ValidationError("must be a number from 0 to 1")
        value = Decimal(value)
        if not Decimal(0) <= value <= Decimal(1):
            raise ValidationError("must be a number from 0 to 1")
        return value


_APPLICATION_ID_RE = re.compile(r"^[\x21-\x7e]+$")


class EvaluateRequest(Schema):
    class Meta:
        unknown = RAISE

    ruleset = StrictString(required=True, validate=validate.Regexp(RULESET_NAME_RE, error="not a ruleset name"))
    version = StrictString(load_default=None, allow_none=True,
                           validate=validate.Regexp(SEMVER_RE, error="must be a version like 1.0.0"))
    as_of = StrictDate(load_default=None, allow_none=True)
    application_id = StrictString(required=True, validate=[
        validate.Length(min=1, max=MAX_APPLICATION_ID_LENGTH),
        validate.Regexp(_APPLICATION_ID_RE, error="printable ASCII without spaces")])
    input = JsonObject(required=True)
    trace = StrictString(load_default="fired", validate=validate.OneOf(TRACE_LEVELS))
    dry_run = StrictBoolean(load_default=False)  # evaluate (a proposed version too), log nothing


_EVALUATE_SCHEMA = EvaluateRequest()
_EVALUATE_FIELDS = frozenset(EvaluateRequest._declared_fields)
_TRACE_LEVELS = frozenset(TRACE_LEVELS)


def evaluate_request(data) -> dict:
    """EvaluateRequest's load, with an accepting path written out: an envelope that is
    certainly valid (the usual one) is checked in a few comparisons; anything else goes
    to the schema, which decides and words every problem. The output is what the schema
    would give (tests/schemas/test_envelope_fast.py holds the two equal, accepted and refused)."""
    fast = _evaluate_fast(data)
    return fast if fast is not None else load(_EVALUATE_SCHEMA, data)


def _evaluate_fast(data) -> dict | None:
    """The envelope EvaluateRequest would load from `data`, or None when not certainly valid.
    The same checks as its fields, in the same form (the same regexes, `.match`)."""
    if type(data) is not dict or not _EVALUATE_FIELDS.issuperset(data):
        return None
    ruleset, version = data.get("ruleset"), data.get("version")
    application_id, body = data.get("application_id"), data.get("input")
    trace, dry_run = data.get("trace", "fired"), data.get("dry_run", False)
    if (type(ruleset) is not str or not RULESET_NAME_RE.match(ruleset)
            or (version is not None and (type(version) is not str or not SEMVER_RE.match(version)))
            or type(application_id) is not str or not 1 <= len(application_id) <= MAX_APPLICATION_ID_LENGTH
            or not _APPLICATION_ID_RE.match(application_id)
            or not isinstance(body, dict) or type(trace) is not str or trace not in _TRACE_LEVELS
            or type(dry_run) is not bool):
        return None
    as_of = data.get("as_of")
    if as_of is not None:
        as_of = iso_date(as_of)
        if as_of is None:
            return None
    return {"ruleset": ruleset, "version": version, "as_of": as_of, "application_id": application_id,
            "input": body, "trace": trace, "dry_run": dry_run}


class BatchRequest(Schema):
    class Meta:
        unknown = RAISE

    # Any JSON value per item, null too: each item is checked on its own (a bad one fails only itself).
    items = fields.List(fields.Raw(allow_none=True), required=True, validate=validate.Length(
        min=1, max=MAX_ITEMS_PER_REQUEST, error=f"1 to {MAX_ITEMS_PER_REQUEST} items"))


class UtcDateTime(fields.AwareDateTime):
    """An ISO 8601 date-time with a zone, as UTC; refused if the offset takes it outside years 1..9999."""

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        try:
            return value.astimezone(dt.timezone.utc)
        except OverflowError:
            raise ValidationError("out of the supported date range") from None


class ImpactApplication(Schema):
    """One application of an impact run; `as_of` is checked by service.impact (path applications.N.as_of)."""

    class Meta:
        unknown = RAISE

    application_id = StrictString(validate=validate.Length(min=1, max=MAX_APPLICATION_ID_LENGTH))
    as_of = fields.Raw(allow_none=True)
    input = JsonObject(required=True)


class ImpactRequest(Schema):
    class Meta:
        unknown = RAISE

    from_version = StrictString(required=True, data_key="from", validate=validate.Regexp(SEMVER_RE))
    to_version = StrictString(required=True, data_key="to", validate=validate.Regexp(SEMVER_RE))
    as_of = StrictDate(load_default=None, allow_none=True)
    applications = fields.List(fields.Nested(ImpactApplication), load_default=None,
                               validate=validate.Length(min=1, max=10000))
    logged_from = UtcDateTime(load_default=None, data_key="logged_from")
    logged_to = UtcDateTime(load_default=None, data_key="logged_to")
    # a job over the log takes every decision of the period unless a limit is given
    limit = fields.Integer(load_default=None, allow_none=True, strict=True, validate=validate.Range(min=1, max=10**12))


class ReleaseComment(Schema):
    """Optional body of :approve and :reject."""

    class Meta:
        unknown = RAISE

    comment = StrictString(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class RolloutRequest(Schema):
    class Meta:
        unknown = RAISE

    challenger = StrictString(required=True, validate=validate.Regexp(SEMVER_RE, error="must be a version like 1.1.0"))
    mode = StrictString(required=True, validate=validate.OneOf(("shadow", "split")))
    share = Share(load_default=None, allow_none=True)
    sticky_by = StrictString(load_default=None, allow_none=True, validate=validate.Regexp(
        r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,7}$", error="an input field path like applicant.credit_code"))
    comment = StrictString(load_default=None, allow_none=True, validate=validate.Length(max=2000))


def load(schema: Schema, data, prefix: str = "") -> dict:
    """Validated data, or InvalidRequest listing every problem with its path."""
    try:
        return schema.load(data)
    except ValidationError as exc:
        problems: list[Problem] = []
        _flatten(exc.messages, prefix, problems)
        raise InvalidRequest("the request is invalid",
                             [Problem("invalid_request", p.path, p.message) for p in problems]) from None
