"""Regenerate docs/releases/2027-01.md: per ruleset, the service's own diff and impact analysis.

    .venv/bin/python scripts/release_notes.py            # writes docs/releases/2027-01.md
    .venv/bin/python scripts/release_notes.py --check    # exit 1 if the file is not what this produces

The service runs in-process (create_app + Flask's test client, a throwaway DATA_DIR): the diff comes
from GET /v1/rulesets/{name}/diff and the impact from POST /v1/rulesets/{name}/impact with the
generated applications in chunks of 1,000; post-loan-monitoring (new, nothing to compare) is evaluated
through POST /v1/decisions:batch. The portfolios are generated with a seeded RNG, so the file is
byte-for-byte reproducible.

The applications are shaped as core banking sends them today, i.e. valid under the old versions too
(impact evaluates one input under both versions, and 1.0.0 refuses the fields 1.1.0 adds): the new
inputs (`request.security`, `applicant.tech_enterprise`, `mode_details.guarantee_company`, …) take their
1.1.0 defaults. The numbers are therefore the day-one impact before core banking sends the new fields.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service import create_app  # noqa: E402

OUT = ROOT / "docs" / "releases" / "2027-01.md"
TOKEN = "release-notes-2027"
AS_OF = "2027-01-15"
N = 2400
CHUNK = 1000
SEED = 20270101
OUTCOMES = ("APPROVE", "REFER", "DECLINE")


def pick(rng: random.Random, weighted: dict):
    return rng.choices(list(weighted), weights=list(weighted.values()))[0]


def money(x: float) -> float:
    """A JSON number with two decimals (the service reads JSON numbers as exact decimals)."""
    return round(max(x, 1.0), 2)


def dec(x: float, places: int) -> float:
    return round(x, places)


# ------------------------------------------------------------------ portfolios

INDUSTRIES = {  # GB/T 4754-2017 codes, weighted like an SME book in the east of China
    "C3670": 9, "C3511": 6, "C1810": 7, "C2614": 5, "C3989": 6, "C3360": 5, "C2231": 3, "C1331": 3,
    "F5174": 6, "F5123": 5, "F5143": 3, "F5211": 4, "F5261": 3,
    "I6510": 4, "I6420": 2, "G5410": 2, "G5810": 2, "G5990": 1, "G5320": 0.5,
    "E4710": 2, "E4812": 1.5, "E4991": 1, "K7020": 1.5, "K7010": 0.7, "A0111": 2, "A0412": 1,
    "H6110": 1.5, "H6210": 2, "L7212": 2, "L7281": 1, "M7320": 1.5, "S9221": 0.3,
}
PROVINCES = {"浙江省": 17, "江苏省": 15, "上海市": 6, "广东省": 14, "北京市": 5, "天津市": 3, "山东省": 8, "福建省": 5,
             "四川省": 6, "河南省": 5, "湖北省": 5, "安徽省": 4, "陕西省": 3, "广西壮族自治区": 2, "新疆维吾尔自治区": 1, "辽宁省": 1}
RATINGS = {"AAA": 2, "AA": 6, "A": 14, "BBB": 26, "BB": 21, "B": 14, "CCC": 8, "CC": 3, "C": 1, None: 5}
MODES = {"individual": 40, "supplier_dealer": 17, "guarantee_platform": 12, "specialized_market": 8, "government_procurement": 5,
         "ecommerce": 6, "bank_lease": 3, "joint_guarantee": 4, "low_carbon": 2, "tech_incubation": 2, "equity_warrant": 1}
PRODUCTS = {
    "individual": ["working_capital_loan", "collateral_loan", "fixed_asset_loan", "trade_finance", "factoring"],
    "supplier_dealer": ["factoring", "goods_pledge", "confirmed_warehouse", "trade_finance", "working_capital_loan", "full_process"],
    "guarantee_platform": ["working_capital_loan", "trade_finance"],
    "specialized_market": ["goods_pledge", "confirmed_warehouse", "working_capital_loan"],
    "bank_lease": ["equipment_finance"], "joint_guarantee": ["working_capital_loan"],
    "government_procurement": ["working_capital_loan"], "ecommerce": ["goods_pledge", "working_capital_loan"],
    "equity_warrant": ["warrant_mortgage_loan"], "tech_incubation": ["working_capital_loan", "collateral_loan"],
}
LOW_CARBON = {"emc": "emc_loan", "cdm": "cdm_loan", "green_rights_pledge": "green_rights_pledge_loan"}
COMPLIANCE_FLAGS = [("prohibited_product", False), ("low_level_duplicate", False), ("illegal_equity_investment", False),
                    ("illegal_securities_investment", False), ("other_violation", False),
                    ("approvals.project", True), ("approvals.environmental", True), ("approvals.land", True),
                    ("approvals.irregular", False), ("environment.emissions_compliant", True),
                    ("environment.emission_quota", True), ("environment.closure_ordered", False)]
# 统一社会信用代码 with a valid GB 32100 check character
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_W = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def uscc(rng: random.Random) -> str:
    body = "91" + "".join(rng.choice("0123456789") for _ in range(6)) + "".join(rng.choice(_USCC_CHARS) for _ in range(9))
    total = sum(_USCC_CHARS.index(c) * w for c, w in zip(body, _USCC_W))
    return body + _USCC_CHARS[(31 - total % 31) % 31]


def set_path(d: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
    d[parts[-1]] = value


def sme_application(rng: random.Random, i: int) -> dict:
    industry = pick(rng, INDUSTRIES)
    employees = max(1, int(rng.lognormvariate(3.6, 1.0)))
    if rng.random() < 0.03:
        employees = rng.randint(1200, 6000)  # a few large corporates reach the SME desk
    revenue = employees * rng.lognormvariate(12.9, 0.6)
    assets = revenue * rng.uniform(0.4, 1.6)
    applicant = {"name": f"样本企业{i:05d}有限公司", "credit_code": uscc(rng), "industry_code": industry,
                 "province": pick(rng, PROVINCES), "employees": employees, "annual_revenue": money(revenue),
                 "total_assets": money(assets), "credit_rating": pick(rng, RATINGS)}
    if rng.random() < 0.35:
        applicant["existing_customer"] = True
    if rng.random() < 0.55:
        applicant["financials_sound"] = True
    if rng.random() < 0.30:
        applicant["strong_collateral"] = True
    if rng.random() < 0.08:
        applicant["national_tech_sme"] = True
    if rng.random() < 0.22:
        applicant["park"] = pick(rng, {"national_high_tech_zone": 35, "incubator": 25, "national_software_park": 10,
                                       "torch_base": 10, "university_science_park": 10, "startup_park": 10})
    mode = pick(rng, MODES)
    if mode == "supplier_dealer" or rng.random() < 0.12:
        applicant["core_enterprise"] = {"name": "核心企业集团", "kind": pick(rng, {"soe": 5, "industry_leader": 4, "government": 1}),
                                        "relationship": pick(rng, {"supplier": 6, "dealer": 4}),
                                        "industry_code": pick(rng, {"C3670": 4, "C3511": 3, "C3710": 1, "F5174": 2})}
    if mode == "specialized_market" or rng.random() < 0.12:
        applicant["cluster"] = {"name": "产业集群", "kind": pick(rng, {"industrial_cluster": 6, "specialized_market": 4}),
                                "key_region": rng.random() < 0.7}
    if mode in ("tech_incubation", "equity_warrant") and rng.random() < 0.8:
        applicant["park"] = "national_high_tech_zone" if mode == "equity_warrant" or rng.random() < 0.5 else "incubator"
    product = rng.choice(PRODUCTS.get(mode, ["working_capital_loan"]))
    details: dict = {}
    complete = rng.random() < 0.9  # most requests carry the mode's details
    if mode == "supplier_dealer":
        details["core_commitment"] = complete
    elif mode == "guarantee_platform":
        details["guarantor_kind"] = pick(rng, {"fiscal_guarantee": 5, "re_guarantee": 2, "fund": 1, "regional_leader": 2}) if complete else None
    elif mode == "specialized_market":
        details["market_supervision"] = complete
    elif mode == "bank_lease":
        details.update(buyback_guarantee=complete and rng.random() < 0.85, lessor_joint_guarantee=complete)
    elif mode == "joint_guarantee":
        details.update(mutual_joint_liability=complete, group_size=rng.randint(2, 8))
    elif mode == "government_procurement":
        details.update(winning_bid_notice=complete, closed_loop_account=complete and rng.random() < 0.95)
    elif mode == "low_carbon":
        instrument = rng.choice(list(LOW_CARBON))
        details["instrument"] = instrument
        product = LOW_CARBON[instrument]
    elif mode == "ecommerce":
        details.update(platform_supervision=complete, security=pick(rng, {"e_warehouse_receipt": 5, "guarantee_company": 3, "joint_guarantee": 2}))
    elif mode == "equity_warrant":
        details.update(pe_vc_designated=complete, park_risk_compensation=complete)
    elif mode == "tech_incubation":
        details["risk_sharing"] = pick(rng, {"gov_compensation": 4, "vc_fund": 3, "third_party": 2}) if complete else "none"
    amount = min(rng.lognormvariate(13.6, 1.0), 40_000_000)
    if mode == "guarantee_platform":
        details["guarantor_quota_available"] = money(amount * rng.uniform(0.7, 3.0)) if rng.random() < 0.9 else None
    term = pick(rng, {6: 15, 12: 45, 18: 5, 24: 12, 36: 15, 60: 6, 120: 2})
    request = {"amount": money(amount), "term_months": term,
               "purpose": pick(rng, {"working_capital": 70, "fixed_asset": 12, "trade": 12, "project": 4, "land_reserve": 1, "park_development": 1}),
               "mode": mode, "product": product}
    if rng.random() < 0.10:
        request["new_build"] = True
    if applicant["credit_rating"] in ("CCC", "CC", "C") and rng.random() < 0.7:
        request["facility_rating"] = pick(rng, {"BBB": 2, "BB": 4, "B": 3, "CCC": 2})
    if details:
        request["mode_details"] = details
    application = {"applicant": applicant, "request": request}
    # compliance facts: a full attestation, a partial one, or none at all
    attestation = rng.random()
    if attestation < 0.80:
        compliance: dict = {"catalog_class": pick(rng, {"permitted": 80, "encouraged": 15, "restricted": 4, "eliminated": 1})}
        flags = list(COMPLIANCE_FLAGS)
        if attestation >= 0.62:  # partial: one to four facts left out
            for _ in range(rng.randint(1, 4)):
                flags.remove(rng.choice(flags))
        for path, ok in flags:
            set_path(compliance, path, (not ok) if rng.random() < 0.01 else ok)
        application["compliance"] = compliance
    return {"application_id": f"SME-{i:05d}", "input": application}


COAL_PROVINCES = {"山西省": 30, "陕西省": 15, "内蒙古自治区": 20, "贵州省": 8, "安徽省": 6, "河南省": 8, "山东省": 5, "宁夏回族自治区": 4, "云南省": 4}
COAL_BASES = {"山西省": ["jinbei", "jinzhong", "jindong"], "陕西省": ["shanbei", "huanglong"], "内蒙古自治区": ["shendong", "mengdong"],
              "贵州省": ["yungui"], "云南省": ["yungui"], "安徽省": ["lianghuai"], "河南省": ["henan"], "山东省": ["luxi"], "宁夏回族自治区": ["ningdong"]}


def coal_application(rng: random.Random, i: int) -> dict:
    province = pick(rng, COAL_PROVINCES)
    output = rng.lognormvariate(6.6, 1.1)
    applicant = {"credit_rating": pick(rng, {"AAA": 5, "AA": 14, "A": 24, "BBB": 28, "BB": 16, "B": 9, "CCC": 3, "CC": 1}),
                 "province": province, "group_output_mt": money(output),
                 "mineable_years": money(rng.uniform(8, 60)), "debt_ratio_2y": dec(rng.uniform(0.45, 0.9), 4),
                 "recovery_mechanization": pick(rng, {"above_industry_average": 25, "above_local_average": 40, "local_average": 30, "below_local_average": 5}),
                 "policy_class": pick(rng, {"normal": 90, "restricted": 7, "eliminated": 3})}
    if rng.random() < 0.8:
        applicant["coal_base"] = rng.choice(COAL_BASES[province])
    for flag, p in (("poor_management", 0.05), ("resources_depleted", 0.04), ("deteriorating", 0.05), ("closed", 0.02),
                    ("non_performing", 0.03), ("overdue_interest", 0.03), ("group_hq_or_core", 0.4), ("existing_customer", 0.5)):
        if rng.random() < p:
            applicant[flag] = True
    attestation = rng.random()
    facts = ["authority_approved", "safety_env_compliant", "complete_chain", "has_reserves"]
    if attestation < 0.90:
        if attestation >= 0.72:
            facts.remove(rng.choice(facts))
        for fact in facts:
            applicant[fact] = rng.random() > 0.03
    mines = []
    for m in range(rng.choices([1, 2, 3, 4], weights=[4, 3, 2, 1])[0]):
        mines.append({"name": f"{m + 1}号井", "capacity_mt": money(rng.lognormvariate(5.0, 0.6)),
                      "stage": pick(rng, {"existing": 75, "new_build": 12, "renovation": 13}), "coking_coal": rng.random() < 0.2})
    request = {"credit_type": pick(rng, {"short_term": 35, "medium_long_term": 20, "trade_finance": 38, "other": 7}),
               "guarantee": pick(rng, {"none": 10, "group_guarantee": 45, "collateral": 35, "other_accepted": 10})}
    return {"application_id": f"COAL-{i:05d}", "input": {"applicant": applicant, "mines": mines, "request": request}}


def pricing_application(rng: random.Random, i: int) -> dict:
    data = {"term_months": pick(rng, {3: 5, 6: 15, 12: 40, 24: 12, 36: 15, 60: 8, 84: 3, 120: 2}),
            "coefficients": {k: dec(rng.uniform(0.1, 1.2), 2) for k in ("rating", "guarantee", "contribution", "prospect")}}
    if rng.random() < 0.4:
        data["weights"] = {"rating": 0.25, "guarantee": 0.25, "contribution": 0.25, "prospect": 0.25}
    if rng.random() < 0.18:  # a contract rate given: LPR-based (1y 3.45, 5y 3.95) or the benchmark itself
        data["base_rate"] = pick(rng, {3.45: 45, 3.95: 25, 4.2: 10, 4.35: 12, 4.75: 8})
    return {"application_id": f"PRICE-{i:05d}", "input": data}


def monitoring_item(rng: random.Random, i: int) -> dict:
    amount = min(rng.lognormvariate(14.2, 0.9), 30_000_000)
    health = min(100.0, max(0.0, rng.gauss(80, 11))) if rng.random() < 0.96 else rng.uniform(5, 50)
    metrics = {}
    if rng.random() < 0.85:
        metrics["cash_flow_coverage"] = dec(rng.lognormvariate(0.6, 0.35), 4)
    if rng.random() < 0.75:
        metrics["main_customer_loss_rate"] = dec(min(1.0, rng.betavariate(1.2, 8)), 4)
    if rng.random() < 0.80:
        metrics["tax_paid_change_3m"] = dec(max(-1.0, rng.gauss(0.03, 0.16)), 4)
    signals = {k: True for k, p in (("account_balance_abnormal_drop", 0.04), ("frequent_legal_rep_change", 0.015),
                                   ("short_term_debt_surge", 0.03), ("related_party_fund_diversion", 0.01),
                                   ("controller_missing", 0.004)) if rng.random() < p}
    data = {"loan": {"credit_amount": money(amount),
                     "classification": pick(rng, {"normal": 88, "special_mention": 7, "substandard": 3, "doubtful": 1.5, "loss": 0.5})},
            "borrower": {"health_index": dec(health, 2)}}
    if metrics:
        data["metrics"] = metrics
    if signals:
        data["signals"] = signals
    return {"ruleset": "post-loan-monitoring", "as_of": AS_OF, "application_id": f"PLM-{i:05d}", "input": data, "trace": "none"}


# ------------------------------------------------------------------ the service

class Service:
    def __init__(self, data_dir: str):
        app = create_app({"data_dir": data_dir, "rulesets_dir": str(ROOT / "rulesets"),
                          "tokens": f"{TOKEN}:evaluate+publish+audit", "registry_refresh_seconds": 0})
        self.client = app.test_client()
        self.headers = {"Authorization": f"Bearer {TOKEN}"}

    def get(self, path: str) -> dict:
        r = self.client.get(path, headers=self.headers)
        assert r.status_code == 200, (path, r.status_code, r.get_data(as_text=True)[:2000])
        return r.get_json()

    def post(self, path: str, body: dict) -> dict:
        r = self.client.post(path, data=json.dumps(body, ensure_ascii=False), headers={**self.headers, "Content-Type": "application/json"})
        assert r.status_code == 200, (path, r.status_code, r.get_data(as_text=True)[:2000])
        return r.get_json()

    def impact(self, name: str, old: str, new: str, applications: list[dict]) -> dict:
        matrix = {a: {b: 0 for b in OUTCOMES} for a in OUTCOMES}
        changed, errors, evaluated = [], [], 0
        for start in range(0, len(applications), CHUNK):
            part = self.post(f"/v1/rulesets/{name}/impact", {"from": old, "to": new, "as_of": AS_OF,
                                                              "applications": applications[start:start + CHUNK]})
            for a in OUTCOMES:
                for b in OUTCOMES:
                    matrix[a][b] += part["outcome_matrix"][a][b]
            changed += part["changed"]
            errors += part["errors"]
            if part["errors"] and not errors[:-len(part["errors"])]:
                print("first refused application:", json.dumps(part["errors"][0], ensure_ascii=False)[:800], file=sys.stderr)
            evaluated += part["evaluated"]
        return {"matrix": matrix, "changed": changed, "errors": errors, "evaluated": evaluated}


# ------------------------------------------------------------------ Markdown

def table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def short(value) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return "`" + (text if len(text) <= 140 else text[:137] + "…") + "`"


def diff_section(diff: dict, titles: dict) -> str:
    lines = [f"Service diff `GET /v1/rulesets/{diff['name']}/diff?from={diff['from']['version']}&to={diff['to']['version']}` "
             f"(sha256 {diff['from']['sha256'][:12]} → {diff['to']['sha256'][:12]}); sections changed besides rules and "
             f"parameters: {', '.join(diff['sections_changed']) or 'none'}.", ""]
    rules = diff["rules"]
    rows = [["added", f"`{r['id']}`", titles.get(r["id"], "")] for r in rules["added"]]
    rows += [["removed", f"`{r['id']}`", ""] for r in rules["removed"]]
    rows += [["changed", f"`{r['id']}`", titles.get(r["id"], "") + " — fields: " + ", ".join(r.get("fields", []))] for r in rules["changed"]]
    lines += [f"**Rules** — {len(rules['added'])} added, {len(rules['removed'])} removed, {len(rules['changed'])} changed:", "",
              table(["change", "rule", "title / what changed"], rows) if rows else "(none)", ""]
    params = diff["parameters"]
    prow = [["added", f"`{p['id']}`", "—", short(p["now"].get("value"))] for p in params["added"]]
    prow += [["removed", f"`{p['id']}`", short(p["was"].get("value")), "—"] for p in params["removed"]]
    prow += [["changed", f"`{p['id']}`", short(p["was"].get("value")), short(p["now"].get("value"))] for p in params["changed"]]
    lines += [f"**Parameters** — {len(params['added'])} added, {len(params['removed'])} removed, {len(params['changed'])} changed:", "",
              table(["change", "parameter", "was", "now"], prow) if prow else "(none)", ""]
    return "\n".join(lines)


def matrix_section(impact: dict) -> str:
    m = impact["matrix"]
    rows = [[f"**{a}**"] + [m[a][b] for b in OUTCOMES] + [sum(m[a].values())] for a in OUTCOMES]
    rows.append(["**total (new)**"] + [sum(m[a][b] for a in OUTCOMES) for b in OUTCOMES] + [impact["evaluated"]])
    return table(["old ↓ / new →", *OUTCOMES, "total (old)"], rows)


def responsible_section(impact: dict, titles: dict, limit: int = 15) -> str:
    outcome_changed = [c for c in impact["changed"] if c["from"]["outcome"] != c["to"]["outcome"]]
    by_rule = Counter(r for c in outcome_changed for r in c["rules_responsible"])
    any_change = Counter(r for c in impact["changed"] for r in c["rules_responsible"])
    rows = [[f"`{rule}`", titles.get(rule, ""), by_rule[rule], any_change[rule]]
            for rule, _ in sorted(any_change.items(), key=lambda kv: (-by_rule[kv[0]], -kv[1], kv[0]))[:limit]]
    return table(["rule", "title", "outcome changes it took part in", "all changes (outcome, reasons or results)"], rows)


def transitions(impact: dict) -> Counter:
    return Counter((c["from"]["outcome"], c["to"]["outcome"]) for c in impact["changed"] if c["from"]["outcome"] != c["to"]["outcome"])


def new_reasons(impact: dict) -> Counter:
    """Cases that gained each reason code."""
    out = Counter()
    for c in impact["changed"]:
        gained = Counter(c["to"]["reasons"]) - Counter(c["from"]["reasons"])
        out.update(set(gained))
    return out


def lost_reasons(impact: dict) -> Counter:
    out = Counter()
    for c in impact["changed"]:
        out.update(set(Counter(c["from"]["reasons"]) - Counter(c["to"]["reasons"])))
    return out


def pct(n: int, total: int) -> str:
    return f"{n} ({100 * n / total:.1f} %)" if total else str(n)


def routing_changes(impact: dict) -> Counter:
    return Counter((c["from"]["results"].get("routing", "—"), c["to"]["results"].get("routing", "—")) for c in impact["changed"]
                   if c["from"]["results"].get("routing") != c["to"]["results"].get("routing"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed file instead of writing it")
    args = ap.parse_args(argv)
    rng = random.Random(SEED)
    sme_apps = [sme_application(rng, i) for i in range(N)]
    coal_apps = [coal_application(rng, i) for i in range(N)]
    pricing_apps = [pricing_application(rng, i) for i in range(N)]
    monitoring = [monitoring_item(rng, i) for i in range(N)]
    with tempfile.TemporaryDirectory(prefix="release-notes-") as data_dir:
        svc = Service(data_dir)
        results = {}
        for name, old, new, apps in (("sme-credit-policy", "1.0.0", "1.1.0", sme_apps),
                                     ("coal-industry-policy", "1.0.0", "1.1.0", coal_apps),
                                     ("sme-loan-pricing", "2.5.0", "2.6.0", pricing_apps)):
            diff = svc.get(f"/v1/rulesets/{name}/diff?from={old}&to={new}")
            impact = svc.impact(name, old, new, apps)
            doc_old = svc.get(f"/v1/rulesets/{name}/versions/{old}")
            doc_new = svc.get(f"/v1/rulesets/{name}/versions/{new}")
            results[name] = (old, new, diff, impact, _titles(doc_old, doc_new))
        batch = []
        for start in range(0, len(monitoring), CHUNK):
            batch += svc.post("/v1/decisions:batch", {"items": monitoring[start:start + CHUNK]})["items"]
    text = render(results, batch)
    if args.check:
        same = OUT.exists() and OUT.read_text(encoding="utf-8") == text
        print("up to date" if same else f"{OUT} differs from what the script produces")
        return 0 if same else 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


def _titles(*docs) -> dict:
    out = {}
    for doc in docs:
        body = doc.get("document", doc)
        for rule in body.get("rules", []):
            out[rule["id"]] = f"{rule['title_zh']} / {rule['title_en']}"
    return out


# ------------------------------------------------------------------ the notes

def render(results: dict, batch: list[dict]) -> str:
    parts = [HEADER.format(n=N, as_of=AS_OF, seed=SEED)]
    readings = {"sme-credit-policy": reading_sme, "coal-industry-policy": reading_coal, "sme-loan-pricing": reading_pricing}
    for name, (old, new, diff, impact, titles) in results.items():
        parts.append(f"## {name} {old} → {new}\n")
        parts.append(SUMMARIES[name] + "\n")
        parts.append("### Rule and parameter diff\n")
        parts.append(diff_section(diff, titles))
        parts.append(f"### Impact over {impact['evaluated']} generated applications (as of {AS_OF})\n")
        parts.append(PORTFOLIOS[name] + "\n")
        errors = f"; {len(impact['errors'])} refused as invalid input" if impact["errors"] else ""
        parts.append(f"Service impact `POST /v1/rulesets/{name}/impact` (chunks of {CHUNK}): {impact['evaluated']} evaluated{errors}, "
                     f"{len(impact['changed'])} changed in outcome, reasons or results.\n")
        parts.append("Outcome change matrix (rows: old version, columns: new version):\n")
        parts.append(matrix_section(impact) + "\n")
        parts.append("Rules responsible for the changes (a case counts once per rule):\n")
        parts.append(responsible_section(impact, titles) + "\n")
        gained, lost = new_reasons(impact), lost_reasons(impact)
        parts.append("Reason codes gained and lost (cases whose new answer has / no longer has the code):\n")
        parts.append(table(["reason", "cases gaining it", "cases losing it"],
                           [[f"`{code}`", gained[code], lost[code]] for code in sorted(set(gained) | set(lost), key=lambda c: (-gained[c], -lost[c], c))]) + "\n")
        rc = routing_changes(impact)
        if rc:
            parts.append("Routing changes among the changed cases:\n")
            parts.append(table(["old routing", "new routing", "cases"], [[a, b, n] for (a, b), n in sorted(rc.items(), key=lambda kv: -kv[1])]) + "\n")
        parts.append("### Reading\n")
        parts.append(readings[name](impact) + "\n")
    parts.append(monitoring_section(batch))
    parts.append(CHOICES)
    return "\n".join(parts).rstrip("\n") + "\n"


def reading_sme(impact: dict) -> str:
    total = impact["evaluated"]
    t = transitions(impact)
    gained = new_reasons(impact)
    approve_before = sum(impact["matrix"]["APPROVE"].values())
    rc = routing_changes(impact)
    auto_lost = sum(n for (a, b), n in rc.items() if a == "auto")
    return "\n".join([
        f"- Of {approve_before} applications 1.0.0 approved, {t[('APPROVE', 'REFER')]} become REFER and "
        f"{t[('APPROVE', 'DECLINE')]} DECLINE under 1.1.0; {t[('REFER', 'DECLINE')]} referrals become declines and "
        f"{t[('DECLINE', 'REFER')]} declines become referrals (the guarantee quota is now a fast path, not a ban, and unattested "
        f"facts are referred, not declined). {t[('REFER', 'APPROVE')] + t[('DECLINE', 'APPROVE')]} applications move to APPROVE.",
        f"- The largest single cause is fail-closed compliance: {pct(gained['COMPLIANCE_NOT_ATTESTED'], total)} applications gain "
        f"`COMPLIANCE_NOT_ATTESTED` because core banking did not send every compliance fact (about 38 % of this portfolio sends a "
        f"partial attestation or none). They were approved on facts nobody stated; they now go to a credit officer, never auto.",
        f"- {pct(auto_lost, total)} applications lose `auto` routing. Until core banking sends `request.security`, no application "
        f"can route `auto` (security not stated ⇒ manual review, §6.1 #5): plan the core-banking change with the release, or the "
        f"automatic-approval share drops to zero on 2027-01-01.",
        f"- Government procurement: {pct(gained['GOVERNMENT_PROCUREMENT_CONDITIONS_MISSING'], total)} cases newly lack the "
        f"guarantee company (the field is new, so no request carries it yet); e-commerce loans longer than 12 months: "
        f"{gained['ECOMMERCE_TERM_TOO_LONG']}; transport (G58, E481) now out of scope: {gained['OUT_OF_SCOPE_TRANSPORT']}; "
        f"incubator/park tenants that lose the tech-innovation segment and are no longer a target customer: {gained['NOT_TARGET_CUSTOMER']}.",
        "- Every movement is towards more review, which is what the corrections intend: the five kinds of loan the issue found "
        "approved against the policy are no longer approved automatically.",
    ])


def reading_coal(impact: dict) -> str:
    total = impact["evaluated"]
    t = transitions(impact)
    gained = new_reasons(impact)
    return "\n".join([
        f"- {t[('APPROVE', 'REFER')]} approvals become REFER and {t[('APPROVE', 'DECLINE')]} become DECLINE; "
        f"{t[('REFER', 'DECLINE')]} referrals become declines, {t[('DECLINE', 'REFER')]} declines become referrals — "
        f"mostly groups with an unattested fact whose class-based decline (credit type not allowed, guarantee missing) is "
        f"withheld until the fact is known; admission declines still apply to them.",
        f"- {pct(gained['COMPLIANCE_NOT_ATTESTED'], total)} applications gain `COMPLIANCE_NOT_ATTESTED` (an approval, safety/environment, "
        f"chain or reserves fact not sent); no class is decided for them until the fact is attested, so their credit and guarantee "
        f"verdicts are withheld rather than guessed.",
        f"- {gained['ADMIT_POLICY_RESTRICTED']} new customers restricted or eliminated by industrial policy are no longer admitted; "
        f"{gained['CLASS4_TRADE_FINANCE_NEW_CUSTOMER']} class-4 new customers asking for trade finance are declined instead of "
        f"referred (there is no existing scale to keep).",
        "- Class-3 short-term renewals within the existing scale can only be approved once core banking sends "
        "`request.within_existing_scale`; in this portfolio (today's request shape) the flag defaults to false, so class-3 "
        "short-term requests are treated as increases, as 1.0.0 did.",
    ])


def reading_pricing(impact: dict) -> str:
    total = impact["evaluated"]
    t = transitions(impact)
    return "\n".join([
        f"- {pct(t[('APPROVE', 'REFER')], total)} prices become REFER `BASE_RATE_OVERRIDDEN`: requests whose contract base rate "
        f"(mostly LPR 3.45 % / 3.95 %) differs from the benchmark in force. The rates themselves are unchanged — 2.6.0 prices on "
        f"the requested base exactly as 2.5.0 did; only the silent replacement of the legal base becomes a reviewed decision.",
        f"- The other {len(impact['changed']) - t[('APPROVE', 'REFER')]} changed cases differ only by the new result `benchmark_rate` "
        f"(every answer now reports it); a base rate equal to the benchmark stays APPROVE.",
    ])


def monitoring_section(batch: list[dict]) -> str:
    ok = [i for i in batch if i["status"] == 200]
    outcomes = Counter(i["decision"]["outcome"] for i in ok)
    bands = Counter(i["decision"]["results"]["band"] for i in ok)
    reasons = Counter(r["code"] for i in ok for r in i["decision"]["reasons"])
    total = len(ok)
    rows = [[o, pct(outcomes[o], total)] for o in OUTCOMES]
    brows = [[b, pct(bands[b], total)] for b in ("green", "blue", "yellow", "orange", "red")]
    rrows = [[f"`{code}`", n] for code, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))]
    return "\n".join([
        "## post-loan-monitoring 1.0.0 (new)\n",
        "A new ruleset (DOMAIN.md §6.4, seeds 002 §4.2, §7.2–7.3 and 003): nothing to diff or compare against. "
        "Effective from 2026-01-01 so that it answers as soon as it is deployed (it replaces nothing). "
        f"Its outcome over {total} generated loans (facility amounts lognormal around 1.5 million, 5-category "
        "classification 88 % normal, health index ≈ N(80, 11) with 4 % distressed borrowers uniform on 5–50, metrics measured for 75–85 % of loans, warning signals at "
        "0.4–4 %), evaluated through `POST /v1/decisions:batch`:\n",
        table(["outcome", "loans"], rows) + "\n",
        table(["band", "loans"], brows) + "\n",
        "Findings reported (a loan counts once per reason):\n",
        table(["reason", "loans"], rrows) + "\n",
        f"Reading: {pct(outcomes['APPROVE'], total)} loans pass the automatic post-loan check and need no manual check "
        f"(seed 003 reports about 30 % for its portfolio); {pct(reasons['MANUAL_POST_LOAN_CHECK'], total)} are above the "
        "5,000,000 automatic-check scope; DECLINE (exit procedure) comes from the red band, a missing controller or a "
        "non-performing classification.\n",
    ])


HEADER = """# Policy release 2027-01

