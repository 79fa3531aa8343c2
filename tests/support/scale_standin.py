"""Stand-ins for the scale benchmark (issue 23): a synthetic OCI `/v2` server and a GitHub REST
stand-in seeded with a big package. Stand-ins, not registries: nothing is stored, every manifest is
generated on request from a small per-version record, deterministically.

- `package(n)`: a GHCR-like package of `n` versions, mostly untagged, multi-arch with attestations,
  as buildx pushes them: per image an OCI index (version 1 of 5) with two platform manifests and two
  attestation manifests (in-toto, `vnd.docker.reference.type: attestation-manifest`), each its own
  package version, as GHCR lists them. Every 100th index is tagged (`v<N>`, the newest also `latest`).
- `tag_repo(n)`: a repository of `n` tags, each a BuildKit cache manifest of its own (OCI manifest,
  cache config as config, layers with `buildkit/createdat`).
- `SyntheticOci`: a threaded HTTP/1.1 (keep-alive) server on 127.0.0.1 serving `/v2/`, `_catalog`,
  `tags/list` (n/last + Link) and manifests by tag or digest (GET and HEAD), each answer delayed by
  `delay` seconds; it counts requests per kind and manifest GETs per (repository, digest).
- `ScaleGitHub`: `GitHubStandin` (the rate-limiting REST stand-in) holding given version objects,
  with pages cut from one ordering kept between pages (not re-sorted per page) and the owner's
  package list (`GET /orgs/OWNER/packages?package_type=container`) for `ghcr.io/OWNER/*`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from tests.support.github_standin import GitHubStandin, Limits, StandinServer

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
INTOTO = "application/vnd.in-toto+json"
CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"
EPOCH = datetime(2026, 6, 1, tzinfo=timezone.utc)
GROUP = 5                       # versions per image: index, 2 platforms, 2 attestations


def _digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _blob(kind: str, n: int) -> str:
    return "sha256:" + hashlib.sha256(f"{kind}-{n}".encode()).hexdigest()


def _dump(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


class SyntheticRepo:
    """One repository: `record(ref)` -> (body, media type, digest) or None; `tags` sorted."""

    def __init__(self, name: str):
        self.name = name
        self.by_digest: dict[str, tuple[int, int]] = {}      # digest -> (item, role)
        self.tag_map: dict[str, str] = {}
        self._tags: list[str] | None = None

    @property
    def tags(self) -> list[str]:
        if self._tags is None:
            self._tags = sorted(self.tag_map)
        return self._tags

    def body(self, item: int, role: int) -> tuple[bytes, str]:
        raise NotImplementedError

    def manifest(self, ref: str) -> tuple[bytes, str, str] | None:
        digest = ref if ref.startswith("sha256:") else self.tag_map.get(ref)
        where = self.by_digest.get(digest) if digest else None
        if where is None:
            return None
        body, media_type = self.body(*where)
        return body, media_type, digest


class SyntheticPackage(SyntheticRepo):
    """`n` versions in images of 5 (see the module doc); `versions` are GitHub's version objects."""

    def __init__(self, name: str, n: int, first_id: int = 1_000_000, tag_every: int = 100, salt: str = ""):
        super().__init__(name)
        self.salt = salt        # packages with different salts share no manifest
        self.children: list[tuple[str, str, str, str]] = []     # per image: platform a, b, attestation a, b
        self.versions: list[dict] = []
        images = math.ceil(n / GROUP)
        for image in range(images):
            digests = []
            for role in (1, 2, 3, 4):
                body, _ = self.body(image, role) if role < 3 else self._attestation(image, role, digests[role - 3])
                digests.append(_digest(body))
            self.children.append(tuple(digests))        # type: ignore[arg-type]
            index = _digest(self.body(image, 0)[0])
            for role, digest in enumerate([index, *digests]):
                self.by_digest[digest] = (image, role)
            tags = []
            if image % tag_every == 0:
                tags.append(f"v{images - image}")
            if image == 0:
                tags.append("latest")
            for tag in tags:
                self.tag_map[tag] = index
            when = (EPOCH - timedelta(hours=image)).strftime("%Y-%m-%dT%H:%M:%SZ")
            for role, digest in enumerate([index, *digests]):
                if len(self.versions) >= n:
                    break
                self.versions.append({
                    "id": first_id + n - len(self.versions), "name": digest, "created_at": when, "updated_at": when,
                    "metadata": {"package_type": "container", "container": {"tags": tags if role == 0 else []}}})

    def _attestation(self, image: int, role: int, subject: str) -> tuple[bytes, str]:
        doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": {"mediaType": OCI_CONFIG, "digest": _blob(self.salt + "attcfg", image * 2 + role), "size": 241},
               "layers": [{"mediaType": INTOTO, "digest": _blob("sbom", image * 2 + role), "size": 15_000 + image % 977,
                           "annotations": {"in-toto.io/predicate-type": "https://spdx.dev/Document"}}]}
        return _dump(doc), OCI_MANIFEST

    def body(self, image: int, role: int) -> tuple[bytes, str]:
        if role in (1, 2):
            doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                   "config": {"mediaType": OCI_CONFIG, "digest": _blob(self.salt + "config", image * 2 + role), "size": 1_500},
                   "layers": [{"mediaType": LAYER, "digest": _blob("base", role), "size": 30_000_000},
                              {"mediaType": LAYER, "digest": _blob("app", image * 2 + role), "size": 2_000_000 + image}]}
            return _dump(doc), OCI_MANIFEST
        if role in (3, 4):
            return self._attestation(image, role, self.children[image][role - 3])
        a, b, att_a, att_b = self.children[image]
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": a, "size": len(self.body(image, 1)[0]),
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": b, "size": len(self.body(image, 2)[0]),
             "platform": {"architecture": "arm64", "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": att_a, "size": len(self._attestation(image, 3, a)[0]),
             "platform": {"architecture": "unknown", "os": "unknown"},
             "annotations": {"vnd.docker.reference.digest": a, "vnd.docker.reference.type": "attestation-manifest"}},
            {"mediaType": OCI_MANIFEST, "digest": att_b, "size": len(self._attestation(image, 4, b)[0]),
             "platform": {"architecture": "unknown", "os": "unknown"},
             "annotations": {"vnd.docker.reference.digest": b, "vnd.docker.reference.type": "attestation-manifest"}},
        ]}
        return _dump(doc), OCI_INDEX


