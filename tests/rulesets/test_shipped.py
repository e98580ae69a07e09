"""The shipped rulesets: every embedded test passes, every rule fires in some test, and the
seed documents' worked examples come out as the seeds say."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from service.rulesets.testing import run_tests
from tests.conftest import RULESETS_DIR

NAMES = ("sme-credit-policy", "sme-size-classification", "coal-industry-policy", "mortgage-payment-loan", "sme-loan-pricing",
         "post-loan-monitoring")


def test_the_shipped_rulesets():
    assert sorted(p.name for p in RULESETS_DIR.iterdir() if p.is_dir()) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_embedded_tests_pass_with_full_rule_coverage(shipped, name):
    for lv in shipped.versions(name):
        report = run_tests(lv, shipped)
        failures = [f"{c.name}: {f}" for c in report.cases for f in c.failures]
        assert failures == [], lv.ruleset.key
        assert report.uncovered == [], f"{lv.ruleset.key}: rules no test fires"
        assert len(report.cases) >= len(lv.ruleset.rules) // 2


def test_abc_trading_is_small_under_the_2003_standard(shipped):
    """Seed 001 part 8: 杭州ABC贸易有限公司, medical-device wholesale, sales 3,400万 in 2009: 典型的小企业."""
    lv, evaluation = shipped.evaluate("sme-size-classification", {
        "industry_code": "F5174", "employees": 80, "annual_revenue": Decimal("34000000"),
        "total_assets": Decimal("20000000")}, as_of=dt.date(2010, 3, 1))
    assert lv.version == "1.0.0"
    assert evaluation.results == {"standard": "2003", "sector": "wholesale", "size_class": "small", "is_sme": True}
    assert evaluation.outcome == "APPROVE"


def test_abc_trading_loan_priced_as_in_the_seed(shipped):
    """Seed 001 part 8: 6-month loan in 2010 at ≈8.15% a year, ≈6.79‰ a month."""
    lv, evaluation = shipped.evaluate("sme-loan-pricing", {
        "term_months": 6,
        "coefficients": {"rating": Decimal("0.55"), "guarantee": Decimal("0.65"),
                         "contribution": Decimal("0.75"), "prospect": Decimal("0.70")},
        "weights": {"rating": Decimal("0.15"), "guarantee": Decimal("0.25"),
                    "contribution": Decimal("0.25"), "prospect": Decimal("0.35")},
    }, as_of=dt.date(2010, 6, 1))
    assert lv.ruleset.effective_from == dt.date(2008, 12, 23)
    assert evaluation.results["base_rate"] == Decimal("4.86")
    assert evaluation.results["annual_rate"] == Decimal("8.1527")
    assert evaluation.results["monthly_rate_permille"] == Decimal("6.79")


@pytest.mark.parametrize("as_of, standard", [
    (dt.date(2011, 6, 17), "2003"), (dt.date(2011, 6, 18), "2011"), (dt.date(2026, 11, 24), "2011")])
def test_the_standard_in_force_is_chosen_by_date(shipped, as_of, standard):
    _, evaluation = shipped.evaluate("sme-size-classification", {
        "industry_code": "C3670", "employees": 50, "annual_revenue": Decimal("5000000"),
        "total_assets": Decimal("5000000")}, as_of=as_of)
    assert evaluation.results["standard"] == standard


def test_sme_credit_policy_uses_the_size_standard_in_force(shipped):
    from tests.engine.samples import sample_inputs

    lv = shipped.resolve("sme-credit-policy", None, dt.date(2026, 1, 15))
    data = lv.validator.load(sample_inputs()[0])
    evaluation = shipped.evaluate_loaded(lv, data, as_of=dt.date(2026, 1, 15))
    assert evaluation.uses["size"].ruleset.version == "2.0.0"
    assert evaluation.results["size_class"] == evaluation.uses["size"].results["size_class"]
