"""Document data -> `model.Ruleset`, reporting every problem with its location.

This is the structural and type check: known keys, names, types, every path a
condition or formula reads is declared and used with a compatible type, every
parameter, reason and named condition referenced exists, stages are declared and a
rule only reads results of its own or earlier stages. Whole-ruleset checks
(unreachable and conflicting rules, dependency cycles) live in `analysis.py`.
"""
from __future__ import annotations

import logging
import re
from dataclasses import replace

from service.errors import Problem
from service.identifiers import REASON_CODE_RE, RULE_ID_RE, RULESET_NAME_RE, SEMVER_RE
from service.rulesets import expr
from service.rulesets.document import SourceDocument, normalize
from service.rulesets.conditions import ConditionParser, Scope, expr_kind
from service.rulesets.model import (
    OUTCOMES, PARAMS_ROOT, RESERVED_ROOTS, RESULT_ROOT, All, Always, Constraint, Effect, Parameter, Reason, Rule,
    Ruleset, Stage, TestCase, Use, ValueSource, condition_reads,
)
from service.rulesets.types import (
    MISSING, FieldSpec, TypeContext, TypeSpec, assignable, check_value, parse_date, parse_fields, parse_type,
)

STATUSES = ("draft", "active", "retired")
TOP_LEVEL_KEYS = (
    "name", "version", "effective_from", "effective_to", "status", "owner", "description", "types",
    "input", "constraints", "parameters", "results", "reasons", "stages", "conditions", "uses",
    "rules", "tests",
)
MAX_RULES = 2000


class UsedRuleset:
    """What a `uses` entry needs to know of the ruleset it uses (all its loaded versions)."""

    def __init__(self, name: str, versions: list[Ruleset]):
        self.name = name
        self.versions = versions


class ProblemLocator:
    def __init__(self, doc: SourceDocument | None):
        self.problems: list[Problem] = []
        self.lines = doc.lines if doc else {}

    def __call__(self, code: str, path: str, message: str, severity: str = "error") -> None:
        self.problems.append(Problem(code, path, message, line=self._line(path), severity=severity))

    def located(self, problems: list[Problem]) -> list[Problem]:
        """Give problems found elsewhere (static checks) the source line of their path."""
        return [p if p.line is not None else replace(p, line=self._line(p.path)) for p in problems]

    def _line(self, path: str) -> int | None:
        probe = path
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            cut = max(probe.rfind("."), probe.rfind("["))
            probe = probe[:cut] if cut > 0 else ""
        return None

    @property
    def has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.problems)


def parse_ruleset(doc: SourceDocument, used: dict[str, UsedRuleset] | None = None) -> tuple[Ruleset | None, list[Problem]]:
    """Parse and type-check a document. Returns (ruleset, problems).

    With errors among the problems the ruleset is partial (the rules that parsed) and
    must only be used for further static checks, never loaded."""
    report = ProblemLocator(doc)
    data = doc.data
    if not isinstance(data, dict):
        report("not_a_mapping", "", "a ruleset document is a mapping with name, version, input, rules, ...")
        return None, report.problems
    try:
        ruleset = _Parser(data, report, used or {}).parse(doc)
    except (TypeError, AttributeError, KeyError, ValueError):
        # A value of a kind some check did not expect (the hypothesis fuzz in tests/hostile
        # finds these): a bug to fix where it happens, but the document is refused, never a 500.
        logging.getLogger("service.rulesets").exception("unexpected value in a ruleset document")
        report("malformed_document", "", "the document holds a value of a kind it cannot have here; "
               "check the types of its fields against docs/ruleset-format.md")
        return None, report.problems
    return ruleset, report.problems


