"""HTTP client factory and the retry policy shared by every backend.

Retries (stamina: exponential backoff with jitter, bounded attempts and deadline) cover
connect errors, timeouts, dropped connections and 429/502/503/504, honouring
`Retry-After`. Every request the janitor sends goes through `send_with_retries`, which
also records it in the run's request log (method, URL path, status) for reports and tests.
"""

from __future__ import annotations

import email.utils
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import stamina

log = logging.getLogger("ghcr_janitor.http")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_ATTEMPTS = 6
DEADLINE_SECONDS = 120.0
MAX_RETRY_AFTER_SECONDS = 300.0


class RetryableStatus(Exception):
    """Raised inside the retry loop for a status worth retrying."""

    def __init__(self, response: httpx.Response):
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or HTTP date), capped."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, min(seconds, MAX_RETRY_AFTER_SECONDS))


def _backoff_hook(exc: Exception) -> bool | float:
    if isinstance(exc, RetryableStatus):
        hinted = retry_after_seconds(exc.response.headers)
        return hinted if hinted is not None else True
    return isinstance(exc, (httpx.TransportError,))


@dataclass
class RequestLog:
    """Every request sent (after auth), for reports and for tests that assert on it."""

    entries: list[tuple[str, str, int]] = field(default_factory=list)

    def record(self, method: str, url: str, status: int) -> None:
        self.entries.append((method, url, status))

    def count(self, method: str | None = None) -> int:
        return sum(1 for m, _, _ in self.entries if method is None or m == method)

    def mutating(self) -> list[tuple[str, str, int]]:
        return [e for e in self.entries if e[0] in ("POST", "PUT", "PATCH", "DELETE")]


async def send_with_retries(
    client: httpx.AsyncClient,
    method: str,
    url: str | httpx.URL,
    log_to: RequestLog | None = None,
    stream: bool = False,
    attempts: int = MAX_ATTEMPTS,
    deadline: float = DEADLINE_SECONDS,
    **kwargs: Any,
) -> httpx.Response:
    """Send a request, retrying transient failures; returns the last response.

    With `stream=True` the body is not read (caller reads and closes it).
    A retryable status that persists past the last attempt is returned as is.
    """
    response: httpx.Response | None = None
    follow_redirects = kwargs.pop("follow_redirects", False)
    try:
        for attempt in stamina.retry_context(on=_backoff_hook, attempts=attempts, timeout=deadline,
                                             wait_initial=0.2, wait_max=10.0, wait_jitter=0.5):
            with attempt:
                request = client.build_request(method, url, **kwargs)
                response = await client.send(request, stream=stream, follow_redirects=follow_redirects)
                if log_to is not None:
                    log_to.record(method, str(response.request.url.copy_with(query=None)), response.status_code)
                log.debug("%s %s -> %s", method, response.request.url.path, response.status_code)
                if response.status_code in RETRY_STATUSES:
                    if stream:
                        await response.aclose()
                    raise RetryableStatus(response)
    except RetryableStatus as exc:
        return exc.response
    assert response is not None
    return response


def make_client(concurrency: int, auth: httpx.Auth | None, base_url: str = "", http2: bool = True,
                timeout: float = 30.0) -> httpx.AsyncClient:
    """An AsyncClient with a pool sized for `concurrency` and HTTP/2 where TLS allows it."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    use_http2 = http2 and base_url.startswith("https://")
    if use_http2:
        try:
            import h2  # noqa: F401
        except ImportError:  # pragma: no cover - h2 is a declared dependency
            use_http2 = False
    return httpx.AsyncClient(
        base_url=base_url, auth=auth, limits=limits, http2=use_http2,
        timeout=httpx.Timeout(timeout, pool=None), follow_redirects=False,
        headers={"User-Agent": "ghcr-janitor"},
    )
