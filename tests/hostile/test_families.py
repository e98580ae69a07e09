"""The families around the reported cases: sizes, depths, encodings, numbers, duplicate keys,
content types, chunking, HTTP framing, expression, regex and ruleset-document limits.

Each input is sent to a real gunicorn server; each answer must be the named 4xx as
problem+json (naming the field where there is one), in bounded time; after each family the
server still answers a real decision at once."""
from __future__ import annotations

import json

import pytest

from tests.api.conftest import evaluate_body, toy_input, toy_yaml
from tests.hostile.conftest import MAX_BODY, assert_problem, assert_responsive, chunks, http_request, raw, send

YAML = {"Content-Type": "application/yaml"}
JSON = {"Content-Type": "application/json"}
GOOD = json.dumps(evaluate_body("FAMILY", trace="none")).encode()


def decide_raw(target, ledger, family: str, body: bytes, content_type: str = "application/json"):
    return send(target, "POST", "/v1/decisions", ledger, family, data=body, headers={"Content-Type": content_type})


def validate(target, ledger, family: str, text: str | bytes, content_type: str = "application/yaml"):
    data = text.encode() if isinstance(text, str) else text
    return send(target, "POST", "/v1/rulesets:validate", ledger, family, data=data, headers={"Content-Type": content_type})


# -- encodings and JSON syntax ------------------------------------------------------------------------

MALFORMED_JSON = {
    "invalid UTF-8": b'{"ruleset": "toy\xff\xfe"}',
    "UTF-16": GOOD.decode().encode("utf-16"),
    "Latin-1 text": '{"ruleset": "tóy"}'.encode("latin-1"),
    "NaN": GOOD.replace(b'"amount": 100', b'"amount": NaN'),
    "Infinity": GOOD.replace(b'"amount": 100', b'"amount": Infinity'),
    "-Infinity": GOOD.replace(b'"amount": 100', b'"amount": -Infinity'),
    "duplicate key": GOOD.replace(b'"ruleset": "toy"', b'"ruleset": "toy", "ruleset": "other"'),
    "duplicate nested key": GOOD.replace(b'"amount": 100', b'"amount": 100, "amount": 5'),
    "lone surrogate": GOOD.replace(b'"code": "C3670"', b'"code": "\\ud800"'),
    "truncated": GOOD[:-5],
    "trailing garbage": GOOD + b" {}",
    "empty body": b"",
    "only whitespace": b"   \n ",
    "single quotes": b"{'ruleset': 'toy'}",
    "comment": b"// hi\n" + GOOD,
    "control character in a string": GOOD.replace(b"FAMILY", b"FAM\x01ILY"),
    "deeply nested arrays": b"[" * 100_000 + b"]" * 100_000,
    "deeply nested objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
}


@pytest.mark.parametrize("label", list(MALFORMED_JSON))
def test_malformed_json_is_a_400(target, ledger, label):
    assert_problem(decide_raw(target, ledger, "json-syntax", MALFORMED_JSON[label]), 400, seconds=5)


def test_the_server_answers_after_every_malformed_json(target, ledger):
    assert_responsive(target, ledger)


NOT_AN_OBJECT = {"array": b"[]", "string": b'"x"', "number": b"1", "null": b"null", "true": b"true"}


def test_a_utf8_byte_order_mark_is_ignored(target, ledger):
    """RFC 8259 lets a parser ignore a BOM; the body is otherwise valid, so it is decided."""
    answer = decide_raw(target, ledger, "json-syntax", b"\xef\xbb\xbf" + GOOD)
    assert answer.status_code == 200, answer.text[:300]
    ledger.answered(target, answer.json()["decision_id"])


@pytest.mark.parametrize("label", list(NOT_AN_OBJECT))
def test_a_body_that_is_not_an_object_is_a_422(target, ledger, label):
    assert_problem(decide_raw(target, ledger, "json-shape", NOT_AN_OBJECT[label]), 422, seconds=5)


# -- numbers ---------------------------------------------------------------------------------------------

HUGE_NUMBERS = {
    "1e400": b"1e400", "-1e400": b"-1e400", "1e999999": b"1e999999", "1e-999999": b"1e-999999",
    "5000-digit integer": b"9" * 5000, "4301-digit integer": b"1" * 4301, "1e1001": b"1e1001",
}


