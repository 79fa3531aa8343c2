"""Harbor: `HOST/PROJECT/REPO` on a host the settings file calls `kind = "harbor"`, or one that answers
Harbor's `/api/v2.0/ping` (`stores.connect.kind_of`).

- Listing: the artifacts API (`stores.harbor.api`), 100 a page. Each artifact is a `Version`: its tags,
  its push time (`push_time`, the age source "harbor/pushed") and, in `extra`, `pushed`, `last_pulled`
  (`pull_time`; Go's zero time "0001-01-01T00:00:00Z" is None: never pulled), `pull_lag` (Harbor
  flushes pull times every 10 s by default) and `locked_tags` (tags an immutability rule protects:
  the planner keeps them, and the store never sends them a delete). Harbor lists untagged artifacts
  itself; an index's children are its `references`, not listed apart (`known_missing` knows them).
- Reads: `/v2` through `open_oci` with the host's docker credentials, manifests by digest only (a tag
  is HEADed first), each once per process. Harbor counts a manifest GET as a pull and a HEAD as none:
  the janitor's own first reads are remembered (`stores.reads`) and seen through on later
  listings, so that `not_pulled_for` is not fooled by the janitor itself.
- Untag: `DELETE .../artifacts/{digest}/tags/{tag}` after a HEAD of the tag (Harbor's `/v2` DELETE by
  tag answers 400 UNSUPPORTED); the digest pins it server-side too (404 when the tag is elsewhere).
- Delete: sent only once the plan removes every tag of the digest (Harbor deletes the artifact with
  all its tags, and its untagged children; no request of Harbor's is conditional). The tags the last
  look saw on the digest are removed first (the tag DELETE pinned to the digest), then the artifact
  is read (`GET .../artifacts/{digest}`) and `DELETE .../artifacts/{digest}` is sent only if it
  carries no tag at all: a tag a CI job put on the digest after the look keeps it (skipped, one line).
  The window left is the one round trip between that read and the DELETE. Storage is freed by
  Harbor's garbage collection.
- BuildKit's index-form cache manifests: Harbor refuses them (404 on the PUT, goharbor/harbor#14774);
  a refused push, or a listed cache Harbor cannot serve, is one line naming the artifact and the fix
  (`image-manifest=true`).
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from ghcr_janitor.core import mediatypes as mt
from ghcr_janitor.core.digests import is_digest
from ghcr_janitor.core.errors import (
    AuthError, CannotUntag, JanitorError, ManifestError, NotFoundError, RegistryError, TagMovedError, UsageError,
)
from ghcr_janitor.core.models import StoreTraits
from ghcr_janitor.core.reference import Target
from ghcr_janitor.core.settings import HostSettings
from ghcr_janitor.core.words import count
from ghcr_janitor.net.auth.secret import Secret
from ghcr_janitor.net.redact import one_line
from ghcr_janitor.stores.base import RawManifest, Version
from ghcr_janitor.stores.harbor.api import PAGE_SIZE, BasicAuth, HarborApi, harbor_time
from ghcr_janitor.stores.reads import MANIFESTS, UNKNOWN, Before, OwnReads, corrected, now, own_reads
from ghcr_janitor.stores.oci.registry import OciRegistry
from ghcr_janitor.stores.oci.side import OciSide, open_oci

log = logging.getLogger("ghcr_janitor.harbor")

AGE_SOURCE = "harbor/pushed"
PULL_LAG = timedelta(seconds=10)        # ARTIFACT_PULL_ASYNC_FLUSH_DURATION's default
IMMUTABLE = "immutable on Harbor (a tag immutability rule)"
CACHE_FIX = ("Harbor keeps BuildKit caches only in image-manifest form: push them with "
             "--cache-to type=registry,ref=...,mode=max,image-manifest=true,oci-mediatypes=true")


def index_form_cache(body: bytes) -> bool:
    """Is `body` a BuildKit cache in index form (an index listing layer blobs and the cache config)?"""
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    entries = doc.get("manifests") if isinstance(doc, dict) else None
    return isinstance(entries, list) and any(
        isinstance(e, dict) and e.get("mediaType") == mt.BUILDKIT_CACHE_CONFIG for e in entries)


class HarborRegistry(OciSide):
    """`Registry`, `LooksAtTags` and `LooksAtOnce` for one Harbor repository."""

    kind = "harbor"
    lists_untagged = True
    traits = StoreTraits(lists_untagged=True, price="harbor")
    reclaim_note = ("in deleted artifacts and used by no artifact left in this repository, counted from the manifests; "
                    "freed only by Harbor's garbage collection (Administration > Clean Up, or its schedule), less "
                    "what other repositories of the Harbor still share")
    # A look is a listing of 100 artifacts a page whatever the number of tags (`current_tags`); the
    # deletes after it are single REST calls, this many at most.
    deletes_per_look = 50
    look_at_once = True

    def __init__(self, host: str, name: str, project: str, repository: str, api: HarborApi, oci: OciRegistry,
                 reads: OwnReads | None = None):
        self.host = host
        self.name = name
        self.project = project
        self.repository = repository
        self.api = api
        self.oci = oci
        self.reads = reads if reads is not None else OwnReads(None)
        self._listed: dict[str, dict[str, Any]] = {}        # digest -> the artifact as last listed
        self._children: set[str] = set()                    # digests some listed index references
        self._parents: dict[str, set[str]] = {}             # child digest -> listed indexes referencing it
        self._pulls: dict[str, Before] = {}                 # digest -> its pull time before this process read it
        self._locked: dict[str, str] = {}                   # tag -> why it is kept (as last listed)
        self._seen: dict[str, set[str]] = {}                # digest -> its tags at the last look (or listing)

    def __repr__(self) -> str:
        return f"HarborRegistry({self.host}/{self.name}, api={self.api.base_url})"

    def _where(self, digest: str) -> str:
        return f"{self.host}/{self.name}@{digest}"

    def _read_key(self, digest: str) -> str:
        return f"{self.host}/{self.name}@{digest}"

    # --- listing ---------------------------------------------------------------------
    async def _artifacts(self) -> list[dict[str, Any]]:
        artifacts = await self.api.artifacts(self.project, self.repository)
        good = [a for a in artifacts if isinstance(a.get("digest"), str) and is_digest(a["digest"])]
        if len(good) < len(artifacts):
            log.warning("%s: ignoring %s without a valid digest", self.name,
                        count(len(artifacts) - len(good), "artifact"))
        return good

    async def list_versions(self) -> list[Version]:
        """Every artifact now (one request per 100), with push and pull times and locked tags."""
        artifacts = await self._artifacts()
        self._listed = {a["digest"]: a for a in artifacts}
        self._children, self._parents, self._locked = set(), {}, {}
        self._seen = {}
        for art in artifacts:
            for ref in art.get("references") or []:
                child = ref.get("child_digest") if isinstance(ref, dict) else None
                if isinstance(child, str) and is_digest(child):
                    self._children.add(child)
                    self._parents.setdefault(child, set()).add(art["digest"])
        memory = self.reads.recorded([self._read_key(d) for d in self._listed])
        versions = []
        for digest, art in self._listed.items():
            tags = [t for t in art.get("tags") or [] if isinstance(t, dict) and isinstance(t.get("name"), str)]
            locked = {t["name"]: IMMUTABLE for t in tags if t.get("immutable") is True}
            self._locked.update(locked)
            self._seen[digest] = {t["name"] for t in tags}
            pushed = harbor_time(art.get("push_time"))
            pulled, ours = corrected(harbor_time(art.get("pull_time")), memory.get(self._read_key(digest)))
            self._pulls.setdefault(digest, pulled)
            extra: dict[str, Any] = {"pushed": pushed, "last_pulled": pulled, "pull_lag": PULL_LAG}
            if locked:
                extra["locked_tags"] = locked
            if ours:
                extra["own_read"] = True        # Harbor showed the janitor's own read: the pull before it counts
            versions.append(Version(digest=digest, tags=tuple(sorted(t["name"] for t in tags)), created=pushed,
                                    age_source=AGE_SOURCE if pushed is not None else None,
                                    media_type=mt.normalise(art.get("manifest_media_type")), extra=extra))
        return versions

    async def list_tags(self) -> list[str]:
        return await self.tag_names()

    async def current_tags(self, names: list[str] | None = None) -> dict[str, str]:
        """Every tag (or each of `names`) -> its digest now: from the artifacts listing (one request per
        100 artifacts), or a HEAD per name when that is cheaper. Never cached."""
        if names is not None and len(names) <= PAGE_SIZE // 10:
            found = await self.oci.current_tags(names)
        else:
            found = {t["name"]: a["digest"] for a in await self._artifacts() for t in a.get("tags") or []
                     if isinstance(t, dict) and isinstance(t.get("name"), str)}
        if names is None:
            self._seen = {}
        else:
            wanted = set(names)
            found = {t: d for t, d in found.items() if t in wanted}
            for tags in self._seen.values():
                tags -= wanted
        for tag, digest in found.items():
            self._seen.setdefault(digest, set()).add(tag)
        return found

    async def resolve(self, tag: str) -> str | None:
        """HEAD the tag (a HEAD is no pull on Harbor)."""
        return await self.oci.resolve(tag)

    def known_missing(self, digest: str, listed: frozenset[str]) -> bool:
        """Harbor lists every artifact but an index's children, which its listing names as references."""
        return digest not in listed and digest not in self._children

    # --- reading ---------------------------------------------------------------------
    async def get_manifest(self, reference: str) -> RawManifest:
        """A manifest, read by digest (a tag is HEADed first, so its own pull time stays as it was)."""
        if not is_digest(reference):
            digest = await self.resolve(reference)
            if digest is None:
                raise NotFoundError(f"tag {self.host}/{self.name}:{reference} not found", status=404)
            reference = digest
        key = (self.api.base_url, self.name, reference)
        cached = MANIFESTS.get(key)
        if cached is not None:
            return cached
        try:
            raw = await self.oci.get_manifest(reference)
        except AuthError:
            raise
        except (RegistryError, ManifestError) as exc:
            if reference in self._listed:
                raise self._unreadable(reference, exc) from None
            raise
        read = {d: self._pulls.get(d, UNKNOWN) for d in {reference, *self._parents.get(reference, ())}}
        self.reads.record({self._read_key(d): before for d, before in read.items()}, now())
        MANIFESTS.put(key, raw)
        return raw

    def _unreadable(self, digest: str, exc: JanitorError) -> ManifestError:
        """One line for an artifact Harbor lists but cannot serve; the cache-form fix where it is a cache."""
        art = self._listed[digest]
        tags = sorted(t["name"] for t in art.get("tags") or [] if isinstance(t, dict) and isinstance(t.get("name"), str))
        status = getattr(exc, "status", None)
        why = f"GET answered {status}" if status else str(exc)
        hint = ""
        if art.get("media_type") == mt.BUILDKIT_CACHE_CONFIG:
            hint = f"; a BuildKit cache: {CACHE_FIX}"
        elif mt.normalise(art.get("manifest_media_type")) in mt.INDEX_TYPES and not art.get("references"):
            hint = f"; an index of no artifacts, as BuildKit's index-form caches are: {CACHE_FIX}"
        return ManifestError(f"Harbor lists this artifact ({', '.join(tags) or 'untagged'}) but cannot serve its "
                             f"manifest ({why}){hint}; left alone")

    # --- writing ---------------------------------------------------------------------
    async def put_manifest(self, tag: str, body: bytes, media_type: str) -> str:
        try:
            return await self.oci.put_manifest(tag, body, media_type)
        except RegistryError as exc:
            if index_form_cache(body) and not isinstance(exc, AuthError):
                raise RegistryError(f"pushing {self.host}/{self.name}:{tag}: Harbor refuses BuildKit's index-form cache "
                                    f"manifests ({exc}); {CACHE_FIX}", status=exc.status, code=exc.code) from None
            raise

    async def delete_tag(self, tag: str, digest: str) -> None:
        """Remove `tag` from `digest`, keeping the artifact: a HEAD of the tag now (NotFoundError if gone,
        TagMovedError if moved), then Harbor's tag DELETE pinned to the digest. An immutable tag is
        never sent a delete (CannotUntag)."""
        where = f"{self.host}/{self.name}:{tag}"
        if tag in self._locked:
            raise CannotUntag(f"tag {where} is {self._locked[tag]}: kept")
        await self.oci.expect_tag(tag, digest)
        try:
            await self.api.delete_tag(self.project, self.repository, digest, tag, f"untagging {where}")
        except NotFoundError:
            current = await self.resolve(tag)
            if current is None:
                raise NotFoundError(f"tag {where} not found", status=404) from None
            if current != digest:
                raise TagMovedError(f"tag {where} now points at {current}, not {digest}: left alone", status=404) from None
            raise
        except RegistryError as exc:
            if exc.status == 412:
                raise CannotUntag(f"tag {where}: Harbor refuses to remove it ({exc}); an immutability rule protects it: "
                                  "kept") from None
            raise
        self._seen.get(digest, set()).discard(tag)

    async def delete_manifest(self, digest: str) -> None:
        """Delete the artifact `digest` (every tag on it goes, as the plan said; Harbor also drops its
        untagged children): the tags the last look saw on it are removed first (pinned to the digest),
        then the artifact is deleted only if a fresh read shows no tag on it (TagMovedError
        otherwise: a tag put on it after the look; the artifact stays). NotFoundError if it is gone;
        one line when Harbor refuses (412: an index references it, or an immutable tag is on it)."""
        where = self._where(digest)
        seen = sorted(self._seen.get(digest, ()))      # every look and listing fills it: absent, no tag
        locked = [t for t in seen if t in self._locked]
        if locked:
            raise RegistryError(f"deleting {where}: its tag {locked[0]} is {IMMUTABLE}: not deleted")
        removed: list[str] = []
        for tag in seen:
            try:
                await self.api.delete_tag(self.project, self.repository, digest, tag, f"untagging {self.host}/"
                                                                                      f"{self.name}:{tag}")
            except NotFoundError:
                pass            # gone, moved elsewhere, or the artifact itself is gone (the read below says)
            except RegistryError as exc:
                if exc.status == 412:
                    raise RegistryError(f"deleting {where}: Harbor refuses to remove its tag {tag} ({exc}): an "
                                        f"immutability rule protects it; not deleted", status=412,
                                        code=exc.code) from None
                raise
            else:
                removed.append(tag)
            self._seen.get(digest, set()).discard(tag)
        now = await self.api.artifact(self.project, self.repository, digest, f"reading {where} before its delete")
        if now is None:
            self._listed.pop(digest, None)
            self._seen.pop(digest, None)
            raise NotFoundError(f"artifact {where} not found (already deleted?)", status=404)
        tags = sorted(one_line(str(t.get("name")), (), 64) for t in now.get("tags") or [] if isinstance(t, dict))
        if tags:
            untagged = f"; untagged {', '.join(removed)} as planned" if removed else ""
            raise TagMovedError(f"{where} now carries {count(len(tags), 'tag')} ({', '.join(tags[:3])}"
                                f"{', ...' if len(tags) > 3 else ''}) the last look did not see on it: not deleted "
                                f"(Harbor deletes an artifact with every tag on it){untagged}", status=409)
        try:
            await self.api.delete_artifact(self.project, self.repository, digest, f"deleting {where}")
        except NotFoundError:
            self._listed.pop(digest, None)
            raise
        except RegistryError as exc:
            if exc.status == 412:
                untagged = f" (untagged {', '.join(removed)} as planned)" if removed else ""
                raise RegistryError(f"deleting {where}: Harbor refuses ({exc}): an index still references "
                                    f"it, or an immutable tag is on it; not deleted{untagged}", status=412,
                                    code=exc.code) from None
            raise
        self._listed.pop(digest, None)
        self._seen.pop(digest, None)

    async def aclose(self) -> None:
        self.reads.close()
        try:
            await self.oci.aclose()
        finally:
            await self.api.aclose()


