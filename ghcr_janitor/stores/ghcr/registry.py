"""GHCR backend: OCI reads and pushes on ghcr.io, listing and deletion through the REST API.

ghcr.io answers OCI DELETE with 405, so a version is deleted through GitHub Packages REST,
and one tag of a multi-tagged version is removed by pushing a unique placeholder manifest to
that tag and deleting the placeholder's own version (formats.md §6(e)).

The version listing is cached for `listing_ttl` seconds (and updated after our own changes):
apply re-resolves every tag, and re-listing thousands of versions per action would spend the
`GITHUB_TOKEN` budget of 1,000 calls an hour. Untagging always re-lists first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from ghcr_janitor.core import mediatypes as mt
from ghcr_janitor.core.digests import is_digest
from ghcr_janitor.core.errors import JanitorError, NotFoundError, RegistryError, TagMovedError, UsageError
from ghcr_janitor.core.models import StoreTraits
from ghcr_janitor.stores.base import RawManifest, Version
from ghcr_janitor.net.github import (
    Clock, GitHubPackages, PackageVersion, Sleep, github_token,
)
from ghcr_janitor.stores.oci.registry import EMPTY_JSON, OciRegistry, is_placeholder, placeholder_manifest
from ghcr_janitor.core.words import count

log = logging.getLogger("ghcr_janitor.ghcr")

LISTING_TTL = 30.0
PLACEHOLDER_LOOKUPS = 5            # GHCR may take a moment to list a freshly pushed version
PLACEHOLDER_DELETE_ATTEMPTS = 3


class GhcrRegistry:
    """`Registry` for `ghcr.io/OWNER/NAME`: versions via REST, manifests via OCI."""

    kind = "ghcr"
    lists_untagged = True
    traits = StoreTraits(lists_untagged=True, price="ghcr")
    # GitHub reports no size per package version (registries.md): the figure is counted from the manifests.
    reclaim_note = ("in deleted package versions and used by no version left in this package, counted from "
                    "the manifests (GitHub reports no size per version, so what it counts may differ; a deleted "
                    "version stays restorable for 30 days)")
    deletes_per_look = 1            # REST deletes are paced: each gets its own last look
    # GitHub REST requests per action (`SpendsRequestBudget`): a delete is one DELETE, an untag a
    # placeholder push and its version lookup and delete, a retag none (OCI requests only).
    REST_PER_ACTION = {"delete": 1, "untag": 4, "retag": 0}

    def requests_needed(self, todo: list, hinted: list) -> int:
        """`SpendsRequestBudget`: the REST requests applying `todo` takes (its listings and owner
        lookup included), and checking the journalled `hinted` (a listing per 100 untagged)."""
        checks = [a for a in hinted if a.tag is None or a.parent]
        listing = 1 + len(checks) // 100 if checks else 0
        return sum(self.REST_PER_ACTION.get(a.action, 1) for a in todo) + 3 + len(todo) // 100 + listing

    def __init__(self, name: str, oci: OciRegistry, api: GitHubPackages, *, listing_ttl: float = LISTING_TTL,
                 monotonic: Callable[[], float] = time.monotonic):
        self.name = name
        self.oci = oci
        self.api = api
        self.listing_ttl = listing_ttl
        self._monotonic = monotonic
        self._versions: dict[str, PackageVersion] | None = None
        self._listed_at = 0.0
        self._list_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"GhcrRegistry({self.name}, oci={self.oci.base_url}, api={self.api.api_url})"

    @property
    def rest_calls(self) -> list[tuple[str, str, int]]:
        """Every REST call made so far: (method, path?query, status); status 0 = no answer."""
        return self.api.calls

    # --- listing -------------------------------------------------------------------
    async def _listing(self, max_age: float, on_page: Callable[[list[str]], None] | None = None) -> dict[str, PackageVersion]:
        async with self._list_lock:
            fresh = self._versions is not None and self._monotonic() - self._listed_at <= max_age
            if fresh and on_page is not None:
                assert self._versions is not None
                on_page(list(self._versions))
            if not fresh:
                versions = []
                async for page in self.api.pages():
                    versions += page
                    if on_page is not None:
                        on_page([v.name for v in page if is_digest(v.name)])
                odd = [v.id for v in versions if not is_digest(v.name)]
                if odd:   # container versions are named by digest; anything else is not ours to read
                    log.warning("%s: ignoring %d package versions not named by a digest: %s", self.name, len(odd), odd[:5])
                self._versions = {v.name: v for v in versions if is_digest(v.name)}
                self._listed_at = self._monotonic()
            assert self._versions is not None
            return self._versions

    def invalidate(self) -> None:
        """Forget the cached listing: the next read re-lists."""
        self._versions = None

    async def list_versions(self) -> list[Version]:
        versions = await self._listing(self.listing_ttl)
        return [_to_version(v) for v in versions.values()]

    async def list_tags(self) -> list[str]:
        versions = await self._listing(self.listing_ttl)
        return sorted({t for v in versions.values() for t in v.tags})

    async def tag_names(self) -> list[str]:
        """Every tag name now, from the OCI side. A package of untagged versions only has no OCI tag
        list (404): no tags."""
        try:
            return await self.oci.list_tags()
        except NotFoundError:
            return []

    async def current_tags(self, names: list[str] | None = None) -> dict[str, str]:
        """The digest of every tag now (or of `names`), from the OCI side: fresh, no REST budget."""
        return await self.oci.current_tags(await self.tag_names() if names is None else names)

    async def consistent_listing(self, max_age: float = 0.0) -> tuple[list[Version], str | None]:
        """The REST versions (at most `max_age` s old) and, if incomplete even after a relist, why.

        A listing read page by page while another job deletes versions can skip one (page numbers
        shift), and the skipped version's tags then vanish from it: every tag the OCI tag list
        (one cheap request per 1,000 tags, no REST budget) shows must be carried by a listed
        version. On disagreement the listing is read again once; if a tag is still missing, the
        second value says so and the caller blocks the deletes the gap could make wrong
        (untagged and child deletes). A tag the listing has and the tag list lacks is harmless:
        it only keeps a version.
        """
        return await self.consistent_listing_paged(None, max_age)

    async def consistent_listing_paged(self, on_page: Callable[[list[str]], None] | None,
                                       max_age: float = 0.0) -> tuple[list[Version], str | None]:
        """`consistent_listing`, handing each page's digests to `on_page` as it arrives
        (`stores.base.ListsInPages`: the inventory reads those manifests meanwhile)."""
        problem: str | None = None
        for attempt in range(2):
            listing = await self._listing(max_age if attempt == 0 else 0.0, on_page)
            names = await self.tag_names()
            carried = {t for v in listing.values() for t in v.tags}
            missing = sorted(t for t in names if t not in carried)
            if not missing:
                return [_to_version(v) for v in listing.values()], None
            log.info("%s: version listing lacks %s (attempt %d): %s", self.name, count(len(missing), "tag"), attempt + 1,
                     missing[:3])
            problem = (f"the version listing of {self.name} is incomplete: {count(len(missing), 'tag')} on the tag list "
                       f"(e.g. {missing[0]}) are on no listed version, even after a relist (another job may be "
                       "deleting versions); untagged and child deletes are blocked")
        return [_to_version(v) for v in listing.values()], problem

    async def _carrier(self, tag: str, max_age: float) -> PackageVersion | None:
        versions = await self._listing(max_age)
        return next((v for v in versions.values() if tag in v.tags), None)

    async def resolve(self, tag: str) -> str | None:
        """The digest of the version carrying `tag` (listing at most `listing_ttl` old)."""
        version = await self._carrier(tag, self.listing_ttl)
        return version.name if version else None

    def known_missing(self, digest: str, listed: frozenset[str]) -> bool:
        """Every manifest on GHCR is a package version: a 404 that the listing agrees with is final."""
        return digest not in listed

    # --- OCI -----------------------------------------------------------------------
    async def get_manifest(self, reference: str) -> RawManifest:
        return await self.oci.get_manifest(reference)

    async def get_blob(self, digest: str, max_size: int) -> bytes:
        return await self.oci.get_blob(digest, max_size)

    async def put_manifest(self, tag: str, body: bytes, media_type: str) -> str:
        try:
            return await self.oci.put_manifest(tag, body, media_type)
        finally:
            self.invalidate()

    # --- deleting ------------------------------------------------------------------
    async def delete_manifest(self, digest: str) -> None:
        """REST-delete the version named `digest` (all its tags go). NotFoundError if unknown."""
        version = (await self._listing(self.listing_ttl)).get(digest)
        if version is None:
            version = (await self._listing(0)).get(digest)
        if version is None:
            raise NotFoundError(f"{self.name}@{digest}: no package version has this digest (already deleted?)",
                                status=404)
        try:
            await self.api.delete_version(version.id)
        except NotFoundError:
            self._forget(version)
            # The cached id may be stale (deleted and pushed again: same digest, new id).
            fresh = (await self._listing(0)).get(digest)
            if fresh is None or fresh.id == version.id:
                raise
            await self.api.delete_version(fresh.id)
            version = fresh
        self._forget(version)

    def _forget(self, version: PackageVersion) -> None:
        if self._versions is not None:
            self._versions.pop(version.name, None)

    async def delete_tag(self, tag: str, digest: str) -> None:
        """Remove `tag` from the version `digest` with a placeholder; the version stays.

        NotFoundError if the tag is gone or moved elsewhere (nothing done). If the tag sits on
        the janitor's own placeholder (an interrupted earlier untag), that placeholder is deleted.
        """
        versions = await self._listing(0)
        listed_at = self._listed_at
        carrier = next((v for v in versions.values() if tag in v.tags), None)
        if carrier is None:
            raise NotFoundError(f"tag {self.name}:{tag} not found", status=404)
        if carrier.name != digest:
            if await self._is_own_placeholder(carrier, tag):
                log.info("finishing an interrupted untag of %s:%s", self.name, tag)
                await self._delete_placeholder(carrier, tag)
                return
            raise TagMovedError(f"tag {self.name}:{tag} now points at {carrier.name}, not {digest}: left alone",
                                status=404)
        await self.oci.ensure_blob(EMPTY_JSON, mt.OCI_EMPTY)
        body = placeholder_manifest(tag)
        self.invalidate()                       # whatever happens next, the old listing is stale
        await self.oci.expect_tag(tag, digest)  # the last look: nothing but this HEAD before the PUT
        placeholder = await self.oci.put_manifest(tag, body, mt.OCI_MANIFEST)
        version = await self._find_placeholder(placeholder, tag)
        await self._delete_placeholder(version, tag)
        # Known outcome: the listing taken before, minus this tag.
        versions[digest] = PackageVersion(carrier.id, carrier.name, tuple(t for t in carrier.tags if t != tag),
                                          carrier.created_at, carrier.updated_at)
        self._versions, self._listed_at = versions, listed_at

    async def pending_placeholder(self, tag: str) -> str | None:
        """The digest of our own placeholder if `tag` is parked on one (an interrupted untag)."""
        carrier = await self._carrier(tag, self.listing_ttl)
        if carrier is not None and await self._is_own_placeholder(carrier, tag):
            return carrier.name
        return None

    async def _is_own_placeholder(self, version: PackageVersion, tag: str) -> bool:
        if version.tags != (tag,):
            return False
        try:
            raw = await self.oci.get_manifest(version.name)
        except JanitorError:
            return False
        return is_placeholder(raw.body, raw.digest, tag)

    async def _find_placeholder(self, placeholder: str, tag: str) -> PackageVersion:
        """Re-list (page by page, newest first) until the placeholder's version shows up."""
        problem = "it did not appear in the version listing"
        for attempt in range(PLACEHOLDER_LOOKUPS):
            if attempt:
                await self.api.sleep(2.0 ** (attempt - 1))
            try:
                found = await self._scan_for(placeholder)
            except JanitorError as exc:
                problem = f"listing versions failed: {exc}"
                continue
            if found is not None:
                if found.tags != (tag,):
                    raise RegistryError(
                        f"untagging {self.name}:{tag}: placeholder version {found.id} ({placeholder}) carries tags "
                        f"{list(found.tags)}, not just {tag!r}; not deleted: check the package by hand")
                return found
        raise RegistryError(
            f"untagging {self.name}:{tag}: pushed placeholder {placeholder} but {problem}; the tag now points at "
            f"the placeholder: rerun to finish the untag, or delete that version in the package settings")

    async def _scan_for(self, digest: str) -> PackageVersion | None:
        async for page in self.api.pages():
            for version in page:
                if version.name == digest:
                    return version
        return None

    async def _delete_placeholder(self, version: PackageVersion, tag: str) -> None:
        """Delete the placeholder version, retrying; a clear error if it stays behind."""
        error: JanitorError | None = None
        for attempt in range(PLACEHOLDER_DELETE_ATTEMPTS):
            if attempt:
                await self.api.sleep(2.0 ** attempt)
            try:
                await self.api.delete_version(version.id)
                error = None
                break
            except NotFoundError:
                error = None
                break
            except JanitorError as exc:
                error = exc
        self._forget(version)
        if error is not None:
            raise RegistryError(
                f"untagging {self.name}:{tag}: placeholder version {version.id} ({version.name}) could not be "
                f"deleted: {error}; the tag now points at the placeholder: rerun to finish the untag, or delete "
                f"version {version.id} in the package settings")

    async def aclose(self) -> None:
        try:
            await self.oci.aclose()
        finally:
            await self.api.aclose()


