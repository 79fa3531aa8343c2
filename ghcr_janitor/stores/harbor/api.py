"""Harbor's REST API v2.0 (goharbor/harbor `api/v2.0/swagger.yaml`), the part the janitor uses.

- `GET /projects/{project}/repositories/{repo}/artifacts?page=&page_size=100&with_tag=true&with_immutable_status=true`:
  every artifact (tagged ones and untagged ones no index references; an index's children are its
  `references`), each with `digest`, `push_time`, `pull_time`, `size`, `manifest_media_type`,
  `media_type` and `tags[]` (`name`, `push_time`, `pull_time`, `immutable`: false unless
  `with_immutable_status=true` is asked).
- `GET .../artifacts/{digest}?with_tag=true&with_immutable_status=true`: one artifact now (read
  right before its delete: a digest delete takes every tag on the digest with it).
- `DELETE .../artifacts/{reference}/tags/{tag}` (untag; 412 when the tag is immutable) and
  `DELETE .../artifacts/{digest}` (the artifact, every tag on it, and its untagged children; 412 when
  an index references it or a tag on it is immutable). Both answer 200; any other answer below 400
  (a redirect to an SSO login page, say) deleted nothing and is an error.
- `GET /projects/{project}/repositories` and `GET /repositories` (what `HOST/PROJECT/*` stands for).

Pages hold at most 100 items (`page_size` maximum 100: Harbor answers 422 above it); a listing stops
at an empty page, and a page that repeats an earlier one (a proxy ignoring `page`) or more than
MAX_ITEMS items is an error. Every answer is read to at most BODY_CAP bytes; an error's text is
scrubbed of the credentials before it is cut to one line. A repository
name with `/` is URL-encoded twice in the path (`a/b` -> `a%252Fb`), as the swagger says. Basic auth
(a user or robot account), sent only over HTTPS or to a loopback host.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timezone
from typing import Any, Iterator
from urllib.parse import quote

import httpx

from ghcr_janitor.core.errors import AuthError, NotFoundError, RegistryError
from ghcr_janitor.core.reference import is_loopback
from ghcr_janitor.net.auth.secret import Secret
from ghcr_janitor.net.http import BodyTooLarge, RequestLog, ThreadedClient
from ghcr_janitor.net.links import next_link
from ghcr_janitor.net.redact import one_line

API_PREFIX = "/api/v2.0"
PAGE_SIZE = 100                 # the swagger's pageSize maximum
MAX_ITEMS = 1_000_000           # a listing longer than this is refused (10,000 full pages)
MAX_PAGES = MAX_ITEMS // PAGE_SIZE
BODY_CAP = 16 << 20             # bytes of one API answer (a full page of artifacts is well under 1 MiB)
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

    def secrets(self) -> list[str]:
        """What a server could echo back: the password, and the Basic credentials as sent."""
        raw = f"{self.username}:{self.secret.reveal()}".encode()
        return [self.secret.reveal(), base64.b64encode(raw).decode("ascii")]

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


def _first_error(body: bytes, secrets: list[str]) -> tuple[str | None, str | None]:
    """(code, message) of Harbor's first error, scrubbed of `secrets`, then one line, if the body is
    Harbor's error JSON."""
    try:
        first = json.loads(body)["errors"][0]
        code, message = first.get("code"), first.get("message")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None, None
    text = one_line(str(message or ""), secrets, MAX_MESSAGE)
    return (one_line(str(code), secrets, 40) if code else None), text or None


def _to(location: str | None) -> str:
    """Where a redirect points, scheme and host only (its path and query may carry anything)."""
    try:
        url = httpx.URL(location or "")
    except (httpx.InvalidURL, TypeError):
        return ""
    return f" to {url.scheme}://{url.host}" if url.scheme in ("http", "https") and url.host else ""


