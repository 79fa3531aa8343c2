"""GitHub REST: the shared client (`GitHubRest`) and the Packages API for container versions.

`GitHubRest` is what every GitHub store shares: the token header, rate limits (formats.md
§6(d), gha-cache.md §1.8): it waits for `x-ratelimit-reset` once `x-ratelimit-remaining`
reaches 0 (as any client of the run saw it: the primary budget is the token's, `RequestBudget`),
waits `retry-after` (else ≥60 s, doubling) on 403/429 secondary limits, and never retries without
sleeping. DELETEs are paced adaptively (net/pacing.py): as fast as GitHub accepts them, slower on
429, and none at all on an endpoint after a secondary-limit 403 (`SecondaryLimitStop`). A connection that cannot be made (refused, DNS,
connect timeout) gets a short, bounded retry, then "connection failed (HOST: REASON)", as a
registry's; error messages never carry the token, even where a server echoes it. Every call is recorded as (method, path?query,
status) in `calls`. `sleep` and `clock` are injectable for tests.

`GitHubPackages` adds container packages: find the owner's endpoint prefix (org, the token's
own user, or another user), list versions (Link pagination, followed verbatim), delete one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import AsyncIterator, Awaitable, Callable
from urllib.parse import quote

import httpx

from ghcr_janitor.net.auth.secret import Secret
from ghcr_janitor.net.budget import RequestBudget
from ghcr_janitor.net.redact import scrub
from ghcr_janitor.net.pacing import DeletePacer, RateLimitError, SecondaryLimitStop
from ghcr_janitor.core.errors import AuthError, NetworkError, NotFoundError, RegistryError, UsageError
from ghcr_janitor.net.http import (
    RequestLog, connection_failed, describe_error, failure_reason, retry_after_seconds,
)
from ghcr_janitor.core.reference import is_loopback
from ghcr_janitor.core.settings import DEFAULT_API_URL, HttpSettings
from ghcr_janitor.net.links import next_link
from ghcr_janitor.net.transport import shared_ssl_context
from ghcr_janitor.core.timeparse import parse_time

log = logging.getLogger("ghcr_janitor.github")

API_VERSION = "2022-11-28"
PER_PAGE = 100
MAX_PAGES = 10_000
SECONDARY_MIN_WAIT = 60.0          # docs: "wait at least one minute", then back off exponentially
MAX_BACKOFF = 900.0
MAX_RATE_LIMIT_WAITS = 6           # per call, before giving up with RateLimitError
MAX_TRANSIENT_RETRIES = 4          # 5xx / connections dropped after connecting, per call
# A connection that cannot be made (refused, DNS failure, connect timeout) is no transient 5xx: the
# API is down or GITHUB_API_URL is wrong. Retry briefly (a blip), then fail as a registry does:
# "connection failed (HOST: REASON)". Refusals and DNS failures are instant: 3 attempts, 0.5 s then 1 s
# apart. A connect timeout already waited CONNECT_TIMEOUT: 2 attempts.
CONNECT_ATTEMPTS = 3
CONNECT_TIMEOUT_ATTEMPTS = 2
CONNECT_WAIT = 0.5                 # then doubles
CONNECT_TIMEOUT = 10.0             # seconds to open a connection (at most $JANITOR_HTTP_TIMEOUT)
DEFAULT_MAX_WAIT = 3700.0          # a primary window is at most an hour: honour it fully
MESSAGE_CAP = 200
TOKEN_MISSING = ("no GitHub token for the Packages API: set GITHUB_TOKEN or GH_TOKEN, "
                 "pass --password-stdin, or `docker login ghcr.io` with a token")
DOWNLOAD_LIMIT = "cannot delete: public version with more than 5000 downloads; ask GitHub support"

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def github_token(options) -> Secret | None:
    """The GitHub token (flags, GITHUB_TOKEN, GH_TOKEN, docker config for ghcr.io), from the
    connect options and their settings (`core.settings` read the environment)."""
    from ghcr_janitor.net.auth.credentials import find_credentials

    credentials = find_credentials("ghcr.io", options.username, options.password, options.settings)
    return credentials.secret if credentials is not None and not credentials.identity_token else None


class ConnectionFailed(NetworkError):
    """GitHub's API could not be reached (refused, DNS failure, connect timeout), after a short retry."""


