"""The Artifact Registry REST API (v1), the little the janitor needs of it: a repository's settings
(`dockerConfig.immutableTags`), a project location's repositories and a repository's packages
(images), both `pageSize`/`pageToken` paginated (at most 1,000 a page). Bearer: an OAuth access token.
Retries and `Retry-After` on 429 (GAR's per-project requests-per-minute quota) are the client's.
Answers are read to at most `API_BODY_CAP` bytes; an error answer is scrubbed of the token before
its message is cut to one line."""

from __future__ import annotations

from typing import Any, Callable, Generator
from urllib.parse import quote, unquote

import httpx

from ghcr_janitor.core.errors import AuthError, RegistryError
from ghcr_janitor.core.reference import is_loopback
from ghcr_janitor.net.auth.secret import Secret
from ghcr_janitor.net.http import BodyTooLarge, RequestLog, ThreadedClient
from ghcr_janitor.net.redact import scrub
from ghcr_janitor.net.status import json_of, raise_for_status

PAGE_SIZE = 1000
MAX_PAGES = 10_000
API_BODY_CAP = 64 << 20


class BearerAuth(httpx.Auth):
    """`Authorization: Bearer` with a secret (asked for on the first request) revealed only here,
    never over plain HTTP off loopback."""

    def __init__(self, token: Callable[[], Secret]):
        self._token = token
        self.sent: Secret | None = None         # the token last attached (scrubbed from error answers)

    def __repr__(self) -> str:
        return "BearerAuth(********)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if request.url.scheme == "http" and not is_loopback(request.url.host):
            raise AuthError(f"refusing to send a token over plain HTTP to {request.url.host}: use HTTPS")
        self.sent = self._token()
        request.headers["Authorization"] = f"Bearer {self.sent.reveal()}"
        yield request


class ArtifactRegistryApi:
    """REST calls at `api_url` (default https://artifactregistry.googleapis.com)."""

    def __init__(self, api_url: str, client: ThreadedClient, log: RequestLog):
        self.api_url = api_url.rstrip("/")
        self.client = client
        self.log = log

    async def _get(self, path: str, what: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        url = httpx.URL(f"{self.api_url}/v1/{path}", params=params or {})
        try:
            response, body = await self.client.send("GET", url, log_to=self.log, cap=API_BODY_CAP)
        except BodyTooLarge:
            raise RegistryError(f"{what}: the API sent an answer over the {API_BODY_CAP} byte cap; refused") from None
        if response.status_code >= 400:
            auth = getattr(getattr(self.client, "client", None), "auth", None)
            sent = getattr(auth, "sent", None)
            text = scrub(body.decode("utf-8", "replace"), [sent.reveal() if sent else None])
            raise_for_status(httpx.Response(response.status_code, headers=response.headers, content=text.encode(),
                                            request=response.request), what)
        return json_of(body, what)  # type: ignore[return-value]

    async def repository(self, repository_path: str) -> dict[str, Any]:
        """`GET v1/projects/P/locations/L/repositories/R`."""
        return await self._get(repository_path, f"reading the settings of {repository_path}")

    async def _pages(self, path: str, field: str, what: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        token = ""
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            params = {"pageSize": str(PAGE_SIZE)}
            if token:
                params["pageToken"] = token
            doc = await self._get(path, what, params)
            items = doc.get(field) or []
            if not isinstance(items, list):
                raise RegistryError(f"{what}: {field!r} is not a list")
            found += [i for i in items if isinstance(i, dict)]
            token = doc.get("nextPageToken") or ""
            if not isinstance(token, str) or not token:
                return found
            if token in seen:
                raise RegistryError(f"{what}: the API's nextPageToken repeats")
            seen.add(token)
        raise RegistryError(f"{what}: more than {MAX_PAGES} pages")

    async def repositories(self, project: str, location: str) -> list[str]:
        """The Docker-format repository ids of a project's location."""
        items = await self._pages(f"projects/{quote(project)}/locations/{quote(location)}/repositories",
                                  "repositories", f"listing the repositories of {project} in {location}")
        return sorted(i["name"].rsplit("/", 1)[-1] for i in items
                      if isinstance(i.get("name"), str) and i.get("format", "DOCKER") == "DOCKER")

    async def packages(self, repository_path: str) -> list[str]:
        """The images (packages) of a repository, their names decoded (`team%2Fapp` -> `team/app`)."""
        items = await self._pages(f"{repository_path}/packages", "packages", f"listing the images of {repository_path}")
        return sorted(unquote(i["name"].rsplit("/packages/", 1)[-1]) for i in items
                      if isinstance(i.get("name"), str) and "/packages/" in i["name"])

    async def aclose(self) -> None:
        await self.client.aclose()
