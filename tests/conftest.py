"""Shared fixtures: the shipped rulesets loaded once, and small helper rulesets."""
from __future__ import annotations

from pathlib import Path

import pytest

from service.decision_engine.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
RULESETS_DIR = ROOT / "rulesets"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def shipped() -> Registry:
    """Every shipped ruleset, loaded (and their embedded tests run) once."""
    registry = Registry()
    failures = registry.load_directory(RULESETS_DIR)
    assert not failures, {k: [p.as_dict() for p in v] for k, v in failures.items()}
    return registry


@pytest.fixture(scope="session")
def toy() -> Registry:
    registry = Registry()
    failures = registry.load_directory(FIXTURES / "rulesets")
    assert not failures, {k: [p.as_dict() for p in v] for k, v in failures.items()}
    return registry
