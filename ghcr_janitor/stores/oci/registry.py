"""OCI Distribution v1.1 backend (requests run on a `ThreadedClient`)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import datetime
from typing import Mapping
from urllib.parse import urljoin, urlsplit

import httpx

from ghcr_janitor.core import mediatypes as mt
from ghcr_janitor.core.digests import digest_of, is_digest, verify
from ghcr_janitor.core.errors import AuthError, JanitorError, ManifestError, NotFoundError, RegistryError, TagMovedError
from ghcr_janitor.core.manifests import parse_manifest, placeholder_owner
from ghcr_janitor.core.models import StoreTraits
from ghcr_janitor.net.http import BodyTooLarge, RequestLog, ThreadedClient
from ghcr_janitor.stores.base import RawManifest, Remembered, Version
from ghcr_janitor.stores.oci.memory import AGE_SOURCE as REMEMBERED_AGE, DigestMemory
from ghcr_janitor.net.status import raise_for_status
from ghcr_janitor.net.links import next_link, same_origin

TAG_PAGE_SIZE = 1000
MAX_TAG_PAGES = 100_000
EMPTY_JSON = b"{}"
EMPTY_DIGEST = digest_of(EMPTY_JSON)
# Deleting this digest (which no content has) answers 404 where deletes are enabled, 405 where not.
DELETE_PROBE_DIGEST = "sha256:" + "0" * 64


class OciRegistry:
    """A repository on an OCI Distribution registry (docker-registry, distribution 3, ...)."""

    kind = "oci"
    lists_untagged = False
    traits = StoreTraits(price="oci")     # what the reports ask instead of `kind` (core.models)
    frees_storage_on_delete = False
    # Distribution frees blobs only at its offline GC, and only those no manifest it still holds uses:
    # other repositories' and untagged manifests' (an overwritten tag leaves one; the Distribution API
    # cannot list it: the janitor knows those it remembers, `remembered`, and counts them as kept).
    reclaim_note = ("no longer referenced by any tag in this repository, nor by an untagged manifest the janitor "
                    "remembers; freed by the registry's garbage collection (`registry garbage-collect CONFIG`; "
                    "Debian's binary is `docker-registry`), less what other repositories, or untagged manifests "
                    "the janitor never saw tagged, still share (`garbage-collect --delete-untagged` frees those)")
    deletes_per_look = 16           # at most this many deletes follow one last look (apply.last_look)

    def known_missing(self, digest: str, listed: frozenset[str]) -> bool:
        """The Distribution API cannot enumerate manifests: a 404 may be a permissions quirk."""
        return False

    def __init__(self, base_url: str, name: str, client: ThreadedClient, log: RequestLog | None = None,
                 memory: DigestMemory | None = None):
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.client = client
        self.log = log if log is not None else RequestLog()
        self.supports_tag_delete: bool | None = None
        self.deletes_enabled = False
        # The digests this repository's tags had on earlier runs (stores.oci.memory); None: remembers nothing.
        self.memory = memory
        self.memory_key = f"{urlsplit(self.base_url).netloc}/{name}"

    def __repr__(self) -> str:
        return f"OciRegistry({self.base_url}/{self.name})"

    def _url(self, suffix: str) -> str:
        return f"{self.base_url}/v2/{self.name}/{suffix}"

    async def _send(self, method: str, url: str, **kwargs) -> httpx.Response:
        """A request with retries; the (small) body is read, so `.json()` works."""
        response, _ = await self.client.send(method, url, log_to=self.log, **kwargs)
        return response

    # --- read -------------------------------------------------------------------
    async def list_tags(self) -> list[str]:
        return await self._paged(self._url(f"tags/list?n={TAG_PAGE_SIZE}"), f"listing tags of {self.name}", "tags",
                                 f"repository {self.name} not found on {self.base_url}")

    async def catalog(self) -> list[str]:
        """Every repository the registry lists (`/v2/_catalog`, `n`/`Link` paginated)."""
        try:
            # No `n`: a registry that caps its page size (distribution's catalog.maxentries) refuses a
            # larger n; without one it sends what it allows and a Link to the rest.
            return await self._paged(f"{self.base_url}/v2/_catalog",
                                     f"listing the repositories of {self.base_url}", "repositories",
                                     "the registry has no catalog (GET /v2/_catalog -> 404)")
        except (NotFoundError, AuthError, RegistryError) as exc:
            raise RegistryError(f"{self.base_url} refuses to list its repositories ({exc}); "
                                "name each repository instead of a glob", status=exc.status) from None

    async def _paged(self, url: str | None, what: str, field: str, missing: str) -> list[str]:
        """A `Link`-paginated list of strings (tags, repositories), deduplicated and sorted."""
        found: set[str] = set()
        visited: set[str] = set()
        for _ in range(MAX_TAG_PAGES):
            assert url is not None
            response = await self._send("GET", url)
            if response.status_code == 404:
                raise NotFoundError(missing, status=404)
            raise_for_status(response, what)
            try:
                doc = response.json()
                page = doc.get(field) or []
            except (ValueError, AttributeError):
                raise RegistryError(f"{what}: the registry's answer is not JSON") from None
            if not isinstance(page, list) or not all(isinstance(t, str) for t in page):
                raise RegistryError(f"{what}: {field!r} is not a list of strings")
            found.update(page)
            link = next_link(response.headers.get("link"))
            if not link:
                return sorted(found)
            url = same_origin(str(response.request.url), link, what)
            if url in visited:
                raise RegistryError(f"{what}: the registry's Link header loops back to {link}")
            visited.add(url)
        raise RegistryError(f"{what}: more than {MAX_TAG_PAGES} pages")

    async def list_versions(self) -> list[Version] | None:
        return None

    # --- remembered tags (stores.base.RemembersTags) -------------------------------------
    async def remembered(self, tagged: frozenset[str], now: datetime) -> Remembered | None:
        """The digests this repository's tags had on earlier runs that no tag has now, each HEADed by
        digest (concurrently, bounded): those present come back as untagged Versions aged from when
        they were last seen tagged; a 404 is forgotten; any other answer leaves it unlisted this run."""
        if self.memory is None:
            return None
        recalled = await asyncio.to_thread(self.memory.recall, self.memory_key, tagged, now)
        if recalled is None:
            return None
        entries, since = recalled
        sem = asyncio.Semaphore(self.client.limit.maximum)

        async def probe(digest: str) -> int | None:
            async with sem:
                try:
                    response = await self._send("HEAD", self._url(f"manifests/{digest}"), headers={"Accept": mt.ACCEPT})
                except (httpx.HTTPError, JanitorError):     # unknown this run: not listed, not forgotten
                    return None
            return response.status_code

        statuses = await asyncio.gather(*(probe(e.digest) for e in entries))
        present = [e for e, status in zip(entries, statuses) if status == 200]
        gone = [e.digest for e, status in zip(entries, statuses) if status == 404]
        if gone:
            await asyncio.to_thread(self.memory.forget, self.memory_key, gone)
        versions = [Version(e.digest, created=e.last_tagged, age_source=REMEMBERED_AGE,
                            extra={"untagged_source": "remembered", "last_tag": e.tag}) for e in present]
        return Remembered(versions, since, unchecked=len(entries) - len(present) - len(gone))

    def remember(self, tags: Mapping[str, str], now: datetime) -> None:
        """Remember each tag's digest as seen `now` (the caller passes only digests it read whole)."""
        if self.memory is not None:
            self.memory.record(self.memory_key, tags, now)

    async def _forget(self, digest: str) -> None:
        if self.memory is not None:
            await asyncio.to_thread(self.memory.forget, self.memory_key, [digest])

    async def tag_names(self) -> list[str]:
        """Every tag name now (the tag list, never cached)."""
        return await self.list_tags()

    async def current_tags(self, names: list[str] | None = None) -> dict[str, str]:
        """The digest of every tag now (or of `names`): a HEAD per tag, concurrently, bounded."""
        tags = await self.list_tags() if names is None else names
        sem = asyncio.Semaphore(self.client.limit.maximum)
        found: dict[str, str] = {}

        async def one(tag: str) -> None:
            async with sem:
                digest = await self.resolve(tag)
            if digest is not None:
                found[tag] = digest

        await asyncio.gather(*(one(t) for t in tags))
        return found

    async def resolve(self, tag: str) -> str | None:
        """HEAD the tag; fall back to GET + sha256 when the digest header is missing."""
        response = await self._send("HEAD", self._url(f"manifests/{tag}"), headers={"Accept": mt.ACCEPT})
        if response.status_code == 404:
            return None
        raise_for_status(response, f"resolving {self.name}:{tag}")
        digest = response.headers.get("docker-content-digest")
        if digest and is_digest(digest):
            return digest
        try:
            return (await self.get_manifest(tag)).digest
        except NotFoundError:
            return None

    async def get_manifest(self, reference: str) -> RawManifest:
        where = f"{self.name}@{reference}" if is_digest(reference) else f"{self.name}:{reference}"
        response, body = await _get_capped(self, self._url(f"manifests/{reference}"), mt.MAX_MANIFEST_BYTES,
                                           f"manifest {where}", headers={"Accept": mt.ACCEPT})
        if response.status_code == 404:
            raise NotFoundError(f"manifest {where} not found", status=404)
        raise_for_status(response, f"fetching manifest {where}")
        header = response.headers.get("docker-content-digest")
        if is_digest(reference):
            verify(body, reference, f"manifest {where}")
            digest = reference
        elif header:
            if not is_digest(header):
                raise ManifestError(f"manifest {where}: registry sent an invalid digest header")
            verify(body, header, f"manifest {where}")
            digest = header
        else:
            digest = digest_of(body)
        media_type = (response.headers.get("content-type") or "").split(";")[0].strip()
        if media_type not in mt.ALL_MANIFEST_TYPES:
            media_type = _declared_media_type(body) or media_type
        return RawManifest(digest, media_type, body)

    async def get_blob(self, digest: str, max_size: int) -> bytes:
        response, body = await _get_capped(self, self._url(f"blobs/{digest}"), max_size,
                                           f"blob {self.name}@{digest}", follow_redirects=True)
        if response.status_code == 404:
            raise NotFoundError(f"blob {self.name}@{digest} not found", status=404)
        raise_for_status(response, f"fetching blob {self.name}@{digest}")
        verify(body, digest, f"blob {self.name}@{digest}")
        return body

    # --- write ------------------------------------------------------------------
    async def put_manifest(self, tag: str, body: bytes, media_type: str) -> str:
        response = await self._send("PUT", self._url(f"manifests/{tag}"), content=body,
                                    headers={"Content-Type": media_type})
        raise_for_status(response, f"pushing manifest to {self.name}:{tag}")
        expected = digest_of(body)
        reported = response.headers.get("docker-content-digest") or expected
        if reported != expected:
            raise RegistryError(f"pushing {self.name}:{tag}: registry stored digest {reported}, expected {expected}")
        return expected

    async def delete_manifest(self, digest: str) -> None:
        response = await self._send("DELETE", self._url(f"manifests/{digest}"))
        if response.status_code == 404:
            await self._forget(digest)
            raise NotFoundError(f"manifest {self.name}@{digest} not found", status=404)
        if response.status_code in (400, 405):
            raise RegistryError(
                f"deleting {self.name}@{digest}: the registry refuses deletes "
                f"({response.status_code}); enable storage.delete on the registry", status=response.status_code)
        raise_for_status(response, f"deleting {self.name}@{digest}")
        if not 200 <= response.status_code < 300:       # a redirect (an SSO proxy's login page) deletes nothing
            where = response.headers.get("location", "")
            raise RegistryError(f"deleting {self.name}@{digest}: the registry answered {response.status_code}"
                                f"{' (to ' + where.split('?')[0][:100] + ')' if where else ''}, not a delete; nothing "
                                "was counted as deleted", status=response.status_code)
        await self._forget(digest)

    async def delete_tag(self, tag: str, digest: str) -> None:
        """Remove one tag, keeping the digest: DELETE by tag where supported, else the
        placeholder technique. Refuses (TagMovedError) if the tag no longer points at `digest`.
        """
        if self.supports_tag_delete is not False:
            await self.expect_tag(tag, digest)

            response = await self._send("DELETE", self._url(f"manifests/{tag}"))
            if 200 <= response.status_code < 300:
                self.supports_tag_delete = True
                return
            if response.status_code == 404:
                raise NotFoundError(f"tag {self.name}:{tag} not found", status=404)
            if response.status_code not in (400, 405, 501):
                # 401/403, and a 429/5xx that outlasted the retries: report the error; it is no
                # sign that tag deletion is unsupported (that used to switch to placeholders for
                # the rest of the run and push more requests at a failing registry).
                raise_for_status(response, f"deleting tag {self.name}:{tag}")
            # registry 2.8: 400 DIGEST_INVALID; ghcr.io and others: 405/400.
            self.supports_tag_delete = False
        await self.untag_with_placeholder(tag, digest)

    async def expect_tag(self, tag: str, digest: str) -> None:
        """HEAD `tag` now: NotFoundError if gone, TagMovedError if it points elsewhere than `digest`."""
        current = await self.resolve(tag)
        if current is None:
            raise NotFoundError(f"tag {self.name}:{tag} not found", status=404)
        if current != digest:
            raise TagMovedError(f"tag {self.name}:{tag} now points at {current}, not {digest}")

    async def _check_deletes_enabled(self) -> None:
        """Before moving a tag onto a placeholder, make sure the placeholder can be deleted:
        DELETE of a digest that does not exist answers 404 where deletes are enabled."""
        if self.deletes_enabled:
            return
        response = await self._send("DELETE", self._url(f"manifests/{DELETE_PROBE_DIGEST}"))
        if response.status_code in (400, 405, 501):
            raise RegistryError(f"{self.name}: the registry refuses deletes ({response.status_code}); "
                                "enable storage.delete on the registry", status=response.status_code)
        if response.status_code not in (200, 202, 404):
            raise_for_status(response, f"checking that {self.name} accepts deletes")
        self.deletes_enabled = True

    async def untag_with_placeholder(self, tag: str, digest: str) -> None:
        """Point `tag` at a unique tiny manifest, then delete that manifest by digest.

        If the placeholder cannot be deleted, the tag is put back on its original manifest.
        """
        await self._check_deletes_enabled()
        original = await self.get_manifest(digest)
        await self.ensure_blob(EMPTY_JSON, mt.OCI_EMPTY)
        await self.expect_tag(tag, digest)      # the last look: nothing but this HEAD before the PUT
        placeholder = await self.put_manifest(tag, placeholder_manifest(tag), mt.OCI_MANIFEST)
        try:
            await self.delete_manifest(placeholder)
        except NotFoundError:
            pass
        except Exception:           # not on Ctrl-C: nothing is sent after an interrupt; a rerun finishes the untag
            await self.put_manifest(tag, original.body, original.media_type)
            raise

    async def ensure_blob(self, data: bytes, media_type: str) -> str:
        """Upload a small blob (monolithic POST + PUT) unless the repository has it."""
        digest = digest_of(data)
        head = await self._send("HEAD", self._url(f"blobs/{digest}"))
        if head.status_code == 200:
            return digest
        start = await self._send("POST", self._url("blobs/uploads/"))
        raise_for_status(start, f"starting a blob upload to {self.name}")
        location = start.headers.get("location")
        if not location:
            raise RegistryError(f"blob upload to {self.name}: no Location header")
        url = httpx.URL(urljoin(str(start.request.url), location)).copy_merge_params({"digest": digest})
        done = await self._send("PUT", str(url), content=data,
                                headers={"Content-Type": "application/octet-stream"})
        raise_for_status(done, f"uploading blob {digest} to {self.name}")
        return digest

    async def aclose(self) -> None:
        await self.client.aclose()


