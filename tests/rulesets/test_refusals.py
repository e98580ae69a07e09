"""A malformed or unsafe ruleset is refused with every problem listed, each with its location."""
from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import InvalidRuleset
from service.decision_engine.registry import Registry

TOY = (Path(__file__).resolve().parent.parent / "fixtures" / "rulesets" / "toy" / "1.0.0.yaml").read_text(encoding="utf-8")


def refuse(text: str) -> dict[str, list]:
    with pytest.raises(InvalidRuleset) as exc:
        Registry().load_text(text)
    by_code: dict[str, list] = {}
    for p in exc.value.problems:
        if p.severity == "error":
            by_code.setdefault(p.code, []).append(p)
    return by_code


def test_every_problem_of_a_bad_document_is_listed_with_its_line():
    bad = TOY.replace(
        "when: {not: {field: applicant.code, starts_with: {param: transport}}}",
        "when: {not: {field: applicant.cod, starts_with: {param: transport}}}",  # undeclared field
    ).replace(
        "when: {field: applicant.rating, lt: {field: result.floor}}",
        "when: {field: applicant.rating, lt: 5}",  # type clash: a rating compared with a number
    ).replace(
        "when: {field: applicant.mines, any_item: {field: cap, lt: 30}}",
        "when: {all: [{field: amount, gt: 100}, {field: amount, lt: 50}]}",  # unreachable
    ).replace(
        "owner: test",
        "owner: !!python/object/apply:os.system ['echo pwned']",  # code in YAML
    ).replace(
        "code: {type: string, format: gbt4754, required: true, max_length: 5}",
        "code: {type: string, pattern: '^(a+)\\1$', required: true, max_length: 5}",  # a backreference: RE2 refuses it
    )
    problems = refuse(bad)
    assert {"unknown_field", "type_mismatch", "unreachable_rule", "yaml_tag", "unsafe_pattern"} <= set(problems), problems
    assert problems["unknown_field"][0].path == "rules[0].when.not.field"
    assert problems["unknown_field"][0].line == TOY.splitlines().index(
        "    when: {not: {field: applicant.code, starts_with: {param: transport}}}") + 1
    assert problems["yaml_tag"][0].path == "owner"
    assert "R-MINES" in problems["unreachable_rule"][0].message


def test_unreachable_because_of_the_stage_gate():
    bad = TOY.replace("when: {field: applicant.mines, any_item: {field: cap, lt: 30}}",
                      "when: {field: result.in_scope, eq: false}")
    assert "unreachable_rule" in refuse(bad)


def test_enum_value_outside_the_declared_set():
    bad = TOY.replace("lt: {field: result.floor}", "lt: BBBB")
    (problem,) = refuse(bad)["type_mismatch"]
    assert "BBBB" in problem.message and "AAA" in problem.message


def test_conflicting_rules():
    bad = TOY.replace("when: {field: applicant.code, starts_with: {param: transport}}\n    then: {set: {in_scope: false}",
                      "when: {field: amount, gt: 1000}\n    then: {set: {in_scope: false}")
    (problem,) = refuse(bad)["conflicting_rules"]
    assert "S-IN" in problem.message and "S-OUT" in problem.message


def test_yaml_aliases_and_duplicate_keys():
    bad = TOY.replace("owner: test", "owner: &o test\nowner2: *o").replace("status: active", "status: active\nstatus: draft")
    problems = refuse(bad)
    assert "yaml_alias" in problems and "duplicate_key" in problems


def test_dependency_cycle():
    bad = TOY.replace(
        "when: {not: {field: applicant.code, starts_with: {param: transport}}}",
        "when: {all: [{not: {field: applicant.code, starts_with: {param: transport}}}, {field: result.floor, is_null: true}]}",
    ).replace("stage: rating\n    title_zh: 下限", "stage: scope\n    title_zh: 下限\n    when: {field: result.in_scope, eq: true}")
    problems = refuse(bad)
    assert "rule_cycle" in problems, problems
    assert "S-IN" in problems["rule_cycle"][0].message and "R-FLOOR" in problems["rule_cycle"][0].message


def test_failing_embedded_test_blocks_loading():
    bad = TOY.replace("expect: {outcome: APPROVE, results: {in_scope: true, floor: B, max_amount: 200}}",
                      "expect: {outcome: DECLINE}")
    (problem,) = refuse(bad)["test_failed"]
    assert "outcome APPROVE, expected DECLINE" in problem.message
