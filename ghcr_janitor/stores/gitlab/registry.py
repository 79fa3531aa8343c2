"""GitLab container registry store: `registry.gitlab.com/GROUP/PROJECT[/IMAGE]`, and a self-managed
registry named in the settings file (`kind = "gitlab"`, `api_url` = the GitLab URL).

- Listing (tagged): the registry's metadata API where it runs (`metadata.py`: every tag's digest and
  publish time, 1,000 a page; `created` = `published_at`, the age source "gitlab/published", fact
  `pushed`), else the REST API (`api.py`: tag names 100 a page, then each tag's details: digest,
  `created_at` and `total_size`). GitLab's `created_at` is the image's BUILD time (from its config,
  not when it was pushed): it is kept as the fact `built` and never used as an age; without the
  metadata API `created` stays unset and the engine dates the artifact from its manifest or the
  first-seen ledger.
- Untagged manifests: neither API lists them. As on a plain OCI registry the store remembers each
  tag's digest (`RemembersTags`, delegated to the `/v2` side), so an overwritten tag's manifest is
  found on later runs (`untagged_source` "remembered").
- Locked tags: protected and immutable tag rules (`locks.py`) lock the tags they match (facts
  `locked_tags`); the planner keeps them and says why.
- Untagging: the REST tag delete when a REST token is configured, else the OCI tag DELETE (GitLab
  >= 16.4 untags only; older registries: the `/v2` side's placeholder technique). Either way the
  tag is HEADed first and left alone if it moved. The asynchronous bulk delete is never used.
- Deleting a digest: GitLab's registry drops every tag of a digest it deletes, so the digest's
  current tags (as the last look saw them) are untagged first through the tag API, pinned; then the
  tags are read once more (one metadata listing, else the `/v2` tag list and a HEAD of each tag the
  look did not see) and the digest is deleted over `/v2` only if no tag points at it: a tag a CI job
  put on it after the look keeps it (skipped, one line). The window left is the one round trip
  between that read and the DELETE. A locked tag on it refuses the delete.
- Apply's last look: every tag's digest from the metadata API (one request per 1,000 tags), else
  the `/v2` tag list and a HEAD per tag.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Mapping

from ghcr_janitor.core.errors import CannotUntag, NotFoundError, RegistryError, TagMovedError, UsageError
from ghcr_janitor.core.models import StoreTraits
from ghcr_janitor.core.reference import Target
from ghcr_janitor.core.settings import HostSettings
from ghcr_janitor.core.words import count
from ghcr_janitor.net.redact import one_line
from ghcr_janitor.stores.base import Remembered, Version
from ghcr_janitor.stores.gitlab import metadata
from ghcr_janitor.stores.gitlab.api import GitLabApi, TagDetails
from ghcr_janitor.stores.gitlab.locks import TagRule, lock_reason, parse_rules
from ghcr_janitor.stores.gitlab.where import Location, api_url, locate, repository_paths, rest_token
from ghcr_janitor.stores.oci.registry import OciRegistry
from ghcr_janitor.stores.oci.side import OciSide

log = logging.getLogger("ghcr_janitor.gitlab")

AGE_SOURCE = "gitlab/published"
LISTING_TTL = 30.0              # seconds a tag listing serves resolve/list_tags after the inventory read it
REREAD_GATHER = 0.01            # seconds a re-read before a digest delete waits for others to join it


@dataclass(frozen=True)
class TagInfo:
    digest: str
    published: datetime | None = None     # metadata API: when the tag was last pushed or moved
    built: datetime | None = None         # REST `created_at`: the image's build time
    size: int | None = None
    media_type: str | None = None


class GitLabRegistry(OciSide):
    """`Registry`, `LooksAtTags` and `RemembersTags` for one GitLab container repository."""

    kind = "gitlab"
    lists_untagged = False
    traits = StoreTraits(price="gitlab")
    reclaim_note = ("no longer referenced by any tag in this repository, nor by an untagged manifest the janitor "
                    "remembers; freed only by GitLab's garbage collection (GitLab.com runs it online; self-managed: "
                    "`gitlab-ctl registry-garbage-collect -m`, or the metadata database's online GC), less what "
                    "other repositories still share")
    deletes_per_look = 16

    def __init__(self, host: str, name: str, oci: OciRegistry, api: GitLabApi, *, concurrency: int = 8,
                 listing_ttl: float = LISTING_TTL, monotonic: Callable[[], float] = time.monotonic):
        self.host = host
        self.name = name
        self.oci = oci
        self.api = api
        self.concurrency = concurrency
        self.listing_ttl = listing_ttl
        self._monotonic = monotonic
        self._location: Location | None = None
        self._metadata: bool | None = None
        self._rules: list[TagRule] | None = None
        self._rules_read = False
        self._listing: dict[str, TagInfo] | None = None
        self._listed_at = 0.0
        self._lock = asyncio.Lock()
        self._applying = False              # a last look was taken: apply is under way
        self._looked: dict[str, str] | None = None     # tag -> digest at the latest look
        self._seen: set[str] = set()        # digests this store listed
        self._kept: set[str] = set()        # digests it untagged and kept
        self._deleted: set[str] = set()     # digests it deleted
        self._reread: asyncio.Future | None = None     # the metadata re-read about to be sent (see `_reread_now`)

    def __repr__(self) -> str:
        return f"GitLabRegistry({self.host}/{self.name}, api={self.api.api_url})"

    @property
    def where(self) -> str:
        return f"{self.host}/{self.name}"

    # --- what GitLab says once per run -----------------------------------------------------
    async def location(self) -> Location:
        if self._location is None:
            self._location = await locate(self.api, self.name, self.where)
        return self._location

    async def has_metadata_api(self) -> bool:
        if self._metadata is None:
            self._metadata = await metadata.available(self.oci)
        return self._metadata

    async def rules(self) -> list[TagRule] | None:
        """The project's tag rules; None when GitLab does not say (then a 403 on delete says it)."""
        if not self._rules_read:
            raw = await self.api.tag_rules((await self.location()).project_id)
            self._rules = parse_rules(raw) if raw is not None else None
            self._rules_read = True
            if raw is None:
                log.info("%s: GitLab did not list tag protection rules (older than 18.7, or not allowed): a protected "
                         "tag's delete fails with 403", self.where)
        return self._rules

    # --- listing -------------------------------------------------------------------------------
    async def _tags(self, max_age: float) -> dict[str, TagInfo]:
        async with self._lock:
            if self._listing is None or self._monotonic() - self._listed_at > max_age:
                self._listing = await self._read_tags()
                self._listed_at = self._monotonic()
                self._seen.update(i.digest for i in self._listing.values())
            return self._listing

    async def _read_tags(self) -> dict[str, TagInfo]:
        where = await self.location()           # first: a missing project is named as such
        if await self.has_metadata_api():
            return {t.name: TagInfo(t.digest, published=t.published, size=t.size, media_type=t.media_type)
                    for t in await metadata.published_tags(self.oci)}
        names = await self.api.tag_names(where.project_id, where.repository_id, self.where)
        details = await self.api.all_tag_details(where.project_id, where.repository_id, names, self.where,
                                                 self.concurrency)
        return {d.name: TagInfo(d.digest, built=d.built, size=d.total_size) for d in details if _digest(d)}

    async def list_versions(self) -> list[Version]:
        """Every tagged manifest with its facts; while applying, also the digests this store may not
        call gone (see `_not_gone`)."""
        listing = await self._tags(self.listing_ttl if not self._applying else 0.0)
        rules = await self.rules()
        by_digest: dict[str, list[str]] = {}
        for tag, info in listing.items():
            by_digest.setdefault(info.digest, []).append(tag)
        versions = [self._version(d, sorted(tags), listing, rules) for d, tags in by_digest.items()]
        if self._applying:
            versions += [Version(d, extra={"untagged_source": "remembered"})
                         for d in sorted(await self._not_gone(frozenset(by_digest)))]
        return versions

    def _version(self, digest: str, tags: list[str], listing: Mapping[str, TagInfo],
                 rules: list[TagRule] | None) -> Version:
        infos = [listing[t] for t in tags]
        published = max((i.published for i in infos if i.published), default=None)
        built = max((i.built for i in infos if i.built), default=None)
        extra: dict = {}
        if published is not None:
            extra["pushed"] = published
        if built is not None:
            extra["built"] = built
        sizes = [i.size for i in infos if i.size is not None]
        if sizes:
            extra["total_size"] = max(sizes)
        locked = {t: r for t in tags if (r := lock_reason(rules or [], t))}
        if locked:
            extra["locked_tags"] = locked
        media = next((i.media_type for i in infos if i.media_type), None)
        return Version(digest=digest, tags=tuple(tags), created=published,
                       age_source=AGE_SOURCE if published else None, media_type=media, extra=extra)

    async def _not_gone(self, tagged: frozenset[str]) -> set[str]:
        """Untagged digests apply must not take for gone: those this store listed or untagged and did
        not delete, and those the memory holds (not probed: present until shown otherwise). Neither
        API lists untagged manifests, so absence from the listing proves nothing."""
        keep = (self._seen | self._kept) - self._deleted
        memory = self.oci.memory
        if memory is not None:
            recalled = await asyncio.to_thread(memory.recall, self.oci.memory_key, tagged, _now())
            if recalled is not None:
                keep |= {e.digest for e in recalled[0]} - self._deleted
        return keep - tagged

    async def list_tags(self) -> list[str]:
        return sorted(await self._tags(self.listing_ttl))

    async def resolve(self, tag: str) -> str | None:
        """The digest `tag` points at now (a HEAD on `/v2`)."""
        return await self.oci.resolve(tag)

    def known_missing(self, digest: str, listed: frozenset[str]) -> bool:
        """Neither API lists every manifest: a 404 may be anything."""
        return False

    # --- the last look (LooksAtTags) ---------------------------------------------------------------
    async def tag_names(self) -> list[str]:
        self._applying = True
        if await self.has_metadata_api():
            return sorted(await self._fresh())
        return await super().tag_names()

    async def current_tags(self, names: list[str] | None = None) -> dict[str, str]:
        """Every tag (or each of `names`) -> its digest now: one metadata listing, else a HEAD per tag."""
        self._applying = True
        if await self.has_metadata_api():
            found = await self._fresh()
            if names is not None:
                wanted = set(names)
                found = {t: d for t, d in found.items() if t in wanted}
        else:
            found = await super().current_tags(names)
        if names is None:
            self._looked = dict(found)
        elif self._looked is not None:
            self._looked.update(found)
        return found

    async def _fresh(self) -> dict[str, str]:
        try:
            return {t.name: t.digest for t in await metadata.published_tags(self.oci)}
        except NotFoundError:
            return {}

    # --- remembered untagged manifests (RemembersTags) ------------------------------------------------
    async def remembered(self, tagged: frozenset[str], now: datetime) -> Remembered | None:
        return await self.oci.remembered(tagged, now)

    def remember(self, tags: Mapping[str, str], now: datetime) -> None:
        self.oci.remember(tags, now)

    # --- untagging and deleting --------------------------------------------------------------------
    async def _lock_of(self, tag: str) -> str | None:
        rules = await self.rules()
        return lock_reason(rules, tag) if rules else None

    async def delete_tag(self, tag: str, digest: str) -> None:
        """Remove `tag` from `digest` (the manifest stays): HEAD it now (NotFoundError if gone,
        TagMovedError if moved), then the REST tag delete (with a REST token) or the OCI tag DELETE."""
        lock = await self._lock_of(tag)
        if lock:
            raise CannotUntag(f"tag {self.where}:{tag} is locked ({lock}): left alone")
        if self.api.token is not None:
            where = await self.location()
            await self.oci.expect_tag(tag, digest)
            await self.api.delete_tag(where.project_id, where.repository_id, tag, self.where)
        else:
            await self.oci.delete_tag(tag, digest)
        self._kept.add(digest)
        if self._looked is not None:
            self._looked.pop(tag, None)
        if self._listing is not None:
            self._listing.pop(tag, None)

    async def delete_manifest(self, digest: str) -> None:
        """Untag `digest`'s current tags (as the last look saw them) through the tag API, read the tags
        once more (`_carriers`), then delete the untagged digest over `/v2` only if no tag points at it
        (TagMovedError otherwise: a tag put on it after the look; the digest stays). A locked tag on
        it refuses the delete (nothing sent)."""
        looked = self._looked if self._looked is not None else await self.current_tags()
        tags = sorted(t for t, d in looked.items() if d == digest)
        locked = [(t, lock) for t in tags if (lock := await self._lock_of(t))]
        if locked:
            tag, lock = locked[0]
            raise RegistryError(f"deleting {self.where}@{digest}: its tag {tag} is locked ({lock}); not deleted")
        removed = []
        for tag in tags:
            try:
                await self.delete_tag(tag, digest)
            except (NotFoundError, TagMovedError):
                pass                # gone, or on another digest now: the digest delete does not touch it
            else:
                removed.append(tag)
        carriers = await self._carriers(digest)
        if carriers:
            untagged = f"; untagged {', '.join(removed)} as planned" if removed else ""
            shown = ", ".join(one_line(t, (), 64) for t in carriers[:3]) + (", ..." if len(carriers) > 3 else "")
            raise TagMovedError(f"{self.where}@{digest} now carries {count(len(carriers), 'tag')} ({shown}) the last "
                                f"look did not see on it: not deleted (GitLab deletes a digest with every tag on "
                                f"it){untagged}", status=409)
        try:
            await self.oci.delete_manifest(digest)
        except NotFoundError:
            self._deleted.add(digest)
            raise
        self._deleted.add(digest)
        if tags:
            log.info("%s: untagged %s before deleting %s", self.where, count(len(tags), "tag"), digest)

    async def _carriers(self, digest: str) -> list[str]:
        """The tags on `digest` right now, read after the untags and just before the digest DELETE: one
        metadata listing, else the `/v2` tag list and a HEAD of each tag the last look did not see
        (or saw and this store untagged since: back again)."""
        if await self.has_metadata_api():
            now = await self._reread_now()
        else:
            seen = self._looked or {}
            again = [t for t, d in seen.items() if d == digest]        # an untag that failed: gone, or moved
            new = [t for t in await self.oci.list_tags() if t not in seen]
            now = await self.oci.current_tags(new + again) if new or again else {}
        return sorted(t for t, d in now.items() if d == digest)

    async def _reread_now(self) -> dict[str, str]:
        """A metadata listing sent from now on. The deletes of one look go out at once: those whose
        untags end within REREAD_GATHER seconds of each other share one listing (each joined it
        before it was sent, so it is as good for each as its own) rather than each reading every tag."""
        pending = self._reread
        if pending is None:
            pending = self._reread = asyncio.ensure_future(self._reread_soon())
        return await asyncio.shield(pending)

    async def _reread_soon(self) -> dict[str, str]:
        await asyncio.sleep(REREAD_GATHER)
        self._reread = None             # sent from here on: a later caller waits for the next one
        return await self._fresh()

    async def aclose(self) -> None:
        try:
            await self.oci.aclose()
        finally:
            await self.api.aclose()


