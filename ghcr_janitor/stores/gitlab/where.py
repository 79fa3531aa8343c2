"""Where a GitLab target's API lives and which REST token it takes (checked before any contact),
and which project a repository path belongs to.

- The API: the settings file's `api_url` for the registry host; else https://gitlab.com for
  registry.gitlab.com; else `CI_SERVER_URL` (a GitLab CI job); else a usage error.
- The token: the host's `token_env` (PRIVATE-TOKEN), `GITLAB_TOKEN` (PRIVATE-TOKEN), `CI_JOB_TOKEN`
  (JOB-TOKEN, only towards `CI_SERVER_URL`: a job token is never sent to another GitLab); none:
  anonymous. A token is never sent over plain HTTP except to a loopback host: the host is the one
  httpx sends to (`http://localhost:1@evil.example.net` goes to evil.example.net), and the API client
  checks every request again as it sends it. A GitLab URL with a user name or password is refused.
- The project: `GROUP/[SUBGROUP/...]PROJECT[/IMAGE...]` does not say where the project path ends.
  The longest prefix that is a project whose container repositories include one with exactly this
  `path` wins (`GET /projects/:path` for each prefix, longest first, at least two parts).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from ghcr_janitor.core.errors import AuthError, NotFoundError, UsageError
from ghcr_janitor.core.reference import GITLAB_HOST
from ghcr_janitor.core.settings import CI_JOB_TOKEN, CI_SERVER_URL, GITLAB_TOKEN, HostSettings
from ghcr_janitor.net.auth.secret import Secret
from ghcr_janitor.stores.gitlab.api import GitLabApi, RestToken, in_clear, origin

GITLAB_COM_API = "https://gitlab.com"


@dataclass(frozen=True)
class Location:
    """A container repository as GitLab's REST API names it."""

    project_id: int
    project_path: str
    repository_id: int
    path: str


def api_url(registry_host: str, options, host: HostSettings) -> str:
    """The GitLab URL (without `/api/v4`) of the registry at `registry_host`."""
    if host.api_url:
        return host.api_url.rstrip("/")
    if registry_host.lower() == GITLAB_HOST:
        return GITLAB_COM_API
    server = options.settings.variable(CI_SERVER_URL)
    if server:
        return server.rstrip("/")
    raise UsageError(f"{registry_host}: a self-managed GitLab registry needs the GitLab URL: "
                     f'api_url = "https://gitlab.example.com" in [hosts."{registry_host}"] of the settings file '
                     f"(or run in GitLab CI, where {CI_SERVER_URL} says it)")


def _parsed(registry_host: str, url: str, what: str) -> httpx.URL:
    """`url` as httpx will send to it; UsageError (without echoing it) if it is not a plain http(s) URL."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise UsageError(f"{registry_host}: {what} is not a URL") from None
    if parsed.scheme.lower() not in ("http", "https") or not parsed.host:
        raise UsageError(f"{registry_host}: {what} must be an http(s) URL with a host")
    if parsed.userinfo:
        raise UsageError(f"{registry_host}: {what} carries a user name or password: give the GitLab URL alone "
                         "(the token comes from token_env, GITLAB_TOKEN or CI_JOB_TOKEN)")
    return parsed


def rest_token(registry_host: str, api: str, options, host: HostSettings) -> RestToken | None:
    """The REST credential for `api`, or None (anonymous). UsageError for a token_env that is unset,
    or a token that would travel over plain HTTP to a host that is not loopback."""
    url = _parsed(registry_host, api, "the GitLab URL (api_url)")
    token: RestToken | None = None
    if host.token_env:
        if not host.token:
            raise UsageError(f'[hosts."{registry_host}"] token_env = "{host.token_env}": that variable is not set')
        token = RestToken("PRIVATE-TOKEN", Secret(host.token), host.token_env)
    elif options.settings.variable(GITLAB_TOKEN):
        token = RestToken("PRIVATE-TOKEN", Secret(options.settings.variable(GITLAB_TOKEN)), GITLAB_TOKEN)
    else:
        job, server = options.settings.variable(CI_JOB_TOKEN), options.settings.variable(CI_SERVER_URL)
        if job and server and origin(_parsed(registry_host, server, CI_SERVER_URL)) == origin(url):
            token = RestToken("JOB-TOKEN", Secret(job), CI_JOB_TOKEN)
    if token is not None and in_clear(url):
        raise UsageError(f"{registry_host}: the GitLab API {url.scheme}://{url.host} is plain HTTP: {token.source} "
                         "would travel in clear; use https:// (plain HTTP is allowed to loopback hosts only)")
    return token


def prefixes(name: str) -> list[str]:
    """Candidate project paths of a repository path, longest first (at least GROUP/PROJECT)."""
    parts = name.split("/")
    return ["/".join(parts[:k]) for k in range(len(parts), 1, -1)]


async def locate(api: GitLabApi, name: str, where: str) -> Location:
    """The project and container repository of `name` (see the module docstring)."""
    tried: list[str] = []
    for candidate in prefixes(name):
        project = await api.project(candidate)
        if project is None:
            tried.append(candidate)
            continue
        for repo in await api.repositories(project["id"]):
            if str(repo.get("path", "")).lower() == name.lower() and isinstance(repo.get("id"), int):
                return Location(project["id"], str(project.get("path_with_namespace") or candidate),
                                repo["id"], str(repo["path"]))
        tried.append(f"{candidate} (a project without that repository)")
    anonymous = "" if api.token else "; a private project needs GITLAB_TOKEN or CI_JOB_TOKEN"
    if len(name.split("/")) < 2:
        raise UsageError(f"{where}: a GitLab target is HOST/GROUP/PROJECT[/IMAGE]")
    raise NotFoundError(f"{where}: no GitLab project on {api.shown()} holds container repository {name} "
                        f"(tried {', '.join(tried)}){anonymous}", status=404)


async def repository_paths(api: GitLabApi, prefix: str) -> list[str]:
    """The container repository paths of the group `prefix` (its projects'), else of the project `prefix`."""
    try:
        repos = await api.group_repositories(prefix)
    except NotFoundError:
        try:
            repos = await api.project_repositories(prefix)
        except NotFoundError:
            raise NotFoundError(f"no GitLab group or project {prefix} on {api.shown()}", status=404) from None
    except AuthError:
        raise
    return sorted({str(r["path"]) for r in repos if isinstance(r, dict) and isinstance(r.get("path"), str)})
