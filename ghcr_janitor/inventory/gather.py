"""Build an `Inventory`: list tags, learn digests, fetch each unique manifest once, size it.

Facts are gathered for every tag of the repository (not only the listed ones), because
unique sizes and delete safety depend on all of them. An artifact whose facts cannot be
gathered carries `error` and is always kept.
"""

from __future__ import annotations

import asyncio
import fnmatch
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Awaitable, Callable

from ghcr_janitor.core import mediatypes as mt
from ghcr_janitor.core import models
from ghcr_janitor.inventory.cache import ManifestCache
from ghcr_janitor.core.defaults import DEFAULT_CONCURRENCY
from ghcr_janitor.core.errors import JanitorError, ManifestError, NotFoundError, describe
from ghcr_janitor.inventory.ledger import SOURCE as FIRST_SEEN, Ledger
from ghcr_janitor.core.manifests import image_config_created, parse_manifest, placeholder_owner
from ghcr_janitor.core.models import Artifact, Inventory, Manifest, StoreTraits
from ghcr_janitor.stores.base import (RECLAIM_NOTE, ListsIndexVersions, ListsInPages, RawManifest, Registry, Remembered,
                                     ProbesDeletes, RemembersTags, Version)
from ghcr_janitor.core.timeparse import format_time
from ghcr_janitor.core.words import count

MAX_DEPTH = 8
MAX_CONFIG_BYTES = 1 << 20
CONFIG_CREATED = "config.created"

Progress = Callable[[str, int], None]


@dataclass
class InventoryOptions:
    tag_globs: list[str] = field(default_factory=lambda: ["cache-*"])
    all_tags: bool = False
    concurrency: int = DEFAULT_CONCURRENCY
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    fetch_config_times: bool = True


def select_tags(tags: list[str], globs: list[str], all_tags: bool) -> list[str]:
    if all_tags:
        return sorted(tags)
    return sorted(t for t in tags if any(fnmatch.fnmatchcase(t, g) for g in globs))


class _Fetcher:
    """Fetch manifests and config blobs once each, bounded, through the disk cache.

    Manifests are kept parsed, not as bytes: at 10,000 tags the raw bodies alone would be
    tens of MB held until the end of the run.
    """

    def __init__(self, registry: Registry, cache: ManifestCache | None, concurrency: int, progress: Progress | None):
        self.registry = registry
        self.cache = cache
        self.sem = asyncio.Semaphore(max(1, concurrency))
        self.progress = progress
        self._tasks: dict[str, asyncio.Task] = {}
        self.manifest_gets = 0

    def remember(self, raw: RawManifest) -> None:
        """A manifest fetched by tag: cache it and parse it once, for whoever asks by digest."""
        if raw.digest not in self._tasks:
            self._tasks[raw.digest] = asyncio.ensure_future(self._parse(raw, None))
        if self.cache is not None:
            self.cache.put(raw)

    @staticmethod
    async def _parse(raw: RawManifest, hint: str | None) -> Manifest:
        return parse_manifest(raw.body, raw.digest, raw.media_type or hint)

    async def bounded(self, call: Callable[[], Awaitable]):
        async with self.sem:
            return await call()

    def _once(self, digest: str, make: Callable[[], Awaitable]) -> Awaitable:
        """One in-flight fetch per digest."""
        task = self._tasks.get(digest)
        if task is None:
            task = asyncio.ensure_future(make())
            self._tasks[digest] = task
        return task

    async def _cached(self, digest: str, fetch: Callable[[], Awaitable[RawManifest]]) -> RawManifest:
        if self.cache is not None:
            hit = self.cache.get(digest)
            if hit is not None:
                return hit
        raw = await self.bounded(fetch)
        if self.cache is not None:
            self.cache.put(raw)
        return raw

    def manifest(self, digest: str, hint: str | None = None) -> Awaitable[Manifest]:
        """The parsed manifest; `hint` is the referring descriptor's media type."""
        async def fetch() -> RawManifest:
            self.manifest_gets += 1
            return await self.registry.get_manifest(digest)

        async def make() -> Manifest:
            return await self._parse(await self._cached(digest, fetch), hint)

        return self._once(digest, make)

    def prefetch(self, digests: list[str]) -> None:
        """Start reading these manifests (bounded like any other); whoever asks for one later
        gets the same task. A failure is kept for that caller (and not logged as unretrieved)."""
        for digest in digests:
            if digest not in self._tasks:
                task = self.manifest(digest)
                task.add_done_callback(_retrieved)       # type: ignore[attr-defined]

    def release(self) -> None:
        """Forget the parsed manifests (the artifacts keep what they need): at 100,000 versions
        they are a few hundred MB that the plan does not need."""
        self._tasks.clear()

    def config(self, digest: str) -> Awaitable[RawManifest]:
        async def fetch() -> RawManifest:
            return RawManifest(digest, "config", await self.registry.get_blob(digest, MAX_CONFIG_BYTES))

        return self._once(digest, lambda: self._cached(digest, fetch))


