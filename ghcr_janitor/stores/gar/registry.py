"""Google Artifact Registry and Container Registry: `/v2` with Google's tags-list extension.

- Listing: one `GET /v2/<name>/tags/list` (no `n`; a `Link` is followed if ever sent) answers every
  manifest of the image, tagged or not, index children included, with its upload time
  (`timeUploadedMs`: the age source "gar/uploaded", fact `pushed`), media type and size. Cached for
  `LISTING_TTL` s for the inventory and updated after the store's own deletes; the last look
  (`current_tags`, `tag_names`) always reads it fresh: one request whatever the number of tags.
- Locked tags: an Artifact Registry repository with immutable tags (`dockerConfig.immutableTags`,
  REST) locks every tag; each is kept with that reason, never sent a delete.
- Untag: `DELETE /v2/<name>/manifests/<tag>` removes only the tag on GAR, after a HEAD of the tag.
- Delete: GAR refuses a digest DELETE while a tag points at it (400 `GOOGLE_MANIFEST_DANGLING_TAG`) or
  an index lists it (`GOOGLE_MANIFEST_DANGLING_PARENT_IMAGE`): `delete_manifest` first removes the tags
  the last look saw on the digest (each HEADed first: a tag moved since is left alone), then deletes
  the digest. Apply deletes parents before their children; a refusal of either kind is a skip in
  one line, never a retry that could remove anything else. Only GAR's 202 (or 200) is a delete done:
  a redirect deleted nothing.
- Pages: a `Link` to another scheme or host is not followed (`net.links.same_origin`); a repeated
  link or page, or an empty page that names another, is an error; at most `MAX_LIST_PAGES` pages and
  `LIST_TOTAL_CAP` bytes in all. What an error answer echoes is scrubbed of the run's secrets.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from typing import Any, Callable

import httpx

from ghcr_janitor.core.errors import CannotUntag, JanitorError, NotFoundError, RegistryError, TagMovedError
from ghcr_janitor.core.models import StoreTraits
from ghcr_janitor.core.reference import Target
from ghcr_janitor.core.words import count
from ghcr_janitor.net.http import BodyTooLarge
from ghcr_janitor.net.links import next_link, same_origin
from ghcr_janitor.net.redact import scrub
from ghcr_janitor.net.status import error_code, raise_for_status
from ghcr_janitor.stores.base import Version
from ghcr_janitor.stores.gar.api import ArtifactRegistryApi
from ghcr_janitor.stores.gar.credentials import Lazy
from ghcr_janitor.stores.gar.listing import Listing, merge_page
from ghcr_janitor.stores.gar.names import GarName
from ghcr_janitor.stores.oci.registry import OciRegistry
from ghcr_janitor.stores.oci.side import OciSide

log = logging.getLogger("ghcr_janitor.gar")

AGE_SOURCE = "gar/uploaded"
LISTING_TTL = 30.0
MAX_LIST_PAGES = 100              # GAR sends the whole map in one answer; a Link is the exception
LIST_BODY_CAP = 256 << 20          # the whole manifest map of a large image in one answer
LIST_TOTAL_CAP = LIST_BODY_CAP     # ... and all pages of one listing together
DELETED = (200, 202)               # GAR answers a manifest DELETE with 202
DANGLING_TAG = "GOOGLE_MANIFEST_DANGLING_TAG"
DANGLING_PARENT = "GOOGLE_MANIFEST_DANGLING_PARENT_IMAGE"
IMMUTABLE = "immutable tags (Artifact Registry repository setting dockerConfig.immutableTags)"
DELETE_ROLE = "artifactregistry.versions.delete and artifactregistry.tags.delete (roles/artifactregistry.repoAdmin)"


class StillReferenced(CannotUntag):
    """GAR refused a digest DELETE: a tag or an index still uses it. Skipped with this reason."""


class GarRegistry(OciSide):
    """`Registry`, `LooksAtTags`/`LooksAtOnce` and `ListsIndexVersions` for one GAR/GCR image."""

    kind = "gar"
    lists_untagged = True
    traits = StoreTraits(lists_untagged=True, price="gar")
    frees_storage_on_delete = True
    reclaim_note = ("in deleted manifests and used by no manifest left in this image, counted from the manifests; "
                    "Artifact Registry bills stored GB and frees a deleted manifest's storage itself (no garbage "
                    "collection to run)")
    deletes_per_look = 16           # one look is one GET whatever the tags; the deletes after it run together
    look_at_once = True

    def __init__(self, target: Target, gname: GarName, oci: OciRegistry, credentials: Lazy,
                 api: ArtifactRegistryApi | None = None, *, listing_ttl: float = LISTING_TTL,
                 monotonic: Callable[[], float] = time.monotonic):
        self.host = target.host
        self.name = target.name
        self.gname = gname
        self.oci = oci
        self.credentials = credentials
        self.api = api
        self.listing_ttl = listing_ttl
        self._monotonic = monotonic
        self._listing: Listing | None = None
        self._listed_at = 0.0
        self._lock = asyncio.Lock()
        self._immutable: bool | None = None              # the repository's immutable tags (read once)
        self._seen: dict[str, str] = {}                  # the last look: tag -> digest

    def __repr__(self) -> str:
        return f"GarRegistry({self.host}/{self.name}, v2={self.oci.base_url})"

    def _url(self, suffix: str) -> str:
        return f"{self.oci.base_url}/v2/{self.name}/{suffix}"

    async def _send(self, method: str, url: str, **kwargs: Any):
        try:
            return await self.oci.client.send(method, url, log_to=self.oci.log, **kwargs)
        except BodyTooLarge as exc:
            size = f"a {exc.size}-byte answer" if exc.size is not None else "an answer"
            raise RegistryError(f"{method} {url.partition('?')[0]}: the registry sent {size} over the {exc.cap} "
                                "byte cap; refused") from None

    def _secrets(self) -> list[str]:
        """The secrets this store's requests carried: the Google credential, once found, and the
        registry's bearer tokens (what an error answer must not echo back)."""
        found: list[str] = []
        credentials = self.credentials.found()
        if credentials is not None and credentials.secret:
            found.append(credentials.secret.reveal())
        auth = getattr(getattr(self.oci.client, "client", None), "auth", None)
        for token in list(getattr(auth, "_tokens", {}).values()):   # RegistryAuth's cache of bearer tokens
            value = getattr(token, "value", None)
            if isinstance(value, str):
                found.append(value)
        return found

    def _answer(self, response: httpx.Response, body: bytes) -> httpx.Response:
        """`_with_body`, an error's body scrubbed of the run's secrets whole before anything cuts it."""
        if response.status_code >= 400 and body:
            body = scrub(body.decode("utf-8", "replace"), self._secrets()).encode()
        return _with_body(response, body)

    # --- listing ---------------------------------------------------------------------
    async def read_list(self, name: str | None = None) -> Listing:
        """Every page of the tags list of this image (or of `name`, walking a glob), merged: GAR sends
        the whole map at once; a `Link` is followed if one is ever sent."""
        name = name or self.name
        what = f"listing {self.host}/{name}"
        listing = Listing()
        url: str | None = f"{self.oci.base_url}/v2/{name}/tags/list"
        visited: set[str] = set()
        pages: set[bytes] = set()
        read = 0
        for _ in range(MAX_LIST_PAGES):
            assert url is not None
            left = LIST_TOTAL_CAP - read
            if left <= 0:
                raise RegistryError(f"{what}: more than {LIST_TOTAL_CAP} bytes of pages; not read further")
            response, body = await self._send("GET", url, cap=min(LIST_BODY_CAP, left))
            read += len(body)
            response = self._answer(response, body)
            if response.status_code == 404:
                raise NotFoundError(f"{self.host}/{name}: no such image (or no permission to read it)",
                                    status=404)
            raise_for_status(response, what)
            try:
                doc = json.loads(body)
            except ValueError:
                raise RegistryError(f"{what}: the registry's answer is not JSON") from None
            merge_page(listing, doc, what)
            link = next_link(response.headers.get("link"))
            if not link:
                if not listing.has_map:
                    raise RegistryError(f"{what}: the tags list has no 'manifest' map (not Google's /v2?)")
                return listing
            if isinstance(doc, dict) and not (doc.get("tags") or doc.get("manifest") or doc.get("child")):
                raise RegistryError(f"{what}: an empty page names a next one; not read further")
            fingerprint = hashlib.sha256(body).digest()
            if fingerprint in pages:
                raise RegistryError(f"{what}: the registry sent the same page again; not read further")
            pages.add(fingerprint)
            url = same_origin(str(response.request.url), link, what)
            if url in visited:
                raise RegistryError(f"{what}: the registry's Link header loops back to {link}")
            visited.add(url)
        raise RegistryError(f"{what}: more than {MAX_LIST_PAGES} pages")

    async def _listed(self, max_age: float) -> Listing:
        async with self._lock:
            fresh = self._listing is not None and self._monotonic() - self._listed_at <= max_age
            if not fresh:
                self._listing = await self.read_list()
                self._listed_at = self._monotonic()
            assert self._listing is not None
            return self._listing

    async def list_versions(self) -> list[Version]:
        listing = await self._listed(self.listing_ttl)
        missing = listing.missing_tags()
        if missing:
            log.warning("%s/%s: %s on the tag list are on no listed manifest (e.g. %s)", self.host, self.name,
                        count(len(missing), "tag"), missing[0])
        immutable = await self._tags_immutable()
        return [self._version(e, immutable) for e in listing.entries.values()]

    def _version(self, entry, immutable: bool) -> Version:
        extra: dict[str, Any] = {"pushed": entry.uploaded}
        if entry.size is not None:
            extra["size"] = entry.size
        if immutable and entry.tags:
            extra["locked_tags"] = {t: IMMUTABLE for t in entry.tags}
        return Version(digest=entry.digest, tags=entry.tags, created=entry.uploaded,
                       age_source=AGE_SOURCE if entry.uploaded else None, media_type=entry.media_type, extra=extra)

    async def _tags_immutable(self) -> bool:
        """Whether the Artifact Registry repository has immutable tags (REST, read once per store). A
        repository the API cannot be asked about (no token, no permission) is taken as not: a tag
        DELETE it refuses then fails at apply, in one line."""
        if self._immutable is not None:
            return self._immutable
        self._immutable = False
        if self.api is None or self.gname.flavour != "ar":
            return False
        try:
            doc = await self.api.repository(self.gname.repository_path)
        except JanitorError as exc:
            log.info("%s/%s: repository settings not read (%s); immutable tags, if set, are refused at apply",
                     self.host, self.name, exc)
            return False
        config = doc.get("dockerConfig")
        self._immutable = isinstance(config, dict) and config.get("immutableTags") is True
        return self._immutable

    async def list_tags(self) -> list[str]:
        listing = await self._listed(self.listing_ttl)
        return sorted(set(listing.tag_map()) | listing.tags)

    async def resolve(self, tag: str) -> str | None:
        """The digest `tag` points at now (a HEAD: fresh)."""
        return await self.oci.resolve(tag)

    async def tag_names(self) -> list[str]:
        """Every tag now (a fresh read of the list)."""
        return await self.list_tags_now()

    async def list_tags_now(self) -> list[str]:
        listing = await self._listed(0.0)
        return sorted(set(listing.tag_map()) | listing.tags)

    async def current_tags(self, names: list[str] | None = None) -> dict[str, str]:
        """Every tag (or each of `names`) -> its digest now: one fresh read of the list (a tag the map
        lacks is HEADed). Remembered as the last look, which `delete_manifest` untags from."""
        listing = await self._listed(0.0)
        found = listing.tag_map()
        for tag in listing.missing_tags():
            digest = await self.oci.resolve(tag)
            if digest is not None:
                found[tag] = digest
        if names is None:
            self._seen = dict(found)
            return found
        wanted = {t: found[t] for t in names if t in found}
        self._seen.update(wanted)
        return wanted

    async def consistent_listing(self, max_age: float = 0.0) -> tuple[list[Version], str | None]:
        """The listing (at most `max_age` s old) and, if its map lacks a tag `tags[]` names even after a
        re-read, why (untagged and child deletes are then blocked)."""
        listing = await self._listed(max_age)
        if listing.missing_tags():
            listing = await self._listed(0.0)
        missing = listing.missing_tags()
        immutable = await self._tags_immutable()
        versions = [self._version(e, immutable) for e in listing.entries.values()]
        if not missing:
            return versions, None
        return versions, (f"the manifest map of {self.host}/{self.name} lacks {count(len(missing), 'tag')} of its "
                          f"tag list (e.g. {missing[0]}); untagged and child deletes are blocked")

    def known_missing(self, digest: str, listed: frozenset[str]) -> bool:
        """The map lists every manifest the image holds (index children included): absent is gone."""
        return digest not in listed

    # --- deleting --------------------------------------------------------------------
    async def _delete(self, reference: str, doing: str) -> None:
        response, body = await self._send("DELETE", self._url(f"manifests/{reference}"))
        response = self._answer(response, body)
        if response.status_code in DELETED:
            return
        where = f"{self.host}/{self.name}"
        if response.status_code == 404:
            raise NotFoundError(f"{doing}: not found", status=404)
        code, message = error_code(response)
        said = f"{code}: {message}" if message else code
        if code == DANGLING_TAG:
            raise StillReferenced(f"not deleted: a tag still points at it, Artifact Registry says ({said}; tagged "
                                  "since the last look?); left alone", status=400, code=code)
        if code == DANGLING_PARENT:
            raise StillReferenced(f"not deleted: an image index in {where} still lists it ({said}); left alone",
                                  status=400, code=code)
        if response.status_code == 403:
            raise_for_status(response, f"{doing} (needs {DELETE_ROLE})")
        raise_for_status(response, doing)
        # Under 400 yet not a delete: a redirect (a proxy's login page, an http->https rewrite) deleted nothing.
        raise RegistryError(f"{doing}: the registry answered {response.status_code}, not the 202 of a delete"
                            + (" (a redirect, not followed)" if 300 <= response.status_code < 400 else "")
                            + "; not counted as deleted", status=response.status_code)

    async def delete_tag(self, tag: str, digest: str) -> None:
        """Remove `tag`, keeping the manifest: HEAD it (NotFoundError if gone, TagMovedError if it points
        elsewhere), then the tag DELETE, which only untags on GAR."""
        await self.oci.expect_tag(tag, digest)
        await self._delete(tag, f"untagging {self.host}/{self.name}:{tag}")
        self._forget_tag(tag)

    async def delete_manifest(self, digest: str) -> None:
        """Delete `digest`: first the tags the last look saw on it (each HEADed first; one moved since
        is left alone and the digest kept), then the digest. StillReferenced if GAR refuses it."""
        for tag in sorted(t for t, d in self._seen.items() if d == digest):
            try:
                await self.delete_tag(tag, digest)
            except NotFoundError:
                self._forget_tag(tag)           # gone already: nothing to remove
            except TagMovedError as exc:
                self._seen.pop(tag, None)
                raise StillReferenced(f"not deleted: {exc}; the digest stays with its other tags") from None
        await self._delete(digest, f"deleting {self.host}/{self.name}@{digest}")
        if self._listing is not None:
            self._listing.entries.pop(digest, None)

    def _forget_tag(self, tag: str) -> None:
        self._seen.pop(tag, None)
        if self._listing is None:
            return
        self._listing.tags.discard(tag)
        for digest, entry in list(self._listing.entries.items()):
            if tag in entry.tags:
                self._listing.entries[digest] = type(entry)(**{**entry.__dict__,
                                                               "tags": tuple(t for t in entry.tags if t != tag)})

    async def aclose(self) -> None:
        try:
            await self.oci.aclose()
        finally:
            if self.api is not None:
                await self.api.aclose()


