"""Policy release 2027-01 (DOMAIN.md §6): the new versions say what the seeds say, the versions they
succeed are untouched and keep answering before 2027-01-01, and every §6 row behaves as written.

Each §6 row is checked on one application evaluated under the old and the new version (when the
input is valid under both) so a test shows the correction, not only the new behaviour."""
from __future__ import annotations

import copy
import datetime as dt
import hashlib
from decimal import Decimal

import pytest

from service.decision_engine.registry import Registry
from tests.conftest import RULESETS_DIR

BEFORE, AFTER = dt.date(2026, 12, 31), dt.date(2027, 1, 1)

# Published versions are immutable: the versions the release succeeds keep their identity (sha256 of
# the canonical form, what decisions and replays cite) and their file bytes.
PINNED = {
    ("sme-credit-policy", "1.0.0"): ("7e6104c585b992bc7a6e146c43d083af5babb5944279464042ecb9cd8eeb36d9",
                                     "6a7fac7a6459afe1f819a6b7e85324d52f43e15daa83db72a3692bb06cb083bc"),
    ("coal-industry-policy", "1.0.0"): ("5e04e9683e5a188e96db53663456866a37f832c8c43bf4b93555ecae9c41d448",
                                        "9c231678a1afc845050e05ab629201328486eb6436e7c070f1ddaa78a787d413"),
    ("sme-loan-pricing", "2.5.0"): ("ad508ec115d3dc75e2c3d56f944a71823f39870920fc4f502e2f212ba59181f8",
                                    "d58e3d6c9029c0f01fd911fb26dd03ffa889d7cc4fd9f30deffb9dcec6e95c8e"),
}
SUCCESSORS = {"sme-credit-policy": ("1.0.0", "1.1.0"), "coal-industry-policy": ("1.0.0", "1.1.0"),
              "sme-loan-pricing": ("2.5.0", "2.6.0")}

ATTESTED = {"prohibited_product": False, "low_level_duplicate": False, "illegal_equity_investment": False,
            "illegal_securities_investment": False, "other_violation": False,
            "approvals": {"project": True, "environmental": True, "land": True, "irregular": False},
            "environment": {"emissions_compliant": True, "emission_quota": True, "closure_ordered": False}}
UNATTESTED_FIELDS = [
    "compliance.prohibited_product", "compliance.low_level_duplicate", "compliance.illegal_equity_investment",
    "compliance.illegal_securities_investment", "compliance.approvals.project", "compliance.approvals.environmental",
    "compliance.approvals.land", "compliance.approvals.irregular", "compliance.environment.emissions_compliant",
    "compliance.environment.emission_quota", "compliance.environment.closure_ordered", "compliance.other_violation"]


def sme(applicant=None, request=None, compliance=ATTESTED) -> dict:
    """杭州ABC贸易有限公司: a small single-quality SME in Zhejiang, rated BBB, individual loan of 300,000."""
    data = {
        "applicant": {"name": "杭州ABC贸易有限公司", "credit_code": "91330106MA2B3C4D5D", "industry_code": "C3670",
                      "province": "浙江省", "employees": 120, "annual_revenue": 50000000, "total_assets": 30000000,
                      "credit_rating": "BBB", "financials_sound": True, **(applicant or {})},
        "request": {"amount": 300000, "term_months": 12, "purpose": "working_capital", "mode": "individual",
                    "product": "working_capital_loan", **(request or {})},
    }
    if compliance is not None:
        data["compliance"] = copy.deepcopy(compliance)
    return data


def coal(applicant=None, request=None) -> dict:
    """A class-3 group in 贵州 (output 200万吨, rated BBB), every admission fact attested."""
    return {
        "applicant": {"credit_rating": "BBB", "province": "贵州省", "group_output_mt": 200, "mineable_years": 20,
                      "debt_ratio_2y": Decimal("0.75"), "recovery_mechanization": "local_average",
                      "authority_approved": True, "safety_env_compliant": True, "complete_chain": True,
                      "has_reserves": True, **(applicant or {})},
        "mines": [{"name": "一号井", "capacity_mt": 45, "stage": "existing"}, {"name": "二号井", "capacity_mt": 30, "stage": "existing"}],
        "request": {"credit_type": "trade_finance", "guarantee": "group_guarantee", **(request or {})},
    }


