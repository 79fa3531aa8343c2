"""Docker Hub backend: `docker.io/NS/REPO` (and `NS/REPO`), through the Hub API and the registry's `/v2`.

- Listing (`list_versions`): the Hub API's tags (100 a page: each tag's digest, `tag_last_pushed`,
  `tag_last_pulled`) and its untagged images (`currently_tagged=false`, 100 a page: `last_pushed`,
  `last_pulled`, `status`). Each digest is a `Version` dated by its latest push ("dockerhub/pushed")
  with `pushed`, `last_pulled` (None: never) and `pull_lag` in `extra`. Where the images listing is
  refused (plan, permissions), untagged images are not listed (logged) and the store says so
  (`lists_untagged` False for the run).
- Manifests: GET over `/v2` (registry-1.docker.io). Hub counts each GET as a pull: every manifest is
  read once per process (a process-wide cache by digest), and each read is remembered
  (`stores.reads.OwnReads`) so that the pull time Hub then shows is corrected back to the one before it.
  Tags are resolved with HEAD, which Hub does not count.
- Untag (`delete_tag`): HEAD the tag (it must still point at the planned digest: else TagMovedError
  or NotFoundError, nothing sent), then `DELETE /v2/repositories/NS/REPO/tags/TAG/` on the Hub API,
  then HEAD again until the tag is gone (the image stays, untagged). Hub's OCI DELETE by tag answers
  405 and is never sent.
- Delete (`delete_manifest`): Hub refuses a digest DELETE while a tag or an index still uses the
  manifest (403), so the digest's current tags (as the last look saw them) are removed first through
  the tag endpoint, each checked as above, then `DELETE /v2/NS/REPO/manifests/DIGEST`. A 403 is a
  one-line failure (still tagged or referenced, or no delete permission); a 500 ("the system
  retries the deletion in the background", Hub's docs) is verified: the digest is HEADed with
  backoff until it is gone, else the failure says it may still go.
- `deletes_refused` (`ProbesDeletes`), once per store: no credentials, or a refused probe of the
  tag endpoint (a tag that cannot exist) or of the digest DELETE (a digest that cannot exist), is
  one line and a plan with nothing destructive.
- The last look (`LooksAtTags`, `LooksAtOnce`): every tag's digest from the Hub API's tag listing
  (100 tags a request), names asked one by one with HEAD; Hub itself refuses a digest DELETE that a
  tag or an index still uses, which backs the batch of deletes after one look.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from typing import Any

from ghcr_janitor.core.digests import is_digest
from ghcr_janitor.core.errors import (AuthError, JanitorError, NotFoundError, RegistryError, TagMovedError,
                                      UsageError)
from ghcr_janitor.core.models import StoreTraits
from ghcr_janitor.core.reference import Target, is_loopback
from ghcr_janitor.core.settings import DOCKERHUB_TOKEN, DOCKERHUB_USERNAME
from ghcr_janitor.core.words import count
from ghcr_janitor.net.auth.secret import Secret
from ghcr_janitor.net.redact import one_line
from ghcr_janitor.stores.base import RawManifest, Version
from ghcr_janitor.stores.dockerhub import listing
from ghcr_janitor.stores.dockerhub.api import DEFAULT_API_URL, HubApi, HubLogin, Sleep
from ghcr_janitor.stores.reads import MANIFESTS, OwnReads, corrected, now, own_reads
from ghcr_janitor.stores.oci.side import OciSide

log = logging.getLogger("ghcr_janitor.dockerhub")

DEFAULT_REGISTRY_URL = "https://registry-1.docker.io"
CREDENTIAL_HOST = "docker.io"       # docker login keys it as https://index.docker.io/v1/ (net.auth.credentials)
VERIFY_WAITS = (1.0, 2.0, 4.0, 8.0, 16.0)    # HEADs after a 500 on DELETE, or after an untag, before giving up


class _Unset:
    pass


_UNSET = _Unset()


class DockerHubRegistry(OciSide):
    """`Registry`, `LooksAtTags`, `LooksAtOnce` and `ProbesDeletes` for one Docker Hub repository."""

    kind = "dockerhub"
    lists_untagged = True
    traits = StoreTraits(lists_untagged=True, price="dockerhub")
    reclaim_note = ("in deleted images and used by no image left in this repository, counted from the manifests; "
                    "Docker Hub frees the blobs by its own garbage collection, and its storage figure follows "
                    "on its own schedule")
    deletes_per_look = 100          # one Hub tag listing covers them; Hub refuses a delete a tag or index still needs
    look_at_once = True

    def __init__(self, host: str, name: str, oci: Any, api: HubApi, reads: OwnReads | None = None,
                 sleep: Sleep | None = None):
        self.host = host
        self.name = name
        self.namespace, _, self.repo = name.partition("/")
        self.oci = oci
        self.api = api
        self.reads = reads if reads is not None else OwnReads(None)
        self.sleep: Sleep = sleep or asyncio.sleep
        self._pulls: dict[str, Any] = {}            # digest -> its pull time before this process read it
        self._looked: dict[str, str] | None = None  # the last look's tags (delete_manifest untags those first)
        self._refused: str | None | _Unset = _UNSET
        self._locks: dict[str, asyncio.Lock] = {}

    def __repr__(self) -> str:
        return f"DockerHubRegistry({self.host}/{self.name}, api={self.api.api_url}, registry={self.oci.base_url})"

    @property
    def where(self) -> str:
        return f"{self.host}/{self.name}"

    # --- listing ---------------------------------------------------------------------------
    async def list_versions(self) -> list[Version]:
        """Every tagged digest and every untagged image now, with Hub's push and pull times."""
        tags = await self.api.tags(self.namespace, self.repo)
        images = await self._untagged_images()
        _, unknown = listing.current_tags(tags)
        resolved = await self.oci.current_tags(unknown) if unknown else {}
        versions = listing.versions(tags, images, resolved)
        memory = self.reads.recorded([self._read_key(v.digest) for v in versions])
        for version in versions:
            pulled, ours = corrected(version.extra["last_pulled"], memory.get(self._read_key(version.digest)))
            version.extra["last_pulled"] = pulled
            if ours:
                version.extra["own_read"] = True    # Hub showed the janitor's own read: the pull before it counts
            self._pulls.setdefault(version.digest, pulled)
        return versions

    async def _untagged_images(self) -> list[dict[str, Any]] | None:
        try:
            return await self.api.untagged_images(self.namespace, self.repo)
        except (AuthError, NotFoundError) as exc:
            log.warning("%s: untagged images are not listed: %s", self.where, exc)
            self.lists_untagged = False
            self.traits = StoreTraits(price="dockerhub")
            return None

    async def list_tags(self) -> list[str]:
        return sorted(listing.current_tags(await self.api.tags(self.namespace, self.repo))[0])

    async def resolve(self, tag: str) -> str | None:
        """HEAD over `/v2` (not a pull on Hub)."""
        return await self.oci.resolve(tag)

    async def current_tags(self, names: list[str] | None = None) -> dict[str, str]:
        """Every tag -> its digest now from the Hub tag listing (100 a request), or each of `names`
        with a HEAD. Remembered as the last look (`delete_manifest` untags those on its digest)."""
        if names is not None:
            found = await self.oci.current_tags(names)
            if self._looked is not None:
                self._looked.update(found)
            return found
        tags = await self.api.tags(self.namespace, self.repo)
        found, unknown = listing.current_tags(tags)
        if unknown:
            found.update(await self.oci.current_tags(unknown))
        self._looked = dict(found)
        return found

    def known_missing(self, digest: str, listed: frozenset[str]) -> bool:
        """Whether Hub's image listing holds every manifest (index children too) is not documented:
        a 404 is never taken as proof."""
        return False

    # --- reading ---------------------------------------------------------------------------
    def _read_key(self, digest: str) -> str:
        return f"{self.host}/{self.name}@{digest}"

    async def get_manifest(self, reference: str) -> RawManifest:
        """A manifest over `/v2`, once per process (Hub counts each GET as a pull), the read remembered."""
        if not is_digest(reference):
            digest = await self.resolve(reference)
            if digest is None:
                raise NotFoundError(f"tag {self.where}:{reference} not found", status=404)
            reference = digest
        key = (self.oci.base_url, self.name, reference)
        cached = MANIFESTS.get(key)
        if cached is not None:
            return cached
        raw = await self.oci.get_manifest(reference)
        self.reads.record({self._read_key(reference): self._pulls.get(reference, "unknown")}, now())
        MANIFESTS.put(key, raw)
        return raw

    # --- deleting --------------------------------------------------------------------------
    async def deletes_refused(self) -> str | None:
        """Once per store: why deletes cannot be sent here (one line), or None."""
        if isinstance(self._refused, _Unset):
            self._refused = await self._probe()
            if self._refused:
                log.info("%s", self._refused)
        return self._refused

    async def _probe(self) -> str | None:
        if self.api.login is None:
            return ("no Docker Hub credentials (DOCKERHUB_USERNAME and DOCKERHUB_TOKEN, or docker "
                    "login): Docker Hub's deletes need them; nothing destructive planned")
        refused = await self.api.untag_refused(self.namespace, self.repo)
        if refused:
            return refused
        probe = "sha256:" + secrets.token_hex(32)       # a digest no manifest has
        try:
            status, said = await self._send_delete(probe)
        except JanitorError as exc:
            return f"the registry's digest delete could not be probed ({exc}): nothing destructive planned"
        if status == 404 or 200 <= status < 300:
            return None
        return (f"the registry refuses digest deletes (a probe answered {said}; an access token with "
                "Read, Write & Delete is needed): nothing destructive planned")

    async def _send_delete(self, digest: str) -> tuple[int, str]:
        """DELETE the digest over `/v2`: (status, "HTTP status CODE: message" for messages)."""
        url = f"{self.oci.base_url}/v2/{self.name}/manifests/{digest}"
        response, body = await self.oci.client.send("DELETE", url, log_to=self.oci.log)
        code, message = _error(body, self.api.secrets())
        said = f"HTTP {response.status_code}" + (f" {code}" if code else "") + (f": {message}" if message else "")
        return response.status_code, said

    def _lock(self, digest: str) -> asyncio.Lock:
        return self._locks.setdefault(digest, asyncio.Lock())

    async def delete_tag(self, tag: str, digest: str) -> None:
        """Untag through the Hub API after a HEAD shows `tag` still on `digest`; the image stays.
        NotFoundError if the tag is gone, TagMovedError if it moved (nothing sent then)."""
        await self.oci.expect_tag(tag, digest)
        await self.api.delete_tag(self.namespace, self.repo, tag)
        if self._looked is not None:
            self._looked.pop(tag, None)
        if await self._verified(lambda: self.oci.resolve(tag), lambda found: found != digest):
            return
        raise RegistryError(f"untagging {self.where}:{tag}: Docker Hub accepted the untag but the tag still points at "
                            f"{digest} after {count(len(VERIFY_WAITS), 'check')}; run again to see")

    async def _verified(self, look, done) -> bool:
        """True once `done(await look())`: checked now, then after each of `VERIFY_WAITS`."""
        for wait in (0.0, *VERIFY_WAITS):
            if wait:
                await self.sleep(wait)
            if done(await look()):
                return True
        return False

    async def delete_manifest(self, digest: str) -> None:
        """Remove the digest's current tags through the Hub API (each checked first), then DELETE it
        over `/v2`. NotFoundError if it is gone; a 500 is verified, not assumed."""
        async with self._lock(digest):
            looked = self._looked if self._looked is not None else await self.current_tags()
            for tag in sorted(t for t, d in looked.items() if d == digest):
                try:
                    await self.delete_tag(tag, digest)
                except (NotFoundError, TagMovedError):
                    pass                    # no longer on this digest: nothing to remove
            await self._delete_digest(digest)
            MANIFESTS.forget((self.oci.base_url, self.name, digest))

    async def _delete_digest(self, digest: str) -> None:
        where = f"{self.where}@{digest}"
        status, said = await self._send_delete(digest)
        if 200 <= status < 300:
            return
        if status == 404:
            raise NotFoundError(f"manifest {where} not found", status=404)
        if status == 403:
            raise RegistryError(f"deleting {where}: Docker Hub refused ({said}): a tag or another image (an index) "
                                "still uses it, or the token lacks delete permission; not deleted", status=403)
        if status == 401:
            raise AuthError(f"deleting {where}: not authorised ({said}); the credentials cannot delete here",
                            status=401)
        if status < 500:
            raise RegistryError(f"deleting {where}: the registry answered {said}", status=status)
        if await self._verified(lambda: self.oci.resolve(digest), lambda found: found is None):
            log.info("%s: Docker Hub answered %d, then the manifest was gone", where, status)
            return
        raise RegistryError(f"deleting {where}: Docker Hub answered {status} and the manifest is still there after "
                            f"{count(len(VERIFY_WAITS), 'check')} over {sum(VERIFY_WAITS):.0f}s (Hub may finish it in "
                            "the background): run again to see", status=status)

    async def aclose(self) -> None:
        self.reads.close()
        try:
            await self.oci.aclose()
        finally:
            await self.api.client.aclose()