def _retrieved(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()


async def _resolve_tags(registry: Registry, tags: list[str], fetcher: _Fetcher, known: dict[str, str],
                        progress: Progress | None) -> tuple[dict[str, str], dict[str, str]]:
    """tag -> digest for every tag; returns (resolved, failures)."""
    resolved: dict[str, str] = {}
    failures: dict[str, str] = {}

    async def one(tag: str) -> None:
        try:
            if tag in known:
                digest = await fetcher.bounded(lambda: registry.resolve(tag))
            else:
                raw = await fetcher.bounded(lambda: registry.get_manifest(tag))
                fetcher.manifest_gets += 1
                fetcher.remember(raw)
                digest = raw.digest
            if digest is not None:       # None: deleted between listing and now
                resolved[tag] = digest
        except NotFoundError:
            pass
        except JanitorError as exc:
            failures[tag] = describe(exc)
        if progress:
            progress("resolve", 1)

    await asyncio.gather(*(one(t) for t in tags))
    return resolved, failures


Gone = Callable[[str], bool]


async def _closure(fetcher: _Fetcher, manifest: Manifest, depth: int, closure: dict[str, int],
                   missing: list[str], gone: Gone) -> list[Manifest]:
    """Add `manifest`'s blobs and children (recursively) to `closure`; return child manifests.

    A child that answers "not found" and that the backend knows to be gone (`gone`) goes to
    `missing` and the walk goes on: the closure is what is left. Any other failure raises, after
    the rest has been walked (so what could be read is in `closure` and stays protected).
    """
    for blob in manifest.blobs:
        closure[blob.digest] = blob.size
    found: list[Manifest] = []
    if not manifest.children:
        return found
    if depth >= MAX_DEPTH:
        raise ManifestError(f"{manifest.digest}: indexes nested deeper than {MAX_DEPTH} levels")
    parsed_children = await asyncio.gather(
        *(fetcher.manifest(c.digest, c.media_type) for c in manifest.children), return_exceptions=True)
    failure: BaseException | None = None
    for child, parsed in zip(manifest.children, parsed_children):
        if isinstance(parsed, BaseException):
            if isinstance(parsed, NotFoundError) and gone(child.digest):
                if child.digest not in missing:
                    missing.append(child.digest)
            elif isinstance(parsed, JanitorError):
                closure[child.digest] = child.size      # referenced, even if unreadable now
                failure = failure or parsed
            else:
                raise parsed
            continue
        closure[child.digest] = parsed.size
        found.append(parsed)
        try:
            found += await _closure(fetcher, parsed, depth + 1, closure, missing, gone)
        except JanitorError as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
    return found


def _broken(manifest: Manifest, missing: list[str]) -> str | None:
    """"ghost" when every direct child is gone, "partial" when some part of the tree is."""
    if not missing:
        return None
    direct = {c.digest for c in manifest.children}
    return models.GHOST if direct and direct <= set(missing) else models.PARTIAL


async def _config_time(fetcher: _Fetcher, manifest: Manifest) -> datetime | None:
    if manifest.config is None or manifest.config.media_type not in mt.IMAGE_CONFIG_TYPES:
        return None
    raw = await fetcher.config(manifest.config.digest)
    return image_config_created(raw.body, f"config {manifest.config.digest}")


async def _artifact(fetcher: _Fetcher, digest: str, version: Version | None, options: InventoryOptions,
                    gone: Gone) -> Artifact:
    manifest: Manifest | None = None
    closure: dict[str, int] = {}
    try:
        manifest = await fetcher.manifest(digest, version.media_type if version else None)
        closure[digest] = manifest.size
        missing: list[str] = []
        children = await _closure(fetcher, manifest, 0, closure, missing, gone)
        created, source = manifest.created, manifest.age_source
        # A store's listing that dates the artifact wins below: no config blob is read for it.
        if created is None and options.fetch_config_times and not (version is not None and version.created):
            for candidate in [manifest, *children]:
                stamp = await _config_time(fetcher, candidate)
                if stamp is not None and (created is None or stamp > created):
                    created, source = stamp, CONFIG_CREATED
        if created is None:
            times = [(c.created, c.age_source) for c in children if c.created is not None]
            if times:
                created, source = max(times)
        if version is not None and version.created is not None:
            created, source = version.created, version.age_source
        return Artifact(digest=digest, media_type=manifest.media_type, kind=manifest.kind, closure=closure,
                        created=created, age_source=source, manifest=manifest,
                        children=tuple(c.digest for c in manifest.children),
                        subject=manifest.subject.digest if manifest.subject else None,
                        extra=dict(version.extra) if version else {},
                        missing=tuple(sorted(missing)), broken=_broken(manifest, missing),
                        labels=_placeholder_label(manifest))
    except JanitorError as exc:
        # What could be read stays in the closure (so it stays protected); an unreadable root
        # keeps what the listing said (a dangling layout entry: its descriptor's size).
        if manifest is None:
            listed_size = version.extra.get("size") if version else None
            closure = {digest: listed_size if isinstance(listed_size, int) and not isinstance(listed_size, bool) else 0}
        return Artifact(digest=digest, media_type=(manifest.media_type if manifest else None)
                        or (version.media_type if version else None) or "unknown",
                        kind=manifest.kind if manifest else models.UNKNOWN, closure=closure, error=describe(exc),
                        children=tuple(c.digest for c in manifest.children) if manifest else (),
                        subject=manifest.subject.digest if manifest and manifest.subject else None,
                        created=version.created if version else None,
                        age_source=version.age_source if version else None,
                        extra=dict(version.extra) if version else {})


def _remembered_roots(artifacts: dict[str, Artifact], recalled: list[Artifact]) -> list[Artifact]:
    """The remembered artifacts that are untagged roots: not in another artifact's closure (a tagged
    index's child, one of another remembered index), not a referrer of another artifact (they follow
    it), not the janitor's own placeholder. Each is marked `untagged_source = "remembered"`."""
    everything = {**artifacts, **{a.digest: a for a in recalled}}
    referenced = {ref for d, a in everything.items() for ref in a.closure if ref != d}
    roots = []
    for art in recalled:
        if art.digest in referenced or (art.subject and art.subject in everything) or "placeholder_for" in art.labels:
            continue
        art.untagged_source = "remembered"
        roots.append(art)
    return roots


def _placeholder_label(manifest: Manifest) -> dict[str, str]:
    """`{"placeholder_for": TAG}` for the janitor's own untag placeholder (by its whole content)."""
    owner = placeholder_owner(manifest)
    return {"placeholder_for": owner} if owner is not None else {}


def compute_unique_sizes(inventory: Inventory, deps: dict[str, set[str]] | None = None) -> None:
    """`unique_size`: what deleting only this image would free; and `size` to match.

    An image's bytes include what follows it (GHCR keeps platform manifests, attestations and
    referrers as versions of their own; they go with it): its `followers` and their bytes beyond
    its closure (`follow_size`) count in its `size` as in its `unique_size`, so that
    `unique_size <= size`. An artifact that follows another frees nothing on its own (its parent
    keeps it): 0, and its size is its own closure.
    """
    arts = inventory.artifacts
    deps = inventory.dependents() if deps is None else deps
    extended: dict[str, dict[str, int]] = {}
    for root in inventory.roots(deps):
        closure, stack, seen = dict(arts[root].closure), [root], {root}
        while stack:
            for follower in deps.get(stack.pop(), ()):
                if follower not in seen:
                    seen.add(follower)
                    closure.update(arts[follower].closure)
                    stack.append(follower)
        extended[root] = closure
        art = arts[root]
        art.followers = tuple(sorted(seen - {root} - art.closure.keys()))
        art.follow_size = sum(closure.values()) - sum(art.closure.values())
    users: dict[str, int] = {}
    for closure in extended.values():
        for blob in closure:
            users[blob] = users.get(blob, 0) + 1
    for digest, art in arts.items():
        closure = extended.get(digest, {})
        art.unique_size = sum(size for blob, size in closure.items() if users[blob] == 1)


async def build_inventory(
    registry: Registry,
    target: str,
    options: InventoryOptions,
    cache: ManifestCache | None = None,
    ledger: Ledger | None = None,
    progress: Progress | None = None,
) -> Inventory:
    """Gather every fact the planner needs about one repository."""
    fetcher = _Fetcher(registry, cache, options.concurrency, progress)
    listing_problem = None
    if isinstance(registry, ListsInPages):
        # Each page's manifests are read while the next pages are listed (every listed version is
        # a root below: it is read anyway, once); the closures are walked once the listing is whole.
        versions, listing_problem = await registry.consistent_listing_paged(fetcher.prefetch)
    elif isinstance(registry, ListsIndexVersions):
        versions, listing_problem = await registry.consistent_listing()
    else:
        versions = await registry.list_versions()
    errors: list[str] = []
    unresolved: list[str] = []
    if versions is not None:
        tag_map = {t: v.digest for v in versions for t in v.tags}
        failures: dict[str, str] = {}
    else:
        tags = await registry.list_tags()
        known = cache.load_tags(target) if cache is not None else {}
        tag_map, failures = await _resolve_tags(registry, tags, fetcher, known, progress)
    for tag, message in sorted(failures.items()):
        errors.append(f"{tag}: {message}")
        unresolved.append(tag)

    by_digest = {v.digest: v for v in versions or []}
    roots = sorted(set(tag_map.values()) | set(by_digest))
    listed = frozenset(by_digest)

    def gone(digest: str) -> bool:
        return registry.known_missing(digest, listed)

    async def recall() -> tuple[Remembered | None, list[Artifact]]:
        """What the store remembers of earlier runs' tags (probed while the tagged artifacts are read)."""
        if not isinstance(registry, RemembersTags) or unresolved:
            return None, []     # a tag whose digest is unknown might be on any remembered digest
        tagged = frozenset(tag_map.values())
        found = await registry.remembered(tagged, options.now)
        if found is None:
            return None, []
        wanted = [v for v in found.versions if v.digest not in by_digest and v.digest not in tagged]
        return found, list(await asyncio.gather(*(_artifact(fetcher, v.digest, v, options, gone) for v in wanted)))

    artifacts_list, (remembered, recalled) = await asyncio.gather(
        asyncio.gather(*(_artifact(fetcher, d, by_digest.get(d), options, gone) for d in roots)), recall())
    fetcher.release()
    artifacts = {a.digest: a for a in artifacts_list}
    recalled = _remembered_roots(artifacts, recalled)
    artifacts.update((a.digest, a) for a in recalled)
    artifacts_list = list(artifacts.values())
    for art in artifacts_list:
        art.manifest = None          # parsed descriptors are not needed past this point
    for tag, digest in tag_map.items():
        artifacts[digest].tags.append(tag)
    for art in artifacts.values():
        art.tags.sort()
        if art.error:
            errors.append(f"{art.digest}: {art.error}")

    undated = [a.digest for a in artifacts.values() if a.created is None and not a.error]
    if ledger is not None and undated:
        seen = ledger.first_seen(target, undated, options.now)
        for digest, when in seen.items():
            artifacts[digest].created, artifacts[digest].age_source = when, FIRST_SEEN
    if cache is not None:
        if versions is None:
            cache.save_tags(target, tag_map)
        cache.flush()
    if isinstance(registry, RemembersTags):
        # Only digests read whole and verified, never the janitor's own placeholders.
        registry.remember({t: d for t, d in tag_map.items()
                           if not artifacts[d].error and "placeholder_for" not in artifacts[d].labels}, options.now)

    inventory = Inventory(
        target=target, tags=tag_map, artifacts=artifacts,
        listed=select_tags(list(tag_map), options.tag_globs, options.all_tags),
        errors=errors, backend=registry.kind, unresolved=unresolved,
        tag_filter=None if options.all_tags else tuple(options.tag_globs),
        reclaim_note=getattr(registry, "reclaim_note", RECLAIM_NOTE),
        traits=getattr(registry, "traits", StoreTraits()),
    )
    if listing_problem:
        inventory.facts["listing_problem"] = listing_problem
        inventory.warnings.append(listing_problem)
    if isinstance(registry, ProbesDeletes) and (refused := await registry.deletes_refused()):
        inventory.facts["deletes_refused"] = refused
        inventory.warnings.append(refused)
    deps = inventory.dependents()          # computed once: roots and unique sizes both need it
    if registry.lists_untagged:
        # Untagged *roots*: platform manifests, attestations and referrers follow their parent.
        roots_now = inventory.roots(deps)
        inventory.untagged = sorted(d for d in by_digest if not by_digest[d].tags and d in roots_now)
    if remembered is not None:
        inventory.untagged = sorted(set(inventory.untagged) | {a.digest for a in recalled})
        inventory.facts["remembered"] = {"count": len(recalled), "since": format_time(remembered.since)}
        if remembered.unchecked:
            inventory.warnings.append(f"{count(remembered.unchecked, 'remembered digest')} could not be checked "
                                      "(HEAD by digest failed): not listed this run")
    elif unresolved and isinstance(registry, RemembersTags):
        inventory.warnings.append("remembered digests not checked: a tag's digest could not be learned")
    compute_unique_sizes(inventory, deps)
    shown = {tag_map[t] for t in inventory.listed} | set(inventory.untagged)
    inventory.warnings += broken_warnings({d: a for d, a in artifacts.items() if d in shown})
    return inventory


def broken_warnings(artifacts: dict[str, Artifact]) -> list[str]:
    """One line per broken index (of those listed), naming every missing child."""
    lines = []
    for digest in sorted(artifacts):
        art = artifacts[digest]
        if art.missing:
            where = f"{', '.join(art.tags)} ({digest})" if art.tags else digest
            lines.append(f"{where}: {art.broken} image index, {count(len(art.missing), 'child manifest')} missing: "
                         f"{', '.join(art.missing)}")
    return lines