def evaluate(registry: Registry, name: str, version: str, data: dict, as_of: dt.date = dt.date(2027, 1, 15)):
    lv = registry.get(name, version)
    return registry.evaluate_loaded(lv, lv.validator.load(copy.deepcopy(data)), as_of=as_of)


def codes(evaluation) -> list[str]:
    return [r["code"] for r in evaluation.reasons]


# -- the old versions are untouched and keep answering before the release date -------------------


@pytest.mark.parametrize("key", sorted(PINNED))
def test_the_succeeded_versions_are_byte_identical(shipped, key):
    name, version = key
    canonical_sha, file_sha = PINNED[key]
    assert shipped.get(name, version).ruleset.sha256 == canonical_sha
    assert hashlib.sha256((RULESETS_DIR / name / f"{version}.yaml").read_bytes()).hexdigest() == file_sha
    assert shipped.get(name, version).ruleset.effective_to is None  # no end date was added to a published version


@pytest.mark.parametrize("name", sorted(SUCCESSORS))
def test_as_of_picks_the_old_version_before_2027_and_the_new_one_from_it(shipped, name):
    old, new = SUCCESSORS[name]
    assert shipped.resolve(name, None, BEFORE).version == old
    assert shipped.resolve(name, None, AFTER).version == new
    assert shipped.get(name, new).ruleset.effective_from == AFTER


def test_post_loan_monitoring_ships_as_a_new_ruleset(shipped):
    assert [lv.version for lv in shipped.versions("post-loan-monitoring")] == ["1.0.0"]
    assert shipped.resolve("post-loan-monitoring", None, AFTER).version == "1.0.0"


def test_the_same_application_in_2026_and_in_2027(shipped):
    """A request that sends no compliance facts: approved automatically by 1.0.0 in 2026, referred by
    1.1.0 in 2027 because not one fact was attested."""
    data = sme(compliance=None)
    lv26, old = shipped.evaluate("sme-credit-policy", copy.deepcopy(data), as_of=dt.date(2026, 11, 24))
    lv27, new = shipped.evaluate("sme-credit-policy", copy.deepcopy(data), as_of=dt.date(2027, 1, 15))
    assert (lv26.version, lv27.version) == ("1.0.0", "1.1.0")
    assert (old.outcome, codes(old), old.results["routing"]) == ("APPROVE", [], "auto")
    assert new.outcome == "REFER"
    assert codes(new) == ["COMPLIANCE_NOT_ATTESTED"] * 12
    assert new.results["unattested_fields"] == UNATTESTED_FIELDS
    assert new.results["routing"] == "manual_review"
    # the same facts everywhere else
    for key in ("in_scope", "size_class", "segments", "credit_approach", "region_tier", "rating_floor", "eligible_products"):
        assert new.results[key] == old.results[key], key


# -- §6.1 sme-credit-policy 1.1.0 ----------------------------------------------------------------


def test_6_1_row1_government_procurement_needs_a_guarantee_company(shipped):
    data = sme(request={"mode": "government_procurement", "mode_details": {"winning_bid_notice": True, "closed_loop_account": True}})
    old, new = evaluate(shipped, "sme-credit-policy", "1.0.0", data), evaluate(shipped, "sme-credit-policy", "1.1.0", data)
    assert (old.outcome, codes(old)) == ("APPROVE", [])
    assert (new.outcome, codes(new)) == ("DECLINE", ["GOVERNMENT_PROCUREMENT_CONDITIONS_MISSING"])
    assert "routing" not in new.results
    data["request"]["mode_details"]["guarantee_company"] = True
    ok = evaluate(shipped, "sme-credit-policy", "1.1.0", data)
    assert (ok.outcome, codes(ok)) == ("APPROVE", [])


