"""A small HTTP/1.1 proxy on 127.0.0.1 in front of the real registry that injects faults.

It runs its own asyncio event loop in a background thread, so the janitor can be run
in-process (typer's CliRunner) or as a subprocess against `proxy.host`.

Faults are chosen per request by an ordered rule list; the first rule that matches the
method and path (regex, searched in the path without query) and still has occurrences
left decides. A rule applies to the matching requests number `skip+1 .. skip+times`
(`times=None`: every one after `skip`). Kinds:

* ``status``     answer `status` (e.g. 429 with `retry_after`, 503) without forwarding;
* ``reset``      close the connection (TCP RST) without answering; with `forward=True`
                 the request reaches the registry first (done there, answer lost);
* ``reset_body`` forward, send the headers and half of the body, then reset;
* ``stall``      wait `seconds` (longer than the client timeout), then close unanswered;
* ``truncate``   forward, announce a Content-Length larger than the body sent, then close;
* ``bad_digest`` forward, but replace `Docker-Content-Digest` with a wrong digest;
* ``delay``      wait `seconds`, then forward normally (latency, e.g. to slow an apply).

Auth modes (the registry itself has none): ``basic`` demands `Authorization: Basic`
with the configured user/password; ``bearer`` answers 401 with a Bearer challenge whose
realm is this proxy's `/token` endpoint (itself Basic-protected), and checks that the
token's scope covers what the request needs (pull for GET/HEAD, delete for DELETE,
push otherwise), so scope upgrades are exercised. Token requests are recorded.

Every request is recorded as an `Entry` (method, path, status sent, fault, whether it
reached the registry), so tests can assert e.g. "no DELETE outside the plan".
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import re
import socket
import struct
import threading
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

WRONG_DIGEST = "sha256:" + hashlib.sha256(b"not the manifest you asked for").hexdigest()
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade",
        "content-length", "authorization"}


@dataclass
class Rule:
    fault: str
    method: str | None = None          # None: any method
    path: str = ".*"                   # regex, searched in the path (no query)
    times: int | None = 1              # faulty occurrences; None = all
    skip: int = 0                      # matching requests let through before the first fault
    status: int = 503
    retry_after: str | None = None
    seconds: float = 0.0
    forward: bool = False              # `reset`: forward first, then drop the answer
    digest: str = WRONG_DIGEST         # `bad_digest`
    seen: int = 0                      # matching requests so far
    hits: int = 0                      # faults injected so far

    def take(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        if not re.search(self.path, path):
            return False
        self.seen += 1
        if self.seen <= self.skip:
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        self.hits += 1
        return True


@dataclass
class Entry:
    method: str
    path: str
    query: str
    status: int | None                 # what the client got (None: reset/stalled)
    fault: str | None
    forwarded: bool                    # the registry saw (and acted on) this request
    upstream_status: int | None = None
    auth: str | None = None            # scheme of the Authorization header sent, never its value


@dataclass
class TokenRequest:
    service: str | None
    scopes: list[str]
    authenticated: bool


class _Closed(Exception):
    pass


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str], until_eof: bool) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        out = bytearray()
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return bytes(out)
            out += await reader.readexactly(size)
            await reader.readexactly(2)
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    return await reader.read() if until_eof else b""


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, list[tuple[str, str]]]:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        raise _Closed() from None
    lines = raw.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return lines[0], headers


class FaultProxy:
    def __init__(self, upstream: str, auth: str | None = None, user: str = "janitor",
                 password: str = "", token_secret: str = "issued-token"):
        host, _, port = upstream.rpartition(":")
        self.upstream = (host, int(port))
        self.auth = auth
        self.user = user
        self.password = password
        self.token_secret = token_secret
        self.rules: list[Rule] = []
        self.entries: list[Entry] = []
        self.token_requests: list[TokenRequest] = []
        self._tokens: dict[str, set[tuple[str, str]]] = {}   # token -> (repo, action) granted
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task] = set()
        self.port = 0

    # --- public ---------------------------------------------------------------------
    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def add(self, *rules: Rule) -> "FaultProxy":
        with self._lock:
            self.rules.extend(rules)
        return self

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.entries.clear()
            self.token_requests.clear()

    def log(self, method: str | None = None, forwarded: bool | None = None) -> list[Entry]:
        with self._lock:
            return [e for e in self.entries if (method is None or e.method == method)
                    and (forwarded is None or e.forwarded == forwarded)]

    def start(self) -> "FaultProxy":
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                loop.run_until_complete(asyncio.gather(*self._tasks, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        loop = self._loop

        def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            loop.stop()

        loop.call_soon_threadsafe(shutdown)
        assert self._thread is not None
        self._thread.join(10)
        self._loop = None

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- connection handling ----------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                keep = await self._one(reader, writer)
                if not keep:
                    break
        except (_Closed, ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:      # proxy shutting down
            _reset(writer)
        finally:
            self._tasks.discard(task)
            if not writer.is_closing():
                writer.close()

    async def _one(self, reader, writer) -> bool:
        request_line, headers = await _read_head(reader)
        lower = {k.lower(): v for k, v in headers}
        body = await _read_body(reader, lower, until_eof=False)
        method, target, _ = request_line.split(" ", 2)
        split = urlsplit(target)
        path, query = split.path, split.query
        keep_alive = lower.get("connection", "").lower() != "close"
        auth_header = lower.get("authorization")
        scheme = auth_header.split(" ", 1)[0] if auth_header else None

        def record(status, fault, forwarded, upstream_status=None) -> None:
            with self._lock:
                self.entries.append(Entry(method, path, query, status, fault, forwarded, upstream_status, scheme))

        if path == "/token" and self.auth == "bearer":
            status, extra, out = self._token(query, auth_header)
            record(status, None, False)
            await _respond(writer, status, extra, out, method)
            return keep_alive
        denied = self._check_auth(method, path, auth_header)
        if denied is not None:
            record(401, None, False)
            await _respond(writer, 401, [("WWW-Authenticate", denied)],
                           b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}', method)
            return keep_alive

        with self._lock:
            rule = next((r for r in self.rules if r.take(method, path)), None)
        fault = rule.fault if rule else None

        if fault == "status":
            extra = [("Retry-After", rule.retry_after)] if rule.retry_after is not None else []
            record(rule.status, fault, False)
            code = "TOOMANYREQUESTS" if rule.status == 429 else "UNAVAILABLE"
            await _respond(writer, rule.status, extra,
                           json.dumps({"errors": [{"code": code, "message": "injected"}]}).encode(), method)
            return keep_alive
        if fault == "stall":
            record(None, fault, False)
            await asyncio.sleep(rule.seconds)
            _reset(writer)
            return False
        if fault == "reset" and not rule.forward:
            record(None, fault, False)
            _reset(writer)
            return False
        if fault == "delay":
            await asyncio.sleep(rule.seconds)

        status, up_headers, up_body = await self._forward(method, target, headers, body)
        if fault == "reset":
            record(None, fault, True, status)
            _reset(writer)
            return False
        if fault == "bad_digest":
            up_headers = [(k, rule.digest if k.lower() == "docker-content-digest" else v) for k, v in up_headers]
        if fault == "reset_body":
            record(status, fault, True, status)
            half = up_body[: max(1, len(up_body) // 2)] if up_body else b""
            await _respond(writer, status, up_headers, up_body, method, send=half)
            _reset(writer)
            return False
        if fault == "truncate":
            record(status, fault, True, status)
            await _respond(writer, status, up_headers, up_body, method, length=len(up_body) + 100)
            writer.close()
            return False
        record(status, fault, True, status)
        await _respond(writer, status, up_headers, up_body, method)
        return keep_alive

    async def _forward(self, method: str, target: str, headers, body: bytes):
        reader, writer = await asyncio.open_connection(*self.upstream)
        try:
            lines = [f"{method} {target} HTTP/1.1"]
            lines += [f"{k}: {v}" for k, v in headers if k.lower() not in _HOP]
            lines += ["Connection: close", f"Content-Length: {len(body)}"] if body or method in ("PUT", "POST") \
                else ["Connection: close"]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            await writer.drain()
            status_line, up_headers = await _read_head(reader)
            status = int(status_line.split(" ", 2)[1])
            lower = {k.lower(): v for k, v in up_headers}
            if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
                up_body = b""
            else:
                up_body = await _read_body(reader, lower, until_eof=True)
            return status, up_headers, up_body
        finally:
            writer.close()

    # --- auth -----------------------------------------------------------------------------
    def _basic_ok(self, header: str | None) -> bool:
        if not header or not header.lower().startswith("basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
        except ValueError:
            return False
        return bool(user) and password == self.password

    def _check_auth(self, method: str, path: str, header: str | None) -> str | None:
        """None when allowed, else the WWW-Authenticate challenge to send."""
        if self.auth is None:
            return None
        if self.auth == "basic":
            return None if self._basic_ok(header) else 'Basic realm="fault-proxy"'
        need = "pull" if method in ("GET", "HEAD") else "delete" if method == "DELETE" else "push"
        match = re.match(r"^/v2/(.+?)/(manifests|blobs|tags|referrers)/", path)
        name = match.group(1) if match else None
        if header and header.lower().startswith("bearer "):
            with self._lock:
                granted = self._tokens.get(header[7:].strip())
            if granted is not None and (name is None or (name, need) in granted):
                return None
        actions = {"pull": "pull", "push": "pull,push", "delete": "delete"}[need]
        scope = f',scope="repository:{name}:{actions}"' if name else ""
        return f'Bearer realm="http://{self.host}/token",service="fault-proxy"{scope}'

    def _token(self, query: str, header: str | None):
        params = parse_qsl(query)
        scopes = [v for k, v in params if k == "scope"]
        service = next((v for k, v in params if k == "service"), None)
        ok = self._basic_ok(header)
        with self._lock:
            self.token_requests.append(TokenRequest(service, scopes, header is not None))
        if not ok:
            return 401, [("WWW-Authenticate", 'Basic realm="fault-proxy-token"')], b'{"details":"bad credentials"}'
        granted: set[tuple[str, str]] = set()
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) == 3 and parts[0] == "repository":
                granted |= {(parts[1], a) for a in parts[2].split(",")}
        token = f"{self.token_secret}-{next(self._counter)}"
        with self._lock:
            self._tokens[token] = granted
        return 200, [("Content-Type", "application/json")], json.dumps({"token": token, "expires_in": 300}).encode()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0), not a polite FIN."""
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


async def _respond(writer, status: int, headers, body: bytes, method: str, send: bytes | None = None,
                   length: int | None = None) -> None:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    upstream_length = None
    for k, v in headers:
        if k.lower() == "content-length":
            upstream_length = v
        if k.lower() not in _HOP:
            lines.append(f"{k}: {v}")
    if method == "HEAD":
        lines.append(f"Content-Length: {upstream_length if upstream_length is not None else 0}")
        body = b""
    else:
        lines.append(f"Content-Length: {length if length is not None else len(body)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body if send is None else send))
    await writer.drain()


_REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 307: "Temporary Redirect",
            400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
