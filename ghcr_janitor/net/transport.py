"""A lean `httpx` transport over the standard library's `http.client`, with keep-alive pooling.

Measured here (benchmarks/, 2,000 manifest GETs on loopback, 32 threads): httpx's own transport
(httpcore + h11) costs ~1.45 ms of CPU per request, this one under `httpx.Client` ~0.6 ms. It speaks
HTTP/1.1 only; `httpx.Client` keeps doing what it does above a transport (auth flow, redirects, URL
and header handling, content decoding), so callers see the same `httpx` API and exceptions.

TLS contexts are built on the first HTTPS connection (none for plain-HTTP loopback).
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
from collections import deque
from typing import Iterator

import httpx

CHUNK = 64 * 1024
_Key = tuple[str, str, int]


def _timeouts(request: httpx.Request, default: float | None) -> tuple[float | None, float | None]:
    """(connect, read/write) seconds from httpx's per-request timeout extension; `default` for a
    request that carries none (never "wait for ever" by omission)."""
    timeout = request.extensions.get("timeout") or {}
    read = timeout.get("read", default)
    write = timeout.get("write", default)
    io = None if read is None and write is None else max(t for t in (read, write) if t is not None)
    return timeout.get("connect", default), io


def _stale(conn: http.client.HTTPConnection) -> bool:
    """An idle pooled connection that is readable has been closed (or spoken on) by the server."""
    sock = conn.sock
    if sock is None:
        return True
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True          # decrypted bytes nobody asked for (select cannot see them): never reuse
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class _Body(httpx.SyncByteStream):
    """The response body, read from the connection; a fully read connection goes back to the pool."""

    def __init__(self, transport: "StdlibTransport", key: _Key, conn: http.client.HTTPConnection,
                 response: http.client.HTTPResponse, request: httpx.Request):
        self._transport, self._key, self._conn = transport, key, conn
        self._response, self._request = response, request
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        response = self._response
        while True:
            if response.isclosed() or response.length == 0:     # all of it read (HEAD, 204, ...)
                self._done = True
                return
            try:
                chunk = response.read1(CHUNK)
            except TimeoutError as exc:
                raise httpx.ReadTimeout(str(exc) or "timed out", request=self._request) from exc
            except http.client.IncompleteRead as exc:
                raise httpx.RemoteProtocolError("peer closed connection without sending complete message body",
                                                request=self._request) from exc
            except (http.client.HTTPException, ValueError) as exc:
                raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=self._request) from exc
            except OSError as exc:
                raise httpx.ReadError(str(exc) or type(exc).__name__, request=self._request) from exc
            if not chunk:                 # EOF: chunked end, close-delimited end, or cut short
                if response.length:       # read1 reports a body shorter than Content-Length as EOF
                    raise httpx.RemoteProtocolError(
                        "peer closed connection without sending complete message body", request=self._request)
                self._done = response.isclosed()
                return
            yield chunk

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._transport._busy.discard(conn)
        response = self._response
        reusable = self._done and not response.will_close
        response.close()
        if reusable:
            self._transport._release(self._key, conn)
        else:
            conn.close()


_SHARED_SSL: ssl.SSLContext | None = None
_SHARED_SSL_LOCK = threading.Lock()


def shared_ssl_context() -> ssl.SSLContext:
    """httpx's default context (its CA bundle), made once per process: each one costs ~0.9 MB, and a
    run keeps every target's clients open (2,000 targets: 1.8 GB of identical contexts)."""
    global _SHARED_SSL
    with _SHARED_SSL_LOCK:
        if _SHARED_SSL is None:
            _SHARED_SSL = httpx.create_ssl_context()
        return _SHARED_SSL


