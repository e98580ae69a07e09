"""A small, safe expression language for computed results and input constraints.

    min(300000, mortgage.monthly_payment * 2 * 60)
    round(result.base_rate * (1 + coefficients.rating * params.w_rating), 4)
    weights == null or weights.rating + weights.guarantee + weights.contribution + weights.prospect == 1

Grammar (lowest precedence first):
    expr   := or
    or     := and ("or" and)*
    and    := not ("and" not)*
    not    := "not" not | cmp
    cmp    := sum (("==" | "!=" | "<" | "<=" | ">" | ">=") sum)?
    sum    := prod (("+" | "-") prod)*
    prod   := unary (("*" | "/") unary)*
    unary  := "-" unary | atom
    atom   := NUMBER | 'string' | true | false | null | path | NAME "(" args ")" | "(" expr ")"
    path   := NAME ("." NAME)*
Functions: min, max, abs, round(x, places) (half-up), coalesce(a, b, ...).

Parsed and type-checked once when a ruleset loads; evaluated by walking the tree with
a fixed decimal context. There is no `eval`, no attribute access, no calls beyond the
five functions above.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, DecimalException

from service.errors import EvaluationError, Problem

DECIMAL_CONTEXT = Context(prec=34, rounding=ROUND_HALF_UP, Emin=-999999, Emax=999999)
MAX_EXPRESSION_LENGTH = 2000
MAX_DEPTH = 50
# Type checking, evaluation and every other walk of the tree recurse once per level, and
# `1+1+…+1` is one level per operator: bound the tree, not only the parentheses, so no
# expression that loads can exhaust the interpreter's stack anywhere (tests/hostile).
MAX_TREE_DEPTH = 64
MAX_NODES = 500

_TOKEN_RE = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<str>'[^'\\]*')|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>==|!=|<=|>=|[-+*/<>().,]))"
)
FUNCTIONS = {"min", "max", "abs", "round", "coalesce"}
KEYWORDS = {"and", "or", "not", "true", "false", "null"}


class ExprError(ValueError):
    """A syntax or type error in an expression, with the character position."""


# -- AST --------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    pass


@dataclass(frozen=True)
class Literal(Node):
    value: object


@dataclass(frozen=True)
class Path(Node):
    path: str


@dataclass(frozen=True)
class Unary(Node):
    op: str
    operand: Node


@dataclass(frozen=True)
class Binary(Node):
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]


# -- parsing ------------------------------------------------------------------------


def parse(text: str) -> Node:
    if not isinstance(text, str) or not text.strip():
        raise ExprError("an expression must be a non-empty string")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExprError(f"expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    parser = _Parser(_tokenize(text))
    node = parser.expr(0)
    if parser.peek() is not None:
        raise ExprError(f"unexpected {parser.peek()[1]!r} at position {parser.peek()[2]}")
    _check_size(node)
    return node


def _check_size(root: Node) -> None:
    """Refuse trees deeper than MAX_TREE_DEPTH or larger than MAX_NODES (walked without recursion)."""
    stack, count = [(root, 1)], 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if depth > MAX_TREE_DEPTH:
            raise ExprError(f"expression is nested too deeply: at most {MAX_TREE_DEPTH} levels of operators "
                            "and calls (split a long sum into named results)")
        if count > MAX_NODES:
            raise ExprError(f"expression has more than {MAX_NODES} terms and operators")
        if isinstance(node, Unary):
            stack.append((node.operand, depth + 1))
        elif isinstance(node, Binary):
            stack.extend(((node.left, depth + 1), (node.right, depth + 1)))
        elif isinstance(node, Call):
            stack.extend((a, depth + 1) for a in node.args)


def _tokenize(text: str):
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN_RE.match(text, pos)
        if not match or match.end() == pos:
            raise ExprError(f"unexpected character {text[pos:].lstrip()[:1]!r} at position {pos}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind), match.start(kind)))
        pos = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens):
        self.tokens, self.i = tokens, 0

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, value=None):
        token = self.peek()
        if token is None:
            raise ExprError("unexpected end of expression" + (f", expected {value!r}" if value else ""))
        if value is not None and token[1] != value:
            raise ExprError(f"expected {value!r} at position {token[2]}, found {token[1]!r}")
        self.i += 1
        return token

    def at(self, *values):
        token = self.peek()
        return token is not None and token[1] in values and token[0] in ("op", "name")

    def expr(self, depth):
        if depth > MAX_DEPTH:
            raise ExprError("expression is nested too deeply")
        return self.or_(depth + 1)

    def or_(self, d):
        node = self.and_(d)
        while self.at("or"):
            self.take()
            node = Binary("or", node, self.and_(d))
        return node

    def and_(self, d):
        node = self.not_(d)
        while self.at("and"):
            self.take()
            node = Binary("and", node, self.not_(d))
        return node

    def not_(self, d):
        if self.at("not"):
            self.take()
            return Unary("not", self.not_(d + 1))
        return self.cmp(d)

    def cmp(self, d):
        node = self.sum(d)
        if self.at("==", "!=", "<", "<=", ">", ">="):
            op = self.take()[1]
            node = Binary(op, node, self.sum(d))
            if self.at("==", "!=", "<", "<=", ">", ">="):
                raise ExprError("comparisons cannot be chained; use `and`")
        return node

    def sum(self, d):
        node = self.prod(d)
        while self.at("+", "-"):
            op = self.take()[1]
            node = Binary(op, node, self.prod(d))
        return node

    def prod(self, d):
        node = self.unary(d)
        while self.at("*", "/"):
            op = self.take()[1]
            node = Binary(op, node, self.unary(d))
        return node

    def unary(self, d):
        if d > MAX_DEPTH:
            raise ExprError("expression is nested too deeply")
        if self.at("-"):
            self.take()
            return Unary("-", self.unary(d + 1))
        return self.atom(d)

    def atom(self, d):
        kind, value, pos = self.take()
        if kind == "num":
            return Literal(Decimal(value))
        if kind == "str":
            return Literal(value[1:-1])
        if kind == "op" and value == "(":
            node = self.expr(d + 1)
            self.take(")")
            return node
        if kind == "name":
            if value in ("true", "false"):
                return Literal(value == "true")
            if value == "null":
                return Literal(None)
            if value in KEYWORDS:
                raise ExprError(f"unexpected {value!r} at position {pos}")
            if self.at("("):
                if value not in FUNCTIONS:
                    raise ExprError(f"unknown function {value!r} at position {pos}; known: {', '.join(sorted(FUNCTIONS))}")
                self.take("(")
                args = []
                if not self.at(")"):
                    args.append(self.expr(d + 1))
                    while self.at(","):
                        self.take()
                        args.append(self.expr(d + 1))
                self.take(")")
                return Call(value, tuple(args))
            parts = [value]
            while self.at("."):
                self.take()
                name_token = self.take()
                if name_token[0] != "name":
                    raise ExprError(f"expected a name after '.' at position {name_token[2]}")
                parts.append(name_token[1])
            return Path(".".join(parts))
        raise ExprError(f"unexpected {value!r} at position {pos}")


# -- type checking ------------------------------------------------------------------
# Expression types are coarse: number, string, boolean, date, null. A resolver maps a
# path to one of these (and whether it may be null) or None for an unknown path.


@dataclass(frozen=True)
class ExprType:
    kind: str  # number | string | boolean | date | null | object (only compared with null)
    nullable: bool = False


def check(node: Node, resolve) -> ExprType:
    """Type-check; `resolve(path) -> ExprType | None`. Raises ExprError."""
    if isinstance(node, Literal):
        v = node.value
        if v is None:
            return ExprType("null", True)
        if isinstance(v, bool):
            return ExprType("boolean")
        if isinstance(v, Decimal):
            return ExprType("number")
        return ExprType("string")
    if isinstance(node, Path):
        t = resolve(node.path)
        if t is None:
            raise ExprError(f"unknown name {node.path!r}")
        return t
    if isinstance(node, Unary):
        t = check(node.operand, resolve)
        if node.op == "not":
            _want(t, "boolean", "not")
            return ExprType("boolean")
        _want(t, "number", "-")
        return ExprType("number", t.nullable)
    if isinstance(node, Binary):
        lt, rt = check(node.left, resolve), check(node.right, resolve)
        if node.op in ("and", "or"):
            _want(lt, "boolean", node.op)
            _want(rt, "boolean", node.op)
            return ExprType("boolean")
        if node.op in ("==", "!="):
            if "null" not in (lt.kind, rt.kind) and (lt.kind != rt.kind or lt.kind == "object"):
                raise ExprError(f"cannot compare {lt.kind} with {rt.kind}" +
                                (" (an object can only be compared with null)" if "object" in (lt.kind, rt.kind) else ""))
            return ExprType("boolean")
        if node.op in ("<", "<=", ">", ">="):
            if lt.kind != rt.kind or lt.kind not in ("number", "date"):
                raise ExprError(f"`{node.op}` needs two numbers or two dates, not {lt.kind} and {rt.kind}")
            return ExprType("boolean")
        _want(lt, "number", node.op)
        _want(rt, "number", node.op)
        return ExprType("number", lt.nullable or rt.nullable)
    if isinstance(node, Call):
        types = [check(a, resolve) for a in node.args]
        if node.name == "coalesce":
            if len(types) < 2:
                raise ExprError("coalesce needs at least two arguments")
            kinds = {t.kind for t in types} - {"null"}
            if len(kinds) > 1:
                raise ExprError(f"coalesce arguments mix {', '.join(sorted(kinds))}")
            return ExprType(kinds.pop() if kinds else "null", all(t.nullable for t in types))
        if node.name == "round":
            if len(types) != 2 or not isinstance(node.args[1], Literal) or not isinstance(node.args[1].value, Decimal) \
                    or node.args[1].value != int(node.args[1].value) or not 0 <= node.args[1].value <= 12:
                raise ExprError("round takes a number and a literal count of decimal places 0..12")
            _want(types[0], "number", "round")
            return ExprType("number", types[0].nullable)
        if node.name == "abs" and len(types) != 1:
            raise ExprError("abs takes one number")
        if node.name in ("min", "max") and len(types) < 2:
            raise ExprError(f"{node.name} needs at least two numbers")
        for t in types:
            _want(t, "number", node.name)
        return ExprType("number", any(t.nullable for t in types))
    raise ExprError("unknown expression node")


def _want(t: ExprType, kind: str, where: str) -> None:
    if t.kind != kind:
        raise ExprError(f"`{where}` needs {kind}, got {t.kind}")


def paths(node: Node) -> list[str]:
    """Every path the expression reads, in order of appearance."""
    out: list[str] = []

    def walk(n):
        if isinstance(n, Path):
            if n.path not in out:
                out.append(n.path)
        elif isinstance(n, Unary):
            walk(n.operand)
        elif isinstance(n, Binary):
            walk(n.left)
            walk(n.right)
        elif isinstance(n, Call):
            for a in n.args:
                walk(a)

    walk(node)
    return out


# -- evaluation ---------------------------------------------------------------------


def evaluate(node: Node, lookup):
    """Evaluate with `lookup(path) -> value`. Numbers are Decimal; raises EvaluationError."""
    try:
        return _eval(node, lookup)
    except DecimalException as exc:
        raise EvaluationError(f"arithmetic failed: {type(exc).__name__}") from None
    except RecursionError:  # parse() bounds the tree; this is the last line of defence
        raise EvaluationError("expression is nested too deeply to evaluate") from None


def _num(value, where):
    if value is None:
        raise EvaluationError(f"`{where}` got null")
    if isinstance(value, bool):
        raise EvaluationError(f"`{where}` got a boolean")
    return value if isinstance(value, Decimal) else Decimal(value)


def _eval(node, lookup):
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Path):
        value = lookup(node.path)
        return Decimal(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(node, Unary):
        value = _eval(node.operand, lookup)
        if node.op == "not":
            return not value
        return DECIMAL_CONTEXT.minus(_num(value, "-"))
    if isinstance(node, Binary):
        op = node.op
        if op == "and":
            return bool(_eval(node.left, lookup)) and bool(_eval(node.right, lookup))
        if op == "or":
            return bool(_eval(node.left, lookup)) or bool(_eval(node.right, lookup))
        left, right = _eval(node.left, lookup), _eval(node.right, lookup)
        if op == "==":
            return left == right
        if op == "!=":
            return left != right
        if op in ("<", "<=", ">", ">="):
            if left is None or right is None:
                return False
            if isinstance(left, dt.date) or isinstance(right, dt.date):
                pass
            else:
                left, right = _num(left, op), _num(right, op)
            return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
        a, b = _num(left, op), _num(right, op)
        if op == "+":
            return DECIMAL_CONTEXT.add(a, b)
        if op == "-":
            return DECIMAL_CONTEXT.subtract(a, b)
        if op == "*":
            return DECIMAL_CONTEXT.multiply(a, b)
        if b == 0:
            raise EvaluationError("division by zero")
        return DECIMAL_CONTEXT.divide(a, b)
    if isinstance(node, Call):
        values = [_eval(a, lookup) for a in node.args]
        if node.name == "coalesce":
            return next((v for v in values if v is not None), None)
        if node.name == "round":
            return quantize(_num(values[0], "round"), int(values[1]))
        numbers = [_num(v, node.name) for v in values]
        if node.name == "abs":
            return DECIMAL_CONTEXT.abs(numbers[0])
        return min(numbers) if node.name == "min" else max(numbers)
    raise EvaluationError("unknown expression node")


def quantize(value: Decimal, places: int, result: str | None = None) -> Decimal:
    """Round half-up to `places` decimal places (the only rounding rule we use).

    A value with more than 34 significant digits at that scale cannot be represented:
    EvaluationError (422), naming the `result` it was computed for."""
    try:
        return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP, context=DECIMAL_CONTEXT)
    except DecimalException:
        what = f"result {result!r}" if result else "a computed value"
        shown = f"{value:.3E}" if value.is_finite() else str(value)
        message = (f"{what} is too large to keep with {places} decimal places "
                   f"(about {shown}; at most {DECIMAL_CONTEXT.prec} significant digits)")
        raise EvaluationError(message, [Problem("result_out_of_range", f"results.{result}" if result else "results",
                                                message)]) from None