def _digest_of_page(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class HarborApi:
    """One Harbor's REST API: listing pages and deletes, errors mapped to `core.errors`."""

    def __init__(self, base_url: str, client: ThreadedClient, log: RequestLog, who: str,
                 auth: BasicAuth | None = None):
        self.base_url = base_url.rstrip("/") + API_PREFIX       # https://harbor.example.com/api/v2.0
        self.client = client
        self.log = log
        self.who = who              # how credentials were found, for an auth error ("anonymous", a file)
        self.auth = auth            # the client's credentials: scrubbed out of what Harbor echoes

    def __repr__(self) -> str:
        return f"HarborApi({self.base_url})"

    def _secrets(self) -> list[str]:
        return self.auth.secrets() if self.auth is not None else []

    async def _send(self, method: str, path: str, doing: str, **params: Any) -> tuple[httpx.Response, bytes]:
        """One request, its answer read to at most BODY_CAP bytes; anything but a 2xx is an error."""
        try:
            response, body = await self.client.send(method, self.base_url + path, log_to=self.log, cap=BODY_CAP,
                                                    params=params or None, headers={"Accept": "application/json"})
        except BodyTooLarge as exc:
            size = f" ({exc.size} bytes)" if exc.size is not None else ""
            raise RegistryError(f"{doing}: Harbor's answer{size} is over the {BODY_CAP} byte cap; not read") from None
        self.raise_for(response.status_code, body, doing, response.headers.get("location"))
        if method == "DELETE" and "html" in response.headers.get("content-type", "").lower():
            raise RegistryError(f"{doing}: answered {response.status_code} with an HTML page, not Harbor's answer "
                                "(a login proxy in front of the API?); not taken as deleted", status=response.status_code)
        return response, body

    def raise_for(self, status: int, body: bytes, doing: str, location: str | None = None) -> None:
        """A one-line `core.errors` exception for an answer that is not a 2xx: Harbor's errors
        (`{"errors": [{code, message}]}`, scrubbed of the credentials), and a redirect (an SSO proxy's
        login page: nothing was done)."""
        if 200 <= status < 300:
            return
        if status < 400:
            raise RegistryError(f"{doing}: answered {status} (a redirect{_to(location)}, not followed: a login "
                                "proxy in front of the API?); nothing was done", status=status)
        code, message = _first_error(body, self._secrets())
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
        seen: dict[str, int] = {}           # each page's body digest -> its number
        for page in range(1, MAX_PAGES + 1):
            response, body = await self._send("GET", path, doing, page=page, page_size=PAGE_SIZE, **params)
            try:
                batch = json.loads(body)
            except ValueError:
                raise RegistryError(f"{doing}: Harbor's answer is not JSON (page {page})") from None
            if batch is None:
                batch = []
            if not isinstance(batch, list) or not all(isinstance(i, dict) for i in batch):
                raise RegistryError(f"{doing}: Harbor's answer is not a list of objects (page {page})")
            if not batch:
                return items
            fingerprint = _digest_of_page(body)
            if fingerprint in seen:
                raise RegistryError(f"{doing}: page {page} repeats page {seen[fingerprint]} (is `page` ignored on "
                                    "the way?); the listing is not complete, so nothing is decided from it")
            seen[fingerprint] = page
            items += batch
            link = response.headers.get("link")
            more = next_link(link) is not None if link is not None else len(batch) >= PAGE_SIZE
            if not more:
                return items
        raise RegistryError(f"{doing}: more than {MAX_ITEMS} items ({MAX_PAGES} pages); not listed")

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

    async def artifact(self, project: str, repository: str, digest: str, doing: str) -> dict[str, Any] | None:
        """The artifact `digest` now, with its tags and their immutable status; None if it is gone."""
        try:
            _, body = await self._send("GET", f"{repository_path(project, repository)}/artifacts/{digest}", doing,
                                       with_tag="true", with_immutable_status="true")
        except NotFoundError:
            return None
        try:
            doc = json.loads(body)
        except ValueError:
            raise RegistryError(f"{doing}: Harbor's answer is not JSON") from None
        if not isinstance(doc, dict) or doc.get("digest") != digest:
            raise RegistryError(f"{doing}: Harbor's answer is not the artifact {digest}")
        return doc

    async def delete_tag(self, project: str, repository: str, reference: str, tag: str, doing: str) -> None:
        """Remove `tag` from the artifact `reference` (a digest: Harbor answers 404 when the tag is not on it)."""
        await self._send("DELETE", f"{repository_path(project, repository)}/artifacts/{reference}/tags/"
                                   f"{quote(tag, safe='')}", doing)

    async def delete_artifact(self, project: str, repository: str, digest: str, doing: str) -> None:
        """Delete the artifact `digest` with every tag on it (and its untagged children): the store
        reads it first (`artifact`), as no request of Harbor's is conditional."""
        await self._send("DELETE", f"{repository_path(project, repository)}/artifacts/{digest}", doing)

    async def aclose(self) -> None:
        await self.client.aclose()