# --- opening ---------------------------------------------------------------------------------
def hub_login(options: Any, host: Any) -> HubLogin | None:
    """Who the Hub API is asked as: --username/--password-stdin, DOCKERHUB_USERNAME + DOCKERHUB_TOKEN,
    the settings file's `username` + `token_env`, else what `docker login` stored for docker.io."""
    from ghcr_janitor.net.auth.credentials import find_credentials

    settings = options.settings
    if options.password:
        if not options.username:
            raise UsageError("docker.io: --password-stdin needs --username (the Docker Hub user of the token)")
        return HubLogin(options.username, Secret(options.password), "--password-stdin")
    user, token = settings.variable(DOCKERHUB_USERNAME), settings.variable(DOCKERHUB_TOKEN)
    if token and user:
        return HubLogin(user, Secret(token), DOCKERHUB_TOKEN)
    if host.token and (host.username or user):
        return HubLogin(host.username or user, Secret(host.token), str(host.token_env))
    found = find_credentials(CREDENTIAL_HOST, None, None, settings)
    if found is not None and not found.identity_token:
        return HubLogin(found.username, found.secret, found.source)
    return None


def _urls(host: Any) -> tuple[str, str]:
    return (host.api_url or DEFAULT_API_URL).rstrip("/"), (host.registry_url or DEFAULT_REGISTRY_URL).rstrip("/")


