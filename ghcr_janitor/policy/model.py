"""A loaded, validated retention policy (immutable)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

DELETE = "delete"
RETAG = "retag"
KEEP = "keep"
ACTIONS = (DELETE, RETAG)


@dataclass(frozen=True)
class Selector:
    """What a rule selects: tags matching any glob (fnmatchcase) or the regex
    (`re.fullmatch`, the whole tag), and untagged artifacts if `untagged`.

    `broken`: only broken images (indexes with children known to be gone); alone it
    selects every broken one, tagged or untagged; with tags/regex/untagged it narrows them.
    """

    tags: tuple[str, ...] = ()
    regex: str | None = None
    untagged: bool = False
    broken: bool = False

    @property
    def by_tag(self) -> bool:
        return bool(self.tags) or self.regex is not None


@dataclass(frozen=True)
class Rule:
    """One `[[rule]]`: a selection, its criteria and what to do with the candidates acted on."""

    name: str
    selector: Selector
    older_than: timedelta | None = None
    keep_newest: int | None = None
    max_total_size: int | None = None
    action: str = DELETE
    to: str | None = None

    @property
    def has_criteria(self) -> bool:
        return self.older_than is not None or self.keep_newest is not None or self.max_total_size is not None


@dataclass(frozen=True)
class Policy:
    """`protect` globs always win; `rules` are tried in order, the first that selects a tag decides it."""

    source: str
    protect: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