class TagRepo(SyntheticRepo):
    """`n` tags `cache-NNNNNN`, each on a BuildKit cache manifest of its own."""

    def __init__(self, name: str, n: int):
        super().__init__(name)
        width = max(6, len(str(n)))
        for i in range(n):
            digest = _digest(self.body(i, 0)[0])
            self.by_digest[digest] = (i, 0)
            self.tag_map[f"cache-{i:0{width}d}"] = digest

    def body(self, i: int, role: int) -> tuple[bytes, str]:
        when = (EPOCH - timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        layers = [{"mediaType": LAYER, "digest": _blob("cache-layer", (i * 7 + k) % 4096), "size": 1_000_000 + k,
                   "annotations": {"buildkit/createdat": when, "containerd.io/uncompressed": _blob("u", k)}}
                  for k in range(3)]
        doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": {"mediaType": CACHE_CONFIG, "digest": _blob("cachecfg", i % 48), "size": 900},
               "layers": layers}
        return _dump(doc), OCI_MANIFEST


def small_package(name: str) -> SyntheticPackage:
    """One of an organisation's 2,000 packages: 2 images (10 versions), the newest tagged."""
    return SyntheticPackage(name, 10, first_id=1_000 + (int(hashlib.sha256(name.encode()).hexdigest()[:6], 16) << 5),
                            tag_every=1, salt=name)


