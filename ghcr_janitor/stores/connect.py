"""Open the right backend for a target: OCI registry, GHCR, or local OCI layout."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ghcr_janitor.core.defaults import DEFAULT_CONCURRENCY
from ghcr_janitor.core.errors import UsageError
from ghcr_janitor.core.settings import GHCR_REGISTRY, Settings
from ghcr_janitor.net.budget import RequestBudget
from ghcr_janitor.net.http import RequestLog
from ghcr_janitor.core.reference import ECR, GHA, GHCR, LAYOUT, Target, is_loopback
from ghcr_janitor.stores.base import Registry


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
        from ghcr_janitor.stores.layout.registry import LayoutRegistry

        return LayoutRegistry(target.name)
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
