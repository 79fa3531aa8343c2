"""Amazon ECR backend: `ACCOUNT.dkr.ecr.REGION.amazonaws.com[.cn]/REPO`, natively through the ECR API.

- Listing: DescribeImages (every page, `maxResults` 1000, `tagStatus` and `imageStatus` ANY: archived
  images too, which ECR leaves out by default). Each image is a `Version`: its tags, its push time
  (`imagePushedAt`, the age source "ecr/pushed") and, in `extra`, `pushed`, `last_pulled`
  (`lastRecordedPullTime`, None when never pulled), `archived` and `pull_lag` (ECR records a pull up
  to 24 h late). ECR lists untagged manifests itself, index children included: `lists_untagged`.
  `imageSizeInBytes` is not used (for an index it is its largest child, not a total): sizes come from
  the manifests, as on every store.
- Manifests: BatchGetImage with every manifest media type accepted, verified against the digest.
  Concurrent reads are sent together, up to 100 digests per call (`_Batcher`), and kept in a
  process-wide cache (digests are immutable): each manifest is read once per run. ECR records a
  BatchGetImage as a pull (aws/containers-roadmap#2390) unless the caller's role is in the
  registry's pull-time update exclusions (README).
- Deleting: BatchDeleteImage. A digest delete (`imageDigest`: the image and all its tags go) joins
  the other deletes sent at the same moment, at most 100 ids per call; each id's failure is reported
  to its own action and the rest go on. An untag (`imageTag`) removes one tag, but ECR deletes the
  image with its last tag: `delete_tag` first reads the digest's tags now and refuses (a skip) when
  the tag is the only one, so an untag never deletes an image.
- Tags now (the last look): ListImages, fresh on every call (one request per 1,000 tags).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from typing import Any, Awaitable, Callable, Hashable

from ghcr_janitor.core import mediatypes as mt
from ghcr_janitor.core.digests import digest_of, is_digest, verify
from ghcr_janitor.core.errors import CannotUntag, JanitorError, ManifestError, NotFoundError, RegistryError, TagMovedError
from ghcr_janitor.core.models import StoreTraits
from ghcr_janitor.core.reference import EcrHost, Target, ecr_host
from ghcr_janitor.stores.base import RawManifest, Version
from ghcr_janitor.stores.ecr.api import MAX_WORKERS, EcrApi, make_client, require_boto3
from ghcr_janitor.stores.reads import MANIFESTS, OwnReads, corrected, now, own_reads

log = logging.getLogger("ghcr_janitor.ecr")

AGE_SOURCE = "ecr/pushed"
PULL_LAG = timedelta(hours=24)         # "refreshes the last image pull timestamp at least once every 24 hours"
BATCH_GET_MAX = 100                    # BatchGetImage imageIds: at most 100
BATCH_DELETE_MAX = 100                 # BatchDeleteImage imageIds: at most 100
# Every manifest type ECR stores: the API reference lists the Docker v1/v2 and OCI manifest types; the
# two index types are what multi-arch images are (clients send them; types outside ECR's set are not sent).
ACCEPTED = sorted(mt.ALL_MANIFEST_TYPES | {mt.DOCKER_SCHEMA1})
ANY_IMAGE = {"tagStatus": "ANY", "imageStatus": "ANY"}


class LastTagError(CannotUntag):
    """The tag to remove is the digest's only tag now: on ECR removing it deletes the image (skipped)."""




