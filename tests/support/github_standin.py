"""A GitHub REST stand-in that enforces GitHub's rate limits: for pacing tests and the benchmark.

The existing fakes (`FakeGitHub` in tests/integration/test_ghcr.py, `world.py`'s Packages hook,
`gha_api.CacheRepo`) answer the Packages and Actions-cache endpoints correctly but have no limits;
this one serves the same shapes (version objects as in test_github_api.version(), the
`actions_caches` listing as in gha_api) with the limits GitHub documents (docs "Rate limits for the
REST API", gha-cache.md §1.8) and the headers it sends:

- primary: `hourly` requests an hour per token (5,000 a token, 1,000 a workflow's GITHUB_TOKEN per
  repository); over it, 403 "API rate limit exceeded" with `x-ratelimit-remaining: 0`. Every answer
  carries `x-ratelimit-limit/-remaining/-used/-reset/-resource`.
- secondary: at most `points_per_minute` (900) points per REST endpoint in any 60 s (GET 1,
  DELETE 5), at most `max_in_flight` (100) requests at once; over either, 403 {"message": "You have
  exceeded a secondary rate limit. Please wait a few minutes before you try again."} with
  `retry-after: 60`, and the endpoint keeps answering that 403 until then (`penalty`).
- the package-version delete throttle GitHub does not document (users drain 55-60 a minute per
  package): per package, `package_per_minute` with a burst of `package_burst`, as a token bucket
  (`throttle="bucket"`, retry-after: the seconds until the next token) or as a fixed minute window
  (`throttle="window"`, retry-after: the seconds to the window's end); over it, 429.

Counters (`stats`) say what a client did: deletes accepted, 429s, secondary 403s, and requests sent
into a penalty (what GitHub may ban an integration for). `in_process()` is an httpx transport on an
injected (fake) clock, each request advancing it by the round trip; `StandinServer` is a threaded
HTTP server on 127.0.0.1 (real time, or a scaled clock) for the benchmark.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import httpx

SECONDARY = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
SECONDARY_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
PRIMARY = "API rate limit exceeded for installation ID 1."
PRIMARY_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
THROTTLED = "Too many requests. Please retry after a while."
PER_PAGE_MAX = 100

_VERSION = re.compile(r"^/(orgs|users)/([^/]+)/packages/container/([^/]+)/versions(?:/(\d+))?$")
_CACHE = re.compile(r"^/repos/([^/]+)/([^/]+)/actions/caches(?:/(\d+))?$")


@dataclass
class Limits:
    hourly: int = 5_000                     # primary, per token (1,000: a workflow's GITHUB_TOKEN)
    points_per_minute: int = 900            # secondary, per REST endpoint
    get_points: int = 1
    delete_points: int = 5
    max_in_flight: int = 100
    penalty: float = 60.0                   # retry-after of a secondary 403; the endpoint stays shut
    package_per_minute: float | None = 60.0     # the undocumented package-version delete throttle
    package_burst: int = 10
    throttle: str = "bucket"                # or "window"
    round_trip: float = 0.1                 # seconds, added per request

    def allowed_per_minute(self, package: bool) -> float:
        """The steady delete rate these limits allow on one package (or Actions cache)."""
        rates = [self.points_per_minute / self.delete_points]
        if package and self.package_per_minute:
            rates.append(self.package_per_minute)
        return min(rates)

    def minimum_seconds(self, deletes: int, package: bool) -> float:
        """The theoretical minimum time of `deletes` deletes: at the steady rate these limits allow
        (an initial burst, at most one minute's worth, is not counted: a long run does not see it),
        and at least the primary hours they need."""
        seconds = deletes * 60.0 / self.allowed_per_minute(package)
        if deletes > self.hourly:
            seconds = max(seconds, 3600.0 * ((deletes - 1) // self.hourly))
        return seconds


@dataclass
class Stats:
    requests: int = 0
    deletes_ok: int = 0
    deletes_missing: int = 0
    throttled: int = 0                  # 429 from the package throttle
    secondary: int = 0                  # secondary-limit 403s
    into_penalty: int = 0               # requests sent while an endpoint was shut by a secondary 403
    primary: int = 0                    # primary-limit 403s
    max_in_flight: int = 0
    delete_times: list[float] = field(default_factory=list)     # clock of every accepted delete


class GitHubStandin:
    """The state and the rules; `answer(method, target)` at `clock()`. Thread-safe."""

    def __init__(self, limits: Limits | None = None, clock: Callable[[], float] = time.time,
                 api: str = "http://127.0.0.1"):
        self.limits = limits or Limits()
        self.clock = clock
        self.api = api
        self.lock = threading.Lock()
        self.stats = Stats()
        self.packages: dict[tuple[str, str], dict[int, dict]] = {}
        self.caches: dict[tuple[str, str], dict[int, dict]] = {}
        self._next_id = 1_000
        self._hour_start: float | None = None
        self._used = 0
        self._points: dict[str, deque[tuple[float, int]]] = {}
        self._shut_until: dict[str, float] = {}
        self._buckets: dict[tuple[str, str], list[float]] = {}     # (tokens, at) or (count, window start)
        self._in_flight = 0

    # --- seeding ---------------------------------------------------------------------
    def add_versions(self, owner: str, package: str, count: int) -> list[int]:
        versions = self.packages.setdefault((owner, package), {})
        ids = []
        for _ in range(count):
            self._next_id += 1
            vid = self._next_id
            versions[vid] = {
                "id": vid, "name": f"sha256:{vid:064x}",
                "url": f"{self.api}/orgs/{owner}/packages/container/{package}/versions/{vid}",
                "package_html_url": f"https://github.com/orgs/{owner}/packages/container/package/{package}",
                "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
                "html_url": f"https://github.com/orgs/{owner}/packages/container/{package}/{vid}",
                "metadata": {"package_type": "container", "container": {"tags": []}},
            }
            ids.append(vid)
        return ids

    def add_caches(self, owner: str, repo: str, count: int) -> list[int]:
        entries = self.caches.setdefault((owner, repo), {})
        ids = []
        for i in range(count):
            self._next_id += 1
            cid = self._next_id
            entries[cid] = {"id": cid, "ref": "refs/heads/main", "key": f"buildkit-blob-1-sha256:{cid:064x}",
                            "version": "x" * 64, "last_accessed_at": "2026-01-01T00:00:00Z",
                            "created_at": "2026-01-01T00:00:00Z", "size_in_bytes": 1000 + i}
            ids.append(cid)
        return ids

    # --- the rules -------------------------------------------------------------------
    def _headers(self, now: float) -> dict[str, str]:
        reset = int((self._hour_start or now) + 3600)
        return {"x-ratelimit-limit": str(self.limits.hourly), "x-ratelimit-used": str(self._used),
                "x-ratelimit-remaining": str(max(0, self.limits.hourly - self._used)),
                "x-ratelimit-reset": str(reset), "x-ratelimit-resource": "core",
                "x-github-api-version-selected": "2022-11-28", "content-type": "application/json; charset=utf-8"}

    def _throttle(self, key: tuple[str, str], now: float) -> float | None:
        """None if the package's throttle lets this delete through, else seconds to wait."""
        limits = self.limits
        rate = limits.package_per_minute
        if not rate:
            return None
        if limits.throttle == "window":
            state = self._buckets.setdefault(key, [0.0, now])
            if now - state[1] >= 60.0:
                state[0], state[1] = 0.0, now - (now - state[1]) % 60.0
            if state[0] >= rate:
                return state[1] + 60.0 - now
            state[0] += 1
            return None
        state = self._buckets.setdefault(key, [float(limits.package_burst), now])
        state[0] = min(float(limits.package_burst), state[0] + (now - state[1]) * rate / 60.0)
        state[1] = now
        if state[0] >= 1.0:
            state[0] -= 1.0
            return None
        return (1.0 - state[0]) * 60.0 / rate

    def answer(self, method: str, target: str) -> tuple[int, dict, dict | list | None]:
        with self.lock:
            return self._answer(method, target)

    def _answer(self, method: str, target: str) -> tuple[int, dict, dict | list | None]:
        now = self.clock()
        limits, stats = self.limits, self.stats
        stats.requests += 1
        if self._hour_start is None or now >= self._hour_start + 3600:
            self._hour_start, self._used = now, 0
        url = urlsplit(target)
        path, query = url.path, parse_qs(url.query)
        endpoint = f"{method} " + re.sub(r"/\d+$", "/{id}", path)
        # primary budget
        if self._used >= limits.hourly:
            stats.primary += 1
            return 403, self._headers(now), {"message": PRIMARY, "documentation_url": PRIMARY_DOCS}
        self._used += 1
        headers = self._headers(now)
        # secondary: a shut endpoint, requests in flight, points a minute
        if self._shut_until.get(endpoint, -math.inf) > now:
            stats.into_penalty += 1
            stats.secondary += 1
            retry = math.ceil(self._shut_until[endpoint] - now)
            return 403, {**headers, "retry-after": str(retry)}, {"message": SECONDARY, "documentation_url": SECONDARY_DOCS}
        points = self._points.setdefault(endpoint, deque())
        while points and points[0][0] <= now - 60.0:
            points.popleft()
        cost = limits.delete_points if method == "DELETE" else limits.get_points
        if self._in_flight > limits.max_in_flight or sum(p for _, p in points) + cost > limits.points_per_minute:
            stats.secondary += 1
            self._shut_until[endpoint] = now + limits.penalty
            return 403, {**headers, "retry-after": str(int(limits.penalty))}, {"message": SECONDARY,
                                                                               "documentation_url": SECONDARY_DOCS}
        points.append((now, cost))
        version = _VERSION.match(path)
        cache = _CACHE.match(path)
        if method == "GET" and re.fullmatch(r"/orgs/[^/]+", path):
            return 200, headers, {"login": path.rsplit("/", 1)[1], "id": 1}
        if version:
            key = (version.group(2), version.group(3))
            items = self.packages.get(key)
            if items is None:
                return 404, headers, {"message": "Package not found."}
            if method == "GET" and version.group(4) is None:
                return self._page(items, query, path, headers, lambda chunk: chunk)
            if method == "DELETE" and version.group(4):
                wait = self._throttle(key, now)
                if wait is not None:
                    stats.throttled += 1
                    return 429, {**headers, "retry-after": str(max(1, math.ceil(wait)))}, {"message": THROTTLED}
                return self._delete(items, int(version.group(4)), now, headers)
        if cache:
            key = (cache.group(1), cache.group(2))
            items = self.caches.get(key)
            if items is None:
                return 404, headers, {"message": "Not Found"}
            if method == "GET" and cache.group(3) is None:
                return self._page(items, query, path, headers,
                                  lambda chunk: {"total_count": len(items), "actions_caches": chunk})
            if method == "DELETE" and cache.group(3):
                return self._delete(items, int(cache.group(3)), now, headers)
        return 404, headers, {"message": "Not Found"}

    def _page(self, items: dict[int, dict], query: dict, path: str, headers: dict, shape) -> tuple:
        per_page = min(PER_PAGE_MAX, int(query.get("per_page", ["30"])[0]))
        page = int(query.get("page", ["1"])[0])
        ordered = [items[k] for k in sorted(items, reverse=True)]
        chunk = ordered[(page - 1) * per_page: page * per_page]
        if page * per_page < len(ordered):
            headers = {**headers, "link": f'<{self.api}{path}?per_page={per_page}&page={page + 1}>; rel="next"'}
        return 200, headers, shape(chunk)

    def _delete(self, items: dict[int, dict], item: int, now: float, headers: dict) -> tuple:
        if items.pop(item, None) is None:
            self.stats.deletes_missing += 1
            return 404, headers, {"message": "Not Found"}
        self.stats.deletes_ok += 1
        self.stats.delete_times.append(now)
        return 204, headers, None

    # --- in flight (the server's threads) ---------------------------------------------
    def enter(self) -> None:
        with self.lock:
            self._in_flight += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self._in_flight)

    def leave(self) -> None:
        with self.lock:
            self._in_flight -= 1


def in_process(standin: GitHubStandin, advance: Callable[[float], None]) -> httpx.AsyncBaseTransport:
    """An httpx transport answering from `standin` on its (fake) clock: half the round trip passes
    before GitHub sees the request, half after (`advance(seconds)` moves the fake clock)."""

    class Transport(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            advance(standin.limits.round_trip / 2)
            status, headers, body = standin.answer(request.method, request.url.raw_path.decode())
            advance(standin.limits.round_trip / 2)
            content = b"" if body is None else json.dumps(body).encode()
            return httpx.Response(status, headers=headers, content=content, request=request)

    return Transport()


class StandinServer:
    """`standin` over HTTP on 127.0.0.1 (threaded), each answer delayed by the round trip."""

    def __init__(self, standin: GitHubStandin):
        self.standin = standin

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True      # headers and body go in two writes: no 40 ms delayed-ACK stall

            def _serve(self) -> None:
                standin.enter()
                try:
                    time.sleep(standin.limits.round_trip / 2)
                    status, headers, body = standin.answer(self.command, self.path)
                    time.sleep(standin.limits.round_trip / 2)
                finally:
                    standin.leave()
                content = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_DELETE = _serve

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        standin.api = self.url
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "StandinServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