@pytest.mark.parametrize("label", list(HUGE_NUMBERS))
def test_an_out_of_range_number_is_a_422(target, ledger, label):
    body = GOOD.replace(b'"amount": 100', b'"amount": ' + HUGE_NUMBERS[label])
    assert_problem(decide_raw(target, ledger, "numbers", body), 422, seconds=5)


INVALID_AMOUNTS = {
    "too many decimals": 1.001, "negative": -5, "zero": 0, "string": "100", "boolean": True, "null": None,
    "array": [100], "object": {"v": 100}, "beyond the type's range": 10**14, "tiny": 1e-30,
}


@pytest.mark.parametrize("label", list(INVALID_AMOUNTS))
def test_an_invalid_amount_is_a_422_naming_it(target, ledger, label):
    body = evaluate_body("NUMBERS", input={**toy_input(), "amount": INVALID_AMOUNTS[label]})
    assert_problem(send(target, "POST", "/v1/decisions", ledger, "numbers", json=body), 422, field="input.amount",
                   seconds=5)


def test_the_server_answers_after_the_numbers(target, ledger):
    assert_responsive(target, ledger)


# -- envelope fields ----------------------------------------------------------------------------------------

ENVELOPES = {
    "ruleset": {"ruleset": "../../etc/passwd"},
    "version": {"version": "1.0"},
    "as_of": {"as_of": "2024-02-30"},
    "application_id": {"application_id": "x" * 101},
    "trace": {"trace": "everything"},
    "input": {"input": []},
    "unexpected": {"unexpected": 1},
}


@pytest.mark.parametrize("field", list(ENVELOPES))
def test_a_bad_envelope_field_is_a_422_naming_it(target, ledger, field):
    body = {**evaluate_body("ENVELOPE"), **ENVELOPES[field]}
    assert_problem(send(target, "POST", "/v1/decisions", ledger, "envelope", json=body), 422, field=field, seconds=5)


def test_input_nested_deeper_than_declared_is_a_422(target, ledger):
    deep = {"x": 1}
    for _ in range(500):
        deep = {"x": deep}
    body = evaluate_body("DEEP", input={**toy_input(), "applicant": {**toy_input()["applicant"], "code": deep}})
    assert_problem(send(target, "POST", "/v1/decisions", ledger, "depth", json=body), 422,
                   field="input.applicant.code", seconds=5)


# -- content types ----------------------------------------------------------------------------------------

WRONG_TYPES = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
               "application/xml", "application/json-patch+json", "application/yaml", "", "*/*"]