class _Batcher:
    """Sends single-id requests made at the same moment as one call of at most `size` ids.

    `send(keys)` answers key -> result or exception; a failure of the whole call goes to every key.
    """

    def __init__(self, size: int, send: Callable[[list[Hashable]], Awaitable[dict[Hashable, Any]]]):
        self.size = size
        self.send = send
        self._pending: dict[Hashable, list[asyncio.Future]] = {}
        self._scheduled = False

    async def __call__(self, key: Hashable) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.setdefault(key, []).append(future)
        if not self._scheduled:
            self._scheduled = True
            # Two hops: requests made by tasks started in this round of the loop join the batch.
            loop.call_soon(lambda: loop.call_soon(self._flush))
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, {}
        keys = list(pending)
        for start in range(0, len(keys), self.size):
            chunk = keys[start:start + self.size]
            asyncio.ensure_future(self._run(chunk, pending))

    async def _run(self, keys: list[Hashable], pending: dict[Hashable, list[asyncio.Future]]) -> None:
        try:
            results = await self.send(keys)
        except BaseException as exc:           # noqa: BLE001 - handed to every waiter
            for key in keys:
                for future in pending[key]:
                    if not future.done():
                        future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for key in keys:
            result = results.get(key)
            for future in pending[key]:
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)


def _declared(body: bytes) -> str | None:
    """What a manifest is by its own content (ECR sent no media type)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return mt.content_type(doc) if isinstance(doc, dict) else None


def _image_version(detail: dict[str, Any]) -> Version | None:
    digest = detail.get("imageDigest")
    if not isinstance(digest, str) or not is_digest(digest):
        return None
    pushed = detail.get("imagePushedAt")
    archived = detail.get("imageStatus") == "ARCHIVED"
    extra: dict[str, Any] = {"pushed": pushed, "last_pulled": detail.get("lastRecordedPullTime"),
                             "pull_lag": PULL_LAG, "archived": archived}
    if archived and detail.get("lastArchivedAt") is not None:
        extra["archived_at"] = detail["lastArchivedAt"]
    return Version(digest=digest, tags=tuple(sorted(detail.get("imageTags") or ())), created=pushed,
                   age_source=AGE_SOURCE if pushed is not None else None,
                   media_type=detail.get("imageManifestMediaType"), extra=extra)


class EcrRegistry:
    """`Registry` and `LooksAtTags` for one ECR repository."""

    kind = "ecr"
    lists_untagged = True
    traits = StoreTraits(lists_untagged=True, price="ecr")     # what the reports ask instead of `kind` (core.models)
    frees_storage_on_delete = True
    reclaim_note = ("in deleted images and used by no image left in this repository, counted from the manifests "
                    "(ECR's imageSizeInBytes is not a total for an index); an archived image is billed for at least "
                    "90 days in the archive, whenever it is deleted")
    # A look costs a few listing calls whatever the number of tags; the deletes that follow it are
    # sent together (BatchDeleteImage, at most 100 ids a call).
    deletes_per_look = BATCH_DELETE_MAX
    look_at_once = True             # `LooksAtOnce`: the batch does not shrink with the number of tags

    def __init__(self, host: str, ecr: EcrHost, name: str, api: EcrApi, reads: OwnReads | None = None):
        self.host = host
        self.ecr = ecr
        self.name = name
        self.api = api
        self.reads = reads if reads is not None else OwnReads(None)
        self._pulls: dict[str, Any] = {}       # digest -> its pull time before this process read it
        self._get = _Batcher(BATCH_GET_MAX, self._batch_get)
        self._delete = _Batcher(BATCH_DELETE_MAX, self._batch_delete)
        self._archived: set[str] = set()

    def __repr__(self) -> str:
        return f"EcrRegistry({self.host}/{self.name}, region={self.ecr.region})"

    @property
    def requests(self):
        """HTTP requests sent so far, per ECR operation (retries included)."""
        return self.api.requests

    def _key(self, digest: str) -> tuple[str, str, str, str]:
        return (str(self.api.client.meta.endpoint_url), self.ecr.account, self.name, digest)

    # --- listing ---------------------------------------------------------------------
    async def list_versions(self) -> list[Version]:
        """Every image now (archived ones too), fresh: one request per 1,000 images."""
        details = await self._any_status("describe_images", "listing images", "imageDetails", ANY_IMAGE)
        versions: dict[str, Version] = {}
        for detail in details:
            version = _image_version(detail)
            if version is None:
                log.warning("%s: ignoring an image without a valid digest: %r", self.name, detail.get("imageDigest"))
                continue
            versions[version.digest] = version          # a page boundary may repeat one
        self._archived = {d for d, v in versions.items() if v.extra.get("archived")}
        memory = self.reads.recorded([self._read_key(d) for d in versions])
        for digest, version in versions.items():
            pulled, ours = corrected(version.extra["last_pulled"], memory.get(self._read_key(digest)))
            version.extra["last_pulled"] = pulled
            if ours:
                version.extra["own_read"] = True       # ECR showed the janitor's own read: the pull before it counts
            self._pulls.setdefault(digest, pulled)
        return list(versions.values())

    async def _any_status(self, operation: str, what: str, key: str, filter: dict[str, str]) -> list[dict[str, Any]]:
        """Every page, archived images included; an endpoint that does not know the `imageStatus`
        filter (an ECR-compatible one, a partition without the archive) is asked without it."""
        try:
            return await self.api.pages(operation, what, key, repositoryName=self.name, filter=filter)
        except RegistryError as exc:
            if exc.code not in ("InvalidParameterException", "ValidationException"):
                raise
            log.warning("%s/%s: %s refused the imageStatus filter (%s): archived images are not listed",
                        self.host, self.name, operation, exc)
            plain = {k: v for k, v in filter.items() if k != "imageStatus"}
            return await self.api.pages(operation, what, key, repositoryName=self.name, filter=plain)

    def _read_key(self, digest: str) -> str:
        return f"{self.ecr.account}/{self.ecr.region}/{self.name}@{digest}"

    async def _learn_pulls(self, digests: list[str]) -> None:
        """The pull times ECR shows now for digests about to be read and not listed by this process
        (DescribeImages is no pull), so that the read can be told from a pull later."""
        unknown = [d for d in digests if d not in self._pulls]
        if not unknown:
            return
        try:
            answer = await self.api.call("describe_images", "reading pull times",
                                         repositoryName=self.name, imageIds=[{"imageDigest": d} for d in unknown])
        except JanitorError:
            return                                  # unknown stays unknown: a later listing is not corrected
        memory = self.reads.recorded([self._read_key(d) for d in unknown])
        for detail in answer.get("imageDetails") or []:
            digest = detail.get("imageDigest")
            if digest in unknown:
                self._pulls[digest] = corrected(detail.get("lastRecordedPullTime"),
                                                memory.get(self._read_key(digest)))[0]

    async def current_tags(self, names: list[str] | None = None) -> dict[str, str]:
        """Every tag (or each of `names`) -> its digest now (ListImages, never cached)."""
        ids = await self._any_status("list_images", "listing tags", "imageIds",
                                     {"tagStatus": "TAGGED", "imageStatus": "ANY"})
        found = {i["imageTag"]: i["imageDigest"] for i in ids
                 if isinstance(i.get("imageTag"), str) and isinstance(i.get("imageDigest"), str)}
        if names is None:
            return found
        wanted = set(names)
        return {t: d for t, d in found.items() if t in wanted}

    async def tag_names(self) -> list[str]:
        return sorted(await self.current_tags())

    async def list_tags(self) -> list[str]:
        return await self.tag_names()

    async def resolve(self, tag: str) -> str | None:
        return (await self.current_tags([tag])).get(tag)

    def known_missing(self, digest: str, listed: frozenset[str]) -> bool:
        """ECR lists every manifest it holds (index children, untagged, archived): absent is gone."""
        return digest not in listed

    # --- reading ---------------------------------------------------------------------
    async def get_manifest(self, reference: str) -> RawManifest:
        if not is_digest(reference):
            digest = await self.resolve(reference)
            if digest is None:
                raise NotFoundError(f"tag {self.host}/{self.name}:{reference} not found", status=404)
            reference = digest
        cached = MANIFESTS.get(self._key(reference))
        if cached is not None:
            return cached
        return await self._get(reference)

    async def _batch_get(self, digests: list) -> dict:
        await self._learn_pulls(digests)
        answer = await self.api.call("batch_get_image", "reading manifests",
                                     repositoryName=self.name, imageIds=[{"imageDigest": d} for d in digests],
                                     acceptedMediaTypes=ACCEPTED)
        out: dict[str, Any] = {}
        for image in answer.get("images") or []:
            digest = (image.get("imageId") or {}).get("imageDigest")
            if digest not in digests or digest in out:
                continue
            out[digest] = self._raw(digest, image)
        for failure in answer.get("failures") or []:
            digest = (failure.get("imageId") or {}).get("imageDigest")
            if digest in digests and digest not in out:
                out[digest] = self._failure(digest, failure, "reading manifest")
        for digest in digests:
            out.setdefault(digest, RegistryError(f"manifest {self.name}@{digest}: ECR answered neither the image "
                                                 "nor a failure for it"))
        read = [d for d, raw in out.items() if isinstance(raw, RawManifest)]
        self.reads.record({self._read_key(d): self._pulls.get(d, "unknown") for d in read}, now())
        return out

    def _raw(self, digest: str, image: dict[str, Any]) -> RawManifest | JanitorError:
        where = f"manifest {self.name}@{digest}"
        text = image.get("imageManifest")
        if not isinstance(text, str):
            return ManifestError(f"{where}: ECR sent no manifest text")
        body = text.encode("utf-8")
        if len(body) > mt.MAX_MANIFEST_BYTES:
            return ManifestError(f"{where} is {len(body)} bytes, over the {mt.MAX_MANIFEST_BYTES} byte cap")
        try:
            verify(body, digest, where)
        except JanitorError as exc:
            return exc
        raw = RawManifest(digest, mt.normalise(image.get("imageManifestMediaType")) or _declared(body) or "", body)
        MANIFESTS.put(self._key(digest), raw)
        return raw

    def _failure(self, digest: str, failure: dict[str, Any], doing: str) -> JanitorError:
        code = str(failure.get("failureCode") or "Unknown")
        reason = " ".join(str(failure.get("failureReason") or "").split())
        text = f"{doing} {self.name}@{digest}: {code}" + (f": {reason}" if reason else "")
        if code == "ImageNotFound":
            if digest in self._archived and doing == "reading manifest":
                return ManifestError(f"{text} (the image is archived: ECR does not serve an archived image's manifest; "
                                     "restore it to STANDARD to read it, or delete it by hand)")
            return NotFoundError(text, status=404, code=code)
        if code == "ImageReferencedByManifestList":
            return RegistryError(f"{text} (an image index still lists it: not deleted)", code=code)
        return RegistryError(text, code=code)

    async def get_blob(self, digest: str, max_size: int) -> bytes:
        """ECR serves blobs only through pre-signed layer URLs (and a read counts as a pull): image
        configs are not read; ages come from the push time."""
        raise NotFoundError(f"blob {self.name}@{digest}: not read on ECR (ages come from the push time)", status=404)

    # --- writing ---------------------------------------------------------------------
    async def put_manifest(self, tag: str, body: bytes, media_type: str) -> str:
        """PutImage: `body` under `tag` (a retag of an existing image); returns the digest ECR stored."""
        expected = digest_of(body)
        try:
            answer = await self.api.call("put_image", f"tagging {self.host}/{self.name}:{tag}",
                                         repositoryName=self.name, imageManifest=body.decode("utf-8"),
                                         imageManifestMediaType=media_type, imageTag=tag, imageDigest=expected)
        except RegistryError as exc:
            if exc.code == "ImageAlreadyExistsException":       # this manifest already carries this tag
                return expected
            raise
        stored = ((answer.get("image") or {}).get("imageId") or {}).get("imageDigest") or expected
        if stored != expected:
            raise RegistryError(f"tagging {self.name}:{tag}: ECR stored digest {stored}, expected {expected}")
        return expected

    async def delete_manifest(self, digest: str) -> None:
        """BatchDeleteImage by digest (the image and every tag on it), sent with the deletes made at
        the same moment. NotFoundError if it is gone."""
        await self._delete(digest)

    async def _batch_delete(self, digests: list) -> dict:
        answer = await self.api.call("batch_delete_image", "deleting images",
                                     repositoryName=self.name, imageIds=[{"imageDigest": d} for d in digests])
        out: dict[str, Any] = {}
        for failure in answer.get("failures") or []:
            digest = (failure.get("imageId") or {}).get("imageDigest")
            if digest in digests and digest not in out:
                out[digest] = self._failure(digest, failure, "deleting")
        for digest in digests:
            if digest not in out:
                out[digest] = None
                MANIFESTS.forget(self._key(digest))
        return out

    async def delete_tag(self, tag: str, digest: str) -> None:
        """Remove `tag` from `digest`, keeping the image: BatchDeleteImage by `imageTag`, only while
        another tag stays on the digest (ECR deletes an image with its last tag). NotFoundError if
        the tag is gone, TagMovedError if it moved, LastTagError if it is the only tag now."""
        where = f"{self.host}/{self.name}:{tag}"
        try:
            answer = await self.api.call("describe_images", f"reading the tags of {self.name}@{digest}",
                                         repositoryName=self.name, imageIds=[{"imageDigest": digest}])
            details = answer.get("imageDetails") or []
        except NotFoundError:
            details = []
        tags = sorted({t for d in details for t in d.get("imageTags") or ()})
        if tag not in tags:
            current = await self.resolve(tag)
            if current is None:
                raise NotFoundError(f"tag {where} not found", status=404)
            raise TagMovedError(f"tag {where} now points at {current}, not {digest}: left alone", status=404)
        if tags == [tag]:
            raise LastTagError(f"tag {where} is the only tag on {digest} now: on ECR removing it would delete the "
                               "image, which the plan keeps; left alone")
        answer = await self.api.call("batch_delete_image", f"untagging {where}", repositoryName=self.name,
                                     imageIds=[{"imageTag": tag}])
        for failure in answer.get("failures") or []:
            raise self._failure(digest, failure, f"untagging {tag} of")

    async def aclose(self) -> None:
        self.reads.close()
        await self.api.aclose()


def open_ecr(target: Target, options) -> EcrRegistry:
    """An EcrRegistry for `ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO` (`connect.open_registry` calls
    this); UsageError with the install hint before anything else when boto3 is missing."""
    host, api = _api(target, options)
    return EcrRegistry(target.host, host, target.name, api, _own_reads(options.env))


def _api(target: Target, options) -> tuple[EcrHost, EcrApi]:
    """The registry `target.host` names and an API client for it (boto3 checked first)."""
    require_boto3()
    host = ecr_host(target.host)
    assert host is not None
    workers = min(MAX_WORKERS, max(1, options.concurrency))
    return host, EcrApi(make_client(host, options.env, workers), host.account, workers)


def _own_reads(env) -> OwnReads:
    """The memory of the janitor's own reads, in the state dir (none if it cannot be named)."""
    return own_reads(env, "ECR", "ecr-reads.sqlite")


def preflight(options) -> None:
    """What an ECR target needs before anything is contacted, for any target of the run: boto3 (the
    install hint) and AWS settings botocore can use (UsageError naming the variable)."""
    from ghcr_janitor.stores.ecr.api import check_retry_settings, endpoint_url

    require_boto3()
    check_retry_settings(options.env)
    endpoint_url(options.env)


async def repository_names(target: Target, options) -> list[str]:
    """Every repository of the registry `target.host` names (DescribeRepositories, every page):
    what `HOST/*` and `HOST/team/*` expand to."""
    _, api = _api(target, options)
    try:
        repos = await api.pages("describe_repositories", f"listing the repositories of {target.host}",
                                "repositories")
    finally:
        await api.aclose()
    return sorted({r["repositoryName"] for r in repos if isinstance(r.get("repositoryName"), str)})
