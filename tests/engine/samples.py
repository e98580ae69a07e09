"""A handful of very different, valid sme-credit-policy inputs (as JSON requests carry them)."""
from __future__ import annotations

import copy
from decimal import Decimal

_BASE = {
    "applicant": {
        "name": "杭州ABC贸易有限公司",
        "credit_code": "91330106MA2B3C4D5D",
        "industry_code": "C3670",
        "province": "浙江省",
        "employees": 120,
        "annual_revenue": Decimal("50000000"),
        "total_assets": Decimal("30000000"),
        "credit_rating": "BBB",
        "financials_sound": True,
    },
    "compliance": {},
    "request": {
        "amount": Decimal("300000"),
        "term_months": 12,
        "purpose": "working_capital",
        "mode": "individual",
        "product": "working_capital_loan",
    },
}


def _with(**changes) -> dict:
    data = copy.deepcopy(_BASE)
    for path, value in changes.items():
        section, key = path.split("__", 1)
        data[section][key] = value
    return data


def sample_inputs() -> list[dict]:
    return [
        _BASE,  # in scope, single quality, priority region, small amount: approve
        _with(compliance__prohibited_product=True, applicant__existing_customer=True,
              compliance__catalog_class="eliminated"),  # prohibitions: decline and exit
        _with(applicant__industry_code="G5410", applicant__province="北京市"),  # transport: out of scope
        _with(applicant__credit_rating="CCC", request__mode="supplier_dealer", request__product="factoring",
              applicant__core_enterprise={"name": "一汽", "kind": "soe", "relationship": "supplier", "industry_code": "C3610"},
              request__mode_details={"core_commitment": True}, request__facility_rating="BB",
              applicant__province="四川省", applicant__credit_code="91610000MA6TG12349"),  # relaxed floor
        _with(applicant__credit_rating=None, request__amount=Decimal("20000000.01"),
              request__mode="joint_guarantee", request__mode_details={"group_size": 2, "mutual_joint_liability": False}),
        _with(applicant__employees=5000, applicant__annual_revenue=Decimal("900000000"),
              applicant__total_assets=Decimal("900000000")),  # large: not an SME
        _with(applicant__financials_sound=False, applicant__province="广东省",
              applicant__cluster={"name": "十堰汽车产业集群", "kind": "industrial_cluster", "key_region": True},
              request__mode="specialized_market", request__product="goods_pledge",
              request__mode_details={"market_supervision": True}),
    ]