@pytest.mark.parametrize("content_type", WRONG_TYPES)
def test_a_decision_in_another_media_type_is_a_415(target, ledger, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    answer = raw(target, http_request("POST", "/v1/decisions", GOOD, headers=headers), ledger=ledger, family="media-type")
    assert_problem(answer, 415, seconds=5)


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream", "text/html"])
def test_a_ruleset_document_in_another_media_type_is_a_415(target, ledger, content_type):
    assert_problem(validate(target, ledger, "media-type", toy_yaml("media"), content_type), 415, seconds=5)


# -- sizes and HTTP framing ---------------------------------------------------------------------------------


def test_a_body_over_the_limit_with_content_length_is_a_413(target, ledger):
    body = GOOD[:-1] + b" " * MAX_BODY + b"}"
    answer = raw(target, http_request("POST", "/v1/decisions", body), ledger=ledger, family="size")
    assert_problem(answer, 413, seconds=10)


def test_a_content_length_larger_than_the_limit_is_refused_before_reading(target, ledger):
    answer = raw(target, http_request("POST", "/v1/decisions", b"{}", content_length=10**12), ledger=ledger,
                 family="size")
    assert_problem(answer, 413, seconds=5)


def test_a_body_shorter_than_its_content_length_is_a_400(target, ledger):
    answer = raw(target, http_request("POST", "/v1/decisions", GOOD, content_length=len(GOOD) + 100),
                 ledger=ledger, family="framing", shutdown=True)
    assert_problem(answer, 400, seconds=5)


CHUNKED = {
    "bad size": b"zz\r\n{}\r\n0\r\n\r\n",
    "negative size": b"-5\r\n{}\r\n0\r\n\r\n",
    "size larger than the data, then the end": b"ffff\r\n{}\r\n0\r\n\r\n",
    "missing CRLF after data": b"2\r\n{}XX0\r\n\r\n",
    "bad extension": b"2;\x01\r\n{}\r\n0\r\n\r\n",
    "huge size": b"ffffffffffffffffffff\r\n{}\r\n0\r\n\r\n",
    "chunk-size line too long": b"2" + b" " * 70000 + b"\r\n{}\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("label", list(CHUNKED))
def test_a_broken_chunked_body_is_a_400(target, ledger, label):
    answer = raw(target, http_request("POST", "/v1/decisions", CHUNKED[label], chunked=True), ledger=ledger,
                 family="chunked", shutdown=True)
    assert answer.status in (400, 413), answer.body[:300]
    assert_problem(answer, answer.status, seconds=10)


def test_a_chunked_body_split_into_one_byte_chunks_is_decided(target, ledger):
    answer = raw(target, http_request("POST", "/v1/decisions", chunks(GOOD, 1), chunked=True), ledger=ledger,
                 family="chunked")
    assert answer.status == 200, answer.body[:300]


def test_a_chunked_ruleset_document_over_the_limit_is_a_413(target, ledger):
    text = toy_yaml("chunked-big").replace("owner: test", "owner: '" + "x" * (MAX_BODY + 10) + "'")
    answer = raw(target, http_request("POST", "/v1/rulesets:validate", chunks(text.encode()), chunked=True,
                                      headers=YAML), ledger=ledger, family="chunked")
    assert_problem(answer, 413, seconds=10)


FRAMING = {
    "header line too long": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
    "too many headers": (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(150))
                         + b"\r\n", 431),
    "request line too long": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "header without colon": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
    "bad HTTP version": (b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", 400),
    "both length and chunked": (b"POST /v1/decisions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
                                400),
    "two content lengths": (b"POST /v1/decisions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n"
                            b"Content-Type: application/json\r\n\r\n{}", 400),
    "bare LF line endings": (b"GET /healthz HTTP/1.1\nHost: x\n\n", 400),
    "NUL in a header": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
}


@pytest.mark.parametrize("label", list(FRAMING))
def test_malformed_http_is_a_4xx_problem(target, ledger, label):
    data, status = FRAMING[label]
    answer = raw(target, data, ledger=ledger, family="framing", shutdown=True)
    assert_problem(answer, status, seconds=5)


def test_an_unknown_method_is_a_405_problem(target, ledger):
    answer = raw(target, http_request("BREW", "/v1/decisions", GOOD), ledger=ledger, family="framing")
    assert_problem(answer, 405, seconds=5)


def test_the_server_answers_after_the_framing_family(target, ledger):
    assert_responsive(target, ledger)


# -- expression limits ---------------------------------------------------------------------------------------

EXPR_PATH = "rules[2].then.set.max_amount.expr"
EXPRESSIONS = {
    "longer than 2000 characters": "amount + " * 230 + "1",
    "61 nested parentheses": "(" * 61 + "amount" + ")" * 61,
    "65 nested calls": "abs(" * 65 + "amount" + ")" * 65,
    "80 negations": "-" * 80 + "amount",
    "more than 500 terms": "*".join(["1"] * 300) + "+" + "+".join(["1"] * 300),
    "unknown function": "eval(amount)",
    "attribute access": "amount.__class__",
    "a string where a number is needed": "amount * 'x'",
    "python syntax": "[x for x in amount]",
    "chained comparison": "1 < amount < 3",
    "round without literal places": "round(amount, amount)",
    "empty": " ",
    "unterminated string": "'abc",
}


@pytest.mark.parametrize("label", list(EXPRESSIONS))
def test_a_bad_expression_is_refused_at_validate(target, ledger, label):
    text = toy_yaml("hostile-expr").replace('{expr: "min(300000, amount * 2)"}',
                                            "{expr: " + json.dumps(EXPRESSIONS[label]) + "}")
    assert_problem(validate(target, ledger, "expression", text), 422, field=EXPR_PATH, seconds=5)


def test_division_by_zero_at_evaluation_is_a_422(target, ledger):
    text = toy_yaml("hostile-div").replace('{expr: "min(300000, amount * 2)"}', '{expr: "amount / (amount - 7)"}')
    text = text.replace("floor: B, max_amount: 200}}", "floor: B, max_amount: 1.08}}")
    published = send(target, "POST", "/v1/rulesets/hostile-div/versions", ledger, "expression", data=text.encode(),
                     headers=YAML)
    assert published.status_code == 201, published.text[:500]
    body = evaluate_body("DIV0", ruleset="hostile-div", input=toy_input(amount=7))
    problem = assert_problem(send(target, "POST", "/v1/decisions", ledger, "expression", json=body), 422, seconds=5)
    assert "division by zero" in problem["detail"]
    assert_responsive(target, ledger)


# -- regex limits -------------------------------------------------------------------------------------------

CODE = "code: {type: string, format: gbt4754, required: true, max_length: 5}"
PATTERNS = {
    "longer than 200 characters": ("'" + "a" * 201 + "'", 5, "input.applicant.fields.code.pattern"),
    "no max_length": ("'[A-Z][0-9]+'", None, "input.applicant.fields.code.max_length"),
    "max_length over 1000": ("'[A-Z][0-9]+'", 5000, "input.applicant.fields.code.max_length"),
    "backreference": (r"'(a)\1'", 5, "input.applicant.fields.code.pattern"),
    "lookahead": ("'(?=C)C[0-9]+'", 5, "input.applicant.fields.code.pattern"),
    "unbalanced": ("'(C'", 5, "input.applicant.fields.code.pattern"),
    "not a string": ("[1, 2]", 5, "input.applicant.fields.code.pattern"),
}


@pytest.mark.parametrize("label", list(PATTERNS))
def test_a_pattern_outside_the_limits_is_refused(target, ledger, label):
    pattern, max_length, field = PATTERNS[label]
    spec = f"code: {{type: string, pattern: {pattern}, required: true" + (f", max_length: {max_length}}}" if max_length
                                                                          else "}")
    text = toy_yaml("hostile-pattern").replace(CODE, spec)
    assert_problem(validate(target, ledger, "regex", text), 422, field=field, seconds=5)


# -- ruleset document limits -----------------------------------------------------------------------------------


def _billion_laughs() -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    return toy_yaml("hostile-laughs") + "\n".join(lines) + "\n"


DOCUMENTS = {
    "over 1 MiB": (toy_yaml("hostile-doc").replace("owner: test", "owner: '" + "x" * (1024 * 1024) + "'"), ""),
    "billion laughs": (_billion_laughs(), "a1"),
    "nested 1000 deep (flow)": (toy_yaml("hostile-doc") + "deep: " + "[" * 1000 + "]" * 1000 + "\n", ""),
    "nested 60 deep (block)": (toy_yaml("hostile-doc") + "deep:\n" + "".join("  " * (i + 1) + f"k{i}:\n"
                                                                             for i in range(60)) + "  " * 62 + "v: 1\n",
                               "deep"),
    "python tag": (toy_yaml("hostile-doc").replace("owner: test", "owner: !!python/object/apply:os.system [id]"),
                   "owner"),
    "duplicate key": (toy_yaml("hostile-doc").replace("owner: test", "owner: test\nowner: other"), "owner"),
    "merge key": (toy_yaml("hostile-doc").replace("owner: test", "owner: test\n<<: {x: 1}"), ""),
    "invalid UTF-8": (toy_yaml("hostile-doc").encode().replace(b"owner: test", b"owner: \xff\xfe"), ""),
    "two documents": (toy_yaml("hostile-doc") + "---\nname: other\n", ""),
    "not a mapping": ("- 1\n- 2\n", ""),
    "empty": ("", ""),
    "binary tag": (toy_yaml("hostile-doc").replace("owner: test", "owner: !!binary aGVsbG8="), "owner"),
    "2001 rules": (toy_yaml("hostile-doc").replace("rules:\n", "rules:\n" + "".join(
        f"  - {{id: X-{i}, stage: scope, title_zh: x, title_en: x, then: {{set: {{in_scope: true}}}}}}\n"
        for i in range(2001)), 1), "rules"),
    "huge number": (toy_yaml("hostile-doc").replace("floor: {type: rating, value: B}",
                                                    "floor: {type: rating, value: B}\n  n: {type: decimal, scale: 2, "
                                                    "value: 1e999999}"), "parameters.n"),
    "json nested 100000 deep": ('{"a":' * 100_000 + "1" + "}" * 100_000, ""),
}


@pytest.mark.parametrize("label", list(DOCUMENTS))
def test_a_ruleset_document_outside_the_limits_is_refused(target, ledger, label):
    text, field = DOCUMENTS[label]
    data = text if isinstance(text, bytes) else text.encode()
    content_type = "application/json" if label.startswith("json") else "application/yaml"
    answer = validate(target, ledger, "document", data, content_type)
    assert answer.status_code in (400, 413, 422), answer.text[:300]
    assert_problem(answer, answer.status_code, field=field or None, seconds=10)


def test_the_server_answers_after_the_document_family(target, ledger):
    assert_responsive(target, ledger)
