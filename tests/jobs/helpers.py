"""Data for the job tests: sme-credit-policy 1.0.0 (shipped) against a derived version with a
stricter rating floor, and many applications built from the shipped version's own test cases."""
from __future__ import annotations

import itertools
import time

import yaml

from tests.server import ROOT

SME = "sme-credit-policy"
SME_SOURCE = (ROOT / "rulesets" / SME / "1.0.0.yaml").read_text(encoding="utf-8")
RATINGS = ["AAA", "AA", "A", "BBB", "BB", "B", "CCC", None]


def sme_stricter_yaml(version: str = "1.0.1") -> str:
    """1.0.0 with the standard rating floor raised from B to BB; its embedded tests (written
    for 1.0.0's floor) dropped."""
    text = SME_SOURCE.replace("version: '1.0.0'", f"version: '{version}'", 1)
    text = text.replace("rating_floor_standard: {type: rating, value: B,", "rating_floor_standard: {type: rating, value: BB,", 1)
    assert "value: BB," in text
    return text[:text.index("\ntests:")] + "\n"


def sme_applications(n: int, prefix: str = "JOB") -> list[dict]:
    """n applications: the shipped test cases' inputs, each with a cycling credit rating."""
    cases = yaml.safe_load(SME_SOURCE)["tests"]
    out = []
    for i, (case, rating) in enumerate(zip(itertools.cycle(cases), itertools.cycle(RATINGS))):
        if i == n:
            break
        data = _plain(case["input"])
        data["applicant"]["credit_rating"] = rating
        out.append({"application_id": f"{prefix}-{i:06d}", "as_of": str(case.get("as_of", "2026-01-15")), "input": data})
    return out


def _plain(value):
    """YAML values as JSON would carry them (dates as text)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def wait_for_job(get, job_id: str, timeout: float = 120, until=("done", "failed", "cancelled")) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = get(f"/v1/jobs/{job_id}").json()
        if job["status"] in until or time.monotonic() > deadline:
            return job
        time.sleep(0.2)