@pytest.mark.parametrize("term, outcome, reasons", [(12, "APPROVE", []), (13, "DECLINE", ["ECOMMERCE_TERM_TOO_LONG"])])
def test_6_1_row2_ecommerce_is_short_term(shipped, term, outcome, reasons):
    data = sme(request={"mode": "ecommerce", "product": "goods_pledge", "term_months": term,
                        "mode_details": {"platform_supervision": True, "security": "e_warehouse_receipt"}})
    assert evaluate(shipped, "sme-credit-policy", "1.0.0", data).outcome == "APPROVE"
    new = evaluate(shipped, "sme-credit-policy", "1.1.0", data)
    assert (new.outcome, codes(new)) == (outcome, reasons)
    assert shipped.get("sme-credit-policy", "1.1.0").ruleset.parameters["ecommerce_max_term_months"].value == 12


def test_6_1_row3_an_incubator_tenant_is_tech_innovation_only_when_a_tech_enterprise(shipped):
    data = sme(applicant={"park": "incubator", "financials_sound": False},
               request={"mode": "tech_incubation", "mode_details": {"risk_sharing": "vc_fund"}})
    old, new = evaluate(shipped, "sme-credit-policy", "1.0.0", data), evaluate(shipped, "sme-credit-policy", "1.1.0", data)
    assert (old.outcome, old.results["segments"]) == ("APPROVE", ["tech_innovation"])
    assert new.outcome == "DECLINE"
    assert codes(new) == ["NOT_TARGET_CUSTOMER", "MODE_NOT_ELIGIBLE"]
    assert new.results["segments"] == [] and "tech_incubation" not in new.results["eligible_modes"]
    data["applicant"]["tech_enterprise"] = True
    tech = evaluate(shipped, "sme-credit-policy", "1.1.0", data)
    assert (tech.outcome, tech.results["segments"], tech.results["credit_approach"]) == ("APPROVE", ["tech_innovation"], "batch")
    assert "tech_incubation" in tech.results["eligible_modes"]


@pytest.mark.parametrize("code, old_in_scope, new_in_scope", [
    ("G5810", True, False), ("G5890", True, False), ("E4811", True, False), ("E4812", True, False),
    ("G5710", False, False), ("E4710", True, True), ("E4822", True, True), ("G5990", True, True)])
def test_6_1_row4_transport_is_g53_to_g58_and_e481(shipped, code, old_in_scope, new_in_scope):
    data = sme(applicant={"industry_code": code})
    old, new = evaluate(shipped, "sme-credit-policy", "1.0.0", data), evaluate(shipped, "sme-credit-policy", "1.1.0", data)
    assert old.results["in_scope"] is old_in_scope
    assert new.results["in_scope"] is new_in_scope
    assert ("OUT_OF_SCOPE_TRANSPORT" in codes(new)) is (not new_in_scope)
    prefixes = shipped.get("sme-credit-policy", "1.1.0").ruleset.parameters["transport_industry_prefixes"].value
    assert list(prefixes) == ["G53", "G54", "G55", "G56", "G57", "G58", "E481"]


@pytest.mark.parametrize("security, routing", [
    (None, "manual_review"), ("none", "manual_review"), ("collateral", "auto"), ("pledge", "auto"),
    ("guarantee", "auto"), ("mode_platform", "auto")])
def test_6_1_row5_auto_needs_a_stated_security(shipped, security, routing):
    data = sme(request={"security": security})
    new = evaluate(shipped, "sme-credit-policy", "1.1.0", data)
    assert (new.outcome, codes(new), new.results["routing"]) == ("APPROVE", [], routing)
    # 1.0.0 has no such field: the same application without it was routed auto
    assert evaluate(shipped, "sme-credit-policy", "1.0.0", sme()).results["routing"] == "auto"


@pytest.mark.parametrize("quota, old, new", [
    ("300000", ("APPROVE", []), ("APPROVE", [])),
    ("299999.99", ("DECLINE", ["GUARANTEE_QUOTA_INSUFFICIENT"]), ("REFER", ["GUARANTEE_QUOTA_EXCEEDED"])),
    (None, ("DECLINE", ["GUARANTEE_QUOTA_INSUFFICIENT"]), ("REFER", ["GUARANTEE_QUOTA_EXCEEDED"]))])
