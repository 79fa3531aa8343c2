"""An in-memory registry (OCI Distribution, and GHCR's Packages REST beside it) that apply is
driven against one request at a time, while a foreign actor changes it between any two.

The janitor's real stores (`OciRegistry`, `GhcrRegistry`) talk to it through httpx's
MockTransport, so every request the store sends is a step. The world answers like the real
`docker-registry` 2.8 does where it matters here: DELETE by tag is refused (400), so an untag
goes through the placeholder technique; DELETE by digest removes the manifest and every tag on
it. GHCR's REST side lists every manifest as a version, newest first, `PAGE` to a page (GitHub
allows 100; a smaller page makes shifted pages likely), and a version DELETE removes the manifest.

The world also judges each mutating request (`violations`):
- a manifest delete whose digest a tag reaches at that moment (directly or through indexes),
  other than tags the plan itself removes from that digest;
- a placeholder PUT onto a tag that no longer points at the digest the plan untags.
The one excuse is the residual window no registry can close: a foreign change made after the
janitor began its last look (its first tag-list read since its last write; for a placeholder PUT,
its last HEAD of that tag) with nothing but reads since then.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import httpx

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
PLACEHOLDER = "dev.ghcr-janitor.placeholder"
PLACEHOLDER_TAG = "dev.ghcr-janitor.tag"
REPO = "acme/app"
OWNER, PACKAGE = "acme", "app"
OCI_BASE = "https://registry.world.test"
API = "https://api.world.test"
PAGE = 3


def sha(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def dumps(doc) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


@dataclass
class World:
    ghcr: bool = False
    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    blobs: set[str] = field(default_factory=set)
    version_ids: dict[str, int] = field(default_factory=dict)      # GHCR: digest -> version id
    lock: threading.RLock = field(default_factory=threading.RLock)
    # What the plan allows, set before apply: digest -> tags it removes from it; tag -> untag digest.
    removing: dict[str, set[str]] = field(default_factory=dict)
    untag_digest: dict[str, str] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    deleted_by_janitor: set[str] = field(default_factory=set)
    untagged_by_janitor: set[str] = field(default_factory=set)
    placeholders_pushed: set[str] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)
    # Bookkeeping for the excuse (sequence numbers of requests and foreign changes).
    seq: int = 0
    look_start: int = -1
    last_write: int = -1
    last_foreign: int = -1
    last_head: dict[str, int] = field(default_factory=dict)
    foreign_touch: dict[str, int] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1000))

    # --- building (seeding and the foreign actor) -----------------------------------------
    def add(self, body: bytes, media_type: str, tag: str | None = None) -> str:
        digest = sha(body)
        with self.lock:
            if digest not in self.manifests:
                self.manifests[digest] = (body, media_type)
                self.version_ids[digest] = next(self._ids)
            if tag is not None:
                self.tags[tag] = digest
        return digest

    def image(self, seed: str, tag: str | None = None, created: str = "2026-01-01T00:00:00Z") -> str:
        layer = sha(seed.encode())
        self.blobs.add(layer)
        body = dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": layer, "size": 9},
                      "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer,
                                  "size": 100 + len(seed)}],
                      "annotations": {"org.opencontainers.image.created": created, "seed": seed}})
        return self.add(body, OCI_MANIFEST, tag)

    def index(self, children: list[str], tag: str | None = None, created: str = "2026-01-01T00:00:00Z") -> str:
        body = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "annotations": {
            "org.opencontainers.image.created": created},
            "manifests": [{"mediaType": self.manifests[c][1], "digest": c, "size": len(self.manifests[c][0]),
                           "platform": {"architecture": f"a{i}", "os": "linux"}} for i, c in enumerate(children)]})
        return self.add(body, OCI_INDEX, tag)

    def seed_caches(self, caches: int, aliases: int, untagged: int) -> tuple[str, str]:
        """The models' starting repository: cache-base (and `aliases` more tags on it), `caches` branch
        caches, a two-platform index `latest`, `untagged` old images. Returns the index's children."""
        base = self.image("base", "cache-base", created="2026-12-06T00:00:00Z")
        for i in range(aliases):
            self.tags[f"cache-alias-{i}"] = base
        for i in range(caches):
            self.image(f"cache-{i}", f"cache-b{i}")
        amd, arm = self.image("amd"), self.image("arm")
        self.index([amd, arm], "latest")
        for i in range(untagged):
            self.image(f"old-{i}")
        return amd, arm

    def foreign(self, what: str, tag: str | None = None, digest: str | None = None) -> None:
        """Note a foreign change (for the excuse): `tag` touched, or anything."""
        with self.lock:
            self.seq += 1
            self.last_foreign = self.seq
            if tag is not None:
                self.foreign_touch[tag] = self.seq
            self.requests.append(f"foreign: {what}")

    def drop(self, digest: str) -> None:
        with self.lock:
            self.manifests.pop(digest, None)
            self.version_ids.pop(digest, None)
            for tag in [t for t, d in self.tags.items() if d == digest]:
                del self.tags[tag]

    # --- facts -----------------------------------------------------------------------------
    def children(self, digest: str) -> list[str]:
        body, media_type = self.manifests.get(digest, (b"{}", ""))
        doc = json.loads(body)
        return [m["digest"] for m in doc.get("manifests", []) if m.get("mediaType") in (OCI_MANIFEST, OCI_INDEX)]

    def users(self, digest: str) -> list[str]:
        """Tags that reach `digest` now (directly or through indexes)."""
        found = []
        for tag, root in self.tags.items():
            seen, todo = set(), [root]
            while todo:
                d = todo.pop()
                if d in seen:
                    continue
                seen.add(d)
                if d == digest:
                    found.append(tag)
                    break
                todo += self.children(d)
        return sorted(found)

    # --- judging -----------------------------------------------------------------------------
    def _judge_delete(self, digest: str) -> None:
        if digest not in self.manifests:
            return
        body = self.manifests[digest][0]
        if _placeholder_tag(body) is not None:
            return                                                  # the janitor's own
        blocking = [t for t in self.users(digest)
                    if not (self.tags.get(t) == digest and t in self.removing.get(digest, set()))]
        excused = self.last_foreign > self.look_start and self.last_write < self.look_start
        if blocking and not excused:
            self.violations.append(f"deleted {digest[:19]} while tag(s) {blocking} reach it; "
                                   f"(seq {self.seq}, look {self.look_start}, write {self.last_write}, foreign {self.last_foreign}) "
                                   f"last requests: {self.requests[-12:]}")

    def _judge_placeholder_put(self, tag: str) -> None:
        expected = self.untag_digest.get(tag)
        current = self.tags.get(tag)
        if current is None or current == expected:
            return
        head = self.last_head.get(tag, -1)
        excused = self.foreign_touch.get(tag, -1) > head and self.last_write < head
        if not excused:
            self.violations.append(f"placeholder pushed over {tag} -> {current[:19]} (plan untags {str(expected)[:19]})")

    # --- the OCI Distribution API ------------------------------------------------------------
    def oci(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.seq += 1
            method, path = request.method, request.url.path
            self.requests.append(f"{method} {path}")
            prefix = f"/v2/{REPO}/"
            if not path.startswith(prefix):
                return httpx.Response(404)
            rest = path[len(prefix):]
            if rest == "tags/list" and method == "GET":
                if self.last_write > self.look_start or self.look_start < 0:
                    self.look_start = self.seq          # the first tag-list read since our last write
                if not self.tags:
                    return httpx.Response(404, json={"errors": [{"code": "NAME_UNKNOWN"}]})
                return httpx.Response(200, json={"name": REPO, "tags": sorted(self.tags)})
            if rest.startswith("manifests/"):
                return self._manifest(method, rest[len("manifests/"):], request)
            if rest.startswith("blobs/uploads"):
                self.last_write = self.seq
                if method == "POST":
                    return httpx.Response(202, headers={"location": f"/v2/{REPO}/blobs/uploads/u1"})
                digest = parse_qs(request.url.query.decode()).get("digest", [""])[0]
                self.blobs.add(digest)
                return httpx.Response(201)
            if rest.startswith("blobs/"):
                self.last_write = self.seq
                return httpx.Response(200 if rest[len("blobs/"):] in self.blobs else 404)
            return httpx.Response(404)

    def _manifest(self, method: str, ref: str, request: httpx.Request) -> httpx.Response:
        by_digest = ref.startswith("sha256:")
        digest = ref if by_digest else self.tags.get(ref)
        if method in ("GET", "HEAD"):
            if not by_digest:
                self.last_head[ref] = self.seq
            if digest is None or digest not in self.manifests:
                return httpx.Response(404)
            body, media_type = self.manifests[digest]
            headers = {"docker-content-digest": digest, "content-type": media_type}
            return httpx.Response(200, content=b"" if method == "HEAD" else body, headers=headers)
        try:
            return self._write_manifest(method, ref, by_digest, digest, request)
        finally:
            self.last_write = self.seq          # after judging: the judge looks at the writes before

    def _write_manifest(self, method: str, ref: str, by_digest: bool, digest: str | None,
                        request: httpx.Request) -> httpx.Response:
        if method == "PUT":
            body = request.content
            owner = _placeholder_tag(body)
            if owner is not None:
                self._judge_placeholder_put(ref)
                self.placeholders_pushed.add(ref)
            media_type = request.headers.get("content-type", OCI_MANIFEST)
            return httpx.Response(201, headers={"docker-content-digest": self.add(body, media_type, ref)})
        if method == "DELETE":
            if not by_digest:
                return httpx.Response(400, json={"errors": [{"code": "DIGEST_INVALID"}]})
            if digest not in self.manifests:
                return httpx.Response(404)
            self._deleted(digest)
            return httpx.Response(202)
        return httpx.Response(405)

    def _deleted(self, digest: str) -> None:
        self._judge_delete(digest)
        body = self.manifests[digest][0]
        owner = _placeholder_tag(body)
        if owner is not None and self.tags.get(owner) == digest:
            self.untagged_by_janitor.add(owner)
        self.deleted_by_janitor.add(digest)
        self.drop(digest)

    # --- GHCR's Packages REST ----------------------------------------------------------------
    def rest(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.seq += 1
            method, path = request.method, request.url.path
            self.requests.append(f"REST {method} {path}?{request.url.query.decode()}")
            versions = f"/orgs/{OWNER}/packages/container/{PACKAGE}/versions"
            if method == "GET" and path == f"/orgs/{OWNER}":
                return httpx.Response(200, json={"login": OWNER, "id": 1})
            if method == "GET" and path == versions:
                page = int(parse_qs(request.url.query.decode()).get("page", ["1"])[0])
                ordered = sorted(self.version_ids.items(), key=lambda kv: -kv[1])
                chunk = ordered[(page - 1) * PAGE: page * PAGE]
                headers = {}
                if page * PAGE < len(ordered):
                    headers["link"] = f'<{API}{versions}?per_page=100&page={page + 1}>; rel="next"'
                return httpx.Response(200, headers=headers, json=[self._version(d, vid) for d, vid in chunk])
            if method == "DELETE" and path.startswith(versions + "/"):
                vid = int(path.rsplit("/", 1)[1])
                digest = next((d for d, v in self.version_ids.items() if v == vid), None)
                self.last_write = self.seq if digest is None else self.last_write
                if digest is None:
                    return httpx.Response(404, json={"message": "Package version not found."})
                self._deleted(digest)
                self.last_write = self.seq
                return httpx.Response(204)
            return httpx.Response(404, json={"message": "Not Found"})

    def _version(self, digest: str, vid: int) -> dict:
        return {"id": vid, "name": digest, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
                "metadata": {"package_type": "container",
                             "container": {"tags": sorted(t for t, d in self.tags.items() if d == digest)}}}


def _placeholder_tag(body: bytes) -> str | None:
    try:
        notes = json.loads(body).get("annotations") or {}
    except (ValueError, AttributeError):
        return None
    return notes.get(PLACEHOLDER_TAG) if notes.get(PLACEHOLDER) == "true" else None


class Stepper:
    """Lets the janitor's requests through one at a time, when `step()` says so."""

    def __init__(self):
        self.free = False
        self._cond = threading.Condition()
        self._allowed = 0
        self._served = 0

    def gate(self, handler):
        def wrapped(request: httpx.Request) -> httpx.Response:
            with self._cond:
                while not self.free and self._allowed <= self._served:
                    if not self._cond.wait(timeout=20):
                        raise RuntimeError("stepper: nobody let the request through in 20 s")
                try:
                    return handler(request)
                finally:
                    self._served += 1
                    self._cond.notify_all()
        return wrapped

    def step(self, done: threading.Event, timeout: float = 20) -> bool:
        """Let one request through; False if apply had finished (nothing was waiting)."""
        with self._cond:
            if done.is_set():
                return False
            self._allowed = self._served + 1
            self._cond.notify_all()
            while self._served < self._allowed and not done.is_set():
                self._cond.wait(timeout=0.05)
            return True

    def release(self) -> None:
        with self._cond:
            self.free = True
            self._cond.notify_all()
