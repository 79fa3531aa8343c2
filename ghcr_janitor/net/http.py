"""HTTP client factory and the retry policy shared by every backend.

Retries (stamina: exponential backoff with jitter, bounded attempts and deadline) cover
connect errors, timeouts, dropped connections and 429/502/503/504, honouring
`Retry-After`. Every registry request goes through `send_sync` (on a `ThreadedClient` worker), which
also records it in the run's request log (method, URL path, status) for reports and tests.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from ghcr_janitor.core.errors import JanitorError, NetworkError
from ghcr_janitor.core.settings import HttpSettings
from ghcr_janitor.net.workers import halted

if TYPE_CHECKING:      # imported for real on the first retry (_retrying)
    import stamina

log = logging.getLogger("ghcr_janitor.http")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
OVERLOAD_STATUSES = frozenset({429, 503})      # the adaptive in-flight limit halves on these
MAX_RETRY_AFTER_SECONDS = 300.0

# Operators (and the fault-injection tests) tune timeouts and retries through the environment:
# core.settings reads JANITOR_HTTP_TIMEOUT and JANITOR_RETRY_*; the client carries them (`HttpSettings`).
WAIT_MAX = 10.0


def _log_retry(details: "stamina.instrumentation.RetryDetails") -> None:
    """One info line per retry, naming the cause (stamina's default is a bare warning)."""
    cause = details.caused_by
    what = f"HTTP {cause.response.status_code} from {cause.response.request.url.host}" \
        if isinstance(cause, RetryableStatus) else type(cause).__name__
    log.info("retry %d in %.1fs after %s", details.retry_num, details.wait_for, what)


_stamina_ready = False


def _retrying(hook, attempts: int, deadline: float, initial: float):
    """The one stamina retry policy: exponential backoff with jitter, bounded attempts and time.

    stamina is imported on the first retry (a run where nothing fails never loads it).
    """
    global _stamina_ready
    import stamina

    if not _stamina_ready:
        stamina.instrumentation.set_on_retry_hooks([_log_retry])
        _stamina_ready = True
    return stamina.retry_context(on=hook, attempts=attempts, timeout=deadline, wait_initial=initial,
                                 wait_max=max(WAIT_MAX, initial), wait_jitter=2.5 * initial)


class RetryableStatus(Exception):
    """Raised inside the retry loop for a status worth retrying."""

    def __init__(self, response: httpx.Response):
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or HTTP date), else Docker Hub's `X-Retry-After`
    (a unix time), capped."""
    value = headers.get("retry-after")
    if not value:
        hub = headers.get("x-retry-after")
        try:
            return max(0.0, min(float(hub) - time.time(), MAX_RETRY_AFTER_SECONDS)) if hub else None
        except ValueError:
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


def _bounded_hook(deadline_at: float, client: httpx.Client | None = None):
    """`_backoff_hook`, but a `Retry-After` that would end past the deadline stops retrying.

    (The deadline is only checked after a wait, so without this a `Retry-After: 300` would
    sleep five minutes whatever the deadline says.) The last response is then returned as is.
    Nothing is retried once `client` is closed or an interrupt halted the workers.
    """
    def hook(exc: Exception) -> bool | float:
        if halted() or (client is not None and client.is_closed):
            return False
        decision = _backoff_hook(exc)
        if decision is not True and decision is not False and time.monotonic() + decision > deadline_at:
            return False
        return decision

    return hook


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


class Abandoned(asyncio.CancelledError):
    """A request not sent (or not retried) because an interrupt halted the workers: its caller
    sees a cancellation, as for any request an interrupt leaves unsent."""


class BodyTooLarge(Exception):
    """A response body over the caller's cap (never retried)."""

    def __init__(self, size: int | None, cap: int):
        super().__init__(f"body over the {cap} byte cap")
        self.size, self.cap = size, cap


ERROR_BODY_CAP = 64 * 1024


