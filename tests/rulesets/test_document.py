"""Reading documents safely: exact numbers, YAML 1.2 booleans, one hash for one content."""
from __future__ import annotations

from decimal import Decimal

from service import canonical
from service.rulesets.document import parse_document


def test_yaml_numbers_stay_exact_and_yes_no_stay_words():
    doc = parse_document("rate: 0.1\nflag: yes\nother: no\nreal: true\nday: 2003-02-19\n")
    assert doc.data["rate"] == Decimal("0.1") and isinstance(doc.data["rate"], Decimal)
    assert doc.data["flag"] == "yes" and doc.data["other"] == "no" and doc.data["real"] is True
    assert doc.problems == []


def test_same_content_same_sha_whatever_the_syntax():
    yaml_doc = parse_document("b: 0.550\na: [1, 2]\nday: 2003-02-19\n")
    json_doc = parse_document('{"a": [1, 2], "day": "2003-02-19", "b": 0.55}')
    assert yaml_doc.sha256 == json_doc.sha256
    assert yaml_doc.canonical_json == canonical.dumps({"a": [1, 2], "b": Decimal("0.55"), "day": "2003-02-19"})


def test_unsafe_constructs_are_problems_not_objects():
    doc = parse_document("a: !!python/object/apply:os.system ['true']\nb: &x 1\nc: *x\nd: 1\nd: 2\n")
    assert {p.code for p in doc.problems} == {"yaml_tag", "yaml_alias", "duplicate_key"}
    assert doc.data["a"] is None
