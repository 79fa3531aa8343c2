"""Where the bytes are, for one target: the breakdown under a plan, cache families, shared bytes.

Pure functions of an inventory and its plan. The breakdown partitions the repository's bytes
(every blob and manifest counted once) into what the plan frees (its `reclaim_size`, exactly),
what stays held by one artifact only, and what stays shared by several.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ghcr_janitor.core.models import Artifact, Inventory, cache_item_id
from ghcr_janitor.plan.model import DELETE, TargetPlan

DEAD_REF_STATES = ("closed", "deleted")
UNTAGGED = "(untagged)"
OTHER_TAGS = "(other tags)"
MAX_SHARING = 8


@dataclass(frozen=True)
class Part:
    """One slice of a target's bytes."""

    key: str
    label: str
    bytes: int


@dataclass
class Family:
    """A cache and its branch variants (`cache-base`, `cache-base-main`, ...), or an Actions-cache key family."""

    name: str
    members: list[str] = field(default_factory=list)
    bytes: int = 0           # each blob once
    only: int = 0            # what no artifact outside the family holds
    blobs: dict[str, int] = field(default_factory=dict)


@dataclass
class Breakdown:
    total: int
    parts: list[Part]                     # partitions `total`
    facts: list[Part]                     # parts of `total` worth naming (untagged, dead-ref bytes)
    beside: list[Part] = field(default_factory=list)   # bytes outside `total` (a layout's unreachable blobs)


def _union(arts: list[Artifact]) -> dict[str, int]:
    union: dict[str, int] = {}
    for art in arts:
        union.update(art.closure)
    return union


def breakdown(inv: Inventory, plan: TargetPlan) -> Breakdown:
    """Reclaimable (the plan's `reclaim_size`), kept by one artifact, kept shared; and facts beside."""
    deleted = {a.digest or cache_item_id(a.cache_id) for a in plan.actions if a.action == DELETE}
    everything = _union(list(inv.artifacts.values()))
    total = sum(everything.values())
    kept_arts = [a for d, a in inv.artifacts.items() if d not in deleted]
    kept = _union(kept_arts)
    roots = inv.roots() - deleted
    holders: dict[str, int] = {}
    for digest in roots:
        for blob in inv.artifacts[digest].closure:
            holders[blob] = holders.get(blob, 0) + 1
    shared = sum(size for blob, size in kept.items() if holders.get(blob, 0) >= 2)
    parts = [Part("reclaimable", "reclaimable under the policy", plan.reclaim_size),
             Part("kept-only", "kept, held by one artifact only", sum(kept.values()) - shared),
             Part("kept-shared", "kept, shared by several", shared)]
    rest = total - sum(p.bytes for p in parts)
    if rest > 0:        # cannot happen for a plan made from this inventory; shown rather than hidden
        parts.append(Part("other", "not accounted for by the plan", rest))
    facts = []
    if inv.traits.entries:
        dead = [a for a in inv.artifacts.values() if a.labels.get("ref_state") in DEAD_REF_STATES]
        facts.append(Part("dead-ref", "entries of closed or deleted refs", sum(a.size for a in dead)))
    elif inv.untagged:
        facts.append(Part("untagged", "untagged versions (each blob once)",
                          sum(_union([inv.artifacts[d] for d in inv.untagged]).values())))
    return Breakdown(total, parts, facts)


def family_names(tags: list[str]) -> dict[str, str]:
    """Tag -> family: the shortest other listed tag (with a `-` in it) that the tag extends by `-...`
    (`cache-base-main` and `cache-base-pr-12` -> `cache-base`); a tag extending none is its own family."""
    stems = sorted((t for t in tags if "-" in t), key=len)
    out = {}
    for tag in tags:
        out[tag] = next((s for s in stems if len(s) < len(tag) and tag.startswith(s + "-")), tag)
    return out


def _registry_groups(inv: Inventory) -> dict[str, list[str]]:
    """Family -> members: listed tags by family, then every other tag and the untagged roots.

    Every tag is in exactly one group, so a blob that another group's tag also reaches is never
    counted as "only in this family" (deleting the family would only untag a digest a tag outside
    it still holds)."""
    names = family_names(list(inv.listed))
    groups: dict[str, list[str]] = {}
    for tag in inv.listed:
        groups.setdefault(names[tag], []).append(tag)
    others = sorted(t for t in inv.tags if t not in names)      # also those on a listed tag's digest
    if others:
        groups[OTHER_TAGS] = others
    tagged = set(inv.tags.values())
    untagged = [d for d in inv.untagged if d not in tagged]
    if untagged:
        groups[UNTAGGED] = untagged
    return groups


def families(inv: Inventory) -> list[Family]:
    """Bytes per family, largest first; `only` = what deleting the whole family would free."""
    if inv.traits.entries:
        found: dict[str, Family] = {}
        for art in inv.artifacts.values():
            name = art.labels.get("family") or art.labels.get("key") or art.digest
            fam = found.setdefault(name, Family(name))
            fam.members.append(art.labels.get("key", art.digest))
            fam.blobs.update(art.closure)
        for fam in found.values():
            fam.bytes = fam.only = sum(fam.blobs.values())
        return sorted(found.values(), key=lambda f: (-f.bytes, f.name))
    out = []
    groups = _registry_groups(inv)
    for name, members in groups.items():
        digests = [inv.tags.get(m, m) for m in members]
        digests += [f for d in digests if d in inv.artifacts for f in inv.artifacts[d].followers]   # as `size` counts
        fam = Family(name, members, blobs=_union([inv.artifacts[d] for d in digests if d in inv.artifacts]))
        fam.bytes = sum(fam.blobs.values())
        out.append(fam)
    holders: dict[str, int] = {}
    for fam in out:
        for blob in fam.blobs:
            holders[blob] = holders.get(blob, 0) + 1
    for fam in out:
        fam.only = sum(size for blob, size in fam.blobs.items() if holders[blob] == 1)
    return sorted(out, key=lambda f: (-f.bytes, f.name))


def sharing(fams: list[Family], limit: int = MAX_SHARING) -> tuple[list[str], list[list[int]]]:
    """The top families and the bytes each pair shares (the diagonal: what only that family holds)."""
    top = fams[:limit]
    matrix = []
    for a in top:
        row = []
        for b in top:
            row.append(a.only if a is b else sum(s for blob, s in a.blobs.items() if blob in b.blobs))
        matrix.append(row)
    return [f.name for f in top], matrix


def per_kind_and_state(inv: Inventory) -> list[tuple[str, str, int, int]]:
    """The Actions cache: (kind, ref state, entries, bytes), largest first."""
    sums: dict[tuple[str, str], list[int]] = {}
    for art in inv.artifacts.values():
        slot = sums.setdefault((art.kind, art.labels.get("ref_state", "unknown")), [0, 0])
        slot[0] += 1
        slot[1] += art.size
    return sorted(((k, s, n, b) for (k, s), (n, b) in sums.items()), key=lambda r: (-r[3], r[0], r[1]))