def _with_body(response: httpx.Response, body: bytes) -> httpx.Response:
    """The (closed) response again with the body the client read, so that its OCI error code reads."""
    return httpx.Response(response.status_code, headers=response.headers, content=body, request=response.request)


# --- the three functions every vendor module has (stores.connect) ------------------------------
def _oci(base: str, target: Target, options: Any, lazy: Lazy) -> OciRegistry:
    from ghcr_janitor.net.http import make_client
    from ghcr_janitor.stores.gar.credentials import LazyRegistryAuth

    client = make_client(options.concurrency, LazyRegistryAuth(lazy), base_url=base, policy=options.settings.http)
    return OciRegistry(base, target.name, client, options.log)


def _api(options: Any, host: Any, lazy: Lazy) -> ArtifactRegistryApi:
    from ghcr_janitor.net.http import make_client
    from ghcr_janitor.stores.gar.api import BearerAuth
    from ghcr_janitor.stores.gar.names import DEFAULT_API_URL

    api_url = host.api_url or DEFAULT_API_URL
    client = make_client(options.concurrency, BearerAuth(lazy.bearer), base_url=api_url, policy=options.settings.http)
    return ArtifactRegistryApi(api_url, client, options.log)


def open_store(target: Target, options: Any, host: Any) -> GarRegistry:
    """A GarRegistry for `target` (nothing contacted, no credential looked up yet)."""
    from ghcr_janitor.stores.connect import registry_base
    from ghcr_janitor.stores.gar.credentials import for_host
    from ghcr_janitor.stores.gar.names import parse_name

    gname = parse_name(target)
    lazy = for_host(target.host, options, host.token)
    api = _api(options, host, lazy) if gname.flavour == "ar" else None
    return GarRegistry(target, gname, _oci(registry_base(target, options), target, options, lazy), lazy, api)


async def repository_names(glob: Target, options: Any, host: Any) -> list[str]:
    """What a glob stands for: Artifact Registry packages (REST; a project's repositories first when
    the glob is at the repository level), or gcr.io's `child[]` walked from the glob's fixed part."""
    from ghcr_janitor.stores.gar.credentials import for_host
    from ghcr_janitor.stores.gar.names import parse_name
    from ghcr_janitor.stores.gar.walk import ar_names, gcr_names

    from ghcr_janitor.stores.connect import registry_base

    gname = parse_name(glob)
    lazy = for_host(glob.host, options, host.token)
    if gname.flavour == "ar":
        api = _api(options, host, lazy)
        try:
            return await ar_names(api, gname)
        finally:
            await api.aclose()
    walker = GarRegistry(glob, gname, _oci(registry_base(glob, options), glob, options, lazy), lazy)
    try:
        return await gcr_names(glob, gname, walker.read_list)
    finally:
        await walker.aclose()


def preflight(options: Any, host: Any) -> None:
    """A key file to exchange without google-auth installed, and nothing else to use: the install hint."""
    from ghcr_janitor.stores.gar.tokens import check

    check(options, host.token)

