"""The one error vocabulary of the service: every error a caller can see is a ServiceError.

Each subclass has a stable snake_case `code` (the problem document's `code` member; never
renamed once shipped) and sits under one of the *kinds* below. The kind says what went
wrong in words the domain uses (not found, conflict, refused, unavailable, ...);
service/api/errors.py maps kinds to HTTP statuses, so a new error is one subclass here under
the right kind, and nothing else. This module knows nothing of HTTP and imports nothing of
the service: every layer may raise these.

Errors of lower layers with their own exceptions (the store's StoreError family) are
translated into these at the service boundary (service.boundary), never shown as they are.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document or a request, and where.

    `path` is a dotted location (``rules[3].when.all[0].field``, ``input.applicant.employees``);
    `line` is the 1-based source line when the document was YAML.
    """

    code: str
    path: str
    message: str
    line: int | None = None
    severity: str = "error"  # "error" blocks publishing; "warning" is reported only

    def as_dict(self) -> dict:
        out = {"code": self.code, "path": self.path, "message": self.message, "severity": self.severity}
        if self.line is not None:
            out["line"] = self.line
        return out


class ServiceError(Exception):
    """Base of every error the API turns into a problem+json answer.

    `problems` are the individual findings (the problem document's `errors`); `extensions`
    are extra members of the problem document (RFC 9457 §3.2), e.g. readiness checks."""

    code = "error"

    def __init__(self, message: str, problems: list[Problem] | None = None, *, extensions: dict | None = None):
        super().__init__(message)
        self.message = message
        self.problems = problems or []
        self.extensions = extensions or {}


# -- kinds (each maps to one HTTP status in service/api/errors.py) ----------------------------


class Malformed(ServiceError):
    """The request cannot be read at all (not JSON, not UTF-8, duplicate keys)."""

    code = "malformed_request"


class Unauthenticated(ServiceError):
    """No credentials, or credentials nobody issued."""

    code = "unauthorized"


class Forbidden(ServiceError):
    """The caller is known but may not do this."""

    code = "forbidden"


class NotFound(ServiceError):
    """The thing named does not exist (or not for this pin / date)."""

    code = "not_found"


class TooSlow(ServiceError):
    """The request did not arrive within the read deadline (REQUEST_READ_TIMEOUT)."""

    code = "request_timeout"


class Conflict(ServiceError):
    """The request contradicts what is already recorded."""

    code = "conflict"


class TooLarge(ServiceError):
    """The request is larger than the service accepts."""

    code = "payload_too_large"


class UnsupportedMedia(ServiceError):
    """The body is in a format this resource does not take."""

    code = "unsupported_media_type"


class Unprocessable(ServiceError):
    """Readable, but invalid: the request, the input or the document is refused."""

    code = "unprocessable"


class Unavailable(ServiceError):
    """A dependency (the decision log / registry store) cannot serve right now; retry later."""

    code = "unavailable"


class Internal(ServiceError):
    """A bug: never the caller's fault, never detailed to the caller."""

    code = "internal"


# -- the errors ----------------------------------------------------------------------------


class MalformedJson(Malformed):
    code = "malformed_json"


class MalformedBody(Malformed):
    """The body cannot be read: a broken chunked encoding, shorter than its Content-Length."""

    code = "malformed_body"


class InvalidRequest(Unprocessable):
    """The request envelope (not the ruleset input) is malformed."""

    code = "invalid_request"


class InvalidInput(Unprocessable):
    """The evaluation input does not match the ruleset's declared input schema."""

    code = "invalid_input"


class InvalidRuleset(Unprocessable):
    """A ruleset document failed validation, static checks or its own tests."""

    code = "invalid_ruleset"


class UnresolvableDependency(Unprocessable):
    """A ruleset's `uses` cannot be resolved to a loaded version for this date/pin."""

    code = "unresolvable_dependency"


class RulesetUnavailable(Unprocessable):
    """The version exists but may not be used for new decisions (retired)."""

    code = "ruleset_retired"


class EvaluationError(Unprocessable):
    """A valid input hit a runtime failure in a ruleset (e.g. division by zero in a formula)."""

    code = "evaluation_error"


class UnknownRuleset(NotFound):
    """No such ruleset, or no version of it for the pin / date asked."""

    code = "unknown_ruleset"


class UnknownDecision(NotFound):
    """No decision with this id in the log."""

    code = "unknown_decision"


class VersionConflict(Conflict):
    """The version is already published with different content; published versions are immutable."""

    code = "version_conflict"


class DuplicateDecision(Conflict):
    """A decision with this id is already logged (ids are unique: retry)."""

    code = "duplicate_decision"


class StorageUnavailable(Unavailable):
    """The decision log / registry store cannot be reached or written: nothing was decided."""

    code = "store_unavailable"


class NotReady(Unavailable):
    """The instance cannot serve yet (no rulesets loaded, or the store unreachable)."""

    code = "not_ready"


# -- releases: four-eyes publishing and rollouts ----------------------------------------------


class VersionNotActive(Unprocessable):
    """A pinned version is proposed (or rejected): only `"dry_run": true` may evaluate a proposed one."""

    code = "version_not_active"


class SelfApproval(Forbidden):
    """Four eyes: the identity that proposed a version (or already approved it) cannot approve it."""

    code = "self_approval"


class ReleaseConflict(Conflict):
    """The transition does not apply to the version's current registry status
    (approving an active version, rejecting a rejected one, …)."""

    code = "release_conflict"


class InvalidRollout(Unprocessable):
    """A rollout names an unusable challenger, mode, share or sticky key."""

    code = "invalid_rollout"


class NoRollout(NotFound):
    """The ruleset has no rollout running."""

    code = "no_rollout"


# -- jobs ---------------------------------------------------------------------------------------


class UnknownJob(NotFound):
    """No job with this id."""

    code = "unknown_job"


class JobNotFinished(Conflict):
    """The job has no result yet (queued or running), or has already finished (cannot be cancelled)."""

    code = "job_not_finished"


class JobFinished(Conflict):
    """The job is done or failed: there is nothing left to cancel."""

    code = "job_finished"


class IdempotencyKeyReused(Unprocessable):
    """An Idempotency-Key already used by this caller with a different request body."""

    code = "idempotency_key_reused"


class NoSigningKey(NotFound):
    """Checkpoints are not signed here (DECISION_LOG_SIGNING_KEY is not set): no public key."""

    code = "no_signing_key"
