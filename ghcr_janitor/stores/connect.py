"""Open the right store for a target: OCI registry, GHCR, Amazon ECR, Docker Hub, GitLab, Harbor,
Azure ACR, Google Artifact Registry, local OCI layout, or the Actions cache; and the store that
lists what a glob stands for.

The one place above the store folders that knows the kinds: everything above `stores/` asks a
store's powers (`stores.base`), never its kind. A host's kind is the settings file's `kind`, else
the SaaS host's (`core.reference.known_kind`), else Harbor if `/api/v2.0/ping` answers so (asked
once per host and process), else plain OCI (`kind_of`).

The vendor stores (`VENDORS`) are modules with the same three functions: `open_store(target,
options, host)` (a `Registry`; nothing contacted yet), `async repository_names(glob, options, host)`
(what `HOST/NS/*` stands for, names without the host) and `preflight(options, host)` (usage errors
before any contact). `host` is the settings file's `HostSettings` for the target's host.
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable, Mapping

from ghcr_janitor.core.defaults import DEFAULT_CONCURRENCY
from ghcr_janitor.core.errors import UsageError
from ghcr_janitor.core.settings import GHCR_REGISTRY, Settings
from ghcr_janitor.net.budget import RequestBudget
from ghcr_janitor.net.http import RequestLog
from ghcr_janitor.core.reference import (
    ACR, DOCKERHUB, ECR, GAR, GHA, GHCR, GITLAB, HARBOR, LAYOUT, OCI, Target, is_loopback,
)
from ghcr_janitor.stores.base import Registry, Store

log = logging.getLogger("ghcr_janitor.connect")

# kind -> the module of its store (the functions named in the module docstring).
VENDORS = {
    DOCKERHUB: "ghcr_janitor.stores.dockerhub.registry",
    GITLAB: "ghcr_janitor.stores.gitlab.registry",
    HARBOR: "ghcr_janitor.stores.harbor.registry",
    ACR: "ghcr_janitor.stores.acr.registry",
    GAR: "ghcr_janitor.stores.gar.registry",
}
HARBOR_PING = "/api/v2.0/ping"
PING_TIMEOUT = 5.0
PING_BYTES = 64                         # Harbor answers "Pong"
_pinged: dict[str, bool] = {}           # registry base URL -> answered as Harbor (once per process)
_ping_lock = threading.Lock()


@dataclass
class ConnectOptions:
    insecure: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    concurrency: int = DEFAULT_CONCURRENCY
    owner_type: str | None = None
    # What the environment says, read once (core.settings); the default reads this process's now.
    settings: Settings = field(default_factory=Settings.from_env, repr=False)
    log: RequestLog = field(default_factory=RequestLog)
    # GitHub REST requests of every target of the run share one budget (--max-requests, rate limits).
    budget: RequestBudget = field(default_factory=RequestBudget)
    github_owners: dict[str, str] = field(default_factory=dict, repr=False)   # owner -> REST prefix

    @property
    def env(self) -> Mapping[str, str]:
        """The environment snapshot the settings were read from (for a store whose SDK reads its own
        names from it, as boto3 does)."""
        return self.settings.env


def base_url_for(host: str, insecure: bool) -> str:
    """HTTPS unless the host is loopback (as docker allows) or --insecure was given."""
    scheme = "http" if insecure or is_loopback(host) else "https"
    return f"{scheme}://{host}"


def registry_base(target: Target, options: ConnectOptions) -> str:
    """Where `/v2` of `target`'s host is served: the settings' `registry_url` as written, else
    HTTPS (plain HTTP for loopback or --insecure)."""
    return options.settings.host(target.host).registry_url or base_url_for(target.host, options.insecure)


def _answers_as_harbor(base: str, options: ConnectOptions) -> bool:
    """One GET of Harbor's ping endpoint (no credentials, no retries, no redirects): "Pong"? At most
    PING_TIMEOUT seconds in all and PING_BYTES read, whatever the server trickles or declares."""
    import time

    import httpx

    with _ping_lock:
        if base in _pinged:
            return _pinged[base]
        deadline = time.monotonic() + PING_TIMEOUT
        body = b""
        try:
            with httpx.Client(timeout=min(PING_TIMEOUT, options.settings.http.timeout), follow_redirects=False) as c:
                with c.stream("GET", base + HARBOR_PING, headers={"User-Agent": "ghcr-janitor"}) as response:
                    length = response.headers.get("content-length", "0")
                    if response.status_code == 200 and (not length.isdigit() or int(length) <= PING_BYTES):
                        for chunk in response.iter_raw():
                            body += chunk
                            if len(body) > PING_BYTES or time.monotonic() > deadline:
                                break
            harbor = response.status_code == 200 and body.strip().strip(b'"') == b"Pong"
        except httpx.HTTPError as exc:
            log.debug("%s%s: %s (not Harbor)", base, HARBOR_PING, exc)
            harbor = False
        _pinged[base] = harbor
        return harbor


def kind_of(target: Target, options: ConnectOptions, *, probe: bool = True) -> str:
    """The store kind for `target`: the settings' kind, the SaaS host's, Harbor if it answers its
    ping (`probe`), else plain OCI."""
    if target.kind in (LAYOUT, GHA):
        return target.kind
    configured = options.settings.host(target.host).kind
    if configured:
        return configured
    if target.kind != OCI or not probe:
        return target.kind
    return HARBOR if _answers_as_harbor(registry_base(target, options), options) else OCI


def _vendor(kind: str) -> Any:
    return importlib.import_module(VENDORS[kind])


def _oci(base_url: str, target: Target, options: ConnectOptions, credential_host: str) -> Registry:
    from ghcr_janitor.stores.oci.side import open_oci

    return open_oci(base_url, target, options, credential_host, remember=True)


def open_registry(target: Target, options: ConnectOptions) -> Registry:
    """A backend for `target`; nothing is contacted until a method is awaited."""
    if target.kind == GHA:
        raise UsageError(f"{target}: the Actions cache holds cache entries, not manifests: use ls, plan or prune")
    if target.kind == LAYOUT:
        from ghcr_janitor.stores.layout.store import LayoutStore

        return LayoutStore(target.name)
    if target.kind == GHCR:
        oci_base = options.settings.ghcr_registry
        if not oci_base.startswith(("https://", "http://")):
            raise UsageError(f"{GHCR_REGISTRY} must be a URL, got {oci_base!r}")
        try:
            from ghcr_janitor.stores.ghcr.registry import open_ghcr
        except ImportError:
            return _oci(oci_base, target, options, "ghcr.io")
        return open_ghcr(target, options, oci_base)
    kind = kind_of(target, options)
    if kind == ECR:
        from ghcr_janitor.stores.ecr.registry import open_ecr

        return open_ecr(replace(target, kind=ECR), options)
    if kind in VENDORS:
        return _vendor(kind).open_store(replace(target, kind=kind), options, options.settings.host(target.host))
    return _oci(registry_base(target, options), target, options, target.host)


def preflight(targets: list[Target], options: ConnectOptions) -> None:
    """Usage errors a store can tell before any target of the run is contacted (a missing extra,
    settings its client cannot use): raised once, so that no target is read and then the run ends."""
    if any(t.kind == ECR for t in targets):
        from ghcr_janitor.stores.ecr.registry import preflight as ecr_preflight

        ecr_preflight(options)
    for target in targets:
        kind = kind_of(target, options, probe=False)
        if kind in VENDORS:
            _vendor(kind).preflight(options, options.settings.host(target.host))


def open_store(target: Target, options: ConnectOptions) -> Store:
    """The store for `target`: a `Registry` (manifests), or the Actions cache (`GathersFacts`,
    `ActsOnEntries`); nothing is contacted until a method is awaited."""
    if target.kind == GHA:
        from ghcr_janitor.stores.gha.store import open_cache

        return open_cache(target, options)
    return open_registry(target, options)


@dataclass
class TargetLister:
    """`ListsTargets`: the concrete target strings a glob's store lists, and whether names compare
    case-insensitively (GitHub owners and repositories; registry repositories are lowercase)."""

    store: Any
    fold_case: bool
    names: Callable[[], Awaitable[list[str]]] = field(repr=False)

    async def target_names(self) -> list[str]:
        return await self.names()

    async def aclose(self) -> None:
        if self.store is not None:
            await self.store.aclose()


def open_lister(glob: Target, options: ConnectOptions) -> TargetLister:
    """What lists the targets `glob` may stand for: `gha:OWNER/*` the organisation's repositories,
    `ghcr.io/OWNER/*` the owner's container packages, `HOST/*` the registry's catalog (ECR:
    DescribeRepositories)."""
    owner = glob.name.split("/")[0]
    if glob.kind == GHA:
        from ghcr_janitor.stores.gha.store import open_cache

        cache = open_cache(Target(GHA, "", f"{owner}/x"), options)

        async def repositories() -> list[str]:
            return [f"gha:{name}" for name in await cache.api.org_repositories()]

        return TargetLister(cache, True, repositories)
    if glob.kind == GHCR:
        ghcr: Any = open_registry(Target(GHCR, glob.host, f"{owner}/x"), options)

        async def packages() -> list[str]:
            return [f"{glob.host}/{owner}/{name}" for name in await ghcr.api.list_packages()]

        return TargetLister(ghcr, True, packages)
    kind = kind_of(glob, options)
    if kind == ECR:
        from ghcr_janitor.stores.ecr.registry import repository_names

        async def ecr_repositories() -> list[str]:
            return [f"{glob.host}/{name}" for name in await repository_names(glob, options)]

        return TargetLister(None, False, ecr_repositories)
    if kind in VENDORS:
        vendor, host = _vendor(kind), options.settings.host(glob.host)

        async def vendor_repositories() -> list[str]:
            return [f"{glob.host}/{name}" for name in await vendor.repository_names(replace(glob, kind=kind), options, host)]

        return TargetLister(None, False, vendor_repositories)
    if glob.kind != OCI:
        raise UsageError(f"{glob}: a glob names registry repositories, packages or Actions caches")
    registry: Any = _oci(registry_base(glob, options), Target(OCI, glob.host, "x"), options, glob.host)

    async def catalog() -> list[str]:
        return [f"{glob.host}/{name}" for name in await registry.catalog()]

    return TargetLister(registry, False, catalog)