def _read_limited(response: httpx.Response, cap: int, cut: bool = False) -> bytes:
    """At most `cap` bytes of the body. Beyond them `BodyTooLarge` (never retried); with `cut`, the
    first `cap` bytes and the rest left unread (the connection is then not reused)."""
    length = response.headers.get("content-length")
    if not cut and length and length.isdigit() and int(length) > cap:
        raise BodyTooLarge(int(length), cap)
    chunks: list[bytes] = []
    total = 0
    for chunk in response.iter_bytes():
        if total + len(chunk) > cap:
            if not cut:
                raise BodyTooLarge(None, cap)
            chunks.append(chunk[: cap - total])
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _attempt(client: httpx.Client, method: str, url: str | httpx.URL, log_to: RequestLog | None, cap: int | None,
             follow_redirects: bool, kwargs: dict[str, Any]) -> tuple[httpx.Response, bytes]:
    """One try: send, record, raise `RetryableStatus` for a status worth retrying, read the body."""
    if halted():            # interrupted (between retries): send nothing more
        raise Abandoned(f"{method} not sent: interrupted")
    if isinstance(client, RegistryClient) and not follow_redirects and isinstance(url, str) \
            and url.startswith(("http://", "https://")) and kwargs.keys() <= {"headers", "content"}:
        response = client.send_plain(method, url, kwargs.get("headers"), kwargs.get("content"))
    else:
        request = client.build_request(method, url, **kwargs)
        response = client.send(request, stream=True, follow_redirects=follow_redirects)
    if response.extensions.get("janitor.new_connection"):
        _signals.fresh = True
    try:
        if log_to is not None:       # the URL without its query (cheaper than URL.copy_with: no re-parse)
            log_to.record(method, str(response.request.url).partition("?")[0], response.status_code)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s -> %s", method, response.request.url.path, response.status_code)
        if response.status_code in RETRY_STATUSES:
            if response.status_code in OVERLOAD_STATUSES:
                _signals.overloaded = True
            raise RetryableStatus(response)
        if response.status_code >= 400:     # an error's body is for the message: never all of it
            body = _read_limited(response, ERROR_BODY_CAP, cut=True)
        elif cap is None:
            body = response.read()
        else:
            body = _read_limited(response, cap)
    finally:
        response.close()
    return response, body


