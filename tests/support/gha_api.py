"""A local stand-in for GitHub's REST endpoints of one repository's Actions cache.

Built from the documented shapes (gha-cache.md §1): `GET /repos/O/R/actions/caches` pages with
`per_page`/`page`, an exact `ref` and a key-prefix `key` filter, `total_count` and `Link`; `DELETE /repos/O/R/actions/caches/{id}` -> 204 or 404;
usage, the cache limits (gha-cache.md §1.6, U.2: the repository's and the organisation's
`storage-limit` -> `{"max_cache_size_gb": N}` and `retention-limit` -> `{"max_cache_retention_days": N}`,
GHES's repository `usage-policy` -> `{"repo_cache_size_limit_in_gb": N}`; each 404 unless set, or the
status put in `denied`), the repository (default branch, owner type), branches and pull requests.
Faults are queued per method; every request is logged. It runs on 127.0.0.1 in a thread, started
by the tests like the registry.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx

BUILDKIT_VERSION = "693bb7016429d80366022f036f84856888c9f13e00145f5f6f4dce303a38d6f2"
ACTIONS_VERSION = "404eb58b0e6bd1a1f0b7ba5d7ee2cd1a2b0ab4e8d94a0e1a06e6e3ba1a8bee2c"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def h8(ref: str) -> str:
    return hashlib.sha256(ref.encode()).hexdigest()[:8]


@dataclass
class Fault:
    method: str | None
    status: int
    body: dict
    headers: dict = field(default_factory=dict)


class CacheRepo:
    """The state the stand-in serves: entries, branches, pull requests, usage and limit."""

    def __init__(self, owner: str = "acme", repo: str = "app", default_branch: str = "main", token: str = "ghs_x"):
        self.owner, self.repo, self.default_branch, self.token = owner, repo, default_branch, token
        self.entries: dict[int, dict] = {}
        self.branches: set[str] = {default_branch}
        self.pulls: dict[int, str] = {}
        self.limit_gb: int | None = None             # the repository's storage-limit (None: 404)
        self.retention_days: int | None = None       # the repository's retention-limit
        self.org_limit_gb: int | None = None         # the organisation's storage-limit
        self.org_retention_days: int | None = None   # the organisation's retention-limit
        self.usage_max_gb: int | None = None         # a `max_cache_size_gb` in the usage answer
        self.policy_gb: int | None = None            # GHES: the repository's usage-policy
        self.denied: dict[str, int] = {}             # path suffix (e.g. "storage-limit") -> status (403)
        self.owner_type = "Organization"
        self.ids = itertools.count(1000)
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, int]] = []
        self.vanish_on_delete: set[int] = set()      # gone between list and delete (a concurrent job)
        self.on_delete = None                        # called with an entry just before a DELETE removes it
        self.remaining = 5000
        self.lock = threading.Lock()

    # --- building state ---
    def add(self, key: str, ref: str, size: int, created: datetime, accessed: datetime | None = None,
            version: str = ACTIONS_VERSION) -> int:
        cache_id = next(self.ids)
        # Restores bump last_accessed_at: like real entries, it is later than created_at.
        accessed = accessed or created + timedelta(hours=3)
        self.entries[cache_id] = {"id": cache_id, "ref": ref, "key": key, "version": version,
                                  "last_accessed_at": stamp(accessed), "created_at": stamp(created),
                                  "size_in_bytes": size}
        return cache_id

    def blob(self, ref: str, n: int, when: datetime, size: int = 5_000_000) -> int:
        digest = hashlib.sha256(f"{ref}-{n}".encode()).hexdigest()
        return self.add(f"buildkit-blob-1-sha256:{digest}", ref, size, when, version=BUILDKIT_VERSION)

    def index(self, scope: str, ref: str, generation: int, when: datetime, sig: bool = False) -> int:
        key = f"index-{scope}-1-{h8(ref)}{'-sig' if sig else ''}#{generation}"
        return self.add(key, ref, 2048, when, version=BUILDKIT_VERSION)

    def fail(self, method: str | None, status: int, body: dict, **headers: str) -> None:
        self.faults.append(Fault(method, status, body, headers))

    # --- answering ---
    def answer(self, method: str, target: str, auth: str | None) -> tuple[int, dict | None, dict]:
        url = urlsplit(target)
        path, query = unquote(url.path), parse_qs(url.query)
        with self.lock:
            self.remaining = max(0, self.remaining - 1)
            limits = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": str(self.remaining),
                      "x-ratelimit-reset": "4102444800", "x-ratelimit-resource": "core"}
            if auth != f"Bearer {self.token}":
                return 401, {"message": "Bad credentials"}, limits
            for i, fault in enumerate(self.faults):
                if fault.method in (None, method):
                    del self.faults[i]
                    return fault.status, fault.body, {**limits, **fault.headers}
            base = f"/repos/{self.owner}/{self.repo}"
            if method == "GET" and path == f"/orgs/{self.owner}/actions/cache/usage-by-repository":
                return self._usage_page(query, limits)
            if method == "GET" and path == base:
                return 200, {"full_name": f"{self.owner}/{self.repo}", "default_branch": self.default_branch,
                             "owner": {"login": self.owner, "type": self.owner_type}}, limits
            setting = self._setting(method, path, base)
            if setting is not None:
                status, body = setting
                return status, body, limits
            if method == "GET" and path == f"{base}/actions/caches":
                return self._page(query, limits)
            if method == "DELETE" and path.startswith(f"{base}/actions/caches/"):
                cache_id = int(path.rsplit("/", 1)[1])
                if cache_id in self.vanish_on_delete:
                    self.entries.pop(cache_id, None)
                if self.on_delete is not None and cache_id in self.entries:
                    self.on_delete(self.entries[cache_id])
                if self.entries.pop(cache_id, None) is None:
                    return 404, {"message": "Not Found"}, limits
                return 204, None, limits
            if method == "GET" and path == f"{base}/actions/cache/usage":
                size = sum(e["size_in_bytes"] for e in self.entries.values())
                usage = {"full_name": f"{self.owner}/{self.repo}", "active_caches_size_in_bytes": size,
                         "active_caches_count": len(self.entries)}
                if self.usage_max_gb is not None:
                    usage["max_cache_size_gb"] = self.usage_max_gb
                return 200, usage, limits
            if method == "GET" and path.startswith(f"{base}/branches/"):
                name = path[len(f"{base}/branches/"):]
                return (200, {"name": name}, limits) if name in self.branches else (404, {"message": "Branch not found"}, limits)
            if method == "GET" and path.startswith(f"{base}/pulls/"):
                number = int(path.rsplit("/", 1)[1])
                state = self.pulls.get(number)
                return (200, {"number": number, "state": state}, limits) if state else (404, {"message": "Not Found"}, limits)
            return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}, limits

    def _setting(self, method: str, path: str, base: str) -> tuple[int, dict] | None:
        """The limit endpoints (None: not one of them). A user's repository has no organisation."""
        org = f"/organizations/{self.owner}/actions/cache/"
        table = {f"{base}/actions/cache/storage-limit": ("storage-limit", "max_cache_size_gb", self.limit_gb),
                 f"{base}/actions/cache/retention-limit": ("retention-limit", "max_cache_retention_days",
                                                          self.retention_days),
                 f"{base}/actions/cache/usage-policy": ("usage-policy", "repo_cache_size_limit_in_gb", self.policy_gb),
                 f"{org}storage-limit": ("org storage-limit", "max_cache_size_gb", self.org_limit_gb),
                 f"{org}retention-limit": ("org retention-limit", "max_cache_retention_days", self.org_retention_days)}
        if method != "GET" or path not in table:
            return None
        name, field, value = table[path]
        if name in self.denied:
            return self.denied[name], {"message": "Resource not accessible by integration",
                                       "documentation_url": "https://docs.github.com/rest/actions/cache"}
        if value is None or (name.startswith("org ") and self.owner_type != "Organization"):
            return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
        return 200, {field: value}

    def _page(self, query: dict, limits: dict) -> tuple[int, dict, dict]:
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        page = int(query.get("page", ["1"])[0])
        ref = query.get("ref", [None])[0]
        key = query.get("key", [""])[0]                 # "An explicit key or prefix"
        listed = [e for e in self.entries.values() if ref in (None, e["ref"]) and e["key"].startswith(key)]
        if query.get("sort", [""])[0] == "created_at":
            ordered = sorted(listed, key=lambda e: (e["created_at"], e["id"]),
                             reverse=query.get("direction", ["desc"])[0] != "asc")
        else:
            ordered = sorted(listed, key=lambda e: e["last_accessed_at"], reverse=True)
        last = max(1, -(-len(ordered) // per_page))
        headers = dict(limits)
        kept = "".join(f"&{k}={quote(query[k][0], safe='')}" for k in ("sort", "direction", "ref", "key")
                       if k in query)   # as GitHub keeps them
        link = f"{self.base_url}/repos/{self.owner}/{self.repo}/actions/caches?per_page={per_page}{kept}&page="
        rels = []
        if page < last:
            rels += [f'<{link}{page + 1}>; rel="next"', f'<{link}{last}>; rel="last"']
        if page > 1:
            rels += [f'<{link}{page - 1}>; rel="prev"', f'<{link}1>; rel="first"']
        if rels:
            headers["link"] = ", ".join(rels)
        return 200, {"total_count": len(ordered), "actions_caches": ordered[(page - 1) * per_page: page * per_page]}, headers

    base_url = ""
    org_repositories: list[str] = []        # other repositories the organisation reports, with ours

    def _usage_page(self, query: dict, limits: dict) -> tuple[int, dict, dict]:
        names = sorted({f"{self.owner}/{self.repo}", *self.org_repositories})
        per_page, page = min(int(query.get("per_page", ["30"])[0]), 100), int(query.get("page", ["1"])[0])
        chunk = names[(page - 1) * per_page: page * per_page]
        headers = dict(limits)
        if page * per_page < len(names):
            headers["link"] = (f'<{self.base_url}/orgs/{self.owner}/actions/cache/usage-by-repository'
                               f'?per_page={per_page}&page={page + 1}>; rel="next"')
        return 200, {"total_count": len(names), "repository_cache_usages": [
            {"full_name": n, "active_caches_size_in_bytes": 1, "active_caches_count": 1} for n in chunk]}, headers


def in_process(repo: CacheRepo, url: str = "http://127.0.0.1:1") -> httpx.AsyncBaseTransport:
    """An httpx transport that answers from `repo` without a socket (a model runs thousands of
    requests); `url` is the API URL the client uses. Requests are logged as by GhaServer."""
    repo.base_url = url

    def handle(request: httpx.Request) -> httpx.Response:
        target = request.url.raw_path.decode("ascii")
        status, body, headers = repo.answer(request.method, target, request.headers.get("authorization"))
        repo.requests.append((request.method, target, status))
        return httpx.Response(status, headers=headers, json=body) if body is not None else \
            httpx.Response(status, headers=headers)

    return httpx.MockTransport(handle)


class GhaServer:
    """Serve CacheRepos (one per repository; the first also answers for the organisation) on
    127.0.0.1, a free port, until stopped. `remaining`, when set, is one token's budget shared by
    all of them, as GitHub counts it."""

    def __init__(self, state: CacheRepo, *others: CacheRepo):
        self.state, self.states = state, [state, *others]
        self.remaining: int | None = None
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                repo = next((s for s in owner.states if self.path.startswith(f"/repos/{s.owner}/{s.repo}")), owner.state)
                if owner.remaining is not None:
                    owner.remaining = max(0, owner.remaining - 1)
                    repo.remaining = owner.remaining + 1
                status, body, headers = repo.answer(self.command, self.path, self.headers.get("authorization"))
                repo.requests.append((self.command, self.path, status))
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if data:
                    self.send_header("content-type", "application/json; charset=utf-8")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_DELETE = _serve

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        for each in self.states:
            each.base_url = self.url
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "GhaServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def seed(repo: CacheRepo, now: datetime = NOW) -> dict[str, list[int]]:
    """250+ entries of every kind: the default branch, two open and two closed PRs, a live and a
    deleted branch, per-commit `Linux-buildx-<sha>` keys, a foreign index key. Returns ids by role."""
    ids: dict[str, list[int]] = {}

    def note(role: str, cache_id: int) -> int:
        ids.setdefault(role, []).append(cache_id)
        return cache_id

    main = "refs/heads/main"
    repo.branches |= {"feature/live"}
    repo.pulls.update({7: "open", 8: "open", 5: "closed", 6: "closed"})
    for n in range(70):                                     # the default branch's blobs
        note("main-blob", repo.blob(main, n, now - timedelta(days=n % 20, hours=1)))
    for g in range(1, 13):                                  # 12 generations of two scopes on main
        note("main-index-old" if g < 12 else "main-index-newest", repo.index("buildkit", main, g, now - timedelta(days=12 - g)))
        note("main-index-old" if g < 12 else "main-index-newest", repo.index("my-app-build", main, g, now - timedelta(days=12 - g, hours=2)))
    for c in range(8):                                      # per-commit actions/cache keys on main
        sha = hashlib.sha1(f"main{c}".encode()).hexdigest()
        note("main-commit-newest" if c == 7 else "main-commit-2nd" if c == 6 else "main-commit-old",
             repo.add(f"Linux-buildx-{sha}", main, 40_000_000, now - timedelta(days=8 - c)))
    note("main-plain", repo.add("Linux-node-modules", main, 1_000_000, now - timedelta(days=3)))
    for pr in (7, 8, 5, 6):                                  # PR merge refs
        ref = f"refs/pull/{pr}/merge"
        role = "live-pr" if pr in (7, 8) else "closed-pr"
        for n in range(25):
            note(f"{role}-blob", repo.blob(ref, n, now - timedelta(days=pr, hours=n)))
        for g in range(1, 4):
            note(f"{role}-index-{'newest' if g == 3 else 'old'}", repo.index("buildkit", ref, g, now - timedelta(days=pr, hours=-g)))
        for c in range(3):
            sha = hashlib.sha1(f"{ref}{c}".encode()).hexdigest()
            role_c = f"{role}-commit-{'old' if c == 0 else 'new'}"
            note(role_c, repo.add(f"Linux-buildx-{sha}", ref, 30_000_000, now - timedelta(days=pr, hours=-c)))
    for name, role in (("feature/live", "live-branch"), ("feature/gone", "deleted-branch")):
        ref = f"refs/heads/{name}"
        for n in range(10):
            note(f"{role}-blob", repo.blob(ref, n, now - timedelta(days=4, hours=n)))
        note(f"{role}-index-newest", repo.index("buildkit", ref, 1, now - timedelta(days=4)))
    # Another writer's key that looks like a BuildKit index but hashes another ref: left alone.
    note("foreign", repo.add(f"index-buildkit-1-{h8('refs/heads/other')}#3", main, 4096, now - timedelta(days=30),
                             version=BUILDKIT_VERSION))
    return ids