def test_6_1_row6_above_the_guarantee_quota_is_a_refer(shipped, quota, old, new):
    details = {"guarantor_kind": "fiscal_guarantee"}
    if quota is not None:
        details["guarantor_quota_available"] = Decimal(quota)
    data = sme(request={"mode": "guarantee_platform", "mode_details": details})
    a, b = evaluate(shipped, "sme-credit-policy", "1.0.0", data), evaluate(shipped, "sme-credit-policy", "1.1.0", data)
    assert (a.outcome, codes(a)) == old
    assert (b.outcome, codes(b)) == new
    if b.outcome == "REFER":
        assert b.results["routing"] == "manual_review"


@pytest.mark.parametrize("details, outcome", [
    ({"buyback_deposit_pledge": True, "lessor_joint_guarantee": True}, "APPROVE"),
    ({"buyback_guarantee": True, "lessor_joint_guarantee": True}, "APPROVE"),
    ({"buyback_deposit_pledge": True}, "DECLINE"),
    ({"lessor_joint_guarantee": True}, "DECLINE")])
def test_6_1_row7_bank_lease_accepts_a_buyback_deposit_pledge(shipped, details, outcome):
    data = sme(request={"mode": "bank_lease", "product": "equipment_finance", "mode_details": details})
    new = evaluate(shipped, "sme-credit-policy", "1.1.0", data)
    assert new.outcome == outcome
    assert codes(new) == ([] if outcome == "APPROVE" else ["BANK_LEASE_GUARANTEES_MISSING"])


@pytest.mark.parametrize("field", UNATTESTED_FIELDS)
def test_6_1_row8_each_unattested_flag_is_named(shipped, field):
    compliance = copy.deepcopy(ATTESTED)
    node = compliance
    parts = field.split(".")[1:]
    for part in parts[:-1]:
        node = node[part]
    del node[parts[-1]]
    old = evaluate(shipped, "sme-credit-policy", "1.0.0", sme(compliance=compliance))
    new = evaluate(shipped, "sme-credit-policy", "1.1.0", sme(compliance=compliance))
    assert (old.outcome, codes(old)) == ("APPROVE", [])  # 1.0.0 read the missing flag as compliant
    assert (new.outcome, codes(new)) == ("REFER", ["COMPLIANCE_NOT_ATTESTED"])
    assert new.results["unattested_fields"] == [field]
    (reason,) = new.reasons
    assert field in reason["message_zh"] and field in reason["message_en"]
    assert reason["stage"] == "prohibition"


def test_6_1_row8_a_non_compliant_flag_is_still_a_decline(shipped):
    compliance = copy.deepcopy(ATTESTED)
    compliance["environment"]["closure_ordered"] = True
    del compliance["approvals"]["land"]
    new = evaluate(shipped, "sme-credit-policy", "1.1.0", sme(compliance=compliance))
    assert (new.outcome, codes(new)) == ("DECLINE", ["ENVIRONMENT_NONCOMPLIANT", "COMPLIANCE_NOT_ATTESTED"])
    assert new.results["unattested_fields"] == ["compliance.approvals.land"]
    assert "routing" not in new.results


@pytest.mark.parametrize("flags, routing", [([], "auto"), (["关联企业资金异常往来"], "committee")])
def test_6_1_row9_anomalies_go_to_the_committee(shipped, flags, routing):
    new = evaluate(shipped, "sme-credit-policy", "1.1.0", sme(applicant={"anomaly_flags": flags}, request={"security": "collateral"}))
    assert (new.outcome, new.results["routing"]) == ("APPROVE", routing)


def test_6_1_the_new_inputs_are_refused_by_1_0_0(shipped):
    from service.errors import InvalidInput

    with pytest.raises(InvalidInput) as exc:
        shipped.get("sme-credit-policy", "1.0.0").validator.load(sme(applicant={"tech_enterprise": True}, request={"security": "collateral"}))
    assert {p.path for p in exc.value.problems} >= {"input.applicant.tech_enterprise", "input.request.security"}