def send_sync(client: httpx.Client, method: str, url: str | httpx.URL, log_to: RequestLog | None = None,
              cap: int | None = None, **kwargs: Any) -> tuple[httpx.Response, bytes]:
    """Send one request with retries; the body is read inside the retry loop.

    A connection dropped mid-body, or a body shorter than its Content-Length, is a transport
    error like any other and is retried. With `cap`, a 2xx body is read at most `cap` bytes
    (`BodyTooLarge` beyond, not retried); an error body is read to its first ERROR_BODY_CAP bytes,
    enough for its OCI error code. A retryable status that persists past the last attempt is returned
    as is (with an empty body). Attempts, deadline and first wait: the client's `HttpSettings`
    ($JANITOR_RETRY_ATTEMPTS/_DEADLINE/_WAIT through core.settings; the defaults for a plain client).

    The first attempt runs outside the retry machinery (stamina is entered only once a request
    has failed in a retryable way: it then sees that failure as its own first attempt).
    """
    policy = getattr(client, "policy", None) or HttpSettings()
    deadline_at = time.monotonic() + policy.deadline
    follow_redirects = kwargs.pop("follow_redirects", False)
    try:
        return _attempt(client, method, url, log_to, cap, follow_redirects, kwargs)
    except (RetryableStatus, httpx.TransportError) as exc:
        first: BaseException | None = exc
    _signals.retried = True
    hook = _bounded_hook(deadline_at, client)
    result: tuple[httpx.Response, bytes] | None = None
    try:
        for attempt in _retrying(hook, policy.attempts, max(0.01, deadline_at - time.monotonic()), policy.wait):
            with attempt:
                if first is not None:
                    failure, first = first, None
                    raise failure
                result = _attempt(client, method, url, log_to, cap, follow_redirects, kwargs)
    except RetryableStatus as exc:
        return exc.response, b""
    assert result is not None
    return result


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing: registry APIs do not use cookies (neither does docker's
    client), and httpx's cookie extraction wraps every response for `http.cookiejar`."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class RegistryClient(httpx.Client):
    """`httpx.Client` without a cookie jar, with a short path for plain registry requests.

    `send_plain` does what `send` does for an absolute URL with no redirects to follow (auth flow,
    transport, `response.request`), without what registry requests never need: cookies, event
    hooks, redirect bookkeeping, URL merging. About a third of httpx's own CPU per request.
    """

    def __init__(self, policy: HttpSettings | None = None, **kwargs: Any):
        self._no_cookies = _NoCookies()
        self.policy = policy or HttpSettings()       # retries and the timeout (`send_sync`)
        super().__init__(**kwargs)
        self._plain_headers = dict(self.headers.multi_items())
        self._plain_extensions = {"timeout": self.timeout.as_dict()}

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, value: Any) -> None:
        """Cookies are never kept."""

    def send_plain(self, method: str, url: str, headers: dict[str, str] | None = None,
                   content: bytes | None = None) -> httpx.Response:
        """Send one request (absolute `url`) through the auth flow; the response is streamed."""
        if self.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        merged = self._plain_headers                 # lower-case names (httpx's defaults, ours)
        if headers:
            merged = dict(merged)
            for name, value in headers.items():
                merged[name.lower()] = value
        request = httpx.Request(method, url, headers=merged, content=content,
                                extensions=dict(self._plain_extensions))
        auth = self._auth
        if auth is None or type(auth) is httpx.Auth:
            return self._send_one(request)
        flow = auth.sync_auth_flow(request)
        try:
            request = next(flow)
            while True:
                response = self._send_one(request)
                try:
                    try:
                        request = flow.send(response)
                    except StopIteration:
                        return response
                    response.read()
                except BaseException:
                    response.close()
                    raise
        finally:
            flow.close()

    def _send_one(self, request: httpx.Request) -> httpx.Response:
        response = self._transport_for_url(request.url).handle_request(request)
        response.request = request
        return response


class _Signals(threading.local):
    """What the request on this worker thread met, for the adaptive limit."""

    overloaded = False      # a 429 or 503 (or a timeout): back off
    retried = False         # the round trip includes retries and waits: not a latency sample
    fresh = False           # it opened a connection: set-up is not queueing


_signals = _Signals()

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class _Mutation:
    __slots__ = ("method", "url", "sent_ns", "started")

    def __init__(self, method: str, url: str):
        self.method, self.url = method, url
        self.sent_ns = time.monotonic_ns()
        self.started = False            # a worker began it (else it was never sent)


class Mutations:
    """The mutating requests of this process (through `ThreadedClient`), for an honest account after
    an interrupt: which are unsettled (sent, their answer never reached the caller: an interrupt
    abandoned them, so their outcome is unknown) and when the last one was sent (monotonic ns; a
    journal line written after it means its action's outcome was recorded)."""

    def __init__(self) -> None:
        self.unsettled: dict[int, _Mutation] = {}
        self.last_sent_ns = 0
        self.last_settled = True        # the last one sent was answered to its caller

    def clear(self) -> None:
        self.unsettled.clear()
        self.last_sent_ns, self.last_settled = 0, True

    def begin(self, method: str, url: str | httpx.URL) -> _Mutation:
        mutation = _Mutation(method, str(url))
        self.unsettled[id(mutation)] = mutation
        self.last_sent_ns, self.last_settled = mutation.sent_ns, False
        return mutation

    def settle(self, mutation: _Mutation) -> None:
        self.unsettled.pop(id(mutation), None)
        if mutation.sent_ns == self.last_sent_ns:
            self.last_settled = True

    def in_flight(self) -> list[str]:
        """'METHOD path' of each mutating request whose outcome is unknown."""
        return [f"{m.method} {httpx.URL(m.url).path}" for m in self.unsettled.values() if m.started]


