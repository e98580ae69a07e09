"""Domain errors with stable codes. Knows nothing of HTTP (api/errors.py maps these)."""
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
    """Base of every error the API turns into a problem+json answer."""

    code = "error"

    def __init__(self, message: str, problems: list[Problem] | None = None):
        super().__init__(message)
        self.message = message
        self.problems = problems or []


class InvalidInput(ServiceError):
    """The evaluation input does not match the ruleset's declared input schema."""

    code = "invalid_input"


class InvalidRuleset(ServiceError):
    """A ruleset document failed validation, static checks or its own tests."""

    code = "invalid_ruleset"


class UnknownRuleset(ServiceError):
    """No such ruleset, or no version of it for the pin / date asked."""

    code = "unknown_ruleset"


class RulesetUnavailable(ServiceError):
    """The version exists but may not be used for new decisions (retired)."""

    code = "ruleset_unavailable"


class UnresolvableDependency(ServiceError):
    """A ruleset this one `uses` has no version for the requested date."""

    code = "unresolvable_dependency"


class EvaluationError(ServiceError):
    """A valid input hit a runtime failure in a ruleset (e.g. division by zero in a formula)."""

    code = "evaluation_error"


class InvalidRequest(ServiceError):
    """The request envelope (not the ruleset input) is malformed."""

    code = "invalid_request"


# -- releases: four-eyes publishing and rollouts (CONTRACT.md wave 2) ----------------------


class VersionNotActive(ServiceError):
    """A pinned version is proposed (or rejected): only `"dry_run": true` may evaluate a proposed one."""

    code = "version_not_active"


class SelfApproval(ServiceError):
    """Four eyes: the identity that proposed a version (or already approved it) cannot approve it."""

    code = "self_approval"


class ReleaseConflict(ServiceError):
    """The transition does not apply to the version's current registry status
    (approving an active version, rejecting a rejected one, …)."""

    code = "release_conflict"


class InvalidRollout(ServiceError):
    """A rollout names an unusable challenger, mode, share or sticky key."""

    code = "invalid_rollout"


class NoRollout(ServiceError):
    """The ruleset has no rollout running."""

    code = "no_rollout"


class UnknownJob(ServiceError):
    """No job with this id."""

    code = "unknown_job"


class JobNotFinished(ServiceError):
    """The job has no result yet (queued or running), or has already finished (cannot be cancelled)."""

    code = "job_not_finished"


class JobFinished(ServiceError):
    """The job is done or failed: there is nothing left to cancel."""

    code = "job_finished"
