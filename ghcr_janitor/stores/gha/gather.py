"""Facts about one repository's Actions cache, as the one policy engine sees them.

Each entry becomes an item (identity `cache:<id>`, kind, a time, a closure of its own size:
REST shows no sharing) with labels: key, ref, ref_state, family, scope, generation, whether
it is the newest of its group, and `keep_rank`, the order in which a person would keep things
(0 first): the default branch's newest entries, then live refs' newest, then other live
entries, then superseded generations and older family members, then dead refs.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import quote

from ghcr_janitor.core.models import BUILDKIT_BLOB, Artifact, Inventory, cache_item_id
from ghcr_janitor.stores.gha.api import ActionsCacheApi, CacheEntry
from ghcr_janitor.stores.gha.keys import KeyFacts, classify, family_of

MEDIA_TYPE = "application/vnd.github.actions-cache"
LAST_ACCESSED = "gha/last_accessed_at"
CREATED = "gha/created_at"
LIVE = ("default", "live", "unknown")          # unknown is treated as live
DEAD = ("closed", "deleted")
REF_LOOKUPS = 8                                 # concurrent ref-state reads
_PULL = re.compile(r"^refs/pull/([0-9]+)/(?:merge|head)$")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


async def ref_states(api: ActionsCacheApi, refs: set[str], default_branch: str) -> dict[str, str]:
    """One REST call per distinct ref (none for the default branch or refs of unknown shape)."""
    sem = asyncio.Semaphore(REF_LOOKUPS)
    # GitHub answers 404 for what a token may not see: only trust a branch's or tag's 404 when the
    # same token can see the default branch (else every branch would look deleted).
    named = [r for r in refs if r.startswith(("refs/heads/", "refs/tags/")) and r != f"refs/heads/{default_branch}"]
    readable = bool(named) and await api.exists(f"/branches/{quote(default_branch, safe='')}") is True

    async def one(ref: str) -> tuple[str, str]:
        if ref == f"refs/heads/{default_branch}":
            return ref, "default"
        if ref in named and not readable:
            return ref, "unknown"
        async with sem:
            if ref.startswith("refs/heads/"):
                found = await api.exists(f"/branches/{quote(ref[len('refs/heads/'):], safe='')}")
                return ref, {True: "live", False: "deleted"}.get(found, "unknown")
            pull = _PULL.match(ref)
            if pull:
                state = await api.pull_state(int(pull[1]))
                return ref, {"open": "live", "closed": "closed"}.get(state or "", "unknown")
            if ref.startswith("refs/tags/"):
                found = await api.exists(f"/git/ref/tags/{quote(ref[len('refs/tags/'):], safe='')}")
                return ref, {True: "live", False: "deleted"}.get(found, "unknown")
        return ref, "unknown"

    return dict(await asyncio.gather(*(one(r) for r in sorted(refs))))


def _group(entry: CacheEntry, facts: KeyFacts) -> tuple | None:
    """Entries of one group supersede each other: index generations of one scope and ref,
    actions/cache keys of one family, ref and version. Blobs form no group."""
    if facts.kind == BUILDKIT_BLOB:
        return None
    return (facts.kind, facts.family, entry.ref, entry.version)


def newest_of_groups(entries: list[tuple[CacheEntry, KeyFacts]]) -> set[int]:
    """Ids that are the newest of their group (highest generation, else newest created)."""
    best: dict[tuple, tuple] = {}
    for entry, facts in entries:
        group = _group(entry, facts)
        if group is None:
            continue
        rank = (facts.generation or 0, entry.created_at or _EPOCH, entry.id)
        if group not in best or rank > best[group][0]:
            best[group] = (rank, entry.id)
    return {cache_id for _, cache_id in best.values()}


@dataclass(frozen=True)
class Look:
    """Fresh facts about some refs, as planning derives them: their entries by id, each ref's
    state, the ids that are the newest of their group, the refs whose listing came back short,
    and when the look began (the api's clock)."""

    entries: dict[int, CacheEntry]
    states: dict[str, str]
    newest: frozenset[int]
    short: frozenset[str]
    at: float


def listing_prefixes(keys: set[str]) -> set[str]:
    """Key prefixes whose listings hold every group the `keys` can belong to: each key's family
    (a prefix of the key and of every member of its group), none under another."""
    families = sorted({family_of(k) for k in keys})
    return {f for f in families if not any(f != g and f.startswith(g) for g in families)}


async def look_at(api: ActionsCacheApi, keys_by_ref: dict[str, set[str]]) -> Look:
    """Planning's facts for some entries, read now: the default branch; per ref, the listing of
    each of `listing_prefixes` (GitHub's `key` filter is a prefix: that holds the entries' whole
    groups, so `newest` is exact); then the refs' states."""
    at = api.clock()
    default_branch = await api.default_branch()
    entries: dict[int, CacheEntry] = {}
    short = set()
    for ref in sorted(keys_by_ref):
        for prefix in sorted(listing_prefixes(keys_by_ref[ref])):
            listed, cut = await api.listing(ref, prefix)
            entries.update((e.id, e) for e in listed)
            if cut is not None:
                short.add(ref)
    states = await ref_states(api, set(keys_by_ref), default_branch)
    newest = newest_of_groups([(e, classify(e.key, e.version, e.ref)) for e in entries.values()])
    return Look(entries, states, frozenset(newest), frozenset(short), at)


def keep_rank(kind: str, ref_state: str, newest: bool) -> int:
    """0 = kept longest under a budget ... 4 = evicted first."""
    if ref_state in DEAD:
        return 4
    if kind == BUILDKIT_BLOB:
        return 1 if ref_state == "default" else 2
    if newest:
        return 0 if ref_state == "default" else 1
    return 3


def to_item(entry: CacheEntry, facts: KeyFacts, ref_state: str, newest: bool) -> Artifact:
    when, source = (entry.last_accessed_at, LAST_ACCESSED) if entry.last_accessed_at else (entry.created_at, CREATED)
    labels = {"cache_id": entry.id, "key": entry.key, "ref": entry.ref, "version": entry.version,
              "ref_state": ref_state, "family": facts.family, "scope": facts.scope,
              "generation": facts.generation, "sig": facts.sig, "foreign": facts.foreign, "newest": newest,
              "created_at": entry.created_at, "last_accessed_at": entry.last_accessed_at,
              "keep_rank": keep_rank(facts.kind, ref_state, newest)}
    return Artifact(digest=cache_item_id(entry.id), media_type=MEDIA_TYPE, kind=facts.kind,
                    closure={cache_item_id(entry.id): entry.size}, created=when, age_source=source if when else None,
                    labels=labels, unique_size=entry.size)


async def build_cache_inventory(api: ActionsCacheApi, target: str) -> Inventory:
    """List everything first, then learn the refs' states, usage and the limits (each with the
    place it was read: `limit_source`, `retention_source`)."""
    entries = await api.list_entries()
    default_branch = await api.default_branch()
    states = await ref_states(api, {e.ref for e in entries}, default_branch)
    usage = await api.usage()
    limits = await api.limits()             # after usage: its answer is one of the limit's sources
    classified = [(e, classify(e.key, e.version, e.ref)) for e in entries]
    newest = newest_of_groups(classified)
    items = {cache_item_id(e.id): to_item(e, f, states.get(e.ref, "unknown"), e.id in newest) for e, f in classified}
    warnings = [f"{ref}: its state could not be read from the REST API: treated as live (nothing of it is "
                "deleted as a dead ref)" for ref, state in sorted(states.items())
                if state == "unknown" and (ref.startswith(("refs/heads/", "refs/tags/")) or _PULL.match(ref))]
    if api.short_listing:
        seen, total = api.short_listing
        warnings.append(f"listed {seen} entries, the API counted {total}: entries were added or evicted while listing")
    facts = {"usage": usage, "limit": limits.size, "limit_source": limits.size_source,
             "retention_days": limits.retention_days, "retention_source": limits.retention_source,
             "default_branch": default_branch, "ref_states": states}
    return Inventory(target=target, tags={}, artifacts=items, listed=[], untagged=sorted(items, key=_by_id),
                     backend="gha", warnings=warnings, facts=facts)


def _by_id(item: str) -> int:
    return int(item.split(":", 1)[1])