mutations = Mutations()


class ThreadedClient:
    """A sync `httpx.Client` shared by worker threads, behind async methods.

    Measured here (benchmarks/): httpx's async connection pool costs about 2.7x the CPU per
    request of a sync Client shared by threads, and on loopback the client's CPU is what
    separates a tool from the registry's own floor. The backends stay async; each request
    (retries and body included) runs on a worker thread (`net/workers.py`). At most `workers`
    threads; how many requests are in flight at once adapts (`net/adaptive.py`), `workers`
    being its upper bound.
    """

    def __init__(self, client: httpx.Client, workers: int, initial: int | None = None):
        from ghcr_janitor.net.adaptive import AdaptiveLimit
        from ghcr_janitor.net.workers import Workers

        workers = max(1, workers)
        self.client = client
        self.limit = AdaptiveLimit(workers, initial=initial)      # starts at the bound
        self._workers = Workers(workers, self.limit)

    def __repr__(self) -> str:
        return f"ThreadedClient({self._workers!r})"

    def _job(self, method: str, url: str | httpx.URL, log_to: RequestLog | None, cap: int | None,
             kwargs: dict[str, Any], mutation: _Mutation | None = None) -> tuple[httpx.Response, bytes]:
        if mutation is not None:
            mutation.started = True
        signals = _signals
        signals.overloaded = signals.retried = signals.fresh = False
        started = time.monotonic()
        try:
            result = send_sync(self.client, method, url, log_to, cap, **kwargs)
        except httpx.HTTPError as exc:      # the store boundary: no httpx error goes further up
            if isinstance(exc, httpx.TimeoutException):
                self.limit.overloaded()
            raise NetworkError(describe_error(exc)) from exc
        if signals.overloaded or result[0].status_code in OVERLOAD_STATUSES:
            self.limit.overloaded()
        elif not (signals.retried or signals.fresh):
            self.limit.sample(time.monotonic() - started)
        return result

    async def send(self, method: str, url: str | httpx.URL, log_to: RequestLog | None = None,
                   cap: int | None = None, **kwargs: Any) -> tuple[httpx.Response, bytes]:
        """`send_sync` on a worker thread: (closed response, body bytes). A transport failure that
        outlasts the retries is a `NetworkError` carrying its one-line description.

        After an interrupt (`workers.halt()`) nothing is sent: CancelledError. A mutating request
        is tracked in `mutations` until its answer reaches the caller."""
        if halted():
            raise asyncio.CancelledError()
        if method not in MUTATING:
            return await self._workers.submit(functools.partial(self._job, method, url, log_to, cap, kwargs))
        mutation = mutations.begin(method, url)
        try:
            result = await self._workers.submit(functools.partial(self._job, method, url, log_to, cap, kwargs,
                                                                  mutation))
        except asyncio.CancelledError:
            if not mutation.started:        # never sent: nothing unknown about it
                mutations.settle(mutation)
            raise
        except BaseException:
            mutations.settle(mutation)
            raise
        mutations.settle(mutation)
        return result

    async def aclose(self) -> None:
        """Close the workers without waiting for a request still running (an interrupt abandons it),
        then the client, which shuts down the abandoned requests' connections."""
        self._workers.close()
        self.client.close()


