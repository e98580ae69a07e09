"""The parsed, type-checked form of a ruleset document.

Produced by `parse.parse_ruleset`; consumed by the static checks, the durable_rules
compiler, the plain reference interpreter, the test runner and the diff. Immutable.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from service.contract import OUTCOMES
from service.rulesets import expr
from service.rulesets.types import FieldSpec, TypeSpec

SEVERITY = {"APPROVE": 0, "REFER": 1, "DECLINE": 2}
OUTCOME_TYPE = TypeSpec(kind="enum", values=OUTCOMES, alias="outcome")

# Roots a condition or expression path can start with, besides input fields.
RESULT_ROOT = "result"
USES_ROOT = "uses"
DECISION_ROOT = "decision"
PARAMS_ROOT = "params"
RESERVED_ROOTS = (RESULT_ROOT, USES_ROOT, DECISION_ROOT, PARAMS_ROOT, "sid", "id", "item")


# -- conditions -------------------------------------------------------------------


@dataclass(frozen=True)
class Operand:
    """Right-hand side of a comparison: a literal, a parameter, or another field."""

    kind: str  # literal | param | field
    value: object = None  # the literal or the parameter's value (normalised)
    name: str | None = None  # parameter name or field path
    type: TypeSpec | None = None  # for field operands


@dataclass(frozen=True)
class Compare:
    path: str
    op: str
    operand: Operand
    type: TypeSpec  # the type of `path` (nullable when the path can be null)


@dataclass(frozen=True)
class Quantified:
    path: str
    quantifier: str  # any | all
    cond: "Cond"  # paths relative to one item
    type: TypeSpec  # the list type


@dataclass(frozen=True)
class All:
    children: tuple["Cond", ...]


@dataclass(frozen=True)
class AnyOf:
    children: tuple["Cond", ...]


@dataclass(frozen=True)
class Not:
    child: "Cond"


@dataclass(frozen=True)
class Always:
    pass


Cond = Compare | Quantified | All | AnyOf | Not | Always

def condition_reads(cond: Cond, prefix: str = "") -> list[str]:
    """Display paths a condition reads, in order (``mines[*].capacity_mt`` inside lists)."""
    out: list[str] = []

    def add(p):
        if p not in out:
            out.append(p)

    def walk(c, pre):
        if isinstance(c, Compare):
            add(pre + c.path)
            if c.operand.kind == "field":
                add(pre + c.operand.name)
        elif isinstance(c, Quantified):
            before = len(out)
            walk(c.cond, f"{pre}{c.path}[*].")
            if len(out) == before:
                add(pre + c.path)
        elif isinstance(c, (All, AnyOf)):
            for child in c.children:
                walk(child, pre)
        elif isinstance(c, Not):
            walk(c.child, pre)

    walk(cond, prefix)
    return out


def condition_params(cond: Cond) -> list[str]:
    """Parameter names a condition compares with, in order."""
    out: list[str] = []

    def walk(c):
        if isinstance(c, Compare):
            if c.operand.kind == "param" and c.operand.name not in out:
                out.append(c.operand.name)
        elif isinstance(c, Quantified):
            walk(c.cond)
        elif isinstance(c, (All, AnyOf)):
            for child in c.children:
                walk(child)
        elif isinstance(c, Not):
            walk(c.child)

    walk(cond)
    return out


# -- values and effects -------------------------------------------------------------


@dataclass(frozen=True)
class ValueSource:
    """Where a result value (or a `uses` input value) comes from."""

    kind: str  # literal | param | field | expr
    value: object = None  # literal / parameter value
    name: str | None = None  # parameter name, field path or expression text
    node: expr.Node | None = None  # parsed expression

    def reads(self) -> list[str]:
        if self.kind == "field":
            return [self.name]
        if self.kind == "expr":
            return [p for p in expr.paths(self.node) if not p.startswith(PARAMS_ROOT + ".")]
        return []

    def params_read(self) -> list[str]:
        if self.kind == "param":
            return [self.name]
        if self.kind == "expr":
            return [p.split(".", 1)[1] for p in expr.paths(self.node) if p.startswith(PARAMS_ROOT + ".")]
        return []

    def describe(self):
        if self.kind == "literal":
            return self.value
        if self.kind == "param":
            return {"param": self.name}
        if self.kind == "field":
            return {"field": self.name}
        return {"expr": self.name}


@dataclass(frozen=True)
class Effect:
    outcome: str | None = None
    reason: str | None = None
    sets: tuple[tuple[str, ValueSource], ...] = ()
    adds: tuple[tuple[str, ValueSource], ...] = ()
    message: "Reason | None" = None  # this rule's own wording of its reason (same code)

    def writes(self) -> list[str]:
        return [name for name, _ in self.sets] + [name for name, _ in self.adds]


@dataclass(frozen=True)
class Rule:
    id: str
    index: int  # position in the document
    stage: str
    title_zh: str
    title_en: str
    when: Cond  # the rule's own condition
    condition: Cond  # `when` and the stage's gate: what is actually matched
    effect: Effect
    source: str | None = None  # the policy clause this rule encodes
    description: str | None = None
    raw_when: object = None  # the document's own spelling, for display and diff

    @property
    def reads(self) -> list[str]:
        """Paths its condition (with its stage's gate) reads: input, result, uses, decision."""
        return condition_reads(self.condition)

    @property
    def effect_reads(self) -> list[str]:
        """Paths the values it sets or adds read."""
        return list(dict.fromkeys(p for _, src in self.effect.sets + self.effect.adds for p in src.reads()))

    @property
    def params_read(self) -> frozenset[str]:
        """Every parameter it reads: in its condition, its stage's gate, the named conditions
        these refer to (all inlined in `condition`) and its effect."""
        return frozenset(condition_params(self.condition)).union(
            *(src.params_read() for _, src in self.effect.sets + self.effect.adds))


@dataclass(frozen=True)
class Stage:
    id: str
    index: int
    title_zh: str
    title_en: str
    gate: Cond | None = None  # the stage applies only when this holds


@dataclass(frozen=True)
class Parameter:
    name: str
    type: TypeSpec
    value: object
    description: str | None = None


@dataclass(frozen=True)
class Reason:
    code: str
    zh: str
    en: str


@dataclass(frozen=True)
class Constraint:
    """A cross-field check on the input (e.g. weights sum to 1)."""

    id: str
    node: expr.Node
    text: str
    path: str  # the input path an error is reported at
    message_zh: str
    message_en: str


@dataclass(frozen=True)
class Use:
    """Another ruleset this one evaluates first and whose results it reads."""

    alias: str
    ruleset: str
    input: tuple[tuple[str, ValueSource], ...]  # used ruleset's input path -> value
    results: dict[str, FieldSpec]  # what `uses.<alias>.<name>` can read
    as_of: "dt.date | None" = None  # evaluate the used ruleset as on this date (None: the decision's as_of)


@dataclass(frozen=True)
class TestCase:
    name: str
    index: int
    input: object
    as_of: dt.date | None = None
    outcome: str | None = None
    reasons: tuple[str, ...] | None = None
    results: dict = field(default_factory=dict)
    absent: tuple[str, ...] = ()
    fired: tuple[str, ...] = ()
    not_fired: tuple[str, ...] = ()
    invalid: tuple[str, ...] | None = None  # expect a 422 naming these input paths


@dataclass(frozen=True)
class Ruleset:
    name: str
    version: str
    effective_from: dt.date
    effective_to: dt.date | None
    status: str
    owner: str
    description_zh: str
    description_en: str
    input: TypeSpec  # an object type
    constraints: tuple[Constraint, ...]
    parameters: dict[str, Parameter]
    results: dict[str, FieldSpec]
    reasons: dict[str, Reason]
    stages: tuple[Stage, ...]
    rules: tuple[Rule, ...]
    uses: tuple[Use, ...]
    tests: tuple[TestCase, ...]
    sha256: str
    data: dict  # the normalised document data (canonical form)

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def stage_map(self) -> dict[str, Stage]:
        return {s.id: s for s in self.stages}

    @property
    def rule_map(self) -> dict[str, Rule]:
        return {r.id: r for r in self.rules}

    def result_stage(self, name: str) -> str | None:
        """The stage whose rules write a result (each result has exactly one)."""
        for rule in self.rules:
            if name in rule.effect.writes():
                return rule.stage
        return None

    def effective_on(self, day: dt.date) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day < self.effective_to)
