"""Counted nouns agree with their number, and no message is written as 'N thing(s)'."""

from __future__ import annotations

import re
from pathlib import Path

from ghcr_janitor.core.words import count, noun

PACKAGE = Path(__file__).resolve().parents[2] / "ghcr_janitor"


def test_count_and_noun():
    assert count(1, "action") == "1 action" and count(0, "action") == "0 actions"
    assert count(2, "entry", "entries") == "2 entries" and noun(1, "tag") == "tag" and noun(3, "tag") == "tags"


def test_no_message_in_the_package_says_thing_s():
    found = [f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}"
             for path in [*PACKAGE.rglob("*.py"), *PACKAGE.rglob("*.j2")]
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if path.name != "words.py" and "http(s)" not in line
             and re.search(r"\b(?!len\b)[a-z]+\(s\)(?=[\s\"'.,;:])", line)]
    assert not found, found
