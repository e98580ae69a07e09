"""What names, versions and ids look like: one definition for the parser, the request
schemas and the query schemas (a leaf module: it imports nothing of the service)."""
from __future__ import annotations

import re

RULESET_NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
MAX_RULESET_NAME_LENGTH = 64
SEMVER_RE = re.compile(r"^(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})$")
RULE_ID_RE = re.compile(r"^[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*$")
MAX_RULE_ID_LENGTH = 64
REASON_CODE_RE = re.compile(r"^[A-Z][A-Z0-9_]{1,63}$")
# Decision ids are UUIDs (version 7: sortable by time).
DECISION_ID_RE = re.compile(r"^[0-9a-fA-F-]{36}$")
MAX_APPLICATION_ID_LENGTH = 100
SHA256_HEX_RE = re.compile(r"^[0-9a-f]{64}$")


def is_ruleset_name(value: str) -> bool:
    return len(value) <= MAX_RULESET_NAME_LENGTH and bool(RULESET_NAME_RE.match(value))


def is_version(value: str) -> bool:
    return bool(SEMVER_RE.match(value))