# --- the module functions `stores.connect` calls --------------------------------------------------
def _split(target: Target) -> tuple[str, str]:
    project, _, repository = target.name.partition("/")
    if not project or not repository:
        raise UsageError(f"target {target}: expected HOST/PROJECT/REPOSITORY (a Harbor project and a repository in it)")
    return project, repository


def _api(target: Target, options: Any, host: HostSettings) -> HarborApi:
    """A client of the Harbor API the target's host serves (settings `api_url`, else its registry
    base), authenticated with the settings' username + $token_env, else the host's docker
    credentials (a robot account works), else anonymous."""
    from ghcr_janitor.net.auth.credentials import find_credentials
    from ghcr_janitor.net.http import make_client
    from ghcr_janitor.stores.connect import registry_base

    base = host.api_url or registry_base(target, options)
    auth: BasicAuth | None = None
    who = "anonymous"
    if host.username and host.token:
        auth, who = BasicAuth(host.username, Secret(host.token)), f"settings username and ${host.token_env}"
    else:
        found = find_credentials(target.host, options.username, options.password, options.settings)
        if found is not None and not found.identity_token:
            auth, who = BasicAuth(found.username, found.secret), found.source
        elif found is not None:
            log.info("%s: docker config holds an identity token, which Harbor's API does not take: anonymous",
                     target.host)
    client = make_client(options.concurrency, auth, base_url=base, policy=options.settings.http)
    return HarborApi(base, client, options.log, who, auth)


