"""GitLab's REST registry API (`/api/v4`), with every answer mapped to `core.errors` here.

- Credentials, in this order: the settings file's `token_env` for the host (`PRIVATE-TOKEN`),
  `GITLAB_TOKEN` (`PRIVATE-TOKEN`), `CI_JOB_TOKEN` (`JOB-TOKEN`, sent only to the GitLab that ran the
  job: `CI_SERVER_URL`); none: anonymous (a public project's registry reads). Tokens are `Secret`s
  and travel only in headers, and only to the configured GitLab (its scheme, host and port), over
  HTTPS or to a loopback host: every request is checked as it is sent. An error GitLab sends back is
  scrubbed of the token before it is cut to one line.
- Answers are read to at most BODY_CAP bytes.
- Pages: `per_page=100` (GitLab's maximum; 20 by default), following the `Link: rel="next"` header
  (never to another host, nor from HTTPS to HTTP: `net.links.same_origin`).
  Tags are asked with keyset pagination first (`pagination=keyset`, GitLab.com and registries with
  the metadata database); a GitLab that answers 405 is asked again with offset pages.
- Deletes: one tag at a time (`DELETE .../tags/:tag_name`); the bulk endpoint (asynchronous, not
  pinned to a digest, at most once an hour) is never used. A protected tag answers 403.
- Retries, 429 and `Retry-After`: `net.http` (the client's retry policy).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from ghcr_janitor.core.errors import AuthError, NotFoundError, RegistryError
from ghcr_janitor.core.reference import is_loopback
from ghcr_janitor.core.timeparse import parse_time
from ghcr_janitor.net.auth.secret import Secret
from ghcr_janitor.net.http import BodyTooLarge, RequestLog, ThreadedClient
from ghcr_janitor.net.links import next_link, same_origin
from ghcr_janitor.net.redact import one_line

PER_PAGE = 100                  # GitLab's maximum page size (the default is 20)
MAX_PAGES = 10_000
_MESSAGE_CAP = 200
BODY_CAP = 16 << 20             # bytes of one answer (a page of 100 tags is a few KiB)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str | httpx.URL) -> tuple[str, str, int | None]:
    """(scheme, host, port) of `url` as httpx sends it: the host after any `user@`, lower case."""
    parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    scheme = parsed.scheme.lower()
    return scheme, parsed.host.lower(), parsed.port or _DEFAULT_PORTS.get(scheme)


def in_clear(url: str | httpx.URL) -> bool:
    """Would a token sent to `url` travel in clear to a host that is not this machine?"""
    scheme, host, _ = origin(url)
    return scheme != "https" and not is_loopback(host)


@dataclass(frozen=True)
class RestToken:
    """The header GitLab's REST API takes, its secret, and the variable it came from (for messages)."""

    header: str                 # PRIVATE-TOKEN | JOB-TOKEN
    value: Secret
    source: str


@dataclass(frozen=True)
class TagDetails:
    """`GET .../tags/:tag_name`: the digest, the image's build time (`created_at`), `total_size`."""

    name: str
    digest: str | None
    built: datetime | None
    total_size: int | None


def _message(body: bytes, secrets: list[str]) -> str:
    """GitLab's error text (`message` or `error`), scrubbed of `secrets`, then one line, capped."""
    import json

    try:
        doc = json.loads(body or b"null")
    except ValueError:
        return ""
    text = doc.get("message") or doc.get("error") if isinstance(doc, dict) else None
    if isinstance(text, dict):
        text = "; ".join(f"{k}: {v}" for k, v in text.items())
    return one_line(str(text or ""), secrets, _MESSAGE_CAP)