def _registry_with_size_standard(value: str) -> tuple[Registry, str]:
    """The shipped rulesets plus 1.1.0 republished (as 1.1.1) with parameter size_standard = value."""
    registry = Registry()
    assert registry.load_directory(RULESETS_DIR, run_tests=False) == {}
    text = (RULESETS_DIR / "sme-credit-policy" / "1.1.0.yaml").read_text(encoding="utf-8")
    marker = "    values: [in_force, '2003']\n    value: in_force\n"
    assert marker in text
    text = text.replace(marker, f"    values: [in_force, '2003']\n    value: '{value}'\n").replace("version: '1.1.0'", "version: '1.1.1'")
    registry.load_text(text, "yaml", run_tests=False)
    return registry, "1.1.1"


def test_6_1_size_standard_in_force_uses_the_2011_standard(shipped):
    lv = shipped.get("sme-credit-policy", "1.1.0")
    assert lv.ruleset.parameters["size_standard"].value == "in_force"
    software = sme(applicant={"industry_code": "I6510"})
    new = evaluate(shipped, "sme-credit-policy", "1.1.0", software)
    assert new.uses["size"].ruleset.version == "2.0.0"
    assert (new.outcome, new.results["size_class"], new.results["in_scope"]) == ("APPROVE", "medium", True)


def test_6_1_size_standard_2003_pins_the_seeds_literal_reading():
    registry, version = _registry_with_size_standard("2003")
    software = evaluate(registry, "sme-credit-policy", version, sme(applicant={"industry_code": "I6510"}))
    assert software.uses["size"].ruleset.version == "1.0.0"  # the 2003 standard, although as_of is 2027
    assert (software.outcome, codes(software), software.results["size_class"]) == ("REFER", ["SIZE_UNCLASSIFIED"], "unclassified")
    wholesale = evaluate(registry, "sme-credit-policy", version, sme(applicant={"industry_code": "F5174", "employees": 80,
                                                                            "annual_revenue": 34000000}))
    assert wholesale.uses["size"].results["standard"] == "2003"
    assert wholesale.results["size_class"] == "small"


# -- §6.2 coal-industry-policy 1.1.0 -------------------------------------------------------------


CLASS1 = {"credit_rating": "AA", "province": "山西省", "group_output_mt": 2500, "coal_base": "jinzhong", "mineable_years": 40,
          "debt_ratio_2y": Decimal("0.60"), "recovery_mechanization": "above_industry_average", "cbm_and_washing": "yes",
          "group_hq_or_core": True}


@pytest.mark.parametrize("policy_class", ["restricted", "eliminated"])
def test_6_2_row1_a_restricted_new_customer_is_not_admitted(shipped, policy_class):
    data = coal(applicant={**CLASS1, "policy_class": policy_class}, request={"credit_type": "trade_finance"})
    data["mines"] = [{"name": "一号井", "capacity_mt": 300, "stage": "existing"}]
    old, new = evaluate(shipped, "coal-industry-policy", "1.0.0", data), evaluate(shipped, "coal-industry-policy", "1.1.0", data)
    assert old.results["admitted"] is True
    assert new.results["admitted"] is False
    assert new.outcome == "DECLINE" and "ADMIT_POLICY_RESTRICTED" in codes(new)
    existing = evaluate(shipped, "coal-industry-policy", "1.1.0", {**data, "applicant": {**data["applicant"], "existing_customer": True}})
    assert (existing.outcome, codes(existing), existing.results["customer_class"]) == ("REFER", ["CLASS4_TRADE_FINANCE_CASE_BY_CASE"], 4)


@pytest.mark.parametrize("existing, outcome, reason", [
    (False, "DECLINE", "CLASS4_TRADE_FINANCE_NEW_CUSTOMER"), (True, "REFER", "CLASS4_TRADE_FINANCE_CASE_BY_CASE")])
