"""RULES_API_TOKENS entries `[name=]token:role+role` (docs/api-contract.md, "Running it")."""
from __future__ import annotations

import hashlib
import re

import pytest

from service.config import ConfigError, Settings, parse_token_entries, token_identity


def test_named_and_unnamed_entries():
    entries = parse_token_entries("li.wei=prod-91c2aa:publish+evaluate, core-7f3a9c:evaluate,wang.fang=appr-6a2d11:approve")
    assert entries == [
        ("li.wei", "prod-91c2aa", frozenset({"publish", "evaluate"})),
        ("token:" + hashlib.sha256(b"core-7f3a9c").hexdigest()[:12], "core-7f3a9c", frozenset({"evaluate"})),
        ("wang.fang", "appr-6a2d11", frozenset({"approve"})),
    ]
    assert token_identity("core-7f3a9c") == entries[1][0] and len(entries[1][0]) == len("token:") + 12


def test_settings_keep_roles_by_token_and_identities_apart():
    settings = Settings.from_env({"RULES_API_TOKENS": "li.wei=prod-91c2aa:publish,audit-55d0bb:audit",
                                  "PUBLISH_APPROVALS": "2"})
    assert settings.tokens == {"prod-91c2aa": frozenset({"publish"}), "audit-55d0bb": frozenset({"audit"})}
    assert settings.identities["prod-91c2aa"] == "li.wei"
    assert settings.identities["audit-55d0bb"].startswith("token:")
    assert settings.publish_approvals == 2
    assert Settings.from_env({}).publish_approvals == 1
    assert Settings().override({"tokens": "a.b=abcdefgh:approve"}).identities == {"abcdefgh": "a.b"}


@pytest.mark.parametrize("text, message", [
    ("=prod-91c2aa:publish", "not [name=]token"),
    ("li wei=prod-91c2aa:publish", "a name is"),
    ("token:x=prod-91c2aa:publish", "a name is"),
    ("li=prod-91c2aa:release", "unknown role"),
    ("li=prod-91c2aa:publish,li=other-token-1:audit", "repeats the name"),
    ("li=short:publish", "at least 8"),
])
def test_bad_entries_are_refused_without_echoing_the_token(text, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as refused:
        parse_token_entries(text)
    assert "prod-91c2aa" not in str(refused.value) and "other-token-1" not in str(refused.value)


def test_a_negative_approval_count_is_refused():
    with pytest.raises(ConfigError):
        Settings.from_env({"PUBLISH_APPROVALS": "-1"})
