"""Policy regular expressions, compiled and matched by RE2 (google-re2): linear time in the text.

A tag or a cache key is chosen by whoever pushes (a fork's pull request writes cache keys), so a
backtracking engine would let them hang a run with `(a+)+$`. RE2 has no backreferences and no
lookaround; `check` refuses such a pattern when the policy is loaded. Matching is on UTF-8 bytes,
so any Python str (even one with a lone surrogate from JSON) can be matched.
"""

from __future__ import annotations

import re
from functools import lru_cache

import re2

_UTF8 = "utf-8"


def _options() -> "re2.Options":
    options = re2.Options()
    options.log_errors = False          # RE2 would print its own parse errors to stderr
    return options


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> "re2._Regexp":
    return re2.compile(pattern.encode(_UTF8, "surrogatepass"), _options())


def check(pattern: str) -> str | None:
    """None if RE2 runs `pattern`; else why not, in one line: "invalid regex: ..." for a syntax
    error, or a sentence naming what RE2 lacks when Python's `re` would take the pattern."""
    try:
        _compiled(pattern)
        return None
    except re2.error as exc:
        reason = _reason(exc)
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError, ValueError):
        return f"invalid regex {_short(pattern)}: {reason}"
    return (f"regex {_short(pattern)} cannot run on RE2, the linear-time engine of policy regexes ({reason}); "
            "RE2 has no backreferences, lookahead/lookbehind, atomic groups or possessive quantifiers")


def fullmatch(pattern: str, text: str) -> bool:
    """Does `pattern` match the whole of `text`? (The pattern was checked when the policy was loaded.)"""
    return _compiled(pattern).fullmatch(text.encode(_UTF8, "surrogatepass")) is not None


def _reason(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else exc
    if isinstance(detail, bytes):
        detail = detail.decode(_UTF8, "replace")
    return " ".join(str(detail).split())


def _short(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