def test_6_2_row2_class4_trade_finance_of_a_new_customer_is_declined(shipped, existing, outcome, reason):
    data = coal(applicant={"closed": True, "existing_customer": existing})
    old, new = evaluate(shipped, "coal-industry-policy", "1.0.0", data), evaluate(shipped, "coal-industry-policy", "1.1.0", data)
    assert (old.outcome, codes(old)) == ("REFER", ["CLASS4_TRADE_FINANCE_CASE_BY_CASE"])
    assert (new.outcome, codes(new), new.results["customer_class"]) == (outcome, [reason], 4)


@pytest.mark.parametrize("rating, within, outcome, reasons", [
    ("BBB", True, "APPROVE", []), ("AA", True, "APPROVE", []),
    ("A", False, "REFER", ["CLASS3_SHORT_TERM_CAUTIOUS"]), ("BBB", False, "DECLINE", ["CLASS3_SHORT_TERM_HOLD"])])
def test_6_2_row3_class3_short_term_within_the_existing_scale(shipped, rating, within, outcome, reasons):
    data = coal(applicant={"credit_rating": rating, "existing_customer": True},
                request={"credit_type": "short_term", "within_existing_scale": within})
    new = evaluate(shipped, "coal-industry-policy", "1.1.0", data)
    assert (new.outcome, codes(new), new.results["customer_class"]) == (outcome, reasons, 3)
    if within:  # 1.0.0 had no renewal path: the same request without the flag
        del data["request"]["within_existing_scale"]
        assert evaluate(shipped, "coal-industry-policy", "1.0.0", data).outcome in ("REFER", "DECLINE")


@pytest.mark.parametrize("field", ["authority_approved", "safety_env_compliant", "complete_chain", "has_reserves"])
def test_6_2_row4_admission_facts_fail_closed(shipped, field):
    data = coal()
    del data["applicant"][field]
    old, new = evaluate(shipped, "coal-industry-policy", "1.0.0", data), evaluate(shipped, "coal-industry-policy", "1.1.0", data)
    assert (old.outcome, codes(old)) == ("APPROVE", [])
    assert (new.outcome, codes(new)) == ("REFER", ["COMPLIANCE_NOT_ATTESTED"])
    assert new.results["unattested_fields"] == [f"applicant.{field}"]
    assert f"applicant.{field}" in new.reasons[0]["message_en"]
    assert "customer_class" not in new.results  # no class is decided on facts that were not attested


# -- §6.3 sme-loan-pricing 2.6.0 ------------------------------------------------------------------


PRICING = {"term_months": 12, "coefficients": {"rating": Decimal("0.55"), "guarantee": Decimal("0.65"),
                                               "contribution": Decimal("0.75"), "prospect": Decimal("0.70")}}


@pytest.mark.parametrize("base_rate, outcome", [(None, "APPROVE"), ("4.35", "APPROVE"), ("3.45", "REFER"), ("4.3501", "REFER")])
def test_6_3_an_overridden_base_rate_is_referred_with_both_rates(shipped, base_rate, outcome):
    data = dict(PRICING, base_rate=None if base_rate is None else Decimal(base_rate))
    old, new = evaluate(shipped, "sme-loan-pricing", "2.5.0", data), evaluate(shipped, "sme-loan-pricing", "2.6.0", data)
    assert old.outcome == "APPROVE"  # 2.5.0 replaced the legal base silently
    assert new.outcome == outcome
    assert codes(new) == ([] if outcome == "APPROVE" else ["BASE_RATE_OVERRIDDEN"])
    assert new.results["benchmark_rate"] == Decimal("4.35")
    assert new.results["base_rate"] == (Decimal("4.35") if base_rate is None else Decimal(base_rate))
    assert new.results["annual_rate"] == old.results["annual_rate"]  # priced the same way; only the review differs


# -- §6.4 post-loan-monitoring 1.0.0 --------------------------------------------------------------