def _api(options: Any, host: Any, login: HubLogin | None) -> HubApi:
    from ghcr_janitor.net.http import make_client

    api_url, _ = _urls(host)
    client = make_client(max(1, min(options.concurrency, 16)), None, base_url=api_url, policy=options.settings.http)
    return HubApi(api_url, login, client, options.log)


def open_store(target: Target, options: Any, host: Any) -> DockerHubRegistry:
    """A DockerHubRegistry for `docker.io/NS/REPO`; nothing is contacted yet."""
    from ghcr_janitor.net.auth.credentials import Credentials, find_credentials
    from ghcr_janitor.net.auth.flow import RegistryAuth
    from ghcr_janitor.net.http import make_client
    from ghcr_janitor.stores.oci.registry import OciRegistry

    login = hub_login(options, host)
    _, registry_url = _urls(host)
    # One identity for both sides when one was given for Hub; else what docker login stored (an
    # identity token too, which the registry takes and the Hub API does not).
    credentials = Credentials(login.username, login.secret, login.source) if login is not None else \
        find_credentials(CREDENTIAL_HOST, options.username, options.password, options.settings)
    client = make_client(options.concurrency, RegistryAuth(credentials), base_url=registry_url,
                         policy=options.settings.http)
    oci = OciRegistry(registry_url, target.name, client, options.log)
    return DockerHubRegistry(target.host, target.name, oci, _api(options, host, login), own_reads(options.env, "Docker Hub", "dockerhub-reads.sqlite"))


