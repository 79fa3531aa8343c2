"""Counted nouns in messages: "1 action", "2 actions", never "1 action(s)" or "1 actions"."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """`n` and the noun, singular for exactly one (`plural` when adding "s" is wrong)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def noun(n: int, singular: str, plural: str | None = None) -> str:
    """The noun alone, agreeing with `n` ("tag" / "tags" before a list of names)."""
    return singular if n == 1 else plural or singular + "s"