def plm(**over) -> dict:
    data = {"loan": {"credit_amount": 1000000, "classification": "normal"}, "borrower": {"health_index": 95}}
    for key, value in over.items():
        data[key] = {**data.get(key, {}), **value}
    return data


@pytest.mark.parametrize("index, band, outcome", [
    ("100", "green", "APPROVE"), ("90", "green", "APPROVE"), ("89.99", "blue", "APPROVE"), ("70", "blue", "APPROVE"),
    ("69.99", "yellow", "REFER"), ("50", "yellow", "REFER"), ("49.99", "orange", "REFER"), ("30", "orange", "REFER"),
    ("29.99", "red", "DECLINE"), ("0", "red", "DECLINE")])
def test_6_4_bands_at_every_edge(shipped, index, band, outcome):
    e = evaluate(shipped, "post-loan-monitoring", "1.0.0", plm(borrower={"health_index": Decimal(index)}))
    assert (e.results["band"], e.outcome, e.results["auto_check_passed"]) == (band, outcome, outcome == "APPROVE")
    warned = band in ("yellow", "orange", "red")
    assert ("verify_within_hours" in e.results) is warned
    if warned:
        assert (e.results["verify_within_hours"], e.results["follow_up_days"]) == (24, 60)
    assert e.results["actions"] == {"green": [], "blue": [], "yellow": ["risk_response_plan", "increase_check_frequency"],
                                    "orange": ["reduce_credit_line", "additional_guarantee"], "red": ["exit_procedure"]}[band]


@pytest.mark.parametrize("over, trigger, reason, outcome", [
    ({"metrics": {"cash_flow_coverage": Decimal("1.1999")}}, "cash_flow_coverage", "CASH_FLOW_COVERAGE_LOW", "REFER"),
    ({"metrics": {"cash_flow_coverage": Decimal("1.2")}}, None, None, "APPROVE"),
    ({"metrics": {"main_customer_loss_rate": Decimal("0.3001")}}, "main_customer_loss_rate", "MAIN_CUSTOMER_LOSS", "REFER"),
    ({"metrics": {"main_customer_loss_rate": Decimal("0.30")}}, None, None, "APPROVE"),
    ({"metrics": {"tax_paid_change_3m": Decimal("-0.30")}}, "tax_paid_change_3m", "TAX_PAID_DROP", "REFER"),
    ({"metrics": {"tax_paid_change_3m": Decimal("-0.2999")}}, None, None, "APPROVE"),
    ({"signals": {"account_balance_abnormal_drop": True}}, "account_balance_abnormal_drop", "ACCOUNT_BALANCE_DROP", "REFER"),
    ({"signals": {"frequent_legal_rep_change": True}}, "frequent_legal_rep_change", "LEGAL_REP_CHANGES", "REFER"),
    ({"signals": {"short_term_debt_surge": True}}, "short_term_debt_surge", "SHORT_TERM_DEBT_SURGE", "REFER"),
    ({"signals": {"related_party_fund_diversion": True}}, "related_party_fund_diversion", "RELATED_PARTY_DIVERSION", "REFER"),
    ({"signals": {"controller_missing": True}}, "controller_missing", "CONTROLLER_MISSING", "DECLINE"),
    ({"loan": {"classification": "special_mention"}}, None, "CLASSIFICATION_SPECIAL_MENTION", "REFER"),
    ({"loan": {"classification": "substandard"}}, None, "CLASSIFICATION_NONPERFORMING", "DECLINE"),
    ({"loan": {"credit_amount": Decimal("5000000")}}, None, None, "APPROVE"),
    ({"loan": {"credit_amount": Decimal("5000000.01")}}, None, "MANUAL_POST_LOAN_CHECK", "REFER")])
def test_6_4_triggers_classification_and_scope_in_a_green_band(shipped, over, trigger, reason, outcome):
    e = evaluate(shipped, "post-loan-monitoring", "1.0.0", plm(**over))
    assert e.results["band"] == "green"
    assert e.outcome == outcome
    assert codes(e) == ([reason] if reason else [])
    assert e.results["triggers"] == ([trigger] if trigger else [])
    assert e.results["auto_check_passed"] is (outcome == "APPROVE")