def placeholder_manifest(tag: str) -> bytes:
    """A unique OCI manifest (empty config, no layers) marked as the janitor's placeholder."""
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": "application/vnd.ghcr-janitor.placeholder.v1",
        "config": {"mediaType": mt.OCI_EMPTY, "digest": EMPTY_DIGEST, "size": len(EMPTY_JSON)},
        "layers": [],
        "annotations": {
            mt.PLACEHOLDER: "true",
            mt.PLACEHOLDER_TAG: tag,
            "dev.ghcr-janitor.nonce": f"{time.time_ns()}-{os.getpid()}-{os.urandom(6).hex()}",
        },
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def is_placeholder(body: bytes, digest: str, tag: str) -> bool:
    """True if `body` (verified against `digest`) is the janitor's own placeholder pushed for `tag`:
    by its whole content (`core.manifests.placeholder_owner`), not its annotations alone."""
    try:
        return placeholder_owner(parse_manifest(body, digest)) == tag
    except ManifestError:
        return False


def _declared_media_type(body: bytes) -> str | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    value = doc.get("mediaType") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else None


async def _get_capped(registry: OciRegistry, url: str, cap: int, what: str, **kwargs) -> tuple[httpx.Response, bytes]:
    """GET with retries that also cover the body (a dropped or truncated body is retried)."""
    try:
        return await registry.client.send("GET", url, log_to=registry.log, cap=cap, **kwargs)
    except BodyTooLarge as exc:
        size = f" is {exc.size} bytes," if exc.size is not None else " is"
        raise ManifestError(f"{what}{size} over the {cap} byte cap") from None