class GitLabApi:
    """The REST calls the store makes, on one `ThreadedClient` (base URL: `.../api/v4`)."""

    def __init__(self, api_url: str, client: ThreadedClient, token: RestToken | None, log: RequestLog):
        self.api_url = api_url.rstrip("/")
        self.base = f"{self.api_url}/api/v4"
        self.client = client
        self.token = token
        self.log = log

    def __repr__(self) -> str:
        return f"GitLabApi({self.shown()}, token={self.token.source if self.token else None})"

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token is not None:
            headers[self.token.header] = self.token.value.reveal()
        return headers

    async def _send(self, method: str, url: str, doing: str) -> tuple[Any, bytes]:
        """One request to the configured GitLab only (a URL elsewhere is refused, token or not), with
        the token only over HTTPS or to a loopback host; the answer read to at most BODY_CAP bytes."""
        try:
            sent = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            raise RegistryError(f"{doing}: not a URL; not sent") from None
        if sent.userinfo:
            raise RegistryError(f"{doing}: the GitLab URL carries a user name or password; not sent")
        if origin(sent) != origin(self.base):
            scheme, host, _ = origin(sent)
            raise RegistryError(f"{doing}: {scheme}://{host} is not the GitLab API {self.shown()}; not sent")
        if self.token is not None and in_clear(sent):
            raise AuthError(f"{doing}: {self.token.source} would travel in clear to {sent.host} (plain HTTP): "
                            "not sent; use https:// (plain HTTP is allowed to loopback hosts only)")
        try:
            response, body = await self.client.send(method, url, log_to=self.log, cap=BODY_CAP,
                                                    headers=self._headers())
        except BodyTooLarge as exc:
            size = f" ({exc.size} bytes)" if exc.size is not None else ""
            raise RegistryError(f"{doing}: GitLab's answer{size} is over the {BODY_CAP} byte cap; not read") from None
        return response, body

    def shown(self) -> str:
        """The API's scheme, host and port (never a user or path the settings may carry)."""
        scheme, host, port = origin(self.base)
        return f"{scheme}://{host}" + ("" if port == _DEFAULT_PORTS.get(scheme) else f":{port}")

    def _secrets(self) -> list[str]:
        return [self.token.value.reveal()] if self.token is not None else []

    def _raise(self, status: int, body: bytes, doing: str) -> None:
        """The `core.errors` exception for a failed answer, one line naming what was refused."""
        detail = _message(body, self._secrets())
        said = f" ({detail})" if detail else ""
        if status == 401:
            who = f"the token from {self.token.source}" if self.token else "no token (set GITLAB_TOKEN or CI_JOB_TOKEN)"
            raise AuthError(f"{doing}: GitLab answered 401{said}: {who} was not accepted", status=status)
        if status == 403:
            raise AuthError(f"{doing}: GitLab answered 403{said}: refused (a protected or immutable tag, or the "
                            "token lacks the role: deletes need Developer, protected tags more)", status=status)
        if status == 404:
            raise NotFoundError(f"{doing}: not found on {self.shown()}{said}", status=status)
        raise RegistryError(f"{doing}: GitLab answered {status}{said}", status=status)

    async def _json(self, path: str, doing: str) -> Any:
        response, body = await self._send("GET", f"{self.base}{path}", doing)
        if response.status_code != 200:
            self._raise(response.status_code, body, doing)
        return _decode(body, doing)

    async def _pages(self, path: str, doing: str) -> list[Any]:
        """Every item of a paginated list (`Link: rel="next"`, else `X-Next-Page`)."""
        url: str | None = f"{self.base}{path}"
        items: list[Any] = []
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            assert url is not None
            response, body = await self._send("GET", url, doing)
            if response.status_code != 200:
                self._raise(response.status_code, body, doing)
            page = _decode(body, doing)
            if not isinstance(page, list):
                raise RegistryError(f"{doing}: GitLab's answer is not a list")
            items += page
            url = _next(response, url, doing)
            if url is None or not page:
                return items
            if url in seen:
                raise RegistryError(f"{doing}: GitLab's next-page link loops back to a page already read")
            seen.add(url)
        raise RegistryError(f"{doing}: more than {MAX_PAGES} pages")

    # --- projects and repositories ------------------------------------------------------
    async def project(self, path: str) -> dict[str, Any] | None:
        """The project at `path` (`GROUP/[SUBGROUP/]PROJECT`), or None if there is none."""
        try:
            doc = await self._json(f"/projects/{quote(path, safe='')}", f"looking up project {path}")
        except NotFoundError:
            return None
        return doc if isinstance(doc, dict) and isinstance(doc.get("id"), int) else None

    async def repositories(self, project_id: int) -> list[dict[str, Any]]:
        return await self._pages(f"/projects/{project_id}/registry/repositories?per_page={PER_PAGE}",
                                 f"listing the container repositories of project {project_id}")

    async def group_repositories(self, group: str) -> list[dict[str, Any]]:
        return await self._pages(f"/groups/{quote(group, safe='')}/registry/repositories?per_page={PER_PAGE}",
                                 f"listing the container repositories of group {group}")

    async def project_repositories(self, project: str) -> list[dict[str, Any]]:
        return await self._pages(f"/projects/{quote(project, safe='')}/registry/repositories?per_page={PER_PAGE}",
                                 f"listing the container repositories of project {project}")

    # --- tags ---------------------------------------------------------------------------------
    async def tag_names(self, project_id: int, repository_id: int, where: str) -> list[str]:
        """Every tag name of the repository: keyset pages, else (405) offset pages."""
        base = f"/projects/{project_id}/registry/repositories/{repository_id}/tags?per_page={PER_PAGE}"
        doing = f"listing the tags of {where}"
        try:
            items = await self._pages(base + "&pagination=keyset", doing)
        except RegistryError as exc:
            if exc.status not in (400, 405):
                raise
            items = await self._pages(base, doing)
        return sorted({i["name"] for i in items if isinstance(i, dict) and isinstance(i.get("name"), str)})

    async def tag_details(self, project_id: int, repository_id: int, tag: str, where: str) -> TagDetails | None:
        """The tag's digest, build time and size; None if the tag is gone."""
        try:
            doc = await self._json(f"/projects/{project_id}/registry/repositories/{repository_id}/tags/"
                                   f"{quote(tag, safe='')}", f"reading tag {where}:{tag}")
        except NotFoundError:
            return None
        if not isinstance(doc, dict):
            raise RegistryError(f"reading tag {where}:{tag}: GitLab's answer is not an object")
        digest = doc.get("digest")
        size = doc.get("total_size")
        return TagDetails(tag, digest if isinstance(digest, str) else None, parse_time(doc.get("created_at")),
                          size if isinstance(size, int) and not isinstance(size, bool) else None)

    async def all_tag_details(self, project_id: int, repository_id: int, tags: list[str], where: str,
                              limit: int) -> list[TagDetails]:
        sem = asyncio.Semaphore(max(1, limit))

        async def one(tag: str) -> TagDetails | None:
            async with sem:
                return await self.tag_details(project_id, repository_id, tag, where)

        found = await asyncio.gather(*(one(t) for t in tags))
        return [d for d in found if d is not None]

    async def delete_tag(self, project_id: int, repository_id: int, tag: str, where: str) -> None:
        """Untag (the manifest stays). NotFoundError if the tag is gone; AuthError on 403 (protected)."""
        doing = f"untagging {where}:{tag}"
        response, body = await self._send(
            "DELETE", f"{self.base}/projects/{project_id}/registry/repositories/{repository_id}/tags/{quote(tag, safe='')}",
            doing)
        if response.status_code not in (200, 202, 204):
            self._raise(response.status_code, body, doing)

    async def tag_rules(self, project_id: int) -> list[dict[str, Any]] | None:
        """The project's protected/immutable tag rules; None when GitLab does not say (older than 18.7,
        or the token may not read them)."""
        try:
            rules = await self._pages(f"/projects/{project_id}/registry/protection/tag/rules?per_page={PER_PAGE}",
                                      f"reading the tag protection rules of project {project_id}")
        except (NotFoundError, AuthError):
            return None
        except RegistryError as exc:
            if exc.status in (400, 405):
                return None
            raise
        return [r for r in rules if isinstance(r, dict)]

    async def aclose(self) -> None:
        await self.client.aclose()


def _decode(body: bytes, doing: str) -> Any:
    import json

    try:
        return json.loads(body)
    except ValueError:
        raise RegistryError(f"{doing}: GitLab's answer is not JSON") from None


def _next(response: Any, url: str, doing: str) -> str | None:
    """The next page's URL: the `Link` (on this GitLab only: RegistryError otherwise), else `X-Next-Page`."""
    link = next_link(response.headers.get("link"))
    if link:
        return same_origin(url, link, doing)
    page = (response.headers.get("x-next-page") or "").strip()
    if page.isdigit():
        return str(httpx.URL(url).copy_merge_params({"page": page}))
    return None
