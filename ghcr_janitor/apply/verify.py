"""Journal vs. reality: what apply checks in the store before it trusts a journal line or a plan's target.

1. A journal line is a hint, never proof. Before a rerun reports an action done from the journal,
   `effects_hold` reads the store as it is now, one read per journalled action at most, batched:
   - a tagged delete or untag: the tag no longer points at the pinned digest (one HEAD per tag;
     a layout reads index.json once);
   - an untagged or child delete: the digest is gone (a store that lists every manifest — GHCR, a
     layout — is listed once; elsewhere one GET of the manifest by digest, 404 = gone);
   - a retag: the new tag points at the pinned digest.
   An effect that does not hold (a registry restored from a backup, a tag pushed back), or that
   cannot be read, is not reported done: the action goes through the last look like any other.

2. A plan is refused when it names a target its pins do not match (`mismatch`): the plan has at
   least one pin on the target — a kept tag and its digest, an action's tag and digest, a retag's
   new tag, an untagged digest, a GHCR version id — and none of them is found in the target as it
   is now: no pinned tag points at its pinned digest, no pinned digest exists (tagged or not) and
   no pinned version id is listed. A plan whose tags all moved since planning still matches (a
   moved tag leaves its old digest behind as an untagged manifest: the plan applies, with skips);
   a plan hand-edited to name another repository does not. A target that this very plan's journal
   says was acted on matches (its actions may all be done), and a store that cannot be read is
   not refused here (its look fails, and says why). The reads stop at the first pin found: the tag
   list and up to `CHUNK` HEADs when the plan matches.

   An Actions cache (`gha:`) is not checked up front: every delete there is pinned by the entry's
   id and the key, ref, size and creation time it must still carry on a fresh look before it is
   sent, which no entry of another repository carries; a plan edited to name another repository
   deletes nothing there (its entries are "gone" or "skipped"), and a pre-check would spend REST
   budget on every apply.
"""

from __future__ import annotations

import asyncio

from ghcr_janitor.apply.last_look import _listed_tags
from ghcr_janitor.core.errors import JanitorError, NotFoundError
from ghcr_janitor.stores.base import LooksAtTags, Registry

CHUNK = 16          # pins read at once while looking for the first one found


def _tagged(action) -> bool:
    return action.action in ("delete", "untag") and bool(action.tag) and not action.parent


def _tags_read(action) -> list[str]:
    if _tagged(action):
        return [action.tag]
    if action.action == "retag" and action.to:
        return [action.to]
    return []


async def _tags_now(registry: Registry, names: list[str]) -> dict[str, str]:
    """Each of `names` that exists now -> its digest (fresh reads only)."""
    if not names:
        return {}
    if isinstance(registry, LooksAtTags):
        return await registry.current_tags(names)
    wanted = set(names)
    return {t: d for t, d in (await _listed_tags(registry)).items() if t in wanted}


async def _present(registry: Registry, digests: list[str], stop_at_first: bool = False) -> dict[str, bool | None]:
    """digest -> True (exists now), False (gone), None (could not tell)."""
    if not digests:
        return {}
    if registry.lists_untagged:
        versions = await registry.list_versions()
        if versions is not None:
            listed = {v.digest for v in versions}
            return {d: d in listed for d in digests}

    async def one(digest: str) -> bool | None:
        try:
            await registry.get_manifest(digest)
            return True
        except NotFoundError:
            return False
        except JanitorError:
            return None

    found: dict[str, bool | None] = {}
    for start in range(0, len(digests), CHUNK):
        chunk = digests[start:start + CHUNK]
        found.update(zip(chunk, await asyncio.gather(*(one(d) for d in chunk))))
        if stop_at_first and any(found.values()):
            break
    return found


async def effects_hold(registry: Registry, actions: list) -> list[str | None]:
    """For each journalled action, what the store shows of its effect now (a few words), or None
    when the effect is not there (or cannot be read): then it is not done."""
    names = sorted({t for a in actions for t in _tags_read(a)})
    try:
        tags = await _tags_now(registry, names)
    except JanitorError:
        tags = None
    digests = sorted({a.digest for a in actions if a.action == "delete" and not _tagged(a) and a.digest})
    try:
        present = await _present(registry, digests)
    except JanitorError:
        present = {}
    out: list[str | None] = []
    for a in actions:
        if _tagged(a):
            now = None if tags is None else tags.get(a.tag, "gone")
            out.append(None if now in (None, a.digest) else ("tag gone" if now == "gone" else f"tag now on {now}"))
        elif a.action == "retag":
            out.append(f"{a.to} points at it" if tags is not None and a.to and tags.get(a.to) == a.digest else None)
        else:
            out.append("digest gone" if present.get(a.digest) is False else None)
    return out


def pins_of(target_plan) -> tuple[dict[str, str], set[str], set[int]]:
    """The plan's pins on one target: tag -> digest, every digest, GHCR version ids."""
    tags: dict[str, str] = {}
    digests: set[str] = set()
    ids: set[int] = set()
    for kept in target_plan.kept:
        if kept.digest:
            digests.add(kept.digest)
            if kept.tag:
                tags[kept.tag] = kept.digest
    for a in target_plan.actions:
        if not a.digest:
            continue
        digests.add(a.digest)
        for tag in ([a.tag] if a.tag else []) + ([a.to] if a.action == "retag" and a.to else []):
            tags.setdefault(tag, a.digest)
        if a.version_id is not None:
            ids.add(a.version_id)
    return tags, digests, ids


async def mismatch(registry: Registry, target_plan) -> str | None:
    """Why `target_plan` cannot be for this store (none of its pins found in it now), or None:
    a pin was found, the plan has none, or the store could not be read (its look will say so)."""
    tags, digests, ids = pins_of(target_plan)
    if not digests:
        return None
    try:
        if await _a_tag_pin_holds(registry, tags):
            return None
        if ids and registry.lists_untagged:
            versions = await registry.list_versions() or []
            if ids & {v.version_id for v in versions if v.version_id is not None}:
                return None
        present = await _present(registry, sorted(digests), stop_at_first=True)
    except JanitorError:
        return None
    if any(v is not False for v in present.values()) or len(present) < len(digests):
        return None                 # found, or could not tell
    count = len(tags) + len(digests - set(tags.values()))
    what = "pinned tags and digests" if tags else "pinned digests"
    return (f"target {target_plan.target} matches none of the plan's {count} {what}: "
            "planned for another target?")


async def _a_tag_pin_holds(registry: Registry, tags: dict[str, str]) -> bool:
    if not tags:
        return False
    if isinstance(registry, LooksAtTags):
        try:
            names = set(await registry.tag_names())
        except NotFoundError:           # no tag list (no repository, or no tags): no tag pin holds
            return False
        candidates = sorted(t for t in tags if t in names)
        for start in range(0, len(candidates), CHUNK):
            now = await registry.current_tags(candidates[start:start + CHUNK])
            if any(now.get(t) == tags[t] for t in now):
                return True
        return False
    now = await _listed_tags(registry)
    return any(now.get(t) == d for t, d in tags.items())

