"""Input validation built from a ruleset's declared schema: strict, complete, every problem named."""
from __future__ import annotations

import copy
from decimal import Decimal

import pytest

from service.errors import InvalidInput
from tests.engine.samples import sample_inputs


@pytest.fixture(scope="module")
def validator(shipped):
    # 1.0.0: its compliance defaults are the ones asserted here (1.1.0 defaults them to null, fail closed)
    return shipped.get("sme-credit-policy", "1.0.0").validator


def problems(validator, raw) -> dict[str, str]:
    with pytest.raises(InvalidInput) as exc:
        validator.load(raw)
    return {p.path: p.message for p in exc.value.problems}


def test_defaults_are_filled(validator):
    data = validator.load(sample_inputs()[0])
    assert data["applicant"]["existing_customer"] is False
    assert data["compliance"]["approvals"]["project"] is True
    assert data["request"]["facility_rating"] is None


def test_every_problem_is_listed_with_its_path(validator):
    raw = copy.deepcopy(sample_inputs()[0])
    raw["applicant"]["credit_code"] = "91330106MA2B3C4D5E"   # wrong check character
    raw["applicant"]["province"] = "浙江"                      # not a GB/T 2260 name
    raw["applicant"]["existing_customer"] = 1                  # not a boolean
    raw["request"]["amount"] = "300000"                        # a string, not a number
    raw["request"]["amount_typo"] = 5                          # unknown field
    raw["request"]["term_months"] = 361                        # out of bounds
    raw["applicant"]["annual_revenue"] = Decimal("1.001")      # more places than the scale
    found = problems(validator, raw)
    for path in ("input.applicant.credit_code", "input.applicant.province", "input.applicant.existing_customer",
                 "input.request.amount", "input.request.amount_typo", "input.request.term_months",
                 "input.applicant.annual_revenue"):
        assert path in found, (path, found)


def test_required_fields(validator):
    raw = copy.deepcopy(sample_inputs()[0])
    del raw["applicant"]["name"]
    assert problems(validator, raw) == {"input.applicant.name": "is required"}


def test_cross_field_constraint(shipped):
    lv = shipped.versions("sme-loan-pricing")[0]
    raw = {"term_months": 6, "coefficients": {"rating": 1, "guarantee": 1, "contribution": 1, "prospect": 1},
           "weights": {"rating": Decimal("0.5"), "guarantee": Decimal("0.5"), "contribution": Decimal("0.5"), "prospect": 0}}
    found = problems(lv.validator, raw)
    assert any(path.startswith("input.weights") for path in found), found


def test_unknown_keys_are_listed_in_the_same_order_in_every_process(validator):
    """marshmallow finds unknown keys in set order, which follows the per-process string hash;
    the 422 must not depend on it (same input, same answer, byte for byte)."""
    import json
    import os
    import subprocess
    import sys

    raw = copy.deepcopy(sample_inputs()[0])
    for i in range(40):
        raw["request"][f"extra_{i:02d}"] = i
    with pytest.raises(InvalidInput) as exc:
        validator.load(raw)
    here = [p.path for p in exc.value.problems]
    unknown = [p for p in here if "extra_" in p]
    assert unknown == sorted(unknown) and len(unknown) == 40
    outputs = set()
    for seed in ("1", "2", "3"):
        code = (
            "import json\n"
            "from service.schemas.ruleset_input import _flatten\n"
            # keys in string-hash order, as marshmallow's set difference yields them
            "keys = sorted((f'extra_{i:02d}' for i in range(40)), key=hash)\n"
            "msgs = {'request': {k: ['Unknown field.'] for k in keys}}\n"
            "out = []\n"
            "_flatten(msgs, 'input', out)\n"
            "print(json.dumps([p.path for p in out]))\n"
        )
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))), check=True)
        outputs.add(result.stdout)
    assert len(outputs) == 1
    assert json.loads(outputs.pop()) == sorted(unknown)