async def repository_names(glob: Target, options: Any, host: Any) -> list[str]:
    """What `docker.io/NS/*` stands for: every repository of the namespace (`/v2/repositories/NS/`)."""
    namespace = glob.name.split("/")[0]
    api = _api(options, host, hub_login(options, host))
    try:
        return [f"{namespace}/{name}" for name in await api.repositories(namespace)]
    finally:
        await api.client.aclose()


def _error(body: bytes, hidden: list[str]) -> tuple[str | None, str | None]:
    """(code, message) of the registry's first OCI error in `body`, the message scrubbed of `hidden`
    whole before its one-line cut."""
    try:
        first = json.loads(body)["errors"][0]
        code, message = first.get("code"), first.get("message")
    except Exception:               # plain text, HTML, empty
        return None, None
    return (one_line(str(code), hidden, 100) if code else None,
            one_line(str(message), hidden) if message else None)


def _plain_off_loopback(url: str) -> bool:
    """Whether `url` is plain HTTP to a host that is not loopback: the host httpx would connect to
    (`http://localhost:1@evil.example.net` is evil.example.net), not a split of the text."""
    import httpx

    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return True
    return parsed.scheme == "http" and not is_loopback(parsed.host)


def preflight(options: Any, host: Any) -> None:
    """Settings a Docker Hub target cannot use, before any contact: half of the DOCKERHUB_ pair, a
    settings `token_env` that is not set, a token to be sent over plain HTTP to a host not loopback."""
    settings = options.settings
    user, token = settings.variable(DOCKERHUB_USERNAME), settings.variable(DOCKERHUB_TOKEN)
    if token and not user and not host.username:
        raise UsageError(f"{DOCKERHUB_TOKEN} is set but {DOCKERHUB_USERNAME} is not: Docker Hub needs the user "
                         "(or organisation) the access token belongs to")
    if host.token_env and not host.token:
        raise UsageError(f"settings file: hosts.\"docker.io\".token_env names {host.token_env}, which is not set")
    for key, url in (("api_url", host.api_url), ("registry_url", host.registry_url)):
        if url and _plain_off_loopback(url):
            raise UsageError(f"settings file: hosts.\"docker.io\".{key} = {url}: plain HTTP would send the Docker "
                             "Hub token in clear; use https:// (plain HTTP is allowed to loopback hosts only)")
