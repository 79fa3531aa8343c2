"""The Docker Hub API (https://hub.docker.com), the few endpoints the janitor uses, with every error
mapped to `core.errors` here.

- Login: `POST /v2/auth/token {identifier, secret}` (a personal or organisation access token; the
  answer's `access_token` lives 10 minutes and is renewed after 9), else the deprecated
  `POST /v2/users/login {username, password}` where the first is missing (404/405). The JWT goes in
  `Authorization: Bearer`; a 401 on a cached one logs in again once. Without a login the API is asked
  anonymously (public repositories' tags only).
- Pages: `page_size=100` (the documented maximum), following `next`; a `next` on another host than
  the API's is rebuilt on the API's own base (the token is never sent elsewhere), a repeated one, or
  an empty or repeated page that names a next one, is an error. Every answer is read to at most
  `JSON_CAP` bytes, a listing's pages to `LIST_TOTAL_CAP` in all.
- Plain HTTP: with a login, every request (the login POST carries the access token in its body) is
  checked as it is sent: plain HTTP goes to a loopback host only.
- Rate limits: every answer may carry `X-RateLimit-Limit/Remaining/Reset` (reset: a unix time); when
  Remaining reaches 0 the next request waits for the reset. A 429 carries `X-Retry-After`, a unix
  time, which `net.http` does not read (it reads `Retry-After`): after its own retries, the request
  waits until then (at most `MAX_RATE_WAIT` s a wait, `RATE_RETRIES` times) and is sent again.
- Secrets: the access token and the JWT are never in a message, log line or repr (what an answer
  echoes is scrubbed whole, before it is cut to one line).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from ghcr_janitor.core.errors import AuthError, JanitorError, NotFoundError, RegistryError
from ghcr_janitor.core.reference import is_loopback
from ghcr_janitor.net.auth.secret import Secret
from ghcr_janitor.net.http import BodyTooLarge, RequestLog, ThreadedClient
from ghcr_janitor.net.redact import one_line
from ghcr_janitor.net.status import json_of

log = logging.getLogger("ghcr_janitor.dockerhub")

DEFAULT_API_URL = "https://hub.docker.com"
PAGE_SIZE = 100                 # "Number of items to get per page. Defaults to 10. Max of 100."
MAX_PAGES = 10_000
TOKEN_SECONDS = 540.0           # access tokens expire in 10 minutes: renewed after 9
MAX_RATE_WAIT = 300.0           # the longest wait for X-Retry-After / X-RateLimit-Reset
RATE_RETRIES = 3                # 429s waited out per request before giving up
MAX_DETAIL = 200
JSON_CAP = 16 << 20             # a page of 100 tags is tens of KB
LIST_TOTAL_CAP = 512 << 20      # all pages of one listing (10,000 pages of 100 tags: ~50 KB a page)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class HubLogin:
    """Who the Hub API is asked as: a user (or organisation) and its access token."""

    username: str
    secret: Secret = field(repr=False)
    source: str                 # where it came from, for messages: "DOCKERHUB_TOKEN", a docker config path, ...


def _detail(body: bytes, secrets: Iterable[str | None] = ()) -> str:
    """What Hub says went wrong (`detail`, `message`, `errinfo`), scrubbed of `secrets` (whole, before
    the cut), one line; "" if nothing readable."""
    try:
        doc = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace") if body and not body.lstrip().startswith(b"<") else ""
        return one_line(text, secrets, MAX_DETAIL)
    if isinstance(doc, dict):
        for key in ("detail", "message", "error", "text"):
            if isinstance(doc.get(key), str) and doc[key]:
                return one_line(doc[key], secrets, MAX_DETAIL)
        errors = doc.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return one_line(str(errors[0].get("message") or errors[0].get("code") or ""), secrets, MAX_DETAIL)
    return ""


def _unix_time(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


class HubApi:
    """The Hub API for one run: login, pages, untag, the delete probe; requests counted in `log_to`."""

    def __init__(self, api_url: str, login: HubLogin | None, client: ThreadedClient, log_to: RequestLog | None = None,
                 *, sleep: Sleep | None = None, clock: Callable[[], float] = time.time):
        self.api_url = api_url.rstrip("/")
        self.login = login
        self.client = client
        self.log = log_to if log_to is not None else RequestLog()
        self.sleep: Sleep = sleep or asyncio.sleep
        self.clock = clock
        self._jwt: Secret | None = None
        self._jwt_until = 0.0
        self._login_lock = asyncio.Lock()
        self._resume_at = 0.0           # X-RateLimit-Remaining reached 0: nothing is sent before this
        self.waited: list[float] = []   # seconds waited for rate limits (reports and tests)

    def __repr__(self) -> str:
        return f"HubApi({self.api_url}, user={self.login.username if self.login else None!r})"

    # --- sending ------------------------------------------------------------------------
    def url(self, path: str, params: dict[str, Any] | None = None) -> str:
        query = f"?{urlencode(params)}" if params else ""
        return f"{self.api_url}{path}{query}"

    def _on_api(self, url: str) -> str:
        """`url` on the API's own scheme and host (a `next` link elsewhere is rebuilt, never followed)."""
        ours, theirs = urlsplit(self.api_url), urlsplit(url)
        if (theirs.scheme, theirs.netloc) == (ours.scheme, ours.netloc):
            return url
        if theirs.netloc:
            log.debug("Hub API link to %s rebuilt on %s", theirs.netloc, ours.netloc)
        return urlunsplit((ours.scheme, ours.netloc, theirs.path, theirs.query, ""))

    def secrets(self) -> list[str]:
        """The access token and the JWT (what an answer must not echo into a message)."""
        return [s.reveal() for s in (self.login.secret if self.login else None, self._jwt) if s]

    def detail(self, body: bytes) -> str:
        """`_detail` of `body`, scrubbed of this API's secrets."""
        return _detail(body, self.secrets())

    def _check_transport(self, url: str, doing: str) -> None:
        """With a login, nothing goes over plain HTTP to a host that is not loopback (the host httpx
        will connect to, whatever the URL's text looks like)."""
        if self.login is None:
            return
        parsed = httpx.URL(url)
        if parsed.scheme != "https" and not (parsed.scheme == "http" and is_loopback(parsed.host)):
            raise AuthError(f"{doing}: refusing to send the Docker Hub token over plain HTTP to "
                            f"{parsed.host or '?'}: use https:// (plain HTTP is for loopback hosts only)")

    async def _paced(self) -> None:
        wait = self._resume_at - self.clock()
        if wait > 0:
            wait = min(wait, MAX_RATE_WAIT)
            log.info("Docker Hub API rate limit reached: waiting %.0fs for its reset", wait)
            self.waited.append(wait)
            await self.sleep(wait)

    def _note_limits(self, headers) -> None:
        if headers.get("x-ratelimit-remaining", "").strip() == "0":
            reset = _unix_time(headers.get("x-ratelimit-reset"))
            if reset is not None:
                self._resume_at = max(self._resume_at, reset)

    async def send(self, method: str, url: str, doing: str, *, body: Any = None, auth: bool = True,
                   cap: int = JSON_CAP):
        """One request (JSON `body`), rate limits honoured, logged in as needed: (response, bytes), the
        body read to at most `cap` bytes."""
        self._check_transport(url, doing)
        content = json.dumps(body).encode() if body is not None else None
        relogged = False
        for attempt in range(RATE_RETRIES + 1):
            headers = {"Accept": "application/json"}
            if content is not None:
                headers["Content-Type"] = "application/json"
            jwt = await self.bearer() if auth else None
            if jwt is not None:
                headers["Authorization"] = f"Bearer {jwt.reveal()}"
            await self._paced()
            try:
                response, data = await self.client.send(method, url, log_to=self.log, headers=headers, cap=cap,
                                                        **({"content": content} if content is not None else {}))
            except BodyTooLarge as exc:
                size = f"a {exc.size}-byte answer" if exc.size is not None else "an answer"
                raise RegistryError(f"{doing}: Docker Hub sent {size} over the {exc.cap} byte cap; refused") from None
            self._note_limits(response.headers)
            if response.status_code == 401 and jwt is not None and not relogged:
                relogged = True
                self._jwt = None            # expired or revoked: one new login
                continue
            if response.status_code != 429:
                return response, data
            if attempt == RATE_RETRIES:
                break
            until = _unix_time(response.headers.get("x-retry-after")) or \
                _unix_time(response.headers.get("x-ratelimit-reset")) or self.clock() + 2.0 ** attempt
            wait = min(max(until - self.clock(), 0.5), MAX_RATE_WAIT)
            log.info("Docker Hub API answered 429 while %s: waiting %.0fs (X-Retry-After)", doing, wait)
            self.waited.append(wait)
            await self.sleep(wait)
        raise RegistryError(f"{doing}: Docker Hub kept answering 429 (API rate limit) after "
                            f"{RATE_RETRIES} waits; run again later", status=429)

    def error(self, status: int, data: bytes, doing: str) -> JanitorError:
        """The `core.errors` exception for a Hub API error answer."""
        detail = self.detail(data)
        said = f"{status}" + (f": {detail}" if detail else "")
        if status == 401:
            who = f"as {self.login.username} ({self.login.source})" if self.login else "without credentials"
            return AuthError(f"{doing}: Docker Hub API refused the request {who} ({said}); set DOCKERHUB_USERNAME "
                             "and DOCKERHUB_TOKEN (a personal access token) or docker login", status=status)
        if status == 403:
            return AuthError(f"{doing}: Docker Hub API denied it ({said}); the token lacks that permission",
                             status=status)
        if status == 404:
            return NotFoundError(f"{doing}: not found on Docker Hub ({said})", status=status)
        return RegistryError(f"{doing}: Docker Hub API answered {said}", status=status)

    async def get_json(self, url: str, doing: str, cap: int = JSON_CAP) -> dict[str, Any]:
        return json_of(await self._get_bytes(url, doing, cap), doing, who="Docker Hub")  # type: ignore[return-value]

    async def _get_bytes(self, url: str, doing: str, cap: int = JSON_CAP) -> bytes:
        response, data = await self.send("GET", url, doing, cap=cap)
        if response.status_code >= 400:
            raise self.error(response.status_code, data, doing)
        return data

    async def pages(self, path: str, doing: str, **params: Any) -> list[dict[str, Any]]:
        """Every `results` item of a `count/next/previous/results` listing, `PAGE_SIZE` a page."""
        url: str | None = self.url(path, {**params, "page_size": PAGE_SIZE})
        items: list[dict[str, Any]] = []
        seen: set[str] = set()
        pages: set[bytes] = set()
        read = 0
        for _ in range(MAX_PAGES):
            assert url is not None
            if read >= LIST_TOTAL_CAP:
                raise RegistryError(f"{doing}: more than {LIST_TOTAL_CAP} bytes of pages; not read further")
            data = await self._get_bytes(url, doing, min(JSON_CAP, LIST_TOTAL_CAP - read))
            read += len(data)
            doc = json_of(data, doing, who="Docker Hub")
            results = doc.get("results") or []
            if not isinstance(results, list):
                raise RegistryError(f"{doing}: Docker Hub's `results` is not a list")
            items += [r for r in results if isinstance(r, dict)]
            nxt = doc.get("next")
            if not nxt:
                return items
            if not isinstance(nxt, str):
                raise RegistryError(f"{doing}: Docker Hub's `next` is not a URL")
            if not results:         # an empty page that names another: the listing would never end
                raise RegistryError(f"{doing}: Docker Hub sent an empty page that names a next one; not read further")
            fingerprint = hashlib.sha256(json.dumps(results, sort_keys=True).encode()).digest()
            if fingerprint in pages:
                raise RegistryError(f"{doing}: Docker Hub sent the same page again; not read further")
            pages.add(fingerprint)
            url = self._on_api(nxt)
            if url in seen:
                raise RegistryError(f"{doing}: Docker Hub's `next` loops back to a page already read")
            seen.add(url)
        raise RegistryError(f"{doing}: more than {MAX_PAGES} pages")

    # --- login ----------------------------------------------------------------------------
    async def bearer(self) -> Secret | None:
        """The JWT to send (None: anonymous), logging in when there is none or it is old."""
        if self.login is None:
            return None
        async with self._login_lock:
            if self._jwt is None or self.clock() >= self._jwt_until:
                self._jwt = await self._log_in(self.login)
                self._jwt_until = self.clock() + TOKEN_SECONDS
            return self._jwt

    async def _log_in(self, login: HubLogin) -> Secret:
        doing = f"logging in to Docker Hub as {login.username} ({login.source})"
        response, data = await self.send("POST", self.url("/v2/auth/token"), doing, auth=False,
                                         body={"identifier": login.username, "secret": login.secret.reveal()})
        field_name = "access_token"
        if response.status_code in (404, 405):         # no such endpoint here: the older login
            response, data = await self.send("POST", self.url("/v2/users/login"), doing, auth=False,
                                             body={"username": login.username, "password": login.secret.reveal()})
            field_name = "token"
        if response.status_code in (401, 403):
            detail = self.detail(data)
            raise AuthError(f"{doing}: Docker Hub refused the login ({response.status_code}"
                            f"{': ' + detail if detail else ''}); check the user name and the access token",
                            status=response.status_code)
        if response.status_code >= 400:
            raise self.error(response.status_code, data, doing)
        try:
            token = json.loads(data).get(field_name)
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise AuthError(f"{doing}: Docker Hub's answer carries no {field_name}")
        return Secret(token)

    # --- the endpoints --------------------------------------------------------------------
    async def tags(self, namespace: str, repo: str) -> list[dict[str, Any]]:
        """Every tag of NS/REPO with its digest, times and images (`paginated_tags`)."""
        return await self.pages(f"/v2/namespaces/{namespace}/repositories/{repo}/tags",
                                f"listing the tags of docker.io/{namespace}/{repo}")

    async def untagged_images(self, namespace: str, repo: str) -> list[dict[str, Any]]:
        """Images with no current tag (`currently_tagged=false`; the caller checks `tags[].is_current`
        too, in case the filter is not applied)."""
        return await self.pages(f"/v2/namespaces/{namespace}/repositories/{repo}/images",
                                f"listing the untagged images of docker.io/{namespace}/{repo}",
                                currently_tagged="false")

    async def repositories(self, namespace: str) -> list[str]:
        """The names of the namespace's repositories (`/v2/repositories/NS/`)."""
        items = await self.pages(f"/v2/repositories/{namespace}/", f"listing the repositories of docker.io/{namespace}")
        return sorted({r["name"] for r in items if isinstance(r.get("name"), str) and r["name"]})

    def untag_url(self, namespace: str, repo: str, tag: str) -> str:
        return self.url(f"/v2/repositories/{namespace}/{repo}/tags/{tag}/")

    async def delete_tag(self, namespace: str, repo: str, tag: str) -> None:
        """Remove the tag through Hub's tag endpoint (the image stays, untagged). NotFoundError if gone."""
        doing = f"untagging docker.io/{namespace}/{repo}:{tag}"
        response, data = await self.send("DELETE", self.untag_url(namespace, repo, tag), doing)
        if response.status_code >= 400:
            raise self.error(response.status_code, data, doing)
        if not 200 <= response.status_code < 300:       # a redirect (a proxy's login page) untagged nothing
            raise RegistryError(f"{doing}: Docker Hub API answered {response.status_code}, not the 204 of an "
                                "untag; not counted as done", status=response.status_code)

    async def untag_refused(self, namespace: str, repo: str) -> str | None:
        """Probe the tag endpoint with a tag that cannot exist (a random 128-bit name): 404 (or a
        2xx) means untags can be sent; anything else is the one-line reason they cannot."""
        probe = f"janitor-probe-{uuid.uuid4().hex}"
        try:
            response, data = await self.send("DELETE", self.untag_url(namespace, repo, probe),
                                             f"probing the tag delete endpoint of docker.io/{namespace}/{repo}")
        except JanitorError as exc:
            return f"Docker Hub's tag delete endpoint could not be probed ({exc}): nothing destructive planned"
        status = response.status_code
        if status == 404 or 200 <= status < 300:
            return None
        detail = self.detail(data)
        said = f"HTTP {status}" + (f": {detail}" if detail else "")
        if status in (401, 403):
            return (f"Docker Hub refuses tag deletes for {self.login.username if self.login else 'anonymous'} "
                    f"({said}; an access token with Read, Write & Delete is needed): nothing destructive planned")
        return f"Docker Hub's tag delete endpoint answered a probe with {said}: nothing destructive planned"
