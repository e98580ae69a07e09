"""Readable forms of what the pages show: conditions, effects, values, traces by stage."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from markupsafe import Markup

from service import canonical
from service.rulesets.model import All, Always, AnyOf, Compare, Not, Quantified

_OPS = {
    "eq": "=", "ne": "≠", "in": "∈", "not_in": "∉", "lt": "<", "le": "≤", "gt": ">", "ge": "≥",
    "starts_with": ("以…开头", "starts with"), "contains": ("包含", "contains"),
    "contains_any": ("包含任一", "contains any of"),
}
_WORDS = {
    "all": ("全部满足", "all of"), "any": ("任一满足", "any of"), "not": ("并非", "not"),
    "always": ("总是", "always"), "is_null": ("为空", "is null"), "not_null": ("不为空", "is not null"),
    "is_empty": ("为空列表", "is empty"), "not_empty": ("不为空列表", "is not empty"),
    "any_item": ("存在某项满足", "some item satisfies"), "all_items": ("每一项都满足", "every item satisfies"),
}


def _word(pair, lang: str) -> str:
    return pair if isinstance(pair, str) else (pair[0] if lang == "zh" else pair[1])


def value_text(value) -> str:
    """A JSON-like value as compact text (exact decimals, Chinese unescaped)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, type(None))):
        return canonical.dumps(value)
    if isinstance(value, Decimal):
        return format(canonical.normalize_decimal(value), "f")
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return "[" + ", ".join(value) + "]"
    return canonical.dumps(value, sort_keys=False)


def _operand(operand) -> Markup:
    if operand.kind == "param":
        return Markup('<span class="param">params.{}</span> <span class="muted">= {}</span>').format(
            operand.name, value_text(operand.value))
    if operand.kind == "field":
        return Markup('<code>{}</code>').format(operand.name)
    return Markup('<span class="lit">{}</span>').format(value_text(operand.value))


def condition_html(cond, lang: str) -> Markup:
    """A parsed condition as nested lists: `field op value`, all/any/not spelled out."""
    if isinstance(cond, Always):
        return Markup("<span>{}</span>").format(_word(_WORDS["always"], lang))
    if isinstance(cond, Compare):
        if cond.op in ("is_null", "is_empty"):
            positive = cond.operand.value is not False
            key = cond.op if positive else {"is_null": "not_null", "is_empty": "not_empty"}[cond.op]
            return Markup("<code>{}</code> {}").format(cond.path, _word(_WORDS[key], lang))
        return Markup("<code>{}</code> <b>{}</b> {}").format(cond.path, _word(_OPS.get(cond.op, cond.op), lang),
                                                           _operand(cond.operand))
    if isinstance(cond, Quantified):
        key = "any_item" if cond.quantifier == "any" else "all_items"
        return Markup("<code>{}</code> {}: <ul><li>{}</li></ul>").format(cond.path, _word(_WORDS[key], lang),
                                                                        condition_html(cond.cond, lang))
    if isinstance(cond, (All, AnyOf)):
        key = "all" if isinstance(cond, All) else "any"
        items = Markup("").join(Markup("<li>{}</li>").format(condition_html(c, lang)) for c in cond.children)
        return Markup("{}: <ul>{}</ul>").format(_word(_WORDS[key], lang), items)
    if isinstance(cond, Not):
        return Markup("{}: <ul><li>{}</li></ul>").format(_word(_WORDS["not"], lang), condition_html(cond.child, lang))
    return Markup("<code>{}</code>").format(repr(cond))


def effect_html(effect: dict | None, reasons_by_code: dict | None = None, lang: str = "zh") -> Markup:
    """A trace entry's (or a rule's) effect: outcome, reason, results set or added."""
    if not effect:
        return Markup('<span class="muted">—</span>')
    parts = []
    if effect.get("outcome"):
        parts.append(Markup('<span class="outcome outcome-{0}">{0}</span>').format(effect["outcome"]))
    if effect.get("reason"):
        reason = (reasons_by_code or {}).get(effect["reason"])
        text = (reason.zh if lang == "zh" else reason.en) if reason else ""
        parts.append(Markup("<code>{}</code> {}").format(effect["reason"], text))
    for verb, key in (("set", "set"), ("add", "add")):
        for name, value in (effect.get(key) or {}).items():
            parts.append(Markup("{} <code>{}</code> = {}").format(verb, name, _source(value)))
    return Markup("<br>").join(parts)


def _source(value) -> Markup:
    """A declared result value: a literal, or where it comes from (parameter, field, expression)."""
    if isinstance(value, dict) and len(value) == 1:
        kind, name = next(iter(value.items()))
        if kind == "param":
            return Markup('<span class="param">params.{}</span>').format(name)
        if kind == "field":
            return Markup("<code>{}</code>").format(name)
        if kind == "expr":
            return Markup("<code>{}</code>").format(name)
    return Markup("{}").format(value_text(value))


def rule_effect(rule) -> dict:
    """A rule's declared effect in the shape trace entries use."""
    out = {}
    if rule.effect.outcome:
        out["outcome"] = rule.effect.outcome
    if rule.effect.reason:
        out["reason"] = rule.effect.reason
    if rule.effect.sets:
        out["set"] = {name: source.describe() for name, source in rule.effect.sets}
    if rule.effect.adds:
        out["add"] = {name: source.describe() for name, source in rule.effect.adds}
    return out


def trace_by_stage(entries: list[dict], ruleset) -> list[dict]:
    """Trace entries grouped by stage, stages in the ruleset's order (entries keep theirs)."""
    order = [s.id for s in ruleset.stages] if ruleset is not None else []
    titles = {s.id: (s.title_zh, s.title_en) for s in ruleset.stages} if ruleset is not None else {}
    groups: dict[str, list[dict]] = {}
    for entry in entries or []:
        groups.setdefault(entry.get("stage") or "", []).append(entry)
    stages = [s for s in order if s in groups] + [s for s in groups if s not in order]
    return [{"id": s, "titles": titles.get(s, (s, s)), "entries": groups[s],
             "fired": sum(1 for e in groups[s] if e.get("fired"))} for s in stages]
