"""Refuse input-schema regexes that can take exponential time (ReDoS).

Python's `re` backtracks. A pattern such as ``(a+)+$`` or ``(a|aa)*$`` takes exponential
time on a short hostile string, so a request could hang a worker. We parse the pattern
with the standard library's own parser and refuse the shapes that backtrack
catastrophically: a repeat inside a repeat, an alternation inside a repeat,
backreferences and lookarounds. What remains runs in polynomial time, and every string
field with a pattern must also declare a small `max_length`.
"""
from __future__ import annotations

import re
from re import _constants as C  # noqa: N812  (the parser's opcode names)
from re import _parser

MAX_PATTERN_LENGTH = 200


def regex_problems(pattern: str) -> list[str]:
    """Reasons the pattern is refused; empty when it is safe to use."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        return [f"pattern is longer than {MAX_PATTERN_LENGTH} characters"]
    try:
        tree = _parser.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        return [f"not a valid regular expression: {exc}"]
    problems: list[str] = []
    _walk(tree, False, problems)
    return sorted(set(problems))


def _walk(tree, in_repeat: bool, problems: list[str]) -> None:
    for op, arg in tree:
        if op in (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT):
            low, high, sub = arg
            # A fixed count like {3} is just a sequence; only a variable count backtracks.
            repeats = high is C.MAXREPEAT or (high > 1 and high != low)
            if in_repeat and repeats:
                problems.append("nested quantifier (a repeat inside a repeat) can take exponential time")
            _walk(sub, in_repeat or repeats, problems)
        elif op is C.SUBPATTERN:
            _walk(arg[-1], in_repeat, problems)
        elif op is C.ATOMIC_GROUP:
            _walk(arg, in_repeat, problems)
        elif op is C.BRANCH:
            if in_repeat:
                problems.append("alternation inside a repeat can take exponential time")
            for branch in arg[1]:
                _walk(branch, in_repeat, problems)
        elif op in (C.GROUPREF, C.GROUPREF_EXISTS):
            problems.append("backreferences are not allowed")
        elif op in (C.ASSERT, C.ASSERT_NOT):
            problems.append("lookahead/lookbehind assertions are not allowed")