def _digest(d: TagDetails) -> bool:
    from ghcr_janitor.core.digests import is_digest

    if d.digest is None or not is_digest(d.digest):
        log.warning("ignoring GitLab tag %s: no valid digest in its details", d.name)
        return False
    return True


def _now() -> datetime:
    return datetime.now(timezone.utc)


# --- the three functions stores.connect calls ------------------------------------------------------
def _api(registry_host: str, options, host: HostSettings) -> GitLabApi:
    from ghcr_janitor.net.http import make_client

    url = api_url(registry_host, options, host)
    token = rest_token(registry_host, url, options, host)
    client = make_client(options.concurrency, None, base_url=url, policy=options.settings.http)
    return GitLabApi(url, client, token, options.log)


def open_store(target: Target, options, host: HostSettings) -> GitLabRegistry:
    """A GitLabRegistry for `target` (nothing contacted yet)."""
    from ghcr_janitor.stores.connect import registry_base
    from ghcr_janitor.stores.oci.side import open_oci

    if len(target.name.split("/")) < 2:
        raise UsageError(f"{target}: a GitLab target is HOST/GROUP/PROJECT[/IMAGE]")
    api = _api(target.host, options, host)
    oci = open_oci(registry_base(target, options), target, options, target.host, remember=True)
    return GitLabRegistry(target.host, target.name, oci, api, concurrency=options.concurrency)


async def repository_names(glob: Target, options, host: HostSettings) -> list[str]:
    """What `HOST/GROUP/*` (or `HOST/GROUP/PROJECT/*`) stands for: the container repositories of the
    group's projects (`GET /groups/:id/registry/repositories`), else of the project."""
    from ghcr_janitor.core.reference import GLOB_CHARS

    parts = glob.name.split("/")
    fixed = []
    for part in parts:
        if any(c in part for c in GLOB_CHARS):
            break
        fixed.append(part)
    if not fixed:
        raise UsageError(f"{glob}: name the group: {glob.host}/GROUP/* (GitLab lists repositories per group or project)")
    api = _api(glob.host, options, host)
    try:
        return await repository_paths(api, "/".join(fixed))
    finally:
        await api.aclose()


def preflight(options, host: HostSettings) -> None:
    """Usage errors the settings show before any contact: a `token_env` naming an unset variable, a
    token that would travel over plain HTTP (a missing GitLab URL is `open_store`'s, which knows the host)."""
    if host.api_url:
        rest_token("this host", host.api_url, options, host)
    elif host.token_env and not host.token:
        raise UsageError(f'token_env = "{host.token_env}": that variable is not set')
