"""Expand target globs before planning: `HOST/*`, `HOST/team/*` from the registry's catalog,
`ghcr.io/OWNER/*` from the owner's container packages, `gha:OWNER/*` from the organisation's
repositories with cache usage. Each expansion is one line for the user; a glob that cannot be
expanded is an error of that target, the others go on."""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from ghcr_janitor.core.errors import JanitorError, UsageError, describe
from ghcr_janitor.core.reference import Target, parse_target
from ghcr_janitor.core.words import count


@dataclass
class Expansion:
    targets: list[Target] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)          # "expanded X: N targets"
    failures: list[tuple[Target, str]] = field(default_factory=list)


async def _names(target: Target, connect) -> tuple[list[str], bool]:
    """Every concrete target the glob's store lists (unfiltered), as target strings, and whether
    names compare case-insensitively (`stores.base.ListsTargets`)."""
    from ghcr_janitor.stores.connect import open_lister

    lister = open_lister(target, connect)
    try:
        return await lister.target_names(), lister.fold_case
    finally:
        await lister.aclose()


async def expand(targets: list[Target], connect) -> Expansion:
    """Concrete targets in the given order, globs replaced by what they match (deduplicated)."""
    out = Expansion()
    seen: set[str] = set()
    for target in targets:
        if not target.glob:
            found = [target]
        else:
            try:
                names, fold_case = await _names(target, connect)
            except (JanitorError, OSError) as exc:     # network trouble after the retries included
                out.failures.append((target, describe(exc)))
                continue
            pattern = str(target)
            # GitHub owners and repositories are case-insensitive; registry repositories are lowercase.
            fold = (lambda text: text.lower()) if fold_case else (lambda text: text)
            found = []
            for name in names:
                if fnmatchcase(fold(name), fold(pattern)):
                    try:
                        found.append(parse_target(name))
                    except UsageError:          # a name the registry lists but no target can say
                        out.lines.append(f"skipped {name!r} listed for {pattern}: not a valid target")
            if not found:                   # a typo must not look like a clean, empty run
                out.failures.append((target, f"the glob matches none of the {len(names)} listed"))
                continue
            shown = ", ".join(str(t) for t in found[:5]) + (", ..." if len(found) > 5 else "")
            out.lines.append(f"expanded {pattern}: {count(len(found), 'target')}: {shown}")
        for t in found:
            if str(t) not in seen:
                seen.add(str(t))
                out.targets.append(t)
    return out