def _to_version(v: PackageVersion) -> Version:
    created, source = (v.updated_at, "ghcr/updated_at") if v.updated_at else (v.created_at, "ghcr/created_at")
    return Version(digest=v.name, tags=v.tags, created=created, age_source=source if created else None,
                   version_id=v.id, extra={"version_id": v.id})


def open_ghcr(target, options, oci_base: str, *, sleep: Sleep | None = None, clock: Clock | None = None,
              listing_ttl: float = LISTING_TTL) -> GhcrRegistry:
    """A GhcrRegistry for `ghcr.io/OWNER/NAME` (`connect.open_registry` calls this)."""
    from ghcr_janitor.net.auth.credentials import find_credentials
    from ghcr_janitor.net.auth.flow import RegistryAuth
    from ghcr_janitor.net.http import make_client

    owner, _, package = target.name.partition("/")
    if not owner or not package:
        raise UsageError(f"target {target}: expected ghcr.io/OWNER/NAME")
    settings = options.settings
    credentials = find_credentials("ghcr.io", options.username, options.password, settings)
    api = GitHubPackages(owner, package, github_token(options), api_url=settings.github_api_url,
                         owner_type=options.owner_type, sleep=sleep, clock=clock,
                         deletes_per_minute=settings.ghcr_deletes_per_minute, log_to=options.log,
                         budget=options.budget, known_owners=options.github_owners, timeout=settings.http.timeout)
    client = make_client(options.concurrency, RegistryAuth(credentials), base_url=oci_base, policy=settings.http)
    oci = OciRegistry(oci_base, target.name, client, options.log)
    return GhcrRegistry(target.name, oci, api, listing_ttl=listing_ttl)