class StdlibTransport(httpx.BaseTransport):
    """HTTP/1.1 over `http.client`, keeping up to `max_idle` idle connections per origin.

    Thread-safe: each request takes a connection of its own from the pool (or opens one).
    Errors are raised as httpx's (`ConnectError`, `ReadTimeout`, `RemoteProtocolError`, ...), so
    the retry policy and error messages above the transport are unchanged.

    `close()` also shuts down the connections of requests still running (an interrupt abandons
    them): a thread blocked reading a stalled answer gets an error at once, not at its read timeout.
    """

    def __init__(self, max_idle: int = 32, ssl_context: ssl.SSLContext | None = None,
                 default_timeout: float | None = 30.0):
        self._max_idle = max(1, max_idle)
        self._default_timeout = default_timeout
        self._idle: dict[_Key, deque[http.client.HTTPConnection]] = {}
        self._ssl_context = ssl_context
        self._lock = threading.Lock()
        self._busy: set[http.client.HTTPConnection] = set()     # connections a request is using
        self._closed = False

    def __repr__(self) -> str:
        return f"StdlibTransport(max_idle={self._max_idle})"

    # --- connections ------------------------------------------------------------
    def _context(self) -> ssl.SSLContext:
        with self._lock:
            if self._ssl_context is None:
                self._ssl_context = shared_ssl_context()
            return self._ssl_context

    def _acquire(self, key: _Key, request: httpx.Request) -> tuple[http.client.HTTPConnection, bool]:
        """(connection, reused?): an idle one that is still open, else a new one, connected; either
        way with this request's read/write timeout on its socket."""
        connect_timeout, io_timeout = _timeouts(request, self._default_timeout)
        idle = self._idle.get(key)
        while idle:
            try:
                conn = idle.pop()
            except IndexError:
                break
            if not _stale(conn):
                assert conn.sock is not None
                conn.sock.settimeout(io_timeout)
                return conn, True
            conn.close()
        scheme, host, port = key
        if scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=connect_timeout, context=self._context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=connect_timeout)
        try:
            conn.connect()
            assert conn.sock is not None
            conn.sock.settimeout(io_timeout)
        except TimeoutError as exc:
            conn.close()
            raise httpx.ConnectTimeout(str(exc) or "timed out", request=request) from exc
        except (OSError, ssl.SSLError) as exc:
            conn.close()
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from exc
        return conn, False

    def _release(self, key: _Key, conn: http.client.HTTPConnection) -> None:
        if self._closed:
            conn.close()
            return
        idle = self._idle.get(key)
        if idle is None:
            with self._lock:
                idle = self._idle.setdefault(key, deque())
        if len(idle) >= self._max_idle:
            conn.close()
        else:
            idle.append(conn)

    # --- requests ----------------------------------------------------------------
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("the transport is closed")
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}", request=request)
        key = (scheme, url.host, url.port or (443 if scheme == "https" else 80))
        body = request.read()
        conn, reused = self._acquire(key, request)
        self._busy.add(conn)
        if self._closed:                 # closed while connecting: send nothing
            self._drop(conn)
            raise RuntimeError("the transport is closed")
        try:
            conn.putrequest(request.method, url.raw_path.decode("ascii"), skip_host=True, skip_accept_encoding=True)
            for name, value in request.headers.raw:
                if name.lower() != b"transfer-encoding":
                    conn.putheader(name, value)
            if body and "content-length" not in request.headers:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
        except TimeoutError as exc:
            self._drop(conn)
            raise httpx.WriteTimeout(str(exc) or "timed out", request=request) from exc
        except OSError as exc:
            self._drop(conn)
            raise httpx.WriteError(str(exc) or type(exc).__name__, request=request) from exc
        try:
            response = conn.getresponse()
        except TimeoutError as exc:
            self._drop(conn)
            raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
        except http.client.RemoteDisconnected as exc:
            self._drop(conn)
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request) from exc
        except http.client.HTTPException as exc:
            self._drop(conn)
            raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from exc
        except OSError as exc:
            self._drop(conn)
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
        return httpx.Response(response.status, headers=response.getheaders(),
                              stream=_Body(self, key, conn, response, request),
                              extensions={"http_version": b"HTTP/1.1", "janitor.new_connection": not reused,
                                          "reason_phrase": response.reason.encode(
                                  "ascii", "replace")})

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        self._busy.discard(conn)
        conn.close()

    def close(self) -> None:
        """Close every idle connection, and shut down those a request is still using (their
        threads then fail at once with a transport error; the retry loop sees the client closed)."""
        self._closed = True
        for conn in self._busy.copy():
            sock = conn.sock
            if sock is not None:
                try:             # the plain socket's shutdown (TLS state is left to the owning thread)
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass
        with self._lock:
            pools = list(self._idle.values())
            self._idle.clear()
        for idle in pools:
            while idle:
                try:
                    idle.pop().close()
                except IndexError:
                    break


def proxy_mounts() -> dict[str, httpx.BaseTransport | None]:
    """httpx `mounts` for the environment's proxies (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY): a URL that
    a proxy applies to (a blob redirect to a storage host, a token realm elsewhere) goes through
    httpx's proxy transport; the others (None) through the client's default transport."""
    try:
        from httpx._utils import get_environment_proxies
    except ImportError:  # pragma: no cover - a future httpx: proxied() then keeps httpx's transport
        return {}
    return {pattern: None if proxy is None else httpx.HTTPTransport(proxy=proxy)
            for pattern, proxy in get_environment_proxies().items()}


def proxied(url: str | None) -> bool:
    """True if httpx would route `url` (None: any URL) through a proxy from the environment.

    Such clients keep httpx's own transport, which knows proxies; this one does not.
    """
    try:
        from httpx._utils import URLPattern, get_environment_proxies
    except ImportError:  # pragma: no cover - a future httpx: be safe, use its transport
        from urllib.request import getproxies

        return any(getproxies().get(n) for n in ("http", "https", "all"))
    proxies = get_environment_proxies()
    if not proxies or url is None:
        return bool(proxies)
    target = httpx.URL(url)
    patterns = sorted(((URLPattern(p), proxy) for p, proxy in proxies.items()), key=lambda item: item[0])
    for pattern, proxy in patterns:
        if pattern.matches(target):
            return proxy is not None
    return False
