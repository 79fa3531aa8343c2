"""ACR credentials and its token exchange, as an `httpx.Auth` for `/v2` and `/acr/v1` alike.

Where the credentials come from (`acr_credentials`, first found wins):
1. the settings file's `[hosts."NAME.azurecr.io"]` `token_env` (with `username`: a username and
   password, e.g. the admin user or a repository-scoped token; without, or with the null GUID: an
   ACR refresh token);
2. `--password-stdin` / `JANITOR_PASSWORD` (with `--username` / `JANITOR_USERNAME`);
3. `ACR_REFRESH_TOKEN` (`az acr login --name NAME --expose-token`'s accessToken is one);
4. `AZURE_ACCESS_TOKEN`, an Entra ID (AAD) access token, exchanged once at `POST /oauth2/exchange`
   (`grant_type=access_token`) for an ACR refresh token;
5. docker's config for the host: `az acr login` stores the null GUID
   `00000000-0000-0000-0000-000000000000` and an ACR refresh token; an admin user stores a password;
6. none (a registry with anonymous pull).

Each request gets an ACR access token for its own scope (`repository:REPO:pull` for `/v2` reads,
`metadata_read` for `/acr/v1` listings, `delete` for deletes, `registry:catalog:*` for catalogs),
asked once per scope and run: `POST /oauth2/token` (`grant_type=refresh_token`) with a refresh
token, `GET /oauth2/token?service=&scope=` with a username and password (Basic) or none. Tokens are
sent up front; a 401 on a cached token asks for a new one once. Secrets never appear in a message.

Where a token goes: only to the registry's own origin (`token_base`: scheme, host and port) and the
settings' `api_url` when one is set, and never over plain HTTP to a host that is not loopback (each
request is checked as it is sent, whatever built its URL). A request anywhere else (a pagination
link naming another host) goes without credentials.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from typing import Generator
from urllib.parse import urlencode

import httpx

from ghcr_janitor.core.errors import AuthError, UsageError
from ghcr_janitor.core.reference import is_loopback
from ghcr_janitor.core.settings import ACR_REFRESH_TOKEN, AZURE_ACCESS_TOKEN
from ghcr_janitor.net.auth.secret import Secret

NULL_GUID = "00000000-0000-0000-0000-000000000000"      # `az acr login`'s username for a refresh token
TOKEN_SECONDS = 50 * 60         # ACR access tokens live about 75 minutes; a 401 renews one sooner
TOKEN_BODY_CAP = 1 << 20
REFRESH, BASIC, AAD, ANONYMOUS = "refresh token", "username and password", "Entra ID token", "anonymous"


@dataclass(frozen=True)
class AcrCredentials:
    """What the token exchange starts from: a refresh token, a username and password, an Entra ID
    access token, or nothing; `source` says where it was found (for messages, never the secret)."""

    mode: str
    secret: Secret | None
    source: str
    username: str | None = None

    def __repr__(self) -> str:
        return f"AcrCredentials({self.mode} from {self.source})"


def acr_credentials(host: str, options, host_settings) -> AcrCredentials:
    """The credentials for `host`, in the order the module docstring gives."""
    from ghcr_janitor.net.auth.credentials import find_credentials

    settings = options.settings
    if host_settings.token:
        where = f"{host_settings.token_env} (settings file)"
        if host_settings.username and host_settings.username != NULL_GUID:
            return AcrCredentials(BASIC, Secret(host_settings.token), where, host_settings.username)
        return AcrCredentials(REFRESH, Secret(host_settings.token), where)
    if options.password is not None or settings.password:
        found = find_credentials(host, options.username, options.password, settings)
        assert found is not None
        return _from_docker(found)
    if settings.variable(ACR_REFRESH_TOKEN):
        return AcrCredentials(REFRESH, Secret(settings.variable(ACR_REFRESH_TOKEN) or ""), ACR_REFRESH_TOKEN)
    if settings.variable(AZURE_ACCESS_TOKEN):
        return AcrCredentials(AAD, Secret(settings.variable(AZURE_ACCESS_TOKEN) or ""), AZURE_ACCESS_TOKEN)
    found = find_credentials(host, None, None, settings)
    if found is None:
        return AcrCredentials(ANONYMOUS, None, "no credentials")
    return _from_docker(found)


def _from_docker(found) -> AcrCredentials:
    if found.identity_token or found.username == NULL_GUID:
        return AcrCredentials(REFRESH, found.secret, found.source)
    return AcrCredentials(BASIC, found.secret, found.source, found.username)


def check_token_env(host: str, host_settings) -> None:
    """A settings file naming a token variable that is unset is a usage error (before any contact)."""
    if host_settings.token_env and not host_settings.token:
        raise UsageError(f"{host}: the settings file's token_env names {host_settings.token_env}, which is not set")


def request_scope(path: str, method: str) -> str | None:
    """The ACR scope a request to `path` needs (None: none known, e.g. `/v2/`)."""
    method = method.upper()
    if path.rstrip("/") in ("/v2/_catalog", "/acr/v1/_catalog"):
        return "registry:catalog:*"
    if path.startswith("/v2/"):
        rest = path[len("/v2/"):]
        for marker in ("/manifests/", "/blobs/", "/tags/", "/referrers/"):
            if marker in rest:
                name = rest.split(marker, 1)[0]
                action = {"GET": "pull", "HEAD": "pull", "DELETE": "delete"}.get(method, "pull,push")
                return f"repository:{name}:{action}"
        return None
    if path.startswith("/acr/v1/"):
        rest = path[len("/acr/v1/"):]
        name = rest
        for marker in ("/_tags", "/_manifests"):
            if marker in rest:
                name = rest.split(marker, 1)[0]
                break
        action = {"GET": "metadata_read", "HEAD": "metadata_read", "DELETE": "delete"}.get(method, "metadata_write")
        return f"repository:{name}:{action}"
    return None


class AcrAuth(httpx.Auth):
    """Adds an ACR access token for each request's scope, exchanging the credentials as needed."""

    requires_response_body = False

    def __init__(self, credentials: AcrCredentials, service: str, token_base: str, api_base: str | None = None):
        self.credentials = credentials
        self.service = service                      # the login server name: NAME.azurecr.io
        self.token_base = token_base.rstrip("/")    # where /oauth2/* is served (the registry's base)
        # The origins a token may go to: the registry's, and the metadata API's when configured apart.
        self.origins = frozenset(_origin(httpx.URL(base)) for base in (token_base, api_base) if base)
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, float]] = {}
        self._scope_locks: dict[str, threading.Lock] = {}
        self._refresh: Secret | None = credentials.secret if credentials.mode == REFRESH else None
        self.token_requests = 0

    def __repr__(self) -> str:
        return f"AcrAuth({self.credentials!r}, service={self.service!r}, tokens={len(self._tokens)})"

    # --- the flow -----------------------------------------------------------------------------
    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        scope = request_scope(request.url.path, request.method)
        if scope is None or _origin(request.url) not in self.origins:
            yield request               # nothing to attach, or not the registry: no token goes there
            return
        self._check_transport(request.url)
        token = self._cached(scope)
        if token is None:
            # One token request per scope: concurrent requests (each on its own worker thread) wait.
            with self._lock:
                scope_lock = self._scope_locks.setdefault(scope, threading.Lock())
            with scope_lock:
                token = self._cached(scope) or (yield from self._fetch(scope, request))
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        with self._lock:                # expired or revoked: ask once more
            self._tokens.pop(scope, None)
        token = yield from self._fetch(scope, request)
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    def _cached(self, scope: str) -> str | None:
        with self._lock:
            found = self._tokens.get(scope)
        return found[0] if found and found[1] > time.monotonic() else None

    def _fetch(self, scope: str, original: httpx.Request) -> Generator[httpx.Request, httpx.Response, str]:
        if self.credentials.mode == AAD and self._refresh is None:
            exchange = self._post("/oauth2/exchange", {
                "grant_type": "access_token", "service": self.service,
                "access_token": self._reveal(self.credentials.secret)}, original)
            answer = yield exchange
            self._refresh = Secret(self._read(answer, "refresh_token", "exchanging the Entra ID token from "
                                              f"{self.credentials.source} for an ACR refresh token"))
        if self._refresh is not None:
            token_request = self._post("/oauth2/token", {
                "grant_type": "refresh_token", "service": self.service, "scope": scope,
                "refresh_token": self._refresh.reveal()}, original)
        else:
            url = httpx.URL(f"{self.token_base}/oauth2/token?" + urlencode({"service": self.service, "scope": scope}))
            headers = {}
            if self.credentials.mode == BASIC:
                self._check_transport(url)
                raw = f"{self.credentials.username}:{self._reveal(self.credentials.secret)}"
                headers["Authorization"] = "Basic " + base64.b64encode(raw.encode()).decode()
            token_request = httpx.Request("GET", url, headers=headers, extensions=dict(original.extensions))
        answer = yield token_request
        value = self._read(answer, "access_token", f"getting an ACR token for {scope} with the "
                                                   f"{self.credentials.mode} from {self.credentials.source}")
        with self._lock:
            self._tokens[scope] = (value, time.monotonic() + TOKEN_SECONDS)
        return value

    # --- helpers ------------------------------------------------------------------------------
    def _post(self, path: str, form: dict[str, str], original: httpx.Request) -> httpx.Request:
        url = httpx.URL(self.token_base + path)
        self._check_transport(url)
        return httpx.Request("POST", url, content=urlencode(form).encode(),
                             headers={"Content-Type": "application/x-www-form-urlencoded"},
                             extensions=dict(original.extensions))

    def secrets(self) -> list[str]:
        """Every secret this auth holds or was given (for scrubbing what a server echoes)."""
        held = [self._reveal(self.credentials.secret), self._reveal(self._refresh)]
        with self._lock:
            held += [value for value, _ in self._tokens.values()]
        return [s for s in held if s]

    @staticmethod
    def _reveal(secret: Secret | None) -> str:
        return secret.reveal() if secret is not None else ""

    @staticmethod
    def _check_transport(url: httpx.URL) -> None:
        if url.scheme != "https" and not (url.scheme == "http" and is_loopback(url.host)):
            raise AuthError(f"refusing to send ACR credentials over plain HTTP to {url.host}: use HTTPS")

    def _read(self, response: httpx.Response, field: str, doing: str) -> str:
        self.token_requests += 1
        length = response.headers.get("content-length")
        if length and length.isdigit() and int(length) > TOKEN_BODY_CAP:
            raise AuthError(f"{doing}: a {length}-byte answer, refused")
        response.read()
        status = response.status_code
        if status in (401, 403):
            raise AuthError(f"{doing}: refused ({status}); check the credentials and their role on the registry",
                            status=status)
        if status != 200:
            raise AuthError(f"{doing}: the token endpoint answered {status}", status=status)
        try:
            value = json.loads(response.content).get(field)
        except (ValueError, AttributeError):
            value = None
        if not isinstance(value, str) or not value:
            raise AuthError(f"{doing}: the answer holds no {field}")
        return value


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """(scheme, host, port) of `url`, the port None when it is the scheme's default."""
    port = url.port
    if port == {"https": 443, "http": 80}.get(url.scheme):
        port = None
    return url.scheme, url.host, port
