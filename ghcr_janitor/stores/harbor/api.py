"""Harbor's REST API v2.0 (goharbor/harbor `api/v2.0/swagger.yaml`), the part the janitor uses.

- `GET /projects/{project}/repositories/{repo}/artifacts?page=&page_size=100&with_tag=true&with_immutable_status=true`:
  every artifact (tagged ones and untagged ones no index references; an index's children are its
  `references`), each with `digest`, `push_time`, `pull_time`, `size`, `manifest_media_type`,
  `media_type` and `tags[]` (`name`, `push_time`, `pull_time`, `immutable`: false unless
  `with_immutable_status=true` is asked).
- `DELETE .../artifacts/{reference}/tags/{tag}` (untag; 412 when the tag is immutable) and
  `DELETE .../artifacts/{digest}` (the artifact, every tag on it, and its untagged children; 412 when
  an index references it or a tag on it is immutable).
- `GET /projects/{project}/repositories` and `GET /repositories` (what `HOST/PROJECT/*` stands for).

Pages hold at most 100 items (`page_size` maximum 100: Harbor answers 422 above it). A repository
name with `/` is URL-encoded twice in the path (`a/b` -> `a%252Fb`), as the swagger says. Basic auth
(a user or robot account), sent only over HTTPS or to a loopback host.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Any, Iterator
from urllib.parse import quote

import httpx

from ghcr_janitor.core.errors import AuthError, NotFoundError, RegistryError
from ghcr_janitor.core.reference import is_loopback
from ghcr_janitor.net.auth.secret import Secret
from ghcr_janitor.net.http import RequestLog, ThreadedClient
from ghcr_janitor.net.links import next_link

API_PREFIX = "/api/v2.0"
PAGE_SIZE = 100                 # the swagger's pageSize maximum
MAX_PAGES = 100_000
# What Go's zero time serialises to: Harbor's `pull_time` of an artifact (or tag) never pulled.
NEVER_YEAR = 1
MAX_MESSAGE = 200


class BasicAuth(httpx.Auth):
    """Harbor's documented API auth: HTTP Basic, sent with every request (no challenge first), never
    over plain HTTP to a non-loopback host."""

    def __init__(self, username: str, secret: Secret):
        self.username = username
        self.secret = secret

    def __repr__(self) -> str:
        return f"BasicAuth(user={self.username!r})"

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        if request.url.scheme == "http" and not is_loopback(request.url.host):
            raise AuthError(f"refusing to send Harbor credentials over plain HTTP to {request.url.host}: use HTTPS")
        raw = f"{self.username}:{self.secret.reveal()}".encode()
        request.headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
        yield request


def repository_path(project: str, repository: str) -> str:
    """`/projects/{project}/repositories/{repository}` with the repository URL-encoded twice."""
    return f"/projects/{quote(project, safe='')}/repositories/{quote(quote(repository, safe=''), safe='')}"


def harbor_time(value: object) -> datetime | None:
    """A Harbor date-time; None for a missing one and for Go's zero time ("never")."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.year <= NEVER_YEAR:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _first_error(body: bytes) -> tuple[str | None, str | None]:
    """(code, message) of Harbor's first error, one line, if the body is Harbor's error JSON."""
    try:
        first = json.loads(body)["errors"][0]
        code, message = first.get("code"), first.get("message")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None, None
    text = " ".join(str(message or "").split())[:MAX_MESSAGE]
    return (str(code) if code else None), text or None


class HarborApi:
    """One Harbor's REST API: listing pages and deletes, errors mapped to `core.errors`."""

    def __init__(self, base_url: str, client: ThreadedClient, log: RequestLog, who: str):
        self.base_url = base_url.rstrip("/") + API_PREFIX       # https://harbor.example.com/api/v2.0
        self.client = client
        self.log = log
        self.who = who              # how credentials were found, for an auth error ("anonymous", a file)

    def __repr__(self) -> str:
        return f"HarborApi({self.base_url})"

    async def _send(self, method: str, path: str, doing: str, **params: Any) -> httpx.Response:
        response, body = await self.client.send(method, self.base_url + path, log_to=self.log,
                                                params=params or None, headers={"Accept": "application/json"})
        self.raise_for(response.status_code, body, doing)
        return response

    def raise_for(self, status: int, body: bytes, doing: str) -> None:
        """A one-line `core.errors` exception for a Harbor error answer (`{"errors": [{code, message}]}`)."""
        if status < 400:
            return
        code, message = _first_error(body)
        detail = f"{status} {code}" if code else str(status)
        if message:
            detail += f": {message}"
        if status == 401:
            raise AuthError(f"{doing}: Harbor refused the credentials ({detail}; credentials: {self.who}); "
                            "docker login to the host with a user or robot account, or set username and token_env "
                            "in the settings file", status=status, code=code)
        if status == 403:
            raise AuthError(f"{doing}: permission denied ({detail}); the account needs the project's "
                            "list/read permissions to plan, and delete permissions to prune", status=status, code=code)
        if status == 404:
            raise NotFoundError(f"{doing}: not found ({detail})", status=status, code=code)
        raise RegistryError(f"{doing}: Harbor answered {detail}", status=status, code=code)

    async def pages(self, path: str, doing: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a paged listing (`page`, `page_size` 100), in order. Harbor's `Link` says
        whether a next page exists (its URL is not followed: the page number is the contract)."""
        items: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            response = await self._send("GET", path, doing, page=page, page_size=PAGE_SIZE, **params)
            try:
                batch = response.json()
            except ValueError:
                raise RegistryError(f"{doing}: Harbor's answer is not JSON (page {page})") from None
            if batch is None:
                batch = []
            if not isinstance(batch, list) or not all(isinstance(i, dict) for i in batch):
                raise RegistryError(f"{doing}: Harbor's answer is not a list of objects (page {page})")
            items += batch
            link = response.headers.get("link")
            more = next_link(link) is not None if link is not None else len(batch) >= PAGE_SIZE
            if not more or not batch:
                return items
        raise RegistryError(f"{doing}: more than {MAX_PAGES} pages")

    async def artifacts(self, project: str, repository: str) -> list[dict[str, Any]]:
        """Every artifact of the repository, with its tags and their immutable status."""
        return await self.pages(f"{repository_path(project, repository)}/artifacts",
                                f"listing the artifacts of {project}/{repository}",
                                with_tag="true", with_immutable_status="true")

    async def repositories(self, project: str | None) -> list[str]:
        """Full repository names (`project/repo`) of a project, or of every project the account sees."""
        path = f"/projects/{quote(project, safe='')}/repositories" if project else "/repositories"
        doing = f"listing the repositories of project {project}" if project else "listing the repositories"
        return [r["name"] for r in await self.pages(path, doing) if isinstance(r.get("name"), str)]

    async def delete_tag(self, project: str, repository: str, reference: str, tag: str, doing: str) -> None:
        """Remove `tag` from the artifact `reference` (a digest: Harbor answers 404 when the tag is not on it)."""
        await self._send("DELETE", f"{repository_path(project, repository)}/artifacts/{reference}/tags/"
                                   f"{quote(tag, safe='')}", doing)

    async def delete_artifact(self, project: str, repository: str, digest: str, doing: str) -> None:
        """Delete the artifact `digest` with every tag on it (and its untagged children)."""
        await self._send("DELETE", f"{repository_path(project, repository)}/artifacts/{digest}", doing)

    async def aclose(self) -> None:
        await self.client.aclose()
