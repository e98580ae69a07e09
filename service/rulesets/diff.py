"""What changed between two versions of a ruleset: rules, parameters, and the rest.

Compared on the canonical document data, so formatting and key order never show up as
changes; rules are matched by their stable ids.
"""
from __future__ import annotations

from service import canonical
from service.rulesets.model import Ruleset

SECTIONS = ("input", "constraints", "results", "reasons", "stages", "conditions", "uses", "types")
METADATA = ("effective_from", "effective_to", "status", "owner", "description")


def _by_key(items, key):
    return {item.get(key): item for item in items or [] if isinstance(item, dict)} if isinstance(items, list) else {}


def _changes(old: dict, new: dict) -> dict:
    added = sorted(k for k in new if k not in old)
    removed = sorted(k for k in old if k not in new)
    changed = sorted(k for k in old if k in new and canonical.dumps(old[k]) != canonical.dumps(new[k]))
    return {
        "added": [{"id": k, "now": new[k]} for k in added],
        "removed": [{"id": k, "was": old[k]} for k in removed],
        "changed": [{"id": k, "was": old[k], "now": new[k],
                     "fields": sorted(f for f in set(old[k]) | set(new[k])
                                      if canonical.dumps(old[k].get(f)) != canonical.dumps(new[k].get(f)))}
                    if isinstance(old[k], dict) and isinstance(new[k], dict) else {"id": k, "was": old[k], "now": new[k]}
                    for k in changed],
    }


def diff_rulesets(old: Ruleset, new: Ruleset) -> dict:
    a, b = old.data, new.data
    out = {
        "name": new.name,
        "from": {"version": old.version, "sha256": old.sha256},
        "to": {"version": new.version, "sha256": new.sha256},
        "rules": _changes(_by_key(a.get("rules"), "id"), _by_key(b.get("rules"), "id")),
        "parameters": _changes(a.get("parameters") or {}, b.get("parameters") or {}),
        "metadata": {k: {"was": a.get(k), "now": b.get(k)} for k in METADATA
                     if canonical.dumps(a.get(k)) != canonical.dumps(b.get(k))},
        "sections_changed": [s for s in SECTIONS if canonical.dumps(a.get(s)) != canonical.dumps(b.get(s))],
    }
    out["identical"] = old.sha256 == new.sha256
    return out


def changed_rule_ids(old: Ruleset, new: Ruleset) -> set[str]:
    d = diff_rulesets(old, new)["rules"]
    return {r["id"] for part in ("added", "removed", "changed") for r in d[part]}
