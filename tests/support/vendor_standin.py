"""The base of every vendor stand-in (Docker Hub, GitLab, Harbor, ACR, GAR): one threaded HTTP
server on 127.0.0.1 whose `/v2/...` is the real `docker-registry` behind it (forwarded as is,
unless the vendor's `v2_hook` answers first: refusing a tagged DELETE, dropping all tags, capping
pages) and whose other paths are the vendor's API (`api`), built by each subclass from the
vendor's documented response shapes.

The stand-in keeps what the real registry does not: when each manifest and tag was pushed (seen on
the PUTs that pass through it, or set by a test), pulls, and every request it answered
(`calls`), so that tests count requests per 1,000 tags and per 100 deletes. `faults` lets a test
make the next matching request fail. The real registry holds the manifests: an untag through the
vendor API is done on it as distribution 2.8 allows (push a unique placeholder to the tag, then
delete the placeholder by digest: the tag goes, the manifest stays).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
ACCEPT = ", ".join([
    "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])
V2_PATH = re.compile(r"^/v2/(?P<name>.+?)/(?P<what>manifests|tags|blobs|referrers)(?:/(?P<ref>.*))?$")
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}


def now() -> datetime:
    return datetime.now(timezone.utc)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Reply:
    """What a hook or the API answers: status, headers, body (bytes, or JSON-able → JSON)."""

    status: int
    body: object = b""
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, (bytes, bytearray)):
            return bytes(self.body), headers
        headers.setdefault("Content-Type", "application/json")
        return json.dumps(self.body).encode(), headers


@dataclass
class Request:
    method: str
    path: str                                   # without the query
    query: dict[str, list[str]]
    headers: dict[str, str]                     # lowercased names
    body: bytes

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> object:
        return json.loads(self.body or b"null")


@dataclass
class Fault:
    """The next `times` requests whose "METHOD path" matches `pattern` get `reply`."""

    pattern: str
    reply: Reply
    times: int = 1


class VendorStandIn:
    """Subclass and override `api` (the vendor's REST) and, where the vendor's /v2 differs from
    distribution's, `v2_hook`. Use as a context manager or `start()`/`stop()`."""

    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")              # the real registry: http://127.0.0.1:PORT
        self.registry = httpx.Client(base_url=self.upstream, timeout=30)
        self.lock = threading.RLock()
        self.calls: list[tuple[str, str, int]] = []       # (method, path?query, status)
        self.faults: list[Fault] = []
        self.pushed: dict[tuple[str, str], datetime] = {}        # (repository, digest) -> first push
        self.tag_pushed: dict[tuple[str, str], datetime] = {}    # (repository, tag) -> last push
        self.tag_digest: dict[tuple[str, str], str] = {}         # (repository, tag) -> digest pushed there
        self.pulled: dict[tuple[str, str], datetime] = {}        # (repository, digest) -> last pull
        self.clock: Callable[[], datetime] = now
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- what subclasses override ---------------------------------------------------------
    def api(self, request: Request) -> Reply:
        """The vendor API (every path that is not `/v2/...`)."""
        return Reply(404, {"message": f"no such endpoint: {request.method} {request.path}"})

    def v2_hook(self, request: Request, name: str, what: str, ref: str | None) -> Reply | None:
        """Answer a `/v2` request the vendor's way, or None to forward it to the real registry."""
        return None

    # --- the real registry, for subclasses -------------------------------------------------
    def tags(self, name: str) -> dict[str, str]:
        """Every tag of `name` -> its digest now (empty when the repository has none)."""
        listed = self.registry.get(f"/v2/{name}/tags/list", params={"n": 100000})
        if listed.status_code == 404:
            return {}
        listed.raise_for_status()
        found = {}
        for tag in listed.json().get("tags") or []:
            digest = self.resolve(name, tag)
            if digest:
                found[tag] = digest
        return found

    def resolve(self, name: str, reference: str) -> str | None:
        head = self.registry.head(f"/v2/{name}/manifests/{reference}", headers={"Accept": ACCEPT})
        return head.headers.get("docker-content-digest") if head.status_code == 200 else None

    def manifest(self, name: str, reference: str) -> tuple[bytes, str] | None:
        got = self.registry.get(f"/v2/{name}/manifests/{reference}", headers={"Accept": ACCEPT})
        return (got.content, got.headers.get("content-type", "")) if got.status_code == 200 else None

    def untag(self, name: str, tag: str) -> None:
        """Remove `tag` from the real registry, keeping its manifest: park it on a unique
        placeholder, then delete the placeholder by digest (distribution 2.8 has no tag DELETE)."""
        empty = b"{}"
        start = self.registry.post(f"/v2/{name}/blobs/uploads/")
        location = httpx.URL(self.upstream).join(start.headers["location"])
        self.registry.put(location.copy_merge_params({"digest": sha(empty)}), content=empty,
                          headers={"Content-Type": "application/octet-stream"}).raise_for_status()
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x-standin-untag",
                           "config": {"mediaType": OCI_EMPTY, "digest": sha(empty), "size": 2},
                           "layers": [{"mediaType": OCI_EMPTY, "digest": sha(empty), "size": 2}],
                           "annotations": {"standin.untag": f"{name}:{tag}:{self.clock().isoformat()}"}}).encode()
        self.registry.put(f"/v2/{name}/manifests/{tag}", content=body,
                          headers={"Content-Type": OCI_MANIFEST}).raise_for_status()
        self.registry.delete(f"/v2/{name}/manifests/{sha(body)}").raise_for_status()
        with self.lock:
            self.tag_pushed.pop((name, tag), None)
            self.tag_digest.pop((name, tag), None)

    def delete_digest(self, name: str, digest: str) -> int:
        """DELETE the manifest on the real registry (its tags go with it there); the status."""
        status = self.registry.delete(f"/v2/{name}/manifests/{digest}").status_code
        if status == 202:
            with self.lock:
                self.pushed.pop((name, digest), None)
                for key in [k for k, d in self.tag_digest.items() if k[0] == name and d == digest]:
                    self.tag_pushed.pop(key, None)
                    self.tag_digest.pop(key, None)
        return status

    def repositories(self) -> list[str]:
        """Every repository of the real registry (its catalog, page by page: it caps `n`)."""
        found: list[str] = []
        url: str | None = "/v2/_catalog"
        while url:
            got = self.registry.get(url)
            got.raise_for_status()
            found += got.json().get("repositories") or []
            link = got.headers.get("link", "")
            url = link[link.index("<") + 1:link.index(">")] if "<" in link else None
        return sorted(set(found))

    # --- serving ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")

    def start(self) -> "VendorStandIn":
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True      # headers and body go in two writes: no 40 ms delayed-ACK stall

            def log_message(self, *args) -> None:       # quiet
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True),
                                  {k.lower(): v for k, v in self.headers.items()}, body)
                status, headers, payload = standin._answer(request, self.path)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.registry.close()

    def __enter__(self) -> "VendorStandIn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _answer(self, request: Request, raw_path: str) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            fault = next((f for f in self.faults if re.search(f.pattern, f"{request.method} {raw_path}")), None)
            if fault is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
        if fault is not None:
            reply = fault.reply
        else:
            try:
                match = V2_PATH.match(request.path)
                if request.path in ("/v2", "/v2/"):
                    reply = self.v2_hook(request, "", "base", None) or self._forward(request, raw_path)
                elif match:
                    reply = (self.v2_hook(request, match["name"], match["what"], match["ref"])
                             or self._forward(request, raw_path, match))
                elif request.path.startswith("/v2/_catalog"):
                    reply = self.v2_hook(request, "", "catalog", None) or self._forward(request, raw_path)
                else:
                    reply = self.api(request)
            except Exception as exc:        # a stand-in bug: say so, loudly, as a 500
                reply = Reply(599, {"standin_error": repr(exc)})
        payload, headers = reply.encoded()
        with self.lock:
            self.calls.append((request.method, raw_path, reply.status))
        return reply.status, headers, payload

    def _forward(self, request: Request, raw_path: str, match: re.Match | None = None) -> Reply:
        headers = {k: v for k, v in request.headers.items() if k not in HOP_HEADERS and k != "authorization"}
        for attempt in range(3):         # a loaded CI machine may drop a read: retried; a change is sent once
            try:
                upstream = self.registry.request(request.method, raw_path, headers=headers, content=request.body)
                break
            except httpx.TransportError:
                if request.method not in ("GET", "HEAD") or attempt == 2:
                    raise
        out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
        location = out.get("location")
        if location and location.startswith(self.upstream):
            out["location"] = self.url + location[len(self.upstream):]
        if match and match["what"] == "manifests" and upstream.status_code in (200, 201):
            digest = upstream.headers.get("docker-content-digest")
            if digest:
                key = (match["name"], digest)
                with self.lock:
                    if request.method == "PUT":
                        self.pushed.setdefault(key, self.clock())
                        if match["ref"] and not match["ref"].startswith("sha256:"):
                            self.tag_pushed[(match["name"], match["ref"])] = self.clock()
                            self.tag_digest[(match["name"], match["ref"])] = digest
                    elif request.method == "GET":
                        self.pulled[key] = self.clock()
        return Reply(upstream.status_code, upstream.content, out)

    # --- counting --------------------------------------------------------------------------------
    def count(self, method: str | None = None, path: str = "") -> int:
        """Requests answered, of `method` (any if None) whose path starts with `path`."""
        with self.lock:
            return sum(1 for m, p, _ in self.calls if (method is None or m == method) and p.startswith(path))
