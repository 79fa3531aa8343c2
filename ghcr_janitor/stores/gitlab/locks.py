"""GitLab's protected and immutable container tags (`GET /projects/:id/registry/protection/tag/rules`).

A rule has a `tag_name_pattern` (RE2, unanchored, as GitLab matches it; `*` globs in the docs'
examples match either way) and `minimum_access_level_for_push` / `_for_delete`; a rule with neither
level is an immutability rule (nobody may delete). Every tag a rule matches is kept whatever the
policy says (facts `locked_tags`): GitLab refuses its delete (403) for roles below the rule's, and
the janitor does not try. A pattern Python cannot read locks every tag (named in the reason).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any


@dataclass(frozen=True)
class TagRule:
    pattern: str
    delete_level: str | None
    push_level: str | None

    @property
    def immutable(self) -> bool:
        return self.delete_level is None and self.push_level is None

    def reason(self) -> str:
        if not self.readable:
            return f"GitLab tag rule {self.pattern!r} is not a pattern the janitor can read: every tag kept"
        if self.immutable:
            return f"immutable tag (GitLab tag rule {self.pattern!r})"
        return f"protected tag: deleting needs {self.delete_level or 'a higher role'} (GitLab tag rule {self.pattern!r})"

    @property
    def readable(self) -> bool:
        try:
            re.compile(self.pattern)
        except re.error:
            return False
        return True

    def matches(self, tag: str) -> bool:
        try:
            found = re.search(self.pattern, tag) is not None
        except re.error:
            return True             # unreadable here: locks every tag
        return found or fnmatchcase(tag, self.pattern)


def parse_rules(raw: list[dict[str, Any]]) -> list[TagRule]:
    rules = []
    for item in raw:
        pattern = item.get("tag_name_pattern")
        if not isinstance(pattern, str) or not pattern:
            continue
        delete, push = item.get("minimum_access_level_for_delete"), item.get("minimum_access_level_for_push")
        rules.append(TagRule(pattern, delete if isinstance(delete, str) and delete else None,
                             push if isinstance(push, str) and push else None))
    return rules


def lock_reason(rules: list[TagRule], tag: str) -> str | None:
    """Why `tag` is locked (immutability first, as GitLab checks it), or None."""
    matching = [r for r in rules if r.matches(tag)]
    if not matching:
        return None
    matching.sort(key=lambda r: not r.immutable)
    return matching[0].reason()
