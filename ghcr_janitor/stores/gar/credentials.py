"""The run's Google credentials for one host, found once on first use (nothing is asked, no helper
run and no metadata server contacted, before a request needs them)."""

from __future__ import annotations

import threading
from typing import Any, Callable, Generator

import httpx

from ghcr_janitor.core.errors import AuthError
from ghcr_janitor.net.auth.credentials import Credentials
from ghcr_janitor.net.auth.flow import RegistryAuth
from ghcr_janitor.net.auth.secret import Secret
from ghcr_janitor.stores.gar import tokens


class Lazy:
    """`tokens.find` for one host, called once (thread-safe); its error is raised to every caller."""

    def __init__(self, find: Callable[[], Credentials | None]):
        self._find = find
        self._lock = threading.Lock()
        self._done = False
        self._value: Credentials | None = None
        self._error: Exception | None = None

    def __repr__(self) -> str:
        return f"Lazy(found={self._done})"

    def get(self) -> Credentials | None:
        with self._lock:
            if not self._done:
                try:
                    self._value = self._find()
                except Exception as exc:          # a usage or auth error: the same one for every request
                    self._error = exc
                self._done = True
        if self._error is not None:
            raise self._error
        return self._value

    def found(self) -> Credentials | None:
        """What the lookup found, if it ran and found something (never runs it; never raises)."""
        with self._lock:
            return self._value if self._done and self._error is None else None

    def bearer(self) -> Secret:
        """The access token for the REST API (AuthError naming the sources when there is none)."""
        found = self.get()
        if not tokens.is_access_token(found):
            raise AuthError("the Artifact Registry API needs an OAuth access token: set GOOGLE_OAUTH_ACCESS_TOKEN "
                            "(gcloud auth print-access-token), run gcloud auth configure-docker, or use a service "
                            "account (GOOGLE_APPLICATION_CREDENTIALS, the metadata server)")
        assert found is not None
        return found.secret


def for_host(host: str, options: Any, token: str | None) -> Lazy:
    return Lazy(lambda: tokens.find(host, options, token))


class LazyRegistryAuth(RegistryAuth):
    """`RegistryAuth` whose credentials are found on the first request."""

    def __init__(self, lazy: Lazy):
        super().__init__(None)
        self._lazy = lazy
        self._ready = False

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if not self._ready:
            self._credentials = self._lazy.get()
            self._ready = True
        return (yield from super().auth_flow(request))
