"""The YAML reader on libyaml's events: C speed without giving up a safety property."""
from __future__ import annotations

import yaml

from service.rulesets import document
from service.rulesets.document import MAX_DEPTH, parse_document


def test_uses_libyaml_when_pyyaml_has_it():
    if yaml.__with_libyaml__:
        assert document._Loader is yaml.CSafeLoader


def test_nesting_far_beyond_the_limit_is_a_problem_not_a_crash():
    for text in ("x: " + "[" * 900 + "]" * 900 + "\n", "x: " + "{a: " * 900 + "1" + "}" * 900 + "\n"):
        doc = parse_document(text)
        assert [p.code for p in doc.problems] == ["too_deep"]
        assert list(doc.data) == ["x"]
    for text in ("x: " + "[" * 200_000 + "]" * 200_000 + "\n", "x: " + "{a: " * 50_000 + "1" + "}" * 50_000 + "\n"):
        try:
            parse_document(text)  # libyaml stops at its own depth limit (1000)
        except document.DocumentError as exc:
            assert exc.problems[0].code == "invalid_yaml"
        else:
            raise AssertionError("accepted")


def test_aliases_point_at_the_alias_line_and_undefined_ones_are_refused_too():
    doc = parse_document("a: &x [1, 2]\nb: 1\nc: *x\nd: *nowhere\n")
    assert [(p.code, p.path, p.line) for p in doc.problems] == [("yaml_alias", "c", 3), ("yaml_alias", "d", 4)]
    assert doc.data == {"a": [1, 2], "b": 1, "c": None, "d": None}


def test_complex_and_merge_keys_tags_and_several_documents():
    doc = parse_document("? [a, b]\n: 1\n<<: {m: 1}\nc: !!str 5\nd: !custom x\ne: !!set {a: null}\nf: ! 7\n")
    assert {p.code for p in doc.problems} == {"yaml_key", "yaml_tag"}
    assert doc.data == {"c": "5", "d": None, "e": None, "f": 7}  # `!` alone: resolved as if untagged
    for text, code in (("---\na: 1\n---\nb: 2\n", "invalid_yaml"), ("", "empty_document"), ("a: 'open\n", "invalid_yaml")):
        try:
            parse_document(text)
        except document.DocumentError as exc:
            assert exc.problems[0].code == code
        else:
            raise AssertionError(f"{text!r} was accepted")


def test_depth_limit_is_the_same_as_before():
    ok = "x: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    assert parse_document(ok).problems == []
    deep = "x: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n"
    assert [p.code for p in parse_document(deep).problems] == ["too_deep"]