class DownloadLimitError(RegistryError):
    """GitHub refuses to delete a public version with more than 5,000 downloads."""


@dataclass(frozen=True)
class PackageVersion:
    """One container package version: `name` is the manifest digest."""

    id: int
    name: str
    tags: tuple[str, ...]
    created_at: datetime | None
    updated_at: datetime | None


def parse_version(item: object) -> PackageVersion:
    """A version object as documented (formats.md §6(b)); RegistryError if malformed."""
    try:
        assert isinstance(item, dict)
        vid, name = item["id"], item["name"]
        assert isinstance(vid, int) and not isinstance(vid, bool) and isinstance(name, str)
        tags = ((item.get("metadata") or {}).get("container") or {}).get("tags") or []
        assert isinstance(tags, list) and all(isinstance(t, str) for t in tags)
    except (AssertionError, KeyError, AttributeError, TypeError):
        raise RegistryError("GitHub API: a package version in the listing is malformed") from None
    return PackageVersion(vid, name, tuple(sorted(tags)), parse_time(item.get("created_at")),
                          parse_time(item.get("updated_at")))


def redact(text: str, response: httpx.Response) -> str:
    """`text` without the token its request carried (a proxy or server that echoes the
    Authorization header must not put it in our error line; `net.redact.scrub`)."""
    try:
        auth = response.request.headers.get("authorization") or ""
    except RuntimeError:            # a response built without a request
        return text
    return scrub(text, [auth.partition(" ")[2].strip()])


def _message(response: httpx.Response) -> str:
    """GitHub's `message` (one line, capped, without the token), or the status text."""
    try:
        text = str(response.json().get("message") or "")
    except Exception:  # not JSON, or not an object
        text = ""
    text = " ".join(redact(text, response).split())[:MESSAGE_CAP]
    return text or response.reason_phrase or str(response.status_code)


def _is_secondary(response: httpx.Response) -> bool:
    """A 403/429 that says it is a secondary limit (its message, or a retry-after without the
    primary budget spent: docs "Rate limits for the REST API")."""
    message = _message(response).lower()
    return ("secondary rate limit" in message or "abuse" in message
            or response.headers.get("retry-after") is not None)


def _is_download_limit(message: str) -> bool:
    lowered = message.lower()
    return "download" in lowered and ("5000" in lowered or "5,000" in lowered)


def _unauthorised(response: httpx.Response) -> AuthError:
    return AuthError(f"GitHub API rejected the token (401: {_message(response)}); check GITHUB_TOKEN/GH_TOKEN",
                     status=401)