def test_6_4_every_finding_is_reported(shipped):
    e = evaluate(shipped, "post-loan-monitoring", "1.0.0", plm(
        loan={"credit_amount": 6000000, "classification": "special_mention"}, borrower={"health_index": 65},
        metrics={"cash_flow_coverage": Decimal("0.9")}, signals={"frequent_legal_rep_change": True}))
    assert e.outcome == "REFER"
    assert codes(e) == ["MANUAL_POST_LOAN_CHECK", "BAND_YELLOW", "CASH_FLOW_COVERAGE_LOW", "LEGAL_REP_CHANGES",
                        "CLASSIFICATION_SPECIAL_MENTION"]
    assert e.results["triggers"] == ["cash_flow_coverage", "frequent_legal_rep_change"]


# -- the two language additions the release needed --------------------------------------------------

TINY = """
name: tiny
version: '1.0.0'
effective_from: 2020-01-01
status: active
owner: test
description: {zh: 测试, en: test}
input:
  x: {type: boolean, nullable: true, default: null}
reasons:
  NOT_STATED: {zh: 未声明, en: not stated}
stages:
  - {id: s, title_zh: 阶段, title_en: stage}
rules:
  - id: R-1
    stage: s
    title_zh: x 未声明
    title_en: x not stated
    when: {field: x, is_null: true}
    then: {outcome: REFER, reason: NOT_STATED%s}
tests:
  - name: null x
    input: {}
    expect: {outcome: REFER, reasons: [NOT_STATED]}
"""


def test_a_rule_may_word_its_reason_itself():
    registry = Registry()
    lv = registry.load_text(TINY % ", message: {zh: '字段 x 未声明', en: 'field x not stated'}", "yaml")
    e = registry.evaluate_loaded(lv, lv.validator.load({}), as_of=dt.date(2024, 1, 1))
    assert e.reasons == [{"code": "NOT_STATED", "rule_id": "R-1", "stage": "s", "message_zh": "字段 x 未声明", "message_en": "field x not stated"}]
    plain = Registry().load_text(TINY % "", "yaml")
    assert plain.evaluator.reason_entry["R-1"]["message_en"] == "not stated"


def test_a_rule_message_needs_both_languages_and_a_reason():
    from service.errors import InvalidRuleset

    with pytest.raises(InvalidRuleset) as exc:
        Registry().load_text(TINY % ", message: {zh: 只有中文}", "yaml")
    assert any(p.path.endswith("then.message.en") for p in exc.value.problems)
    with pytest.raises(InvalidRuleset) as exc:
        Registry().load_text(TINY.replace("then: {outcome: REFER, reason: NOT_STATED%s}", "then: {set: {}, message: {zh: a, en: b}}"), "yaml")
    assert any(p.path.endswith("then.message") for p in exc.value.problems)


@pytest.mark.parametrize("as_of, problem", [
    ("{param: nope, dates: {'2003': 2011-06-17}}", "unknown_parameter"),
    ("{param: size_standard, dates: {'1999': 2011-06-17}}", "bad_uses"),
    ("{param: size_standard, dates: {'2003': not-a-date}}", "bad_date"),
    ("2011-06-17", "bad_uses")])
def test_a_uses_as_of_is_checked(shipped, as_of, problem):
    from service.errors import InvalidRuleset

    text = (RULESETS_DIR / "sme-credit-policy" / "1.1.0.yaml").read_text(encoding="utf-8")
    old = "    as_of: {param: size_standard, dates: {'2003': 2011-06-17}}\n"
    assert old in text
    registry = Registry()
    for lv in shipped.versions("sme-size-classification"):
        registry.add(lv)
    with pytest.raises(InvalidRuleset) as exc:
        registry.load_text(text.replace(old, f"    as_of: {as_of}\n").replace("version: '1.1.0'", "version: '1.1.9'"), "yaml", run_tests=False)
    assert problem in {p.code for p in exc.value.problems}, [p.as_dict() for p in exc.value.problems]
