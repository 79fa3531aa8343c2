"""Registry authentication as an `httpx.Auth` flow: anonymous, Basic, Bearer challenge.

Bearer tokens are cached per (realm, service, scope) and per request scope, so after the
first challenge every later request carries its token up front; a 401 on a cached token
refreshes it once.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from typing import Generator

import httpx

from ghcr_janitor.net.auth.challenge import Challenge, parse_challenge
from ghcr_janitor.net.auth.credentials import Credentials
from ghcr_janitor.core.errors import AuthError
from ghcr_janitor.core.reference import is_loopback

DEFAULT_TOKEN_SECONDS = 60
AUTH_BODY_CAP = 1024 * 1024     # a 401 body or a token answer is a few KB


@dataclass
class _Token:
    value: str
    expires: float


def request_scope(request: httpx.Request) -> str | None:
    """`repository:NAME:ACTIONS` for a /v2/NAME/... request, from its method."""
    path = request.url.path
    if not path.startswith("/v2/"):
        return None
    rest = path[len("/v2/"):]
    for marker in ("/manifests/", "/blobs/", "/tags/", "/referrers/"):
        if marker in rest:
            name = rest.split(marker, 1)[0]
            break
    else:
        return None
    method = request.method.upper()
    if method in ("GET", "HEAD"):
        actions = "pull"
    elif method == "DELETE":
        actions = "delete"
    else:
        actions = "pull,push"
    return f"repository:{name}:{actions}"


class RegistryAuth(httpx.Auth):
    """Answers Basic and Bearer challenges for one registry host."""

    # Bodies are read only where the flow needs them (token answers, 401s): reading every
    # response here would defeat the size cap the registry client applies while streaming.
    requires_response_body = False

    def __init__(self, credentials: Credentials | None, insecure_ok: bool = False):
        self._credentials = credentials
        self._insecure_ok = insecure_ok
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}      # keyed by request scope or challenge key
        self._basic = False
        self._origin: tuple[str, bytes] | None = None   # (scheme, host:port) of the first request
        self.token_requests = 0

    def __repr__(self) -> str:
        user = self._credentials.username if self._credentials else None
        return f"RegistryAuth(user={user!r}, tokens={len(self._tokens)})"

    # --- helpers -------------------------------------------------------------
    def _basic_header(self) -> str:
        assert self._credentials is not None
        raw = f"{self._credentials.username}:{self._credentials.secret.reveal()}"
        return "Basic " + base64.b64encode(raw.encode()).decode()

    def _check_transport(self, url: httpx.URL) -> None:
        """Never send credentials over plain HTTP to a non-loopback host."""
        if url.scheme == "http" and not is_loopback(url.host):
            raise AuthError(
                f"refusing to send credentials over plain HTTP to {url.host}: use HTTPS"
            )

    def _cached(self, key: str | None) -> str | None:
        if key is None:
            return None
        with self._lock:
            token = self._tokens.get(key)
        if token and token.expires > time.monotonic():
            return token.value
        return None

    def _store(self, keys: list[str | None], value: str, seconds: float) -> None:
        expires = time.monotonic() + max(seconds - 5, 1)
        with self._lock:
            for key in keys:
                if key:
                    self._tokens[key] = _Token(value, expires)

    def _token_request(self, challenge: Challenge, scope: str | None) -> httpx.Request:
        realm = challenge.realm
        if not realm:
            raise AuthError("registry sent a Bearer challenge without a realm")
        params: list[tuple[str, str]] = []
        if challenge.params.get("service"):
            params.append(("service", challenge.params["service"]))
        scopes = challenge.params.get("scope") or scope
        for item in (scopes or "").split(" "):
            if item:
                params.append(("scope", item))
        url = httpx.URL(realm).copy_merge_params(params)
        headers = {}
        if self._credentials is not None:
            self._check_transport(url)
            headers["Authorization"] = self._basic_header()
        return httpx.Request("GET", url, headers=headers)

    def _read_token(self, response: httpx.Response, realm: str) -> tuple[str, float]:
        if response.status_code in (401, 403):
            raise AuthError(
                f"token endpoint {httpx.URL(realm).host} refused the credentials ({response.status_code})",
                status=response.status_code,
            )
        if response.status_code != 200:
            raise AuthError(f"token endpoint {httpx.URL(realm).host} answered {response.status_code}",
                            status=response.status_code)
        try:
            doc = json.loads(response.content)
            value = doc.get("token") or doc.get("access_token")
            seconds = float(doc.get("expires_in") or DEFAULT_TOKEN_SECONDS)
        except (ValueError, AttributeError, TypeError):
            raise AuthError(f"token endpoint {httpx.URL(realm).host} returned an unreadable answer") from None
        if not isinstance(value, str) or not value:
            raise AuthError(f"token endpoint {httpx.URL(realm).host} returned no token")
        return value, seconds

    # --- the flow -------------------------------------------------------------
    @staticmethod
    def _needs_body(response: httpx.Response, original: httpx.Request) -> bool:
        """A 401 or a token answer is read here; one that says it is huge is refused unread."""
        needed = response.status_code == 401 or response.request is not original
        length = response.headers.get("content-length")
        if needed and length and length.isdigit() and int(length) > AUTH_BODY_CAP:
            raise AuthError(f"{response.request.url.host} sent a {length}-byte answer to an auth request "
                            f"(more than {AUTH_BODY_CAP}): refused")
        return needed

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        flow = self.auth_flow(request)
        sent = next(flow)
        while True:
            response = yield sent
            if self._needs_body(response, request):
                response.read()
            try:
                sent = flow.send(response)
            except StopIteration:
                return

    async def async_auth_flow(self, request: httpx.Request):
        flow = self.auth_flow(request)
        sent = next(flow)
        while True:
            response = yield sent
            if self._needs_body(response, request):
                await response.aread()
            try:
                sent = flow.send(response)
            except StopIteration:
                return

    def _same_origin(self, url: httpx.URL) -> bool:
        """Credentials go to the registry this client was made for (the first request's scheme and
        host), never to a host a Link header or redirect names."""
        origin = (url.scheme, url.netloc)
        with self._lock:
            if self._origin is None:
                self._origin = origin
            return self._origin == origin

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if not self._same_origin(request.url):
            yield request                           # another host: no credentials, no challenge answered
            return
        scope = request_scope(request)
        token = self._cached(scope)
        if token:
            if self._credentials is not None:
                self._check_transport(request.url)
            request.headers["Authorization"] = f"Bearer {token}"
        elif self._basic and self._credentials is not None:
            self._check_transport(request.url)
            request.headers["Authorization"] = self._basic_header()
        response = yield request
        if response.status_code != 401:
            return
        challenge = parse_challenge(response.headers.get("WWW-Authenticate"))
        if challenge is None:
            return
        if challenge.scheme == "basic":
            if self._credentials is None or self._basic:
                return
            self._check_transport(request.url)
            self._basic = True
            request.headers["Authorization"] = self._basic_header()
            yield request
            return
        if challenge.scheme != "bearer":
            return
        token_request = self._token_request(challenge, scope)
        if "timeout" in request.extensions:        # the token endpoint gets the request's own timeouts
            token_request.extensions["timeout"] = request.extensions["timeout"]
        token_response = yield token_request
        self.token_requests += 1
        value, seconds = self._read_token(token_response, challenge.realm or "")
        key = f"{challenge.realm}|{challenge.params.get('service')}|{challenge.params.get('scope') or scope}"
        self._store([scope, key], value, seconds)
        request.headers["Authorization"] = f"Bearer {value}"
        yield request
