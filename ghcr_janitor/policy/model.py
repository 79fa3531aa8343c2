"""A loaded, validated retention policy (immutable)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from ghcr_janitor.core.models import CACHE_KINDS

DELETE = "delete"
RETAG = "retag"
KEEP = "keep"
ACTIONS = (DELETE, RETAG)


@dataclass(frozen=True)
class Selector:
    """What a rule selects: tags matching any glob (fnmatchcase) or the regex
    (RE2 full match, the whole tag: linear time), and untagged artifacts if `untagged`.

    `broken`: only broken images (indexes with children known to be gone); alone it
    selects every broken one, tagged or untagged; with tags/regex/untagged it narrows them.
    """

    tags: tuple[str, ...] = ()
    regex: str | None = None
    untagged: bool = False
    broken: bool = False
    # Actions-cache entries (`gha:` targets): key globs or regex, ref globs, ref states, kinds.
    keys: tuple[str, ...] = ()
    key_regex: str | None = None
    refs: tuple[str, ...] = ()
    ref_state: tuple[str, ...] = ()
    kind: tuple[str, ...] = ()
    # Narrows the selection to images not pulled for this long (a store that records pull times:
    # ECR's lastRecordedPullTime; never pulled counts from the push time). Where a store records no
    # pull times nothing is selected by such a rule, and the plan says so (`pull_time_warnings`).
    not_pulled_for: timedelta | None = None

    @property
    def by_tag(self) -> bool:
        return bool(self.tags) or self.regex is not None

    @property
    def for_registry(self) -> bool:
        """Does it select registry tags or untagged artifacts?"""
        return self.by_tag or self.untagged or self.broken

    @property
    def for_entries(self) -> bool:
        """Does it select Actions-cache entries?"""
        return bool(self.keys or self.key_regex is not None or self.refs or self.ref_state
                    or set(self.kind) & set(CACHE_KINDS))


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
    # Actions cache: count keep_newest per group of these labels (e.g. family and ref), and
    # age by "last_accessed" (the default) or "created".
    per: tuple[str, ...] = ()
    age: str | None = None

    @property
    def has_criteria(self) -> bool:
        return self.older_than is not None or self.keep_newest is not None or self.max_total_size is not None


@dataclass(frozen=True)
class Policy:
    """`protect` globs always win; `rules` are tried in order, the first that selects a tag decides it."""

    source: str
    protect: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