def _int_header(response: httpx.Response, name: str) -> int | None:
    value = response.headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class GitHubRest:
    """One token against one REST base URL: requests with rate limits, pacing and a call log."""

    token_missing = TOKEN_MISSING
    delete_endpoint = "DELETE"          # the REST endpoint its deletes go to (one delete window per run)

    def __init__(self, token: Secret | None, *, api_url: str = DEFAULT_API_URL,
                 client: httpx.AsyncClient | None = None, sleep: Sleep | None = None, clock: Clock | None = None,
                 deletes_per_minute: float | None = None,
                 max_wait: float = DEFAULT_MAX_WAIT, log_to: RequestLog | None = None,
                 budget: RequestBudget | None = None, timeout: float | None = None):
        if deletes_per_minute is not None and deletes_per_minute <= 0:
            raise UsageError("deletes per minute must be positive")
        api = httpx.URL(api_url.rstrip("/"))
        if api.scheme not in ("https", "http") or not api.host:
            raise UsageError(f"GITHUB_API_URL must be an http(s) URL, got {api_url!r}")
        if api.scheme == "http" and not is_loopback(api.host):
            raise UsageError(f"GITHUB_API_URL {api_url!r}: refusing to send a token over plain HTTP")
        self.api_url = str(api).rstrip("/")
        self._token = token
        if client is None:
            timeout = HttpSettings.timeout if timeout is None else timeout
            client = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
                                       follow_redirects=False, headers={"User-Agent": "ghcr-janitor"},
                                       verify=shared_ssl_context())
        self.client = client
        self.sleep: Sleep = sleep or _sleep
        self.clock: Clock = clock or time.time
        self.max_wait = max_wait
        self.log_to = log_to
        self.calls: list[tuple[str, str, int]] = []
        self.budget_shared = budget if budget is not None else RequestBudget()
        # The user's cap (JANITOR_*_DELETES_PER_MINUTE) bounds the adaptive rate; the endpoint's
        # window (the documented 900 points a minute) is the run's, shared by every target.
        self.pacer = DeletePacer(deletes_per_minute,
                                 self.budget_shared.endpoint(f"{self.api_url} {self.delete_endpoint}"))
        self._pace_lock = asyncio.Lock()
        self._remaining: int | None = None
        self._reset: float | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.api_url})"

    @property
    def budget(self) -> tuple[int | None, float | None]:
        """(x-ratelimit-remaining, x-ratelimit-reset as epoch seconds) as last seen."""
        return self._remaining, self._reset

    # --- plumbing ------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        if not self._token:
            raise AuthError(self.token_missing)
        return {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION,
                "Authorization": f"Bearer {self._token.reveal()}"}

    def _record(self, method: str, url: httpx.URL, status: int) -> None:
        self.calls.append((method, url.raw_path.decode("ascii"), status))
        if self.log_to is not None:
            self.log_to.record(method, str(url.copy_with(query=None)), status)
        log.debug("%s %s -> %s", method, url.path, status)

    def _note_limits(self, response: httpx.Response) -> None:
        remaining = _int_header(response, "x-ratelimit-remaining")
        reset = _int_header(response, "x-ratelimit-reset")
        if remaining is not None:
            self._remaining, self._reset = remaining, float(reset) if reset is not None else None
            self.budget_shared.note(self._remaining, self._reset)

    async def _wait(self, seconds: float, why: str) -> None:
        if seconds > self.max_wait:
            until = datetime.fromtimestamp(self.clock() + seconds, timezone.utc).strftime("%H:%M:%S UTC")
            raise RateLimitError(f"GitHub API {why}: it asks to wait until {until} "
                                 f"({seconds:.0f}s, over the {self.max_wait:.0f}s limit); rerun later")
        log.warning("GitHub API %s: waiting %.0fs", why, seconds)
        await self.sleep(seconds)

    async def _respect_primary(self) -> None:
        """Before a call: if the run's primary budget is spent (this client or another of the run
        saw x-ratelimit-remaining: 0), sleep until it resets."""
        shared = self.budget_shared
        remaining, reset = (shared.remaining, shared.reset) if shared.remaining is not None else (self._remaining, self._reset)
        if remaining == 0 and reset is not None:
            wait = reset - self.clock() + 1.0
            if wait > 0:
                await self._wait(wait, "rate limit exhausted (x-ratelimit-remaining: 0)")
            self._remaining = None
            if shared.remaining == 0:
                shared.remaining = None

    async def _pace_delete(self) -> None:
        """Wait for the pacer's next slot (SecondaryLimitStop, unsent, once the endpoint tripped)."""
        async with self._pace_lock:          # one wait, as the pacer says (no re-check loop: a sleep
            wait = self.pacer.delay(self.clock())     # that returns early must not become a busy loop)
            if wait > 0:
                await self._pace_wait(wait)
            self.pacer.sent(self.clock())

    async def _pace_wait(self, seconds: float) -> None:
        await self.sleep(seconds)

    def _after_delete(self, response: httpx.Response, target: httpx.URL) -> None:
        """Tell the pacer how a DELETE was answered; SecondaryLimitStop on a secondary-limit 403."""
        now, status = self.clock(), response.status_code
        primary = _int_header(response, "x-ratelimit-remaining") == 0
        if status == 403 and not primary and _is_secondary(response):
            hinted = retry_after_seconds(response.headers)
            until = datetime.fromtimestamp(now + (hinted if hinted is not None else SECONDARY_MIN_WAIT),
                                           timezone.utc).strftime("%H:%M:%S UTC")
            endpoint = target.path.rsplit("/", 1)[0] + "/{id}"
            line = (f"GitHub API: secondary rate limit on DELETE {endpoint} (403: {_message(response)}); "
                    f"no more deletes on it this run (GitHub may ban integrations that continue): rerun after {until}")
            self.pacer.trip(line)
            log.error("%s", line)
            raise SecondaryLimitStop(line, status=403)
        if status == 429 and not primary:
            self.pacer.throttled(now, retry_after_seconds(response.headers))
            log.info("GitHub API DELETE throttled (429): now %.0f deletes a minute", self.pacer.rate)
        elif status < 400 or status == 404:
            self.pacer.clean(now)

    def _rate_limit_wait(self, response: httpx.Response, hits: int) -> float | None:
        """Seconds to wait if `response` is a rate limit (403/429), else None."""
        if response.status_code not in (403, 429):
            return None
        hinted = retry_after_seconds(response.headers)
        if hinted is not None:
            return max(hinted, 1.0)
        if _int_header(response, "x-ratelimit-remaining") == 0 and self._reset is not None:
            return max(self._reset - self.clock() + 1.0, 1.0)
        message = _message(response).lower()
        if response.status_code == 429 or "rate limit" in message or "abuse" in message:
            return min(SECONDARY_MIN_WAIT * 2 ** hits, MAX_BACKOFF)
        return None

    async def request(self, method: str, url: str | httpx.URL) -> tuple[httpx.Response, bool]:
        """Send one REST call, waiting out rate limits and retrying transient failures.

        Returns (final response, whether it took more than one attempt).
        """
        headers = self._headers()
        hits = transient = unconnected = 0
        attempts = 0
        while True:
            await self._respect_primary()
            if method == "DELETE":
                await self._pace_delete()
            attempts += 1
            self.budget_shared.spend()
            target = httpx.URL(url)
            try:
                response = await self.client.request(method, target, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:      # nothing was sent
                self._record(method, target, 0)
                unconnected += 1
                bound = CONNECT_TIMEOUT_ATTEMPTS if isinstance(exc, httpx.ConnectTimeout) else CONNECT_ATTEMPTS
                if unconnected >= bound:
                    raise ConnectionFailed(connection_failed(exc, target.netloc.decode("ascii", "replace"))) from None
                log.info("GitHub API %s %s: %s; retrying", method, target.path,
                         connection_failed(exc, target.netloc.decode("ascii", "replace")))
                await self.sleep(CONNECT_WAIT * 2 ** (unconnected - 1))
                continue
            except httpx.TransportError as exc:
                self._record(method, target, 0)
                transient += 1
                if transient > MAX_TRANSIENT_RETRIES:
                    host = target.netloc.decode("ascii", "replace")
                    raise NetworkError(f"GitHub API {method} {target.path}: connection lost ({host}: "
                                       f"{type(exc).__name__}: {failure_reason(exc)})") from None
                await self.sleep(2.0 ** transient)
                continue
            except httpx.HTTPError as exc:      # not a transport failure (a URL httpx refuses, ...)
                self._record(method, target, 0)
                raise NetworkError(f"GitHub API {method} {target.path}: {describe_error(exc)}") from None
            self._record(method, response.request.url, response.status_code)
            self._note_limits(response)
            if method == "DELETE":
                self._after_delete(response, target)
            wait = self._rate_limit_wait(response, hits)
            if wait is not None:
                hits += 1
                if hits > MAX_RATE_LIMIT_WAITS:
                    raise RateLimitError(f"GitHub API {method} {target.path}: still rate-limited after "
                                         f"{MAX_RATE_LIMIT_WAITS} waits ({response.status_code}: {_message(response)})",
                                         status=response.status_code)
                await self._wait(wait, f"rate limit ({response.status_code})")
                continue
            if response.status_code in (500, 502, 503, 504) and transient < MAX_TRANSIENT_RETRIES:
                transient += 1
                await self.sleep(2.0 ** transient)
                continue
            return response, attempts > 1

    async def _get(self, path: str) -> httpx.Response:
        response, _ = await self.request("GET", f"{self.api_url}{path}")
        if response.status_code == 401:
            raise _unauthorised(response)
        return response

    def next_page(self, response: httpx.Response, what: str) -> str | None:
        """The absolute `Link: rel="next"` URL (used as written), refusing other hosts."""
        link = next_link(response.headers.get("link"))
        if not link:
            return None
        nxt = response.request.url.join(link)
        base = httpx.URL(self.api_url)
        if (nxt.scheme, nxt.host, nxt.port) != (base.scheme, base.host, base.port):
            raise RegistryError(f"{what}: next page is on another host ({nxt.host}); refusing "
                                "to send the token there")
        return str(nxt)

    async def get_pages(self, url: str, what: str, max_pages: int = MAX_PAGES) -> AsyncIterator[httpx.Response]:
        """Every page of a listing: GET `url`, then each `Link: rel="next"` (at most `max_pages`).

        The caller checks each answer; raising (or breaking) ends the listing.
        """
        next_url: str | None = url
        for _ in range(max_pages):
            assert next_url is not None
            response, _ = await self.request("GET", next_url)
            yield response
            next_url = self.next_page(response, what)
            if next_url is None:
                return
        raise RegistryError(f"{what}: more than {max_pages} pages")

    async def aclose(self) -> None:
        await self.client.aclose()


class GitHubPackages(GitHubRest):
    """REST access to one container package `owner/package` (package may contain `/`)."""

    delete_endpoint = "DELETE /{owner}/packages/container/{package}/versions/{id}"

    def __init__(self, owner: str, package: str, token: Secret | None, *, owner_type: str | None = None,
                 known_owners: dict[str, str] | None = None, **options):
        if owner_type not in (None, "org", "user"):
            raise UsageError(f"--owner-type {owner_type!r}: expected org or user")
        super().__init__(token, **options)
        self.owner, self.package = owner, package
        self.owner_type = owner_type            # given, or learned by detect_owner()
        self.owner_type_given = owner_type is not None
        self.token_login: str | None = None     # the token's user, when GET /user told us
        self._prefix: str | None = None
        self._detect_lock = asyncio.Lock()
        # Owner -> endpoint prefix learned by another target of the same run (one lookup per owner).
        self.known_owners = known_owners if known_owners is not None else {}

    def __repr__(self) -> str:
        return f"GitHubPackages({self.api_url}, {self.owner}/{self.package}, owner_type={self.owner_type})"

    # --- owner ---------------------------------------------------------------------

    async def _login(self) -> str | None:
        """The token's user (GET /user), or None for tokens that are not a user (Actions)."""
        response = await self._get("/user")
        if response.status_code == 200:
            try:
                login = response.json().get("login")
            except (ValueError, AttributeError):
                return None
            return login if isinstance(login, str) else None
        return None

    async def prefix(self) -> str:
        """`/orgs/OWNER`, `/user` (the token's own packages) or `/users/OWNER`."""
        async with self._detect_lock:
            if self._prefix is not None:
                return self._prefix
            if self.owner_type is None and self.owner.lower() in self.known_owners:
                self._prefix = self.known_owners[self.owner.lower()]
                self.owner_type = "org" if self._prefix.startswith("/orgs/") else "user"
                return self._prefix
            owner = quote(self.owner, safe="")
            if self.owner_type is None:
                response = await self._get(f"/orgs/{owner}")
                if response.status_code == 200:
                    self.owner_type = "org"
                elif response.status_code == 404:
                    self.owner_type = "user"
                else:
                    raise RegistryError(f"GitHub API: looking up owner {self.owner!r} answered "
                                        f"{response.status_code}: {_message(response)}", status=response.status_code)
            if self.owner_type == "org":
                self._prefix = f"/orgs/{owner}"
            else:
                self.token_login = await self._login()
                same = self.token_login is not None and self.token_login.lower() == self.owner.lower()
                self._prefix = "/user" if same else f"/users/{owner}"
            if not self.owner_type_given:
                self.known_owners[self.owner.lower()] = self._prefix
            return self._prefix

    def _versions_path(self, prefix: str) -> str:
        return f"{prefix}/packages/container/{quote(self.package, safe='')}/versions"

    def _where(self) -> str:
        kind = {"org": "organisation", "user": "user"}.get(self.owner_type or "", "owner")
        how = "given by --owner-type" if self.owner_type_given else "detected"
        return f"package {self.package!r} of {kind} {self.owner!r} ({how})"

    async def _not_found(self, path: str) -> NotFoundError:
        """A 404 on the package: say which owner type was tried and what looks wrong."""
        hint = "check the name, and that the token may read it (read:packages; org packages need access)"
        if self.owner_type == "user" and self.token_login and self.token_login.lower() != self.owner.lower():
            hint = (f"the token belongs to {self.token_login!r}, not {self.owner!r}: another user's private "
                    f"packages are not visible; use a token of {self.owner!r}")
        if self.owner_type_given:
            is_org = (await self._get(f"/orgs/{quote(self.owner, safe='')}")).status_code == 200
            if self.owner_type == "user" and is_org:
                hint = f"{self.owner!r} is an organisation: use --owner-type org (or omit it)"
            elif self.owner_type == "org" and not is_org:
                hint = f"{self.owner!r} is not an organisation: use --owner-type user (or omit it)"
        return NotFoundError(f"{self._where()} not found (GET {path} -> 404); {hint}", status=404)

    def _forbidden(self, response: httpx.Response, doing: str, needs: str) -> RegistryError:
        message = _message(response)
        if _is_download_limit(message):
            return DownloadLimitError(DOWNLOAD_LIMIT, status=response.status_code)
        granted = response.headers.get("x-oauth-scopes")
        have = f"; the token has scopes: {granted or 'none'}" if granted is not None else ""
        return AuthError(f"{doing} {self._where()}: access denied (403: {message}); the token needs {needs}{have}",
                         status=403)

    # --- versions ------------------------------------------------------------------
    async def pages(self) -> AsyncIterator[list[PackageVersion]]:
        """Versions page by page (newest first, as GitHub lists them)."""
        path = self._versions_path(await self.prefix())
        async for response in self.get_pages(f"{self.api_url}{path}?per_page={PER_PAGE}",
                                             f"listing versions of {self._where()}"):
            if response.status_code == 404:
                raise await self._not_found(path)
            if response.status_code == 403:
                raise self._forbidden(response, "listing versions of", "the read:packages scope")
            if response.status_code == 401:
                raise _unauthorised(response)
            if response.status_code != 200:
                raise RegistryError(f"listing versions of {self._where()}: GitHub API answered "
                                    f"{response.status_code}: {_message(response)}", status=response.status_code)
            try:
                items = response.json()
            except ValueError:
                raise RegistryError(f"listing versions of {self._where()}: answer is not JSON") from None
            if not isinstance(items, list):
                raise RegistryError(f"listing versions of {self._where()}: answer is not a list")
            yield [parse_version(item) for item in items]

    async def list_packages(self) -> list[str]:
        """Names of the owner's container packages (for `ghcr.io/OWNER/*`), every page."""
        prefix = await self.prefix()
        names: list[str] = []
        async for response in self.get_pages(f"{self.api_url}{prefix}/packages?package_type=container&per_page={PER_PAGE}",
                                             f"listing the container packages of {self.owner!r}"):
            if response.status_code in (401, 403, 404):
                raise AuthError(f"listing the container packages of {self.owner!r} answered {response.status_code} "
                                f"({_message(response)}): it needs a token with read:packages that may list them; "
                                "a workflow's GITHUB_TOKEN cannot list packages (use a PAT or a GitHub App token), "
                                "or name each package", status=response.status_code)
            if response.status_code != 200:
                raise RegistryError(f"listing the container packages of {self.owner!r}: GitHub API answered "
                                    f"{response.status_code}: {_message(response)}", status=response.status_code)
            try:
                items = response.json()
                names += [item["name"] for item in items if isinstance(item.get("name"), str)]
            except (ValueError, TypeError, AttributeError, KeyError):
                raise RegistryError(f"listing the container packages of {self.owner!r}: malformed answer") from None
        return sorted(set(names))

    async def list_versions(self) -> list[PackageVersion]:
        """Every active version of the package."""
        found: list[PackageVersion] = []
        async for page in self.pages():
            found += page
        return found

    async def delete_version(self, version_id: int) -> None:
        """DELETE one version (204). NotFoundError if it was already gone; a 404 on a retry is success."""
        path = f"{self._versions_path(await self.prefix())}/{int(version_id)}"
        response, retried = await self.request("DELETE", f"{self.api_url}{path}")
        status = response.status_code
        if status in (200, 202, 204):
            return
        if status == 404:
            if retried:
                return
            raise NotFoundError(f"version {version_id} of {self._where()} not found (already deleted?)", status=404)
        message = _message(response)
        if _is_download_limit(message):
            raise DownloadLimitError(DOWNLOAD_LIMIT, status=status)
        if status == 403:
            raise self._forbidden(response, f"deleting version {version_id} of",
                                  "the read:packages and delete:packages scopes and admin rights on the package")
        if status == 401:
            raise _unauthorised(response)
        raise RegistryError(f"deleting version {version_id} of {self._where()}: GitHub API answered "
                            f"{status}: {message}", status=status)