Generated by `scripts/release_notes.py` (deterministic: seed {seed}, {n} generated applications per ruleset,
evaluated as of {as_of}); rerun it to regenerate this file, `--check` to verify it. The diffs are the service's
own (`GET /v1/rulesets/{{name}}/diff`), the impact numbers its own impact analysis
(`POST /v1/rulesets/{{name}}/impact`, given applications, chunks of ≤ 1,000), both called in-process through
the HTTP API (Flask test client over `create_app`, a throwaway data directory).

What ships (DOMAIN.md §6): `sme-credit-policy` 1.1.0, `coal-industry-policy` 1.1.0 and `sme-loan-pricing` 2.6.0
(a new version of the 2015-10-24 benchmark table), all **effective 2027-01-01**, and the new ruleset
`post-loan-monitoring` 1.0.0. The versions they succeed — `sme-credit-policy` 1.0.0, `coal-industry-policy` 1.0.0,
`sme-loan-pricing` 2.5.0 — are unchanged byte for byte (no `effective_to` was added: that would change their sha256);
selection by `as_of` already prefers the latest `effective_from`, so they keep answering every date before
2027-01-01 and every replay of their decisions (tests/rulesets/test_release_2027_01.py pins their sha256).

The generated applications have today's request shape: they are valid under the old versions too (impact
evaluates one input under both, and 1.0.0 refuses the fields 1.1.0 adds), so the new inputs take their 1.1.0
defaults. **The numbers below are the day-one impact if core banking does not yet send the new fields**; sending
`request.security`, `applicant.tech_enterprise`, `mode_details.guarantee_company` / `buyback_deposit_pledge`,
every `compliance.*` fact and `request.within_existing_scale` turns many of these REFER/DECLINE back into APPROVE.
"""

SUMMARIES = {
    "sme-credit-policy": """The nine corrections of DOMAIN.md §6.1, each checked by a test:

1. government procurement needs a guarantee company (`mode_details.guarantee_company`), else DECLINE;
2. e-commerce is short-term: `term_months` > ⚙ `ecommerce_max_term_months` (12) → DECLINE `ECOMMERCE_TERM_TOO_LONG`;
3. the tech-innovation segment needs the company itself to be a tech enterprise (`applicant.tech_enterprise`) when it
   rests on the park; `tech_incubation` eligibility follows the segment;
4. transport (五大信贷投向) is G53–G58 and E481, one parameter list `transport_industry_prefixes`;
5. `auto` routing needs `request.security` stated and not `none` (⚙ `auto_security_kinds`);
6. above the guarantor's quota (or no quota given) → REFER `GUARANTEE_QUOTA_EXCEEDED` (was DECLINE), manual review at least;
7. bank lease accepts a buy-back deposit pledge (`mode_details.buyback_deposit_pledge`) instead of the buy-back guarantee;
8. fail closed: every `compliance.*` boolean (including `approvals.*`, `environment.*`) defaults to null; each null
   is its own REFER `COMPLIANCE_NOT_ATTESTED` whose message names the field, and result `unattested_fields` lists them;
   a flag attested non-compliant is the DECLINE it was;
9. `applicant.anomaly_flags` non-empty → routing `committee`.