def package(n: int, name: str = "acme/app") -> SyntheticPackage:
    return SyntheticPackage(name, n)


def tag_repo(n: int, name: str = "acme/cache") -> TagRepo:
    return TagRepo(name, n)


_MANIFEST = re.compile(r"^/v2/(.+)/manifests/([^/]+)$")
_TAGS = re.compile(r"^/v2/(.+)/tags/list$")


class SyntheticOci:
    """The synthetic `/v2` server: `repos` by name, or made on first use by `make(name)`."""

    def __init__(self, repos: dict[str, SyntheticRepo] | None = None, *, delay: float = 0.1,
                 make: Callable[[str], SyntheticRepo] | None = None, catalog: list[str] | None = None):
        self.repos = dict(repos or {})
        self.make = make
        self.catalog = sorted(catalog if catalog is not None else self.repos)
        self.delay = delay
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.gets: Counter[tuple[str, str]] = Counter()          # (repository, digest) -> manifest GETs
        self.touched: Counter[str] = Counter()                   # repository -> requests
        self.max_in_flight = 0
        self._in_flight = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without TCP_NODELAY the second waits for the
            # client's delayed ACK (40 ms on Linux), which no real registry adds.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                with owner.lock:
                    owner._in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner._in_flight)
                try:
                    if owner.delay:
                        time.sleep(owner.delay)
                    status, headers, body = owner.answer(self.command, self.path)
                finally:
                    with owner.lock:
                        owner._in_flight -= 1
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = _serve

            def log_message(self, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256                # 64+ clients connect at once

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def repo(self, name: str) -> SyntheticRepo | None:
        found = self.repos.get(name)
        if found is None and self.make is not None and name in self.catalog_set:
            with self.lock:
                found = self.repos.get(name) or self.repos.setdefault(name, self.make(name))
        return found

    @property
    def catalog_set(self) -> set[str]:
        if not hasattr(self, "_catalog_set"):
            self._catalog_set = set(self.catalog)
        return self._catalog_set

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()
            self.gets.clear()
            self.touched.clear()
            self.max_in_flight = 0

    @staticmethod
    def _paged(items: list[str], query: dict, field: str, path: str, default_n: int) -> tuple[int, dict, bytes]:
        n = int(query.get("n", [str(default_n)])[0])
        last = query.get("last", [None])[0]
        start = 0
        if last is not None:
            import bisect
            start = bisect.bisect_right(items, last)
        chunk = items[start:start + n]
        headers = {"Content-Type": "application/json"}
        if start + n < len(items) and chunk:
            headers["Link"] = f'<{path}?n={n}&last={chunk[-1]}>; rel="next"'
        return 200, headers, _dump({field: chunk} if field == "repositories" else {"name": "", field: chunk})

    def answer(self, method: str, target: str) -> tuple[int, dict, bytes]:
        url = urlsplit(target)
        path, query = url.path, parse_qs(url.query)
        missing = (404, {"Content-Type": "application/json"}, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
        if path in ("/v2", "/v2/"):
            self._count("base", None)
            return 200, {"Content-Type": "application/json"}, b"{}"
        if path == "/v2/_catalog":
            self._count("catalog", None)
            return self._paged(self.catalog, query, "repositories", path, 100)
        match = _TAGS.match(path)
        if match:
            repo = self.repo(match.group(1))
            self._count("tags", match.group(1))
            if repo is None:
                return 404, {"Content-Type": "application/json"}, b'{"errors":[{"code":"NAME_UNKNOWN"}]}'
            return self._paged(repo.tags, query, "tags", path, 1000)
        match = _MANIFEST.match(path)
        if match:
            name, ref = match.groups()
            repo = self.repo(name)
            found = repo.manifest(ref) if repo is not None else None
            self._count("manifest " + method, name, found[2] if found and method == "GET" else None)
            if found is None:
                return missing
            body, media_type, digest = found
            return 200, {"Content-Type": media_type, "Docker-Content-Digest": digest}, body
        self._count("other", None)
        return missing

    def _count(self, kind: str, repo: str | None, digest: str | None = None) -> None:
        with self.lock:
            self.counts[kind] += 1
            if repo is not None:
                self.touched[repo] += 1
            if digest is not None:
                self.gets[(repo, digest)] += 1   # type: ignore[index]

    def __enter__(self) -> "SyntheticOci":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


_PACKAGES = re.compile(r"^/(orgs|users)/([^/]+)/packages$")
_VERSIONS = re.compile(r"^/(?:orgs|users)/([^/]+)/packages/container/([^/]+)/versions$")


class ScaleGitHub(GitHubStandin):
    """The rate-limiting REST stand-in holding `SyntheticPackage.versions` as they are."""

    def __init__(self, limits: Limits | None = None, **kwargs):
        super().__init__(limits or Limits(package_per_minute=None), **kwargs)
        self._ordered: dict[int, tuple[int, list[dict]]] = {}
        self.pages = 0
        self.listed: Counter[tuple[str, str]] = Counter()       # (owner, package) -> version pages read

    def add_package(self, owner: str, package: str, versions: list[dict]) -> None:
        self.packages[(owner, package)] = {v["id"]: v for v in versions}

    def reset(self) -> None:
        """A fresh hour and fresh counters (between benchmark runs); the packages stay."""
        with self.lock:
            from tests.support.github_standin import Stats
            self.stats = Stats()
            self._hour_start, self._used = None, 0
            self._points.clear()
            self._shut_until.clear()
            self.pages = 0
            self.listed.clear()

    def _page(self, items: dict[int, dict], query: dict, path: str, headers: dict, shape) -> tuple:
        per_page = min(100, int(query.get("per_page", ["30"])[0]))
        page = int(query.get("page", ["1"])[0])
        cached = self._ordered.get(id(items))
        if cached is None or cached[0] != len(items):
            cached = self._ordered[id(items)] = (len(items), [items[k] for k in sorted(items, reverse=True)])
        ordered = cached[1]
        self.pages += 1
        chunk = ordered[(page - 1) * per_page: page * per_page]
        last = max(1, -(-len(ordered) // per_page))
        if page < last:
            headers = {**headers, "link": f'<{self.api}{path}?per_page={per_page}&page={page + 1}>; rel="next", '
                                          f'<{self.api}{path}?per_page={per_page}&page={last}>; rel="last"'}
        return 200, headers, shape(chunk)

    def _answer(self, method: str, target: str):
        status, headers, body = super()._answer(method, target)
        url = urlsplit(target)
        version = _VERSIONS.match(url.path)
        if status == 200 and method == "GET" and version:
            self.listed[(version.group(1), version.group(2))] += 1
        match = _PACKAGES.match(url.path)
        if status == 404 and method == "GET" and match:
            owner = match.group(2)
            names = sorted(p for (o, p) in self.packages if o == owner)
            items = {i: {"id": i, "name": n, "package_type": "container"} for i, n in enumerate(names, 1)}
            self.pages -= 1     # counted below as a package page, not a version page
            status, headers, body = self._page(items, parse_qs(url.query), url.path, headers, lambda chunk: chunk)
            self.pages += 1
            # keep the ordering cache from growing with throw-away dicts
            self._ordered.pop(id(items), None)
        return status, headers, body


class ScaleServer(StandinServer):
    """`StandinServer` with TCP_NODELAY: its headers and body are two writes, and the body would
    otherwise wait for the client's delayed ACK (40 ms a page on Linux: 1,000 pages, 40 s)."""

    def __init__(self, standin: GitHubStandin):
        super().__init__(standin)
        self.httpd.RequestHandlerClass.disable_nagle_algorithm = True      # type: ignore[attr-defined]