def _own_reads(options: Any) -> OwnReads:
    return own_reads(options.env, "Harbor", "harbor-reads.sqlite")


def open_store(target: Target, options: Any, host: HostSettings) -> HarborRegistry:
    """A HarborRegistry for `HOST/PROJECT/REPO`; nothing is contacted yet."""
    from ghcr_janitor.stores.connect import registry_base

    project, repository = _split(target)
    oci = open_oci(registry_base(target, options), target, options, target.host)
    return HarborRegistry(target.host, target.name, project, repository, _api(target, options, host), oci,
                          _own_reads(options))


async def repository_names(glob: Target, options: Any, host: HostSettings) -> list[str]:
    """What `HOST/PROJECT/*` stands for: the project's repositories (`HOST/*`: every repository the
    account sees), full names without the host."""
    head = glob.name.rpartition("/")[0]
    api = _api(glob, options, host)
    try:
        return sorted(set(await api.repositories(head.split("/")[0] if head else None)))
    finally:
        await api.aclose()


def preflight(options: Any, host: HostSettings) -> None:
    """The settings' API credentials come in pairs: a username and the NAME of a set variable."""
    if host.username and not host.token_env:
        raise UsageError("Harbor settings: username without token_env (the NAME of the variable holding the "
                         "password or robot account secret)")
    if host.token_env and not host.username:
        raise UsageError(f"Harbor settings: token_env {host.token_env} without username (e.g. a robot account "
                         "name, robot$project+ci)")
    if host.token_env and not host.token:
        raise UsageError(f"Harbor settings: token_env names {host.token_env}, which is not set or empty")