Scope keeps the size standard in force on `as_of`; ⚙ parameter `size_standard` (`in_force` | `2003`) pins the seed's
literal 2003 standard instead (the `uses` entry evaluates `sme-size-classification` as of 2011-06-17 when it is `2003`).""",
    "coal-industry-policy": """The four corrections of DOMAIN.md §6.2:

1. a new customer restricted or eliminated by industrial policy is not admitted (DECLINE `ADMIT_POLICY_RESTRICTED`,
   ⚙ parameter `admission_policy_classes`); an existing one is class 4 as before;
2. class-4 trade finance: new customer → DECLINE `CLASS4_TRADE_FINANCE_NEW_CUSTOMER`, existing → REFER as before;
3. class-3 short-term credit within the existing scale (`request.within_existing_scale`) → APPROVE; an increase → REFER
   at rating ≥ A, else DECLINE;
4. `authority_approved`, `safety_env_compliant`, `complete_chain`, `has_reserves` default to null; null → REFER
   `COMPLIANCE_NOT_ATTESTED` naming the field (the two admission-only facts are required of new customers only), and no
   class, credit or guarantee verdict is given on unattested facts.""",
    "sme-loan-pricing": """DOMAIN.md §6.3: the same 2015-10-24 table; new result `benchmark_rate` (the benchmark for the term) beside
