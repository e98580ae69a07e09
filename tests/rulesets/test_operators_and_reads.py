"""The one operator table, and what each rule reads according to the parsed model."""
from __future__ import annotations

import re
from pathlib import Path

from service.rulesets.model import Compare, Quantified, All, AnyOf, Not
from service.rulesets.operators import COMPARE_OPS, OPERATORS, QUANTIFIERS, SHAPES

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "rulesets"


def _ops_in(cond, out: set):
    if isinstance(cond, Compare):
        out.add(cond.op)
    elif isinstance(cond, Quantified):
        out.add({v: k for k, v in QUANTIFIERS.items()}[cond.quantifier])
        _ops_in(cond.cond, out)
    elif isinstance(cond, (All, AnyOf)):
        for c in cond.children:
            _ops_in(c, out)
    elif isinstance(cond, Not):
        _ops_in(cond.child, out)
    return out


def test_every_operator_has_a_known_shape_and_a_compiled_test_in_the_fixture(toy):
    for op in OPERATORS.values():
        assert op.shape in SHAPES, op
        if op.shape in ("scalar", "ordered"):  # matched by a durable_rules comparison both ways
            assert (op.durable is None) != (op.durable_negated is None) or op.shape == "ordered"
    # The operators fixture (differential-tested against the reference interpreter) uses every one.
    lv = toy.resolve("operators", None, __import__("datetime").date(2026, 1, 15))
    used = set()
    for rule in lv.ruleset.rules:
        _ops_in(rule.condition, used)
    assert used >= set(COMPARE_OPS) | set(QUANTIFIERS), set(COMPARE_OPS) - used


def test_params_read_come_from_the_parsed_model(toy):
    lv = toy.resolve("toy", "1.0.0", __import__("datetime").date(2026, 1, 15))
    reads = {rule.id: rule.params_read for rule in lv.ruleset.rules}
    assert reads == {"S-IN": {"transport"}, "S-OUT": {"transport"}, "R-FLOOR": {"floor"},
                     "R-LOW": frozenset(), "R-MINES": frozenset()}
    assert lv.ruleset.rule_map["R-LOW"].reads == ["result.in_scope", "applicant.rating", "result.floor"]
    assert lv.ruleset.rule_map["R-FLOOR"].effect_reads == ["amount"]


_PARAM = re.compile(r"\bparams\.([A-Za-z_][A-Za-z0-9_]*)")


def _grep_params(node, conditions, seen=()):
    """What the raw document spells (the old impact heuristic): a cross-check of the model."""
    out = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "param" and isinstance(value, str):
                out.add(value)
            elif key == "ref" and isinstance(value, str) and value not in seen:
                out |= _grep_params(conditions.get(value), conditions, seen + (value,))
            elif key == "expr" and isinstance(value, str):
                out |= set(_PARAM.findall(value))
            else:
                out |= _grep_params(value, conditions, seen)
    elif isinstance(node, list):
        for value in node:
            out |= _grep_params(value, conditions, seen)
    return out


def test_params_read_agree_with_the_documents_on_every_shipped_rule(shipped):
    checked = 0
    for lv in shipped.all():
        data = lv.ruleset.data
        gates = {s.get("id"): s.get("when") for s in data.get("stages") or []}
        for raw, rule in zip(data["rules"], lv.ruleset.rules):
            assert raw["id"] == rule.id
            want = _grep_params([raw.get("when"), raw.get("then"), gates.get(raw.get("stage"))], data.get("conditions") or {})
            assert rule.params_read == want, (lv.ruleset.key, rule.id)
            checked += 1
    assert checked > 100
