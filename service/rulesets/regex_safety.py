"""Regular expressions from ruleset documents, matched in linear time by RE2 (google-re2).

Python's `re` backtracks: a pattern such as ``a*a*a*a*a*b`` or ``(a+)+$`` takes
polynomial or exponential time on a short hostile string, and no syntactic check
catches every such shape. RE2 never backtracks, so matching takes time linear in the
input whatever the pattern. What RE2 cannot compile (backreferences, lookarounds,
repetition counts above 1000, programs beyond MAX_PROGRAM_BYTES) is refused when the
document is published, with RE2's reason.

Note RE2's classes are ASCII unless spelled otherwise: ``\\d`` is ``[0-9]`` here, which is
what an identifier pattern means anyway.
"""
from __future__ import annotations

from functools import lru_cache

import re2

MAX_PATTERN_LENGTH = 200
MAX_PROGRAM_BYTES = 1 << 20  # RE2 refuses a pattern whose compiled program needs more memory


def _options() -> "re2.Options":
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern to stderr
    options.max_mem = MAX_PROGRAM_BYTES
    return options


def regex_problems(pattern: str) -> list[str]:
    """Reasons the pattern is refused; empty when RE2 compiles it within the limits."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        return [f"pattern is longer than {MAX_PATTERN_LENGTH} characters"]
    try:
        compiled(pattern)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        return [f"not a pattern RE2 accepts (linear-time matching): {reason}"]
    return []


@lru_cache(maxsize=1024)
def compiled(pattern: str):
    """The RE2 program of a pattern (cached: a ruleset's patterns are few and immutable)."""
    return re2.compile(pattern, options=_options())


def fullmatch(pattern: str, value: str) -> bool:
    """Whether the whole of `value` matches `pattern` (already accepted by regex_problems)."""
    return compiled(pattern).fullmatch(value) is not None