`base_rate` (the rate priced on); a request's `base_rate` that differs from the benchmark is still priced on but the
outcome is REFER `BASE_RATE_OVERRIDDEN`, both rates in the results.""",
}

PORTFOLIOS = {
    "sme-credit-policy": "Portfolio: 32 GB/T 4754 industries weighted like an eastern-China SME book (manufacturing ≈ 45 %, wholesale and "
                         "retail ≈ 24 %), 16 provinces (长三角 38 %, 京津/珠三角 22 %), employees lognormal (median ≈ 37, 3 % large "
                         "corporates), ratings centred on BBB/BB with 5 % unrated, 11 modes (individual 40 %), mode details complete "
                         "in 90 % of requests, amounts lognormal (median ≈ 800,000), 35 % existing customers; compliance facts sent "
                         "in full by 62 %, partially (1–4 facts missing) by 18 %, not at all by 20 %; 1 % of attested flags non-compliant.",
    "coal-industry-policy": "Portfolio: coal groups in the nine coal provinces (晋陕蒙 65 %), group output lognormal (median ≈ 735万吨), single wells lognormal (median ≈ 150万吨/年), 10 % unsecured requests, "
                            "1–4 mines, 90 % normal / 7 % restricted / 3 % eliminated, 50 % existing customers; the four admission "
                            "facts sent in full by 72 %, one missing for 18 %, none for 10 %.",
    "sme-loan-pricing": "Portfolio: terms 3–120 months (12 months 40 %), coefficients uniform 0.1–1.2, equal weights for 40 %; a "
                        "contract base rate given by 18 % (LPR-like 3.45 / 3.95 / 4.2, or exactly the benchmark 4.35 / 4.75).",
}

CHOICES = """## Choices left open by DOMAIN.md §6, made parameters