def make_client(concurrency: int, auth: httpx.Auth | None, base_url: str = "", http2: bool = True,
                timeout: float | None = None, policy: HttpSettings | None = None) -> ThreadedClient:
    """A pooled client for `concurrency` parallel requests.

    Requests go through `StdlibTransport` (HTTP/1.1 over http.client: less than half the CPU per
    request of httpx's own transport), unless an environment proxy applies to `base_url`: then
    httpx's transport does, HTTP/2 where TLS allows it. `timeout` (connect, read, write; not pool
    waits) defaults to the policy's ($JANITOR_HTTP_TIMEOUT through core.settings, or 30 s).
    """
    from ghcr_janitor.net.transport import StdlibTransport, proxied, proxy_mounts

    policy = policy or HttpSettings()
    timeout = policy.timeout if timeout is None else timeout
    transport: httpx.BaseTransport | None = None
    mounts: dict[str, httpx.BaseTransport | None] | None = None
    use_http2 = False
    if not proxied(base_url or None):
        transport = StdlibTransport(max_idle=concurrency, default_timeout=timeout)
        mounts = proxy_mounts() or None       # other hosts a proxy applies to still go through it
    elif http2 and base_url.startswith("https://"):
        try:
            import h2  # noqa: F401
            use_http2 = True
        except ImportError:  # pragma: no cover - h2 is a declared dependency
            pass
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client = RegistryClient(
        policy=policy, base_url=base_url, auth=auth, limits=limits, http2=use_http2, transport=transport, mounts=mounts,
        timeout=httpx.Timeout(timeout, pool=None), follow_redirects=False,
        headers={"User-Agent": "ghcr-janitor"},
    )
    return ThreadedClient(client, concurrency)


def netloc(url: str) -> str:
    """HOST[:PORT] of a URL, as `requests_summary` names hosts."""
    return httpx.URL(url).netloc.decode("ascii", "replace")


def requests_summary(log: RequestLog) -> dict[str, dict[str, int]]:
    """host -> method -> number of requests sent (retries included)."""
    summary: dict[str, dict[str, int]] = {}
    for method, url, _ in log.entries:
        host = netloc(url)
        per_host = summary.setdefault(host, {})
        per_host[method] = per_host.get(method, 0) + 1
    return summary


def _host_of(exc: httpx.TransportError) -> str | None:
    try:
        url = exc.request.url
    except RuntimeError:            # raised without a request
        return None
    return url.netloc.decode("ascii", "replace") or None


def failure_reason(exc: BaseException) -> str:
    """Why a connection failed, in a few words: "connection refused", "DNS lookup failed: Name or
    service not known", "timed out", "network is unreachable" (from the deepest OS error behind
    `exc`; httpx's own wording, e.g. "All connection attempts failed", hides it)."""
    if isinstance(exc, (httpx.ConnectTimeout, TimeoutError)):
        return "timed out"
    seen: set[int] = set()
    cause: BaseException | None = exc
    deepest: OSError | None = None
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and (cause.errno is not None or isinstance(cause, socket.gaierror)):
            deepest = cause
        cause = cause.__cause__ or cause.__context__
    if isinstance(deepest, socket.gaierror):
        return f"DNS lookup failed: {deepest.strerror or deepest}"
    if isinstance(deepest, TimeoutError):
        return "timed out"
    if isinstance(deepest, ConnectionRefusedError):
        return "connection refused"
    if deepest is not None and deepest.strerror:
        return deepest.strerror[:1].lower() + deepest.strerror[1:]
    text = " ".join(str(exc).split())[:200]
    return text or type(exc).__name__


def connection_failed(exc: httpx.TransportError, host: str | None = None) -> str:
    """The one wording of a connection that could not be made (every store, OCI and REST alike):
    "connection failed (HOST: REASON)"."""
    host = host or _host_of(exc)
    return f"connection failed ({host}: {failure_reason(exc)})" if host else \
        f"connection failed ({failure_reason(exc)})"


def describe_error(exc: BaseException) -> str:
    """One line for an error met while talking to a backend (never a traceback)."""
    if isinstance(exc, JanitorError):
        return str(exc)
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        return f"timed out talking to the registry ({type(exc).__name__})"
    if isinstance(exc, httpx.TransportError):
        return connection_failed(exc)
    return f"{type(exc).__name__}: {exc}"
