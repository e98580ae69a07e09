"""Facts are written as JSON text directly; the text is what json.dumps makes of the dict the
readable reference writer builds (so the engine sees exactly the same facts)."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from service.engine.facts import build_item_text, fact_head, make_piece, make_writer

SAMPLES = {
    "boolean": [True, False],
    "integer": [0, 1, -7, 10**12],
    "decimal": [Decimal("0"), Decimal("12.5"), Decimal("-3"), 7],
    "date": [dt.date(2026, 1, 15), dt.date(1999, 12, 31)],
    "string": ["", "C3670", "杭州ABC贸易", 'quote " and \\ and \n', "G53"],
}


def _values(t):
    if t.kind == "enum":
        return list(t.values)
    if t.kind == "list":
        items = list(t.items.values) if t.items.kind == "enum" else []
        return [[], items, items[:1], items[::2]]
    if t.kind == "object":
        return [{}]
    return SAMPLES[t.kind]


def _reference(need, value) -> str:
    fact: dict = {}
    make_writer(need)(fact, value)
    return json.dumps(fact, ensure_ascii=False)[1:-1]


def test_every_need_of_every_shipped_version_writes_the_reference_text(shipped, toy):
    checked = 0
    for registry in (shipped, toy):
        for lv in registry.all():
            needs = [n for w in lv.compiled.waves for sub in w.subwaves for n in sub.needs]
            needs += [n for w in lv.compiled.waves for q in w.quantifiers for n in q.needs.values()]
            for need in needs:
                piece = make_piece(need)
                values = [None] + [v for v in _values(need.type)
                                   if not (need.prefixes and type(v) is not str)]
                for value in values:
                    assert piece(value) == _reference(need, value), (lv.ruleset.key, need.path, value)
                    checked += 1
            for w in lv.compiled.waves:
                for q in w.quantifiers:
                    item = {n.path.split(".")[0]: None for n in q.needs.values()}
                    want = {"_w": q.kind}
                    for parts, write in q.writers:
                        write(want, None)
                    assert build_item_text(q, item) + "}" == json.dumps(want, ensure_ascii=False)
    assert checked > 500


def test_fact_heads_and_short_keys():
    assert fact_head("1.0") + "}" == json.dumps({"_w": "1.0"})


def test_facts_carry_short_keys(shipped):
    lv = shipped.resolve("sme-credit-policy", None, dt.date(2026, 1, 15))
    keys = {n.key for w in lv.compiled.waves for sub in w.subwaves for n in sub.needs}
    assert keys and all(k.startswith("k") and len(k) <= 4 for k in keys)
    paths = {n.path: n.key for w in lv.compiled.waves for sub in w.subwaves for n in sub.needs}
    assert len(set(paths.values())) == len(paths)  # one key per path