| ruleset | choice | parameter (value) |
|---|---|---|
| sme-credit-policy 1.1.0 | which size standard scope uses | `size_standard` (`in_force`; `2003` pins the seed's literal standard) |
| sme-credit-policy 1.1.0 | what "short-term" e-commerce financing means | `ecommerce_max_term_months` (12) |
| sme-credit-policy 1.1.0 | the transport prefixes of the five credit directions | `transport_industry_prefixes` (G53–G58, E481) |
| sme-credit-policy 1.1.0 | which stated securities allow `auto` | `auto_security_kinds` (collateral, pledge, guarantee, mode_platform) |
| coal-industry-policy 1.1.0 | which industrial-policy classes a new customer may have | `admission_policy_classes` (normal) |
| post-loan-monitoring 1.0.0 | automatic-check scope, band edges, trigger thresholds, follow-up | `auto_check_max_credit` (5,000,000), `band_*_min` (90/70/50/30, fractional scores fall in the lower band), `cash_flow_coverage_min` (1.2), `main_customer_loss_rate_max` (0.30), `tax_paid_change_3m_max` (−0.30, inclusive), `verify_within_hours` (24), `follow_up_days` (60), action lists per band |

Choices that are not parameters (structure, said here so nobody has to read the YAML):
- `compliance.catalog_class` keeps its default `permitted` (INPUTS.md makes only the booleans nullable).
- An unattested compliance fact is a REFER even for an existing customer; it does not set `existing_exposure_action`.
- `coal-industry-policy`: a renewal within the existing scale is taken as stated (`within_existing_scale: true`), also for a
  customer flagged new; the admission-only facts (`authority_approved`, `complete_chain`) are required of new customers only.
- `post-loan-monitoring`: a metric sent as null (not measured) raises no trigger; a facility above the scope is still banded
  and every finding is reported beside `MANUAL_POST_LOAN_CHECK`; the exit procedure is also the action for a missing
  controller and for a non-performing classification.
"""


if __name__ == "__main__":
    sys.exit(main())
