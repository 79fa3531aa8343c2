"""StdlibTransport (http.client under httpx.Client): keep-alive, bodies, errors, caps, proxies."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from ghcr_janitor.core.settings import HttpSettings
from ghcr_janitor.net.http import BodyTooLarge, RequestLog, make_client, send_sync
from ghcr_janitor.net.transport import StdlibTransport, proxied


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, length: int | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if length is not False:
            self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _chunked(self, status: int, chunks: list[bytes]) -> None:
        self.send_response(status)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def do_HEAD(self) -> None:
        self.server.seen.append(("HEAD", self.path, self.client_address[1]))
        self._send(200, b"x" * 10, {"Docker-Content-Digest": "sha256:abc"})

    def do_PUT(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.server.seen.append(("PUT", self.path, self.client_address[1], body))
        self._send(201, b"")

    def do_GET(self) -> None:
        self.server.seen.append(("GET", self.path, self.client_address[1], self.headers.get("Authorization")))
        path = self.path.split("?")[0]
        if path == "/ok":
            self._send(200, b"hello", {"Content-Type": "text/plain"})
        elif path == "/big":
            self._send(200, b"y" * 5000)
        elif path == "/nolength-big":
            self._chunked(200, [b"z" * 1000] * 5)
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        elif path == "/empty":
            self._send(204, b"", length=False)
        elif path == "/truncated":
            self._send(200, b"short", length=100)
            self.close_connection = True
        elif path == "/close":
            self._send(200, b"bye", {"Connection": "close"})
            self.close_connection = True
        elif path == "/then-close":
            self._send(200, b"later")
            self.close_connection = True
        elif path == "/slow":
            time.sleep(1.0)
            self._send(200, b"late")
        elif path == "/redirect":
            self._send(307, b"", {"Location": "/ok"})
        elif path == "/auth":
            if self.headers.get("Authorization") == "Basic dTpw":
                self._send(200, b"in")
            else:
                self._send(401, b"{}", {"WWW-Authenticate": 'Basic realm="x"'})
        elif path == "/flaky":
            self.server.flaky += 1
            if self.server.flaky == 1:
                self._send(503, b"busy", {"Retry-After": "0"})
            else:
                self._send(200, b"fine")
        elif path == "/huge-404":
            self._chunked(404, [b"e" * 0x4000] * 64)
        elif path == "/busy":
            self._send(503, b"busy", {"Retry-After": "0"})
        else:
            self._send(404, b"nope")


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.seen = []
    srv.flaky = 0
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv, f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def _client(transport: StdlibTransport | None = None, **kwargs) -> httpx.Client:
    return httpx.Client(transport=transport or StdlibTransport(), timeout=httpx.Timeout(5, pool=None), **kwargs)


def test_keep_alive_reuses_one_connection(server):
    srv, base = server
    with _client() as client:
        for _ in range(3):
            response = client.get(f"{base}/ok")
            assert (response.status_code, response.text) == (200, "hello")
            assert response.headers["content-type"] == "text/plain"
    ports = {entry[2] for entry in srv.seen}
    assert len(srv.seen) == 3 and len(ports) == 1


def test_head_chunked_and_empty_bodies(server):
    srv, base = server
    with _client() as client:
        head = client.head(f"{base}/x")
        assert head.status_code == 200 and head.content == b"" and head.headers["docker-content-digest"] == "sha256:abc"
        assert client.get(f"{base}/chunked").content == b"hello world"
        assert client.get(f"{base}/empty").status_code == 204
        assert client.get(f"{base}/ok").content == b"hello"
    assert len({entry[2] for entry in srv.seen}) == 1      # all on one kept-alive connection


def test_put_sends_the_body(server):
    srv, base = server
    with _client() as client:
        assert client.put(f"{base}/m", content=b'{"a":1}').status_code == 201
    assert srv.seen[-1][3] == b'{"a":1}'


def test_connection_close_and_server_side_close_open_a_new_connection(server):
    srv, base = server
    with _client() as client:
        assert client.get(f"{base}/close").content == b"bye"
        assert client.get(f"{base}/ok").content == b"hello"
    assert srv.seen[0][2] != srv.seen[1][2]


def test_idle_connection_closed_by_the_server_is_not_reused(server):
    srv, base = server
    transport = StdlibTransport()
    with _client(transport) as client:
        assert client.get(f"{base}/then-close").content == b"later"   # kept alive by headers, then closed
        time.sleep(0.2)
        assert sum(len(idle) for idle in transport._idle.values()) == 1
        assert client.get(f"{base}/ok").content == b"hello"
    assert srv.seen[0][2] != srv.seen[1][2]


def test_truncated_body_is_a_transport_error(server):
    _, base = server
    with _client() as client, pytest.raises(httpx.RemoteProtocolError):
        client.get(f"{base}/truncated")


def test_connect_refused_is_connect_error():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with _client() as client, pytest.raises(httpx.ConnectError):
        client.get(f"http://127.0.0.1:{port}/x")


def test_read_timeout(server):
    _, base = server
    with httpx.Client(transport=StdlibTransport(), timeout=httpx.Timeout(0.2)) as client, \
            pytest.raises(httpx.ReadTimeout):
        client.get(f"{base}/slow")


def test_redirects_and_auth_still_work_above_the_transport(server):
    srv, base = server
    with _client(auth=httpx.BasicAuth("u", "p")) as client:
        assert client.get(f"{base}/redirect", follow_redirects=True).content == b"hello"
        assert client.get(f"{base}/auth").content == b"in"
    assert srv.seen[-1][3] == "Basic dTpw"


def test_unsupported_scheme():
    with _client() as client, pytest.raises(httpx.UnsupportedProtocol):
        client.get("ftp://127.0.0.1/x")


def test_send_sync_caps_and_retries_through_the_transport(server, monkeypatch):
    srv, base = server
    client = make_client(4, None, base_url=base, policy=HttpSettings(wait=0, attempts=3)).client
    assert isinstance(client._transport, StdlibTransport)
    log = RequestLog()
    response, body = send_sync(client, "GET", f"{base}/ok", log_to=log, cap=100)
    assert (response.status_code, body) == (200, b"hello")
    with pytest.raises(BodyTooLarge):
        send_sync(client, "GET", f"{base}/big", cap=1000)             # by Content-Length
    with pytest.raises(BodyTooLarge):
        send_sync(client, "GET", f"{base}/nolength-big", cap=1000)    # while streaming
    response, body = send_sync(client, "GET", f"{base}/busy", log_to=log)
    assert response.status_code == 503 and body == b""
    assert [e[2] for e in log.entries] == [200, 503, 503, 503]
    # the connection stays usable after a capped (closed early) response
    assert send_sync(client, "GET", f"{base}/ok")[1] == b"hello"
    client.close()


def test_environment_proxies_keep_httpx_transport(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert not proxied("https://reg.example")
    assert isinstance(make_client(2, None, base_url="https://reg.example").client._transport, StdlibTransport)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert proxied("https://reg.example")
    assert not proxied("http://reg.example")
    client = make_client(2, None, base_url="https://reg.example").client
    assert not isinstance(client._transport, StdlibTransport)
    monkeypatch.setenv("NO_PROXY", "reg.example")
    assert not proxied("https://reg.example")


def test_closed_transport_closes_idle_connections(server):
    _, base = server
    transport = StdlibTransport()
    client = _client(transport)
    assert client.get(f"{base}/ok").status_code == 200
    conns = [c for idle in transport._idle.values() for c in idle]
    client.close()
    assert conns and all(c.sock is None for c in conns)
    assert "StdlibTransport" in repr(transport)


def test_retry_machinery_is_entered_only_after_a_failure(server, monkeypatch, caplog):
    import stamina

    srv, base = server
    entered = []
    real = stamina.retry_context

    def spy(*args, **kwargs):
        entered.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(stamina, "retry_context", spy)
    client = make_client(2, None, base_url=base, policy=HttpSettings(wait=0)).client
    log = RequestLog()
    for _ in range(3):
        assert send_sync(client, "GET", f"{base}/ok", log_to=log)[1] == b"hello"
    assert entered == []
    with caplog.at_level("INFO", logger="ghcr_janitor.http"):
        response, body = send_sync(client, "GET", f"{base}/flaky", log_to=log)
    assert (response.status_code, body) == (200, b"fine")
    assert len(entered) == 1 and entered[0]["attempts"] == 6
    assert [e[2] for e in log.entries[-2:]] == [503, 200]
    assert any("retry 1" in r.getMessage() and "HTTP 503" in r.getMessage() for r in caplog.records)
    client.close()


def test_plain_path_sends_what_the_client_would(server):
    """RegistryClient.send_plain: default headers merged case-insensitively, auth flow applied."""
    srv, base = server
    from ghcr_janitor.net.http import RegistryClient

    seen_headers = []
    original = _Handler.do_GET

    def spy(self):
        seen_headers.append({name: self.headers.get_all(name) for name in ("Accept", "User-Agent", "Authorization")})
        original(self)

    _Handler.do_GET = spy
    try:
        with RegistryClient(transport=StdlibTransport(), headers={"User-Agent": "ghcr-janitor"},
                            auth=httpx.BasicAuth("u", "p")) as client:
            response = client.send_plain("GET", f"{base}/auth", {"Accept": "application/x"})
            assert response.read() == b"in" and response.request.url.path == "/auth"
            log = RequestLog()
            assert send_sync(client, "GET", f"{base}/ok", log_to=log, headers={"ACCEPT": "a/b"})[1] == b"hello"
            assert log.entries == [("GET", f"{base}/ok", 200)]
    finally:
        _Handler.do_GET = original
    assert [h["Accept"] for h in seen_headers] == [["application/x"], ["a/b"]]      # one each, ours
    assert all(h["User-Agent"] == ["ghcr-janitor"] for h in seen_headers)
    assert seen_headers[0]["Authorization"] == ["Basic dTpw"]
    assert client.cookies is not None and len(client.cookies) == 0


@pytest.fixture
def tls_server(tmp_path):
    """The same handler over TLS, with a throw-away self-signed certificate for 127.0.0.1."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl (the command) is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.seen = []
    srv.flaky = 0
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    srv.socket = context.wrap_socket(srv.socket, server_side=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv, f"https://127.0.0.1:{srv.server_address[1]}", cert
    finally:
        srv.shutdown()
        srv.server_close()


def test_https_verifies_the_certificate_and_keeps_connections_alive(tls_server):
    import ssl

    srv, base, cert = tls_server
    with _client() as client, pytest.raises(httpx.ConnectError):     # default trust store: not trusted
        client.get(f"{base}/ok")
    trusted = ssl.create_default_context(cafile=str(cert))
    with _client(StdlibTransport(ssl_context=trusted)) as client:
        assert client.get(f"{base}/ok").content == b"hello"
        assert client.get(f"{base}/chunked").content == b"hello world"
    ports = {entry[2] for entry in srv.seen}
    assert len(ports) == 1


def test_a_request_without_a_timeout_gets_the_transports_default(server):
    _, base = server
    transport = StdlibTransport(default_timeout=0.2)
    request = httpx.Request("GET", f"{base}/slow")           # no timeout extension at all
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        transport.handle_request(request)
    assert time.monotonic() - started < 0.9
    transport.close()


def test_a_reused_connection_takes_the_new_requests_timeout(server):
    srv, base = server
    with httpx.Client(transport=StdlibTransport(), timeout=httpx.Timeout(30, pool=None)) as client:
        assert client.get(f"{base}/ok").status_code == 200          # pooled with a 30 s timeout
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            client.get(f"{base}/slow", timeout=httpx.Timeout(0.2, pool=None))
        assert time.monotonic() - started < 0.9
    assert srv.seen[0][2] == srv.seen[1][2]                          # the same connection


def test_tls_bytes_waiting_in_the_ssl_layer_make_a_connection_stale():
    import ssl
    from unittest import mock

    from ghcr_janitor.net.transport import _stale

    sock = mock.Mock(spec=ssl.SSLSocket)
    sock.pending.return_value = 17                 # e.g. a second response the server smuggled in
    assert _stale(mock.Mock(sock=sock)) is True


def test_an_error_body_is_read_only_as_far_as_the_message_needs(server):
    _, base = server
    from ghcr_janitor.net.http import ERROR_BODY_CAP

    client = make_client(2, None, base_url=base)
    try:
        response, body = send_sync(client.client, "GET", f"{base}/huge-404", cap=4 * 1024 * 1024)
    finally:
        client.client.close()
    assert response.status_code == 404 and len(body) == ERROR_BODY_CAP


def test_the_token_request_carries_the_original_requests_timeout():
    from ghcr_janitor.net.auth.flow import RegistryAuth

    auth = RegistryAuth(None)
    request = httpx.Request("GET", "https://registry.example/v2/acme/app/manifests/x",
                            extensions={"timeout": {"connect": 1.0, "read": 2.0, "write": 2.0, "pool": None}})
    flow = auth.sync_auth_flow(request)
    assert next(flow) is request
    challenge = httpx.Response(401, request=request, headers={
        "WWW-Authenticate": 'Bearer realm="https://registry.example/token",service="registry.example"'}, content=b"{}")
    token_request = flow.send(challenge)
    assert token_request.url.path == "/token"
    assert token_request.extensions["timeout"] == request.extensions["timeout"]


def test_a_huge_auth_answer_is_refused_unread():
    from ghcr_janitor.core.errors import AuthError
    from ghcr_janitor.net.auth.flow import AUTH_BODY_CAP, RegistryAuth

    auth = RegistryAuth(None)
    request = httpx.Request("GET", "https://registry.example/v2/acme/app/manifests/x")
    flow = auth.sync_auth_flow(request)
    next(flow)
    huge = httpx.Response(401, request=request, headers={"Content-Length": str(AUTH_BODY_CAP + 1)},
                          stream=httpx.ByteStream(b""))
    with pytest.raises(AuthError, match="refused"):
        flow.send(huge)


def test_environment_proxies_still_apply_to_other_hosts_than_the_registry(monkeypatch):
    """A registry outside the proxy (NO_PROXY) keeps the lean transport; a blob redirect to a
    storage host, or a token realm elsewhere, still goes through the proxy."""
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    client = make_client(2, None, base_url="http://127.0.0.1:5000").client
    try:
        assert isinstance(client._transport_for_url(httpx.URL("http://127.0.0.1:5000/v2/")), StdlibTransport)
        storage = client._transport_for_url(httpx.URL("https://storage.example/blob"))
        assert isinstance(storage, httpx.HTTPTransport)
    finally:
        client.close()


def test_docker_hubs_x_retry_after_unix_time_is_read_as_a_wait():
    import time as _time

    import httpx as _httpx

    from ghcr_janitor.net.http import retry_after_seconds

    wait = retry_after_seconds(_httpx.Headers({"x-retry-after": str(int(_time.time()) + 30)}))
    assert wait is not None and 28 <= wait <= 31
    assert retry_after_seconds(_httpx.Headers({"x-retry-after": str(int(_time.time()) - 30)})) == 0.0
    assert retry_after_seconds(_httpx.Headers({"x-retry-after": "soon"})) is None
    assert retry_after_seconds(_httpx.Headers({"retry-after": "5", "x-retry-after": "1"})) == 5.0