class _Parser:
    def __init__(self, data: dict, report: ProblemLocator, used: dict[str, UsedRuleset]):
        self.data = data
        self.report = report
        self.used = used
        self.types = TypeContext(report=report)
        self.params: dict[str, Parameter] = {}
        self.results: dict[str, FieldSpec] = {}
        self.reasons: dict[str, Reason] = {}
        self.stages: dict[str, Stage] = {}
        self.uses: dict[str, Use] = {}
        self.input = TypeSpec("object")
        self.named_raw: dict = {}
        self.used_params: set[str] = set()
        self.used_conditions: set[str] = set()
        self.conditions = ConditionParser(self)

    # -- top level ------------------------------------------------------------

    def parse(self, doc: SourceDocument) -> Ruleset | None:
        d, report = self.data, self.report
        for key in d:
            if key not in TOP_LEVEL_KEYS:
                report("unknown_key", str(key), f"unknown top-level key {key!r}; known: {', '.join(TOP_LEVEL_KEYS)}")
        name = d.get("name")
        if not isinstance(name, str) or not RULESET_NAME_RE.match(name) or len(name) > 64:
            report("bad_name", "name", "`name` is required: lower-case words joined by '-', e.g. sme-credit-policy")
            name = "invalid"
        version = d.get("version")
        if not isinstance(version, str) or not SEMVER_RE.match(version):
            report("bad_version", "version", "`version` is required: a semantic version MAJOR.MINOR.PATCH, quoted, e.g. '1.0.0'")
            version = "0.0.0"
        effective_from = parse_date(d.get("effective_from"))
        if effective_from is None:
            report("bad_date", "effective_from", "`effective_from` is required: a date YYYY-MM-DD")
        effective_to = None
        if d.get("effective_to") is not None:
            effective_to = parse_date(d.get("effective_to"))
            if effective_to is None:
                report("bad_date", "effective_to", "`effective_to` must be a date YYYY-MM-DD (exclusive) or null")
            elif effective_from and effective_to <= effective_from:
                report("bad_date", "effective_to", "`effective_to` must be after `effective_from`")
        status = d.get("status")
        if status not in STATUSES:
            report("bad_status", "status", f"`status` must be one of {', '.join(STATUSES)}")
        owner = d.get("owner")
        if not isinstance(owner, str) or not owner.strip():
            report("missing", "owner", "`owner` is required: the team accountable for this ruleset")
        desc_zh, desc_en = self.bilingual(d.get("description"), "description")

        self.parse_types(d.get("types", {}))
        self.parse_input(d.get("input"))
        self.parse_parameters(d.get("parameters", {}))
        self.parse_results(d.get("results", {}))
        self.parse_reasons(d.get("reasons", {}))
        self.named_raw = self.mapping(d.get("conditions", {}), "conditions") or {}
        for cname in self.named_raw:
            if not isinstance(cname, str) or not re.match(r"^[a-z][a-z0-9_]{0,62}$", cname):
                report("bad_name", f"conditions.{cname}", "condition names are lower_snake_case")
        self.parse_uses(d.get("uses", {}))
        constraints = self.parse_constraints(d.get("constraints", []))
        self.parse_stages(d.get("stages"))
        rules = self.parse_rules(d.get("rules"))
        tests = self.parse_tests(d.get("tests", []))
        self.check_unused(rules)
        # Built even when there are errors: the static checks still run on the rules that
        # parsed, so one submission lists every problem. Callers never load a partial one.
        return Ruleset(
            name=name, version=version, effective_from=effective_from, effective_to=effective_to,
            status=status, owner=owner, description_zh=desc_zh, description_en=desc_en,
            input=self.input, constraints=tuple(constraints), parameters=self.params,
            results=self.results, reasons=self.reasons, stages=tuple(self.stages.values()),
            rules=tuple(rules), uses=tuple(self.uses.values()), tests=tuple(tests),
            sha256=doc.sha256, data=normalize(d),
        )

    # -- helpers --------------------------------------------------------------

    def mapping(self, value, path):
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.report("bad_type", path, f"`{path}` must be a mapping")
            return None
        return value

    def text(self, value, path, *, required=True, max_len=500):
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            self.report("missing", path, f"`{path.rsplit('.', 1)[-1]}` is required text")
            return ""
        if len(value) > max_len:
            self.report("too_long", path, f"at most {max_len} characters")
        return value.strip()

    def bilingual(self, value, path):
        if not isinstance(value, dict):
            self.report("missing", path, f"`{path}` needs both `zh` and `en` text")
            return "", ""
        for key in value:
            if key not in ("zh", "en"):
                self.report("unknown_key", f"{path}.{key}", "only `zh` and `en` are allowed")
        return self.text(value.get("zh"), f"{path}.zh", max_len=2000), self.text(value.get("en"), f"{path}.en", max_len=2000)

    # -- sections -------------------------------------------------------------

    def parse_types(self, raw):
        raw = self.mapping(raw, "types") or {}
        for name, spec in raw.items():
            path = f"types.{name}"
            if not isinstance(name, str) or not re.match(r"^[a-z][a-z0-9_]{0,62}$", name):
                self.report("bad_name", path, "type names are lower_snake_case")
                continue
            if name in ("boolean", "integer", "decimal", "string", "enum", "date", "object", "list"):
                self.report("bad_name", path, f"{name!r} is a built-in kind")
                continue
            t = parse_type(spec, self.types, path)
            if t is not None:
                self.types.aliases[name] = replace(t, alias=name)

    def parse_input(self, raw):
        if not isinstance(raw, dict) or not raw:
            self.report("missing", "input", "`input` is required: the declared fields of an evaluation request")
            return
        fields = parse_fields(raw, self.types, "input")
        for f in fields:
            if f.name in RESERVED_ROOTS:
                self.report("reserved_name", f"input.{f.name}", f"{f.name!r} is reserved; choose another top-level input name")
        self.input = TypeSpec("object", fields=tuple(fields))

    def parse_parameters(self, raw):
        raw = self.mapping(raw, "parameters") or {}
        for name, spec in raw.items():
            path = f"parameters.{name}"
            if not isinstance(name, str) or not re.match(r"^[a-z][a-z0-9_]{0,62}$", name):
                self.report("bad_name", path, "parameter names are lower_snake_case")
                continue
            if not isinstance(spec, dict) or "value" not in spec:
                self.report("bad_parameter", path, "a parameter is {type: ..., value: ..., description: ...}")
                continue
            t = parse_type({k: v for k, v in spec.items() if k not in ("value",)}, self.types, path)
            if t is None:
                continue
            ok, value = check_value(t, spec["value"])
            if not ok:
                self.report("bad_parameter", f"{path}.value", f"value is not a valid {t.describe()}: {value}")
                continue
            self.params[name] = Parameter(name, t, value, spec.get("description"))

    def parse_results(self, raw):
        """Results read as null until a rule sets them; list results start empty."""
        raw = self.mapping(raw, "results") or {}
        for name, spec in raw.items():
            path = f"results.{name}"
            if not isinstance(name, str) or not re.match(r"^[a-z][a-z0-9_]{0,62}$", name):
                self.report("bad_name", path, "result names are lower_snake_case")
                continue
            if isinstance(spec, dict) and "required" in spec:
                self.report("unknown_key", f"{path}.required", "results are set by rules; `required` does not apply")
            t = parse_type({k: v for k, v in spec.items() if k not in ("default", "required")} if isinstance(spec, dict) else spec,
                           self.types, path)
            if t is None:
                continue
            if t.kind != "list":
                t = replace(t, nullable=True)
            default = [] if t.kind == "list" else MISSING
            if isinstance(spec, dict) and spec.get("default") is not None:
                ok, value = check_value(t, spec["default"])
                if ok:
                    default = value
                else:
                    self.report("bad_default", f"{path}.default", f"default is not a valid {t.describe()}: {value}")
            description = spec.get("description") if isinstance(spec, dict) else None
            self.results[name] = FieldSpec(name=name, type=t, default=default, description=description)

    def parse_reasons(self, raw):
        raw = self.mapping(raw, "reasons") or {}
        for code, spec in raw.items():
            path = f"reasons.{code}"
            if not isinstance(code, str) or not REASON_CODE_RE.match(code):
                self.report("bad_reason_code", path, "reason codes are UPPER_SNAKE_CASE")
                continue
            zh, en = self.bilingual(spec, path)
            self.reasons[code] = Reason(code, zh, en)

    def parse_uses(self, raw):
        raw = self.mapping(raw, "uses") or {}
        for alias, spec in raw.items():
            path = f"uses.{alias}"
            if not isinstance(alias, str) or not re.match(r"^[a-z][a-z0-9_]{0,30}$", alias):
                self.report("bad_name", path, "a `uses` alias is lower_snake_case")
                continue
            if not isinstance(spec, dict):
                self.report("bad_uses", path, "a `uses` entry is {ruleset: name, input: {field: value, ...}}")
                continue
            for key in spec:
                if key not in ("ruleset", "input", "as_of"):
                    self.report("unknown_key", f"{path}.{key}", "a `uses` entry has only `ruleset`, `input` and `as_of`")
            target = spec.get("ruleset")
            used = self.used.get(target) if isinstance(target, str) else None
            if used is None or not used.versions:
                self.report("unknown_ruleset", f"{path}.ruleset", f"uses ruleset {target!r}, which is not loaded or published")
                continue
            if target == self.data.get("name"):
                self.report("bad_uses", f"{path}.ruleset", "a ruleset cannot use itself")
                continue
            if any(v.uses for v in used.versions):
                self.report("bad_uses", f"{path}.ruleset", f"{target} itself uses other rulesets; only one level of `uses` is supported")
            mapping = self.mapping(spec.get("input"), f"{path}.input") or {}
            inputs = []
            for version in used.versions:
                inputs = self.check_use_input(mapping, version, f"{path}.input")
            results = _common_results(used.versions, self.report, path)
            as_of = self.use_as_of(spec["as_of"], f"{path}.as_of") if "as_of" in spec else None
            self.uses[alias] = Use(alias=alias, ruleset=target, input=tuple(inputs), results=results, as_of=as_of)

    def use_as_of(self, raw, path):
        """`as_of: {param: p, dates: {value: date}}` — the date the used ruleset is evaluated on when
        parameter p has that value (e.g. pin the size standard a seed cites); any other value: the
        decision's own as_of. Parameters are fixed per version, so this resolves when parsing."""
        if not isinstance(raw, dict) or set(raw) != {"param", "dates"} or not isinstance(raw["dates"], dict):
            self.report("bad_uses", path, "`as_of` is {param: name, dates: {parameter value: YYYY-MM-DD}}")
            return None
        param = self.params.get(raw["param"]) if isinstance(raw["param"], str) else None
        if param is None or param.type.kind not in ("enum", "string"):
            self.report("unknown_parameter", f"{path}.param", "`as_of` reads an enum or string parameter of this ruleset")
            return None
        self.used_params.add(param.name)
        dates = {}
        for value, date in raw["dates"].items():
            if param.type.kind == "enum" and value not in param.type.values:
                self.report("bad_uses", f"{path}.dates.{value}", f"{value!r} is not a value of parameter {param.name}")
            parsed = parse_date(date)
            if parsed is None:
                self.report("bad_date", f"{path}.dates.{value}", "a date YYYY-MM-DD")
            dates[value] = parsed
        return dates.get(param.value)

    def check_use_input(self, mapping: dict, version: Ruleset, path: str):
        scope = Scope(self, stage_index=None)
        out = []
        target_fields = version.input.field_map
        for name in mapping:
            if name not in target_fields:
                self.report("unknown_field", f"{path}.{name}", f"{version.key} has no input field {name!r}")
        for f in target_fields.values():
            if f.name not in mapping:
                if f.required:
                    self.report("missing", f"{path}.{f.name}", f"{version.key} requires input field {f.name!r}")
                continue
            source = self.value_source(mapping[f.name], f"{path}.{f.name}", f.type, scope, allow_expr=False)
            if source is not None:
                out.append((f.name, source))
        return out

    def parse_constraints(self, raw):
        if not isinstance(raw, list):
            self.report("bad_type", "constraints", "`constraints` is a list")
            return []
        out = []
        scope = Scope(self, stage_index=None, inputs_only=True)
        for i, spec in enumerate(raw):
            path = f"constraints[{i}]"
            if not isinstance(spec, dict):
                self.report("bad_constraint", path, "a constraint is {id, check, path, message_zh, message_en}")
                continue
            for key in spec:
                if key not in ("id", "check", "path", "message_zh", "message_en"):
                    self.report("unknown_key", f"{path}.{key}", "unknown constraint key")
            cid = self.text(spec.get("id"), f"{path}.id")
            node = self.expression(spec.get("check"), f"{path}.check", scope, want="boolean")
            at = spec.get("path")
            if not isinstance(at, str) or scope.resolve(at) is None:
                self.report("unknown_field", f"{path}.path", "`path` must name the input field an error is reported at")
            zh = self.text(spec.get("message_zh"), f"{path}.message_zh")
            en = self.text(spec.get("message_en"), f"{path}.message_en")
            if node is not None:
                out.append(Constraint(cid, node, spec["check"], at if isinstance(at, str) else "", zh, en))
        return out

    def parse_stages(self, raw):
        if not isinstance(raw, list) or not raw:
            self.report("missing", "stages", "`stages` is required: the ordered list of stages rules belong to")
            return
        for i, spec in enumerate(raw):
            path = f"stages[{i}]"
            if not isinstance(spec, dict):
                self.report("bad_stage", path, "a stage is {id, title_zh, title_en, when?}")
                continue
            for key in spec:
                if key not in ("id", "title_zh", "title_en", "when"):
                    self.report("unknown_key", f"{path}.{key}", "a stage has id, title_zh, title_en and an optional `when`")
            sid = spec.get("id")
            if not isinstance(sid, str) or not re.match(r"^[a-z][a-z0-9_]{0,62}$", sid):
                self.report("bad_name", f"{path}.id", "stage ids are lower_snake_case")
                continue
            if sid in self.stages:
                self.report("duplicate_stage", f"{path}.id", f"stage {sid!r} is declared twice")
                continue
            gate = None
            if spec.get("when") is not None:
                gate = self.conditions.parse(spec["when"], f"{path}.when", Scope(self, stage_index=i, own_stage=sid, gate=True), 0)
            self.stages[sid] = Stage(sid, i, self.text(spec.get("title_zh"), f"{path}.title_zh"),
                                     self.text(spec.get("title_en"), f"{path}.title_en"), gate)

    def parse_rules(self, raw):
        if not isinstance(raw, list) or not raw:
            self.report("missing", "rules", "`rules` is required: a non-empty list")
            return []
        if len(raw) > MAX_RULES:
            self.report("too_many_rules", "rules", f"at most {MAX_RULES} rules")
            return []
        rules, seen = [], {}
        for i, spec in enumerate(raw):
            path = f"rules[{i}]"
            if not isinstance(spec, dict):
                self.report("bad_rule", path, "a rule is {id, stage, title_zh, title_en, when, then}")
                continue
            for key in spec:
                if key not in ("id", "stage", "title_zh", "title_en", "when", "then", "source", "description"):
                    self.report("unknown_key", f"{path}.{key}", f"unknown rule key {key!r}")
            rid = spec.get("id")
            if not isinstance(rid, str) or not RULE_ID_RE.match(rid) or len(rid) > 64:
                self.report("bad_rule_id", f"{path}.id", "rule ids are stable UPPER-CASE words joined by '-', e.g. RF-03")
                continue
            if rid in seen:
                self.report("duplicate_rule_id", f"{path}.id", f"rule id {rid!r} is already used by rules[{seen[rid]}]")
                continue
            seen[rid] = i
            stage = self.stages.get(spec.get("stage")) if isinstance(spec.get("stage"), str) else None
            if stage is None:
                self.report("unknown_stage", f"{path}.stage", f"stage {spec.get('stage')!r} is not declared in `stages`")
                continue
            scope = Scope(self, stage_index=stage.index, own_stage=stage.id)
            when = Always() if spec.get("when") is None else self.conditions.parse(spec["when"], f"{path}.when", scope, 0)
            effect = self.effect(spec.get("then"), f"{path}.then", scope)
            title_zh = self.text(spec.get("title_zh"), f"{path}.title_zh")
            title_en = self.text(spec.get("title_en"), f"{path}.title_en")
            if when is None or effect is None:
                continue
            condition = when if stage.gate is None else _conjoin(stage.gate, when)
            rules.append(Rule(
                id=rid, index=i, stage=stage.id, title_zh=title_zh, title_en=title_en, when=when,
                condition=condition, effect=effect, source=self.text(spec.get("source"), f"{path}.source", required=False),
                description=self.text(spec.get("description"), f"{path}.description", required=False, max_len=2000),
                raw_when=normalize(spec.get("when")),
            ))
        self.check_result_stages(rules)
        return rules

    # -- effects ----------------------------------------------------------------

    def effect(self, raw, path, scope):
        if not isinstance(raw, dict) or not raw:
            self.report("bad_effect", path, "`then` is required: {outcome, reason, set, add}")
            return None
        for key in raw:
            if key not in ("outcome", "reason", "set", "add", "message"):
                self.report("unknown_key", f"{path}.{key}", "`then` has outcome, reason, message, set and add")
        outcome, reason = raw.get("outcome"), raw.get("reason")
        if outcome is not None and outcome not in ("REFER", "DECLINE"):
            self.report("bad_outcome", f"{path}.outcome", "a rule's outcome is REFER or DECLINE (APPROVE is what remains)")
            outcome = None
        if (outcome is None) != (reason is None):
            self.report("bad_effect", path, "`outcome` and `reason` go together: every REFER/DECLINE cites a reason code")
        if reason is not None and (not isinstance(reason, str) or reason not in self.reasons):
            self.report("unknown_reason", f"{path}.reason", f"reason {reason!r} is not in `reasons` (each needs zh and en messages)")
        message = None
        if "message" in raw:
            # One reason code, worded for what this rule found (e.g. which field was not attested).
            if reason is None:
                self.report("bad_effect", f"{path}.message", "`message` words a reason; it needs `reason`")
            else:
                zh, en = self.bilingual(raw["message"], f"{path}.message")
                message = Reason(reason, zh, en)
        sets, adds = [], []
        for kind, target in (("set", sets), ("add", adds)):
            entries = self.mapping(raw.get(kind), f"{path}.{kind}") or {}
            for name, value in entries.items():
                rpath = f"{path}.{kind}.{name}"
                result = self.results.get(name)
                if result is None:
                    self.report("unknown_result", rpath, f"result {name!r} is not declared in `results`")
                    continue
                is_list = result.type.kind == "list"
                if kind == "set" and is_list:
                    self.report("bad_effect", rpath, f"{name} is a list; use `add`")
                    continue
                if kind == "add" and (not is_list or result.type.items.kind != "enum"):
                    self.report("bad_effect", rpath, f"`add` needs a list-of-enum result; {name} is {result.type.describe()}")
                    continue
                want = result.type.items if kind == "add" else result.type
                source = self.value_source(value, rpath, want, scope, allow_expr=(kind == "set"), list_ok=(kind == "add"))
                if source is not None:
                    target.append((name, source))
        if not (outcome or sets or adds):
            self.report("bad_effect", path, "a rule must do something: an outcome, or set/add a result")
        return Effect(outcome=outcome, reason=reason, sets=tuple(sets), adds=tuple(adds), message=message)

    def value_source(self, raw, path, want: TypeSpec, scope, *, allow_expr, list_ok=False):
        if isinstance(raw, dict) and set(raw) == {"expr"}:
            if not allow_expr:
                self.report("bad_value", path, "an expression is not allowed here")
                return None
            node = self.expression(raw["expr"], f"{path}.expr", scope, want=expr_kind(want))
            return None if node is None else ValueSource("expr", name=raw["expr"], node=node)
        if isinstance(raw, dict) and set(raw) == {"param"}:
            param = self.params.get(raw["param"]) if isinstance(raw["param"], str) else None
            if param is None:
                self.report("unknown_parameter", f"{path}.param", f"no parameter {raw['param']!r}")
                return None
            self.used_params.add(param.name)
            checked = self.literal_value(param.value, want, f"{path}.param", list_ok)
            return None if checked is _BAD else ValueSource("param", value=checked, name=param.name)
        if isinstance(raw, dict) and set(raw) == {"field"}:
            src = scope.resolve(raw["field"]) if isinstance(raw["field"], str) else None
            if src is None:
                self.report("unknown_field", f"{path}.field", scope.why_unknown(raw["field"]))
                return None
            if src.kind == "list" and list_ok:
                src = src.items
            reason = assignable(src, want)
            if reason:
                self.report("type_mismatch", f"{path}.field", f"{raw['field']} cannot be stored here: {reason}")
                return None
            return ValueSource("field", name=raw["field"])
        if isinstance(raw, dict):
            self.report("bad_value", path, "a value is a literal, {param: name}, {field: path} or {expr: '...'}")
            return None
        checked = self.literal_value(raw, want, path, list_ok)
        return None if checked is _BAD else ValueSource("literal", value=checked)

    def literal_value(self, value, want, path, list_ok):
        if isinstance(value, list) and list_ok:
            out = []
            for i, v in enumerate(value):
                ok, nv = check_value(want, v)
                if not ok:
                    self.report("type_mismatch", f"{path}[{i}]", f"{v!r} is not a valid {want.describe()}: {nv}")
                    return _BAD
                out.append(nv)
            return out
        ok, nv = check_value(want, value)
        if not ok:
            self.report("type_mismatch", path, f"{value!r} is not a valid {want.describe()}: {nv}")
            return _BAD
        return nv

    def expression(self, text, path, scope, want):
        try:
            node = expr.parse(text)
            got = expr.check(node, scope.expr_type)
        except expr.ExprError as exc:
            self.report("bad_expression", path, str(exc))
            return None
        if want and got.kind not in (want, "null"):
            self.report("type_mismatch", path, f"the expression gives {got.kind}, expected {want}")
            return None
        for p in expr.paths(node):
            if p.startswith(PARAMS_ROOT + "."):
                self.used_params.add(p.split(".", 1)[1])
        return node

    # -- tests --------------------------------------------------------------------

    def parse_tests(self, raw):
        if not isinstance(raw, list):
            self.report("bad_type", "tests", "`tests` is a list of cases")
            return []
        out, names = [], set()
        for i, spec in enumerate(raw):
            path = f"tests[{i}]"
            if not isinstance(spec, dict):
                self.report("bad_test", path, "a test is {name, input, as_of?, expect: {...}}")
                continue
            for key in spec:
                if key not in ("name", "input", "as_of", "expect"):
                    self.report("unknown_key", f"{path}.{key}", "a test has name, input, as_of and expect")
            name = self.text(spec.get("name"), f"{path}.name")
            if name in names:
                self.report("duplicate_test", f"{path}.name", f"test name {name!r} is used twice")
            names.add(name)
            as_of = None
            if spec.get("as_of") is not None:
                as_of = parse_date(spec["as_of"])
                if as_of is None:
                    self.report("bad_date", f"{path}.as_of", "`as_of` must be a date YYYY-MM-DD")
            expect = spec.get("expect")
            if not isinstance(expect, dict) or not expect:
                self.report("bad_test", f"{path}.expect", "`expect` is required: outcome, reasons, results, absent, fired, not_fired or invalid")
                continue
            for key in expect:
                if key not in ("outcome", "reasons", "results", "absent", "fired", "not_fired", "invalid"):
                    self.report("unknown_key", f"{path}.expect.{key}", "unknown expectation")
            outcome = expect.get("outcome")
            if outcome is not None and outcome not in OUTCOMES:
                self.report("bad_test", f"{path}.expect.outcome", f"outcome is one of {', '.join(OUTCOMES)}")
            reasons = expect.get("reasons")
            if reasons is not None:
                if not isinstance(reasons, list) or any(not isinstance(r, str) or r not in self.reasons for r in reasons):
                    self.report("bad_test", f"{path}.expect.reasons", "a list of declared reason codes")
                    reasons = None
                else:
                    reasons = tuple(reasons)
            results = self.mapping(expect.get("results"), f"{path}.expect.results") or {}
            checked_results = {}
            for rname, value in results.items():
                f = self.results.get(rname)
                if f is None:
                    self.report("unknown_result", f"{path}.expect.results.{rname}", f"no result {rname!r}")
                    continue
                ok, nv = check_value(f.type, value)
                if not ok:
                    self.report("type_mismatch", f"{path}.expect.results.{rname}", f"{value!r} is not a valid {f.type.describe()}: {nv}")
                    continue
                checked_results[rname] = nv
            absent = self.name_list(expect.get("absent"), f"{path}.expect.absent", set(self.results))
            fired = self.name_list(expect.get("fired"), f"{path}.expect.fired", None)
            not_fired = self.name_list(expect.get("not_fired"), f"{path}.expect.not_fired", None)
            invalid = expect.get("invalid")
            if invalid is not None:
                if not isinstance(invalid, list) or not all(isinstance(p, str) for p in invalid):
                    self.report("bad_test", f"{path}.expect.invalid", "`invalid` lists the input paths the 422 must name")
                    invalid = None
                else:
                    invalid = tuple(invalid)
                if outcome or reasons or results:
                    self.report("bad_test", f"{path}.expect", "an `invalid` case expects no outcome, reasons or results")
            if "input" not in spec:
                self.report("bad_test", f"{path}.input", "`input` is required")
                continue
            out.append(TestCase(name=name, index=i, input=spec["input"], as_of=as_of, outcome=outcome,
                                reasons=reasons, results=checked_results, absent=absent, fired=fired,
                                not_fired=not_fired, invalid=invalid))
        return out

    def name_list(self, value, path, allowed):
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.report("bad_test", path, "a list of names")
            return ()
        if allowed is not None:
            for v in value:
                if v not in allowed:
                    self.report("bad_test", path, f"{v!r} is not a declared result")
        return tuple(value)

    # -- whole-document checks ----------------------------------------------------

    def check_result_stages(self, rules):
        """Each result is written by one stage; a rule reads results of its own or earlier stages."""
        writer_stage: dict[str, str] = {}
        for rule in rules:
            for name in rule.effect.writes():
                first = writer_stage.setdefault(name, rule.stage)
                if first != rule.stage:
                    self.report("result_in_two_stages", f"rules[{rule.index}].then",
                                f"result {name!r} is already written in stage {first!r}; a result belongs to one stage")
        order = {s.id: s.index for s in self.stages.values()}
        for rule in rules:
            reads = list(rule.reads)
            for _, source in rule.effect.sets:
                reads += source.reads()
            for p in reads:
                if not p.startswith(RESULT_ROOT + "."):
                    continue
                name = p.split(".")[1]
                stage = writer_stage.get(name)
                if stage is None:
                    self.report("result_never_set", f"rules[{rule.index}].when", f"reads result {name!r}, which no rule sets")
                elif order[stage] > order[rule.stage]:
                    self.report("reads_later_stage", f"rules[{rule.index}].when",
                                f"stage {rule.stage!r} reads result {name!r} of the later stage {stage!r}")
        for stage in self.stages.values():
            if stage.gate is None:
                continue
            for p in condition_reads(stage.gate):
                name = p.split(".")[1] if p.startswith(RESULT_ROOT + ".") else None
                if name and writer_stage.get(name) is not None and order[writer_stage[name]] >= stage.index:
                    self.report("reads_later_stage", f"stages[{stage.index}].when",
                                f"the gate of stage {stage.id!r} reads result {name!r} of stage {writer_stage[name]!r}, which is not earlier")
        self.writer_stage = writer_stage

    def check_unused(self, rules):
        for name in self.params:
            if name not in self.used_params:
                self.report("unused_parameter", f"parameters.{name}", f"parameter {name!r} is never used", severity="warning")
        used_reasons = {r.effect.reason for r in rules if isinstance(r.effect.reason, str)}
        for code in self.reasons:
            if code not in used_reasons:
                self.report("unused_reason", f"reasons.{code}", f"reason {code!r} is never cited by a rule", severity="warning")
        for name in self.named_raw:
            if name not in self.used_conditions:
                self.report("unused_condition", f"conditions.{name}", f"named condition {name!r} is never used", severity="warning")
        written = {n for r in rules for n in r.effect.writes()}
        for name in self.results:
            if name not in written:
                self.report("result_never_set", f"results.{name}", f"result {name!r} is declared but no rule sets it", severity="warning")


_BAD = object()



def _conjoin(gate, when):
    if isinstance(when, Always):
        return gate
    return All((gate, when))


def _common_results(versions: list[Ruleset], report, path) -> dict[str, FieldSpec]:
    """Results readable through `uses`: those every loaded version declares with the same type."""
    first = versions[0].results
    out = {}
    for name, f in first.items():
        if all(name in v.results and v.results[name].type == f.type for v in versions[1:]):
            out[name] = f
    return out
