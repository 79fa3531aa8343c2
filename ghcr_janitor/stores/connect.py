"""Open the right store for a target: OCI registry, GHCR, Amazon ECR, local OCI layout, or the
Actions cache; and the store that lists what a glob stands for.

The one place above the store folders that knows the kinds: everything above `stores/` asks a
store's powers (`stores.base`), never its kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

from ghcr_janitor.core.defaults import DEFAULT_CONCURRENCY
from ghcr_janitor.core.errors import UsageError
from ghcr_janitor.core.settings import GHCR_REGISTRY, Settings
from ghcr_janitor.net.budget import RequestBudget
from ghcr_janitor.net.http import RequestLog
from ghcr_janitor.core.reference import ECR, GHA, GHCR, LAYOUT, OCI, Target, is_loopback
from ghcr_janitor.stores.base import Registry, Store


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


def _oci(base_url: str, target: Target, options: ConnectOptions, credential_host: str) -> Registry:
    from ghcr_janitor.net.auth.credentials import find_credentials
    from ghcr_janitor.net.auth.flow import RegistryAuth
    from ghcr_janitor.net.http import make_client
    from ghcr_janitor.stores.oci.memory import memory_in
    from ghcr_janitor.stores.oci.registry import OciRegistry

    credentials = find_credentials(credential_host, options.username, options.password, options.settings)
    client = make_client(options.concurrency, RegistryAuth(credentials), base_url=base_url,
                         policy=options.settings.http)
    return OciRegistry(base_url, target.name, client, options.log, memory=memory_in(options.env))


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
    if target.kind == ECR:
        from ghcr_janitor.stores.ecr.registry import open_ecr

        return open_ecr(target, options)
    return _oci(base_url_for(target.host, options.insecure), target, options, target.host)


def preflight(targets: list[Target], options: ConnectOptions) -> None:
    """Usage errors a store can tell before any target of the run is contacted (a missing extra,
    settings its client cannot use): raised once, so that no target is read and then the run ends."""
    if any(t.kind == ECR for t in targets):
        from ghcr_janitor.stores.ecr.registry import preflight as ecr_preflight

        ecr_preflight(options)


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
    if glob.kind == ECR:
        from ghcr_janitor.stores.ecr.registry import repository_names

        async def ecr_repositories() -> list[str]:
            return [f"{glob.host}/{name}" for name in await repository_names(glob, options)]

        return TargetLister(None, False, ecr_repositories)
    if glob.kind != OCI:
        raise UsageError(f"{glob}: a glob names registry repositories, packages or Actions caches")
    registry: Any = open_registry(Target(OCI, glob.host, "x"), options)

    async def catalog() -> list[str]:
        return [f"{glob.host}/{name}" for name in await registry.catalog()]

    return TargetLister(registry, False, catalog)
