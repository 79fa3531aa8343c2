"""Azure Container Registry backend: `NAME.azurecr.io/REPO`, listed and pruned through ACR's own API.

- Listing (`list_versions`): `/acr/v1/{repo}/_manifests` (every manifest, untagged ones and index
  children included: `lists_untagged`) and `/acr/v1/{repo}/_tags` (each tag's digest, times and
  lock), 1,000 a page. A manifest's age is the newest of its `createdTime`/`lastUpdateTime` and its
  tags' `lastUpdateTime` (a tag pushed again onto the same digest makes it young; "acr/lastUpdateTime");
  `pushed` is its `createdTime`, `size` its `imageSize`.
- Locks: a tag with `deleteEnabled` or `writeEnabled` false is in `locked_tags` (ACR refuses to
  delete a write-locked tag too: Azure/acr-cli#134), a locked manifest is `locked`, and so is one
  carrying a tag the tag listing does not show (`listEnabled = false`, or pushed between the two
  listings); in a locked repository (`GET /acr/v1/{repo}`) every manifest is locked.
- Untag (`delete_tag`): `DELETE /acr/v1/{repo}/_tags/{tag}`, right after `GET .../_tags/{tag}` says
  the tag still points at the pinned digest and is not locked. ACR refuses the OCI tag DELETE.
- Delete (`delete_manifest`): `DELETE /v2/{repo}/manifests/{digest}` drops every tag on it, so it is
  sent only right after `GET .../_manifests/{digest}` shows no tag the last look did not see on it
  (apply planned all of those to go) and no lock.
- The last look (`current_tags`, `tag_names`): the tag listing, fresh: a request per 1,000 tags.
- Reads and pushes: `/v2` (`OciSide`), with the same ACR tokens.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from ghcr_janitor.core.digests import is_digest
from ghcr_janitor.core.errors import JanitorError, NotFoundError, RegistryError, TagMovedError
from ghcr_janitor.core.models import StoreTraits
from ghcr_janitor.core.reference import Target
from ghcr_janitor.core.timeparse import parse_time
from ghcr_janitor.core.words import noun
from ghcr_janitor.stores.acr.api import AcrApi, LockedError
from ghcr_janitor.stores.base import Version
from ghcr_janitor.stores.oci.registry import OciRegistry
from ghcr_janitor.stores.oci.side import OciSide

log = logging.getLogger("ghcr_janitor.acr")

AGE_SOURCE = "acr/lastUpdateTime"
LOCK_FLAGS = ("deleteEnabled", "writeEnabled")


def lock_of(what: str, item: dict) -> str | None:
    """'ACR tag lock: deleteEnabled = false' when a flag that blocks deletes is false; else None."""
    attrs = item.get("changeableAttributes")
    if not isinstance(attrs, dict):
        return None
    off = [flag for flag in LOCK_FLAGS if attrs.get(flag) is False]
    return f"ACR {what} lock: {' and '.join(f'{f} = false' for f in off)}" if off else None


def _times(item: dict) -> list[datetime]:
    return [t for t in (parse_time(item.get("createdTime")), parse_time(item.get("lastUpdateTime"))) if t]


class AcrRegistry(OciSide):
    """`Registry` and `LooksAtTags` (at once) for one ACR repository."""

    kind = "acr"
    lists_untagged = True
    traits = StoreTraits(lists_untagged=True, price="acr")
    reclaim_note = ("in deleted manifests and used by no manifest left in this repository, counted from the manifests; "
                    "ACR stops billing deleted image data at once and frees its storage asynchronously, less layers "
                    "other repositories of the registry still share (untagged manifests are billed until deleted)")
    deletes_per_look = 16           # each delete also re-reads its own item right before it is sent
    look_at_once = True             # a look is the tag listing: a request per 1,000 tags, whatever is deleted

    def __init__(self, host: str, name: str, oci: OciRegistry, api: AcrApi):
        self.host = host
        self.name = name
        self.oci = oci
        self.api = api
        # digest -> the tags the latest listing saw on it (apply's last look): a digest delete is
        # refused when a tag not seen there is on the manifest now.
        self._seen: dict[str, set[str]] = {}
        self._tag_locks: dict[str, str] = {}     # tag -> its lock, as the latest tag listing showed it

    def __repr__(self) -> str:
        return f"AcrRegistry({self.host}/{self.name}, api={self.api.api_base})"

    @property
    def where(self) -> str:
        return f"{self.host}/{self.name}"

    # --- listing ---------------------------------------------------------------------------------
    async def list_versions(self) -> list[Version]:
        """Every manifest now with its tags, times and locks (two listings, fresh)."""
        manifests = await self.api.manifests(self.name)
        tags = await self.api.tags(self.name)
        by_tag = {t["name"]: t for t in tags if isinstance(t.get("name"), str) and is_digest(str(t.get("digest")))}
        self._tag_locks = {t: lock for t, item in by_tag.items() if (lock := lock_of("tag", item))}
        on: dict[str, list[dict]] = {}
        for tag in by_tag.values():
            on.setdefault(tag["digest"], []).append(tag)
        versions: dict[str, Version] = {}
        for item in manifests:
            digest = item.get("digest")
            if not isinstance(digest, str) or not is_digest(digest):
                log.warning("%s: ignoring a manifest without a valid digest: %r", self.where, digest)
                continue
            versions[digest] = self._version(digest, item, on.get(digest, []), by_tag)
        for digest, carried in on.items():       # a tag on a manifest the listing lacked (pushed meanwhile)
            if digest not in versions:
                versions[digest] = self._version(digest, {}, carried, by_tag)
        repo_lock = await self._repository_lock()
        if repo_lock:           # ACR refuses every delete in a locked repository: all of it is kept
            for version in versions.values():
                version.extra["locked"] = repo_lock
        self._seen = {d: set(v.tags) for d, v in versions.items()}
        return list(versions.values())

    def _version(self, digest: str, item: dict, tags: list[dict], by_tag: dict[str, dict]) -> Version:
        times = _times(item) + [t for tag in tags if (t := parse_time(tag.get("lastUpdateTime"))
                                                      or parse_time(tag.get("createdTime")))]
        extra: dict[str, Any] = {}
        if parse_time(item.get("createdTime")):
            extra["pushed"] = parse_time(item.get("createdTime"))
        if isinstance(item.get("imageSize"), int) and not isinstance(item.get("imageSize"), bool):
            extra["size"] = item["imageSize"]
        locked_tags = {t["name"]: lock for t in tags if (lock := lock_of("tag", t))}
        if locked_tags:
            extra["locked_tags"] = locked_tags
        lock = lock_of("manifest", item)
        unlisted = sorted(t for t in item.get("tags") or () if isinstance(t, str) and t not in by_tag)
        if unlisted and not lock:
            lock = (f"carries {noun(len(unlisted), 'tag')} {', '.join(unlisted[:3])} that ACR's tag listing does not "
                    "show (listEnabled = false, or pushed while the janitor listed): kept this run")
        if lock:
            extra["locked"] = lock
        media_type = item.get("mediaType") if isinstance(item.get("mediaType"), str) else None
        return Version(digest=digest, tags=tuple(sorted(t["name"] for t in tags)), created=max(times, default=None),
                       age_source=AGE_SOURCE if times else None, media_type=media_type, extra=extra)

    async def current_tags(self, names: list[str] | None = None) -> dict[str, str]:
        """Every tag (or each of `names`) -> its digest now: the tag listing, fresh."""
        listed = [t for t in await self.api.tags(self.name)
                  if isinstance(t.get("name"), str) and isinstance(t.get("digest"), str)]
        found = {t["name"]: t["digest"] for t in listed}
        locks = {t["name"]: lock for t in listed if (lock := lock_of("tag", t))}
        if names is None:
            self._tag_locks = locks
            seen: dict[str, set[str]] = {}
            for tag, digest in found.items():
                seen.setdefault(digest, set()).add(tag)
            self._seen = seen
            return found
        wanted = set(names)
        picked = {t: d for t, d in found.items() if t in wanted}
        self._tag_locks.update((t, lock) for t, lock in locks.items() if t in wanted)
        for tag, digest in picked.items():
            self._seen.setdefault(digest, set()).add(tag)
        return picked

    async def tag_names(self) -> list[str]:
        return sorted(t["name"] for t in await self.api.tags(self.name) if isinstance(t.get("name"), str))

    async def list_tags(self) -> list[str]:
        return await self.tag_names()

    async def resolve(self, tag: str) -> str | None:
        found = await self.api.tag(self.name, tag)
        digest = found.get("digest") if found else None
        return digest if isinstance(digest, str) and is_digest(digest) else None

    def known_missing(self, digest: str, listed: frozenset[str]) -> bool:
        """ACR lists every manifest it holds (untagged ones, index children): absent is gone."""
        return digest not in listed

    async def _repository_lock(self) -> str | None:
        """'ACR repository lock: ...' when the repository refuses deletes (one request; unreadable: None)."""
        try:
            attrs = await self.api.repository(self.name)
        except JanitorError as exc:
            log.info("%s: repository attributes not read (%s)", self.where, exc)
            return None
        return lock_of("repository", attrs) if attrs else None

    # --- deleting --------------------------------------------------------------------------------
    async def delete_tag(self, tag: str, digest: str) -> None:
        """Untag through ACR's tag API (the manifest stays), right after reading the tag: NotFoundError
        if gone, TagMovedError if moved, LockedError if locked now."""
        where = f"tag {self.where}:{tag}"
        now = await self.api.tag(self.name, tag)
        if now is None:
            raise NotFoundError(f"{where} not found", status=404)
        if now.get("digest") != digest:
            raise TagMovedError(f"{where} now points at {now.get('digest')}, not {digest}: left alone", status=404)
        lock = lock_of("tag", now)
        if lock:
            raise LockedError(f"{where} is locked now ({lock}): left alone")
        await self.api.delete_tag(self.name, tag)
        self._forget_tag(digest, tag)

    async def delete_manifest(self, digest: str) -> None:
        """Delete by digest (ACR drops every tag on it) right after reading the manifest: refused
        (TagMovedError) when it carries a tag the last look did not see on it, LockedError if locked."""
        where = f"{self.where}@{digest}"
        now = await self.api.manifest(self.name, digest)
        if now is None:
            raise NotFoundError(f"manifest {where} not found (already deleted?)", status=404)
        tags = sorted(t for t in now.get("tags") or () if isinstance(t, str))
        new = [t for t in tags if t not in self._seen.get(digest, set())]
        if new:
            raise TagMovedError(f"{where} now carries {noun(len(new), 'tag')} {', '.join(new[:3])}, unseen at the last "
                                "look: not deleted (on ACR a digest delete drops every tag)", status=409)
        lock = lock_of("manifest", now) or next((f"{self._tag_locks[t]} on tag {t}" for t in tags
                                                 if t in self._tag_locks), None)
        if lock:
            raise LockedError(f"manifest {where} is locked now ({lock}): left alone")
        await self.api.delete_digest(self.name, digest)
        self._seen.pop(digest, None)

    def _forget_tag(self, digest: str, tag: str) -> None:
        self._seen.get(digest, set()).discard(tag)

    async def aclose(self) -> None:
        await self.oci.aclose()         # one client serves both sides


def _sides(target: Target, options, host) -> tuple[OciRegistry, AcrApi]:
    """The `/v2` side and the metadata API of `target`, sharing one client and one token cache."""
    from ghcr_janitor.net.http import make_client
    from ghcr_janitor.stores.acr.auth import AcrAuth, acr_credentials
    from ghcr_janitor.stores.connect import registry_base

    base = registry_base(target, options)
    api_base = host.api_url or base
    auth = AcrAuth(acr_credentials(target.host, options, host), target.host, base, api_base)
    client = make_client(options.concurrency, auth, base_url=base, policy=options.settings.http)
    oci = OciRegistry(base, target.name, client, options.log)
    return oci, AcrApi(client, api_base, base, options.log)


def open_store(target: Target, options, host) -> AcrRegistry:
    """An AcrRegistry for `NAME.azurecr.io/REPO`; nothing is contacted yet."""
    oci, api = _sides(target, options, host)
    return AcrRegistry(target.host, target.name, oci, api)


async def repository_names(glob: Target, options, host) -> list[str]:
    """Every repository of the registry (`/acr/v1/_catalog`, 1,000 a page): what `NAME.azurecr.io/*`
    and `NAME.azurecr.io/team/*` stand for."""
    oci, api = _sides(glob, options, host)
    try:
        return sorted(set(await api.catalog()))
    except JanitorError as exc:
        raise RegistryError(f"{glob.host} refuses to list its repositories ({exc}); name each repository instead "
                        "of a glob (listing needs the registry:catalog:* scope)", status=exc.status) from None
    finally:
        await oci.aclose()


def preflight(options, host) -> None:
    """Settings an ACR target cannot use, before anything is contacted: a token_env that is unset."""
    from ghcr_janitor.stores.acr.auth import check_token_env

    check_token_env("an ACR host", host)
