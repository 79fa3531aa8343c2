"""A local registry for the benchmarks, its access-log request counter, and a fast BuildKit-cache seeder.

Used by `benchmarks/inventory.py`; also runnable on its own:

    python benchmarks/seed.py --tags 10000             # start registry, seed bench/buildkit-10000, stop
    python benchmarks/seed.py --registry 127.0.0.1:5000 --repo bench/x --tags 2000

Seeding pushes a shared pool of layer blobs and cache-config blobs once per repository
(BuildKit caches of one project share most layers), then PUTs only the N cache manifests,
concurrently. Every tag's manifest is unique (its layer set and `buildkit/createdat`
annotations differ), except ALIAS_EVERY-th tags, which point at an earlier tag's manifest
as `cache-main`-style aliases do, so "one GET per unique digest" is visible in the numbers.
Three forms, as BuildKit writes them: OCI index (the default `cache-to type=registry`),
OCI image manifest (`image-manifest=true`) and Docker manifest list (`oci-mediatypes=false`).

Everything is deterministic for a given (repo, N): re-seeding PUTs identical bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.client
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repository root
from tests.support.registry import INSTALL_HINT, RegistryServer, find_binary  # noqa: E402

SEED_VERSION = 1
STATE_DIR = Path(__file__).resolve().parent / ".state"
MARKER = "seeded.json"

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

LAYER_POOL = 96            # distinct layer blobs per repository
CONFIG_POOL = 48           # distinct cache-config blobs per repository
ALIAS_EVERY = 25           # every 25th tag re-points at an earlier tag's manifest
PUSH_THREADS = 8
BASE_TIME = datetime(2026, 9, 1, tzinfo=timezone.utc)



def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def dumps(doc) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


# --------------------------------------------------------------------------- registry
def BenchRegistry(root: Path, port: int | None = None) -> RegistryServer:
    """The tests' registry runner, with the access log that counts requests."""
    if find_binary() is None:
        raise SystemExit(INSTALL_HINT)
    return RegistryServer(Path(root), port=port, access_log=True)


_LINE = re.compile(rb'"(GET|HEAD|PUT|POST|PATCH|DELETE) (\S+) HTTP/[\d.]+" (\d{3})')


def classify(path: str) -> str:
    path = path.split("?")[0]
    if path in ("/v2", "/v2/"):
        return "ping"
    if path.endswith("/tags/list"):
        return "tags"
    if "/manifests/" in path:
        return "manifest"
    if "/blobs/uploads" in path:
        return "upload"
    if "/blobs/" in path:
        return "blob"
    return "other"


class AccessLogCounter:
    """Count requests the registry logged between `mark()` and `count()` (one tool at a time)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def mark(self) -> None:
        self._settle()
        self.offset = self._size()

    def _settle(self, quiet: float = 0.15, limit: float = 3.0) -> None:
        """Wait until the log stops growing (the registry logs after it answers)."""
        end = time.monotonic() + limit
        last = self._size()
        while time.monotonic() < end:
            time.sleep(quiet)
            now = self._size()
            if now == last:
                return
            last = now

    def count(self) -> Counter:
        self._settle()
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        counts: Counter = Counter()
        for match in _LINE.finditer(data):
            method, path = match.group(1).decode(), match.group(2).decode()
            counts[f"{method} {classify(path)}"] += 1
            counts["total"] += 1
        return counts


# --------------------------------------------------------------------------- seeding
def rfc3339_nano(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


@dataclass
class Plan:
    repo: str
    tags: dict[str, tuple[bytes, str]]    # tag -> (body, media type)
    blobs: list[bytes]

    @property
    def unique_digests(self) -> int:
        return len({sha(body) for body, _ in self.tags.values()})


def plan_repo(repo: str, n: int) -> Plan:
    """The deterministic content of a seeded repository with `n` cache tags."""
    rng = random.Random(f"{repo}:{n}:{SEED_VERSION}")
    layers = [rng.randbytes(rng.randint(512, 4096)) for _ in range(LAYER_POOL)]
    layer_meta = [(sha(d), len(d), sha(d + b"-uncompressed")) for d in layers]
    configs = []
    for i in range(CONFIG_POOL):
        picks = rng.sample(range(LAYER_POOL), 8)
        doc = {"layers": [{"blob": layer_meta[p][0], "parent": j - 1} for j, p in enumerate(picks)],
               "records": [{"digest": sha(b"%s-record-%d-%d" % (repo.encode(), i, j)),
                            "layers": [{"layer": j, "createdAt": rfc3339_nano(BASE_TIME)}]}
                           for j in range(len(picks))]}
        configs.append(dumps(doc))
    tags: dict[str, tuple[bytes, str]] = {}
    names: list[str] = []
    for i in range(n):
        tag = (f"cache-pr-{i:05d}" if i % 3 else f"cache-main-{i:05d}-{rng.getrandbits(28):07x}")
        if i and i % ALIAS_EVERY == 0:
            tags[tag] = tags[names[rng.randrange(len(names))]]
            names.append(tag)
            continue
        form = rng.choices(("index", "manifest", "docker-list"), weights=(6, 3, 1))[0]
        created = BASE_TIME + timedelta(minutes=rng.randint(0, 90 * 24 * 60), microseconds=i)
        layer_type = DOCKER_LAYER if form == "docker-list" else OCI_LAYER
        descs = []
        for k, p in enumerate(rng.sample(range(LAYER_POOL), rng.randint(4, 14))):
            digest, size, uncompressed = layer_meta[p]
            descs.append({"mediaType": layer_type, "digest": digest, "size": size,
                          "annotations": {"buildkit/createdat": rfc3339_nano(created - timedelta(minutes=k)),
                                          "containerd.io/uncompressed": uncompressed}})
        cfg = configs[rng.randrange(CONFIG_POOL)]
        config = {"mediaType": CACHE_CONFIG, "digest": sha(cfg), "size": len(cfg)}
        if form == "manifest":
            media_type = OCI_MANIFEST
            doc = {"schemaVersion": 2, "mediaType": media_type, "config": config, "layers": descs}
        else:
            media_type = OCI_INDEX if form == "index" else DOCKER_LIST
            doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": descs + [config]}
        tags[tag] = (dumps(doc), media_type)
        names.append(tag)
    return Plan(repo, tags, layers + configs)


async def _push_blobs(base: str, repo: str, blobs: list[bytes], concurrency: int) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        sem = asyncio.Semaphore(concurrency)

        async def blob(data: bytes) -> None:
            digest = sha(data)
            async with sem:
                if (await client.head(f"/v2/{repo}/blobs/{digest}")).status_code == 200:
                    return
                start = await client.post(f"/v2/{repo}/blobs/uploads/")
                assert start.status_code == 202, start.text
                url = httpx.URL(base).join(start.headers["location"]).copy_merge_params({"digest": digest})
                done = await client.put(url, content=data, headers={"Content-Type": "application/octet-stream"})
                assert done.status_code == 201, done.text

        await asyncio.gather(*(blob(b) for b in blobs))


def _put_manifests(host: str, repo: str, items: list[tuple[str, bytes, str]], threads: int) -> None:
    """PUT manifests from a thread pool, one keep-alive `http.client` connection per thread.

    Measured here for 600 manifests: http.client x 8 threads 1.9 s (client CPU 0.2 s), httpx.Client x 8
    threads 3.1 s (0.9 s), httpx.AsyncClient x 16 5.7 s (2.9 s): the client's CPU competes with the
    registry's for the 2 cores, so the leanest client seeds fastest.
    """
    hostname, port = host.rsplit(":", 1)
    local = threading.local()

    def put(item: tuple[str, bytes, str]) -> None:
        tag, body, media_type = item
        for attempt in range(3):
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection(hostname, int(port), timeout=60)
            try:
                conn.request("PUT", f"/v2/{repo}/manifests/{tag}", body=body, headers={"Content-Type": media_type})
                response = conn.getresponse()
                text = response.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                local.conn = None
                if attempt == 2:
                    raise
                continue
            if response.status != 201:
                raise RuntimeError(f"PUT {repo}:{tag}: {response.status} {text[:300]!r}")
            return

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, items))


def _push(host: str, plan: Plan, threads: int = PUSH_THREADS) -> None:
    asyncio.run(_push_blobs(f"http://{host}", plan.repo, plan.blobs, 16))
    # Tags that share a manifest: PUT the first one alone, then the others (no racing on one digest).
    first: dict[str, tuple[str, bytes, str]] = {}
    later: list[tuple[str, bytes, str]] = []
    for tag, (body, media_type) in plan.tags.items():
        digest = sha(body)
        if digest in first:
            later.append((tag, body, media_type))
        else:
            first[digest] = (tag, body, media_type)
    _put_manifests(host, plan.repo, list(first.values()), threads)
    _put_manifests(host, plan.repo, later, threads)


def list_tags(base: str, repo: str) -> list[str]:
    tags: list[str] = []
    url: str | None = f"{base}/v2/{repo}/tags/list?n=10000"
    with httpx.Client(timeout=60) as client:
        while url:
            response = client.get(url)
            if response.status_code == 404:
                return []
            response.raise_for_status()
            tags += response.json().get("tags") or []
            link = response.headers.get("link")
            url = str(httpx.URL(url).join(link.split(";")[0].strip("<> "))) if link else None
    return tags


def load_marker(state: Path) -> dict:
    try:
        return json.loads((state / MARKER).read_text())
    except (OSError, ValueError):
        return {}


def _seed_repo(host: str, repo: str, n: int, log) -> dict:
    base = f"http://{host}"
    plan = plan_repo(repo, n)
    started = time.monotonic()
    _push(host, plan)
    elapsed = time.monotonic() - started
    listed = len(list_tags(base, repo))
    if listed != n:
        raise RuntimeError(f"seeded {repo} but the registry lists {listed} tags, expected {n}")
    log(f"  {repo}: pushed {n} tags ({plan.unique_digests} unique manifests, {len(plan.blobs)} shared blobs) "
        f"in {elapsed:.1f}s")
    return {"tags": n, "unique_digests": plan.unique_digests, "push_seconds": round(elapsed, 1),
            "blobs": len(plan.blobs), "seeded_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def ensure_seeded_external(host: str, wants: list[tuple[str, int]], log=print) -> dict[str, dict]:
    """On a registry we did not start: seed a repository unless it already lists exactly N tags."""
    entries = {}
    for repo, n in wants:
        if len(list_tags(f"http://{host}", repo)) == n:
            log(f"  {repo}: registry already lists {n} tags, reusing")
            entries[repo] = {"tags": n, "unique_digests": plan_repo(repo, n).unique_digests}
        else:
            entries[repo] = _seed_repo(host, repo, n, log)
    return entries


def ensure_seeded(root: Path, wants: list[tuple[str, int]], log=print) -> dict[str, dict]:
    """Make `root` (our registry's storage) hold every wanted (repo, N); reuse what the marker lists.

    The registry fsyncs every file it writes (4-7 ms each on this disk, several per manifest PUT), so
    missing repositories are pushed over HTTP into a registry whose storage is on tmpfs, then the
    content-addressed tree is merged into `root/data` (a plain copy: blobs are immutable, and each
    repository has its own directory). Seeding 10,000 tags this way takes well under a minute.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    marker = load_marker(root)
    if marker.get("version") != SEED_VERSION or not (root / "data").is_dir():
        marker = {"version": SEED_VERSION, "repos": {}}
    repos = marker.setdefault("repos", {})
    missing = [(r, n) for r, n in wants if (repos.get(r) or {}).get("tags") != n]
    for repo, n in wants:
        if (repo, n) not in missing:
            log(f"  {repo}: already seeded with {n} tags ({repos[repo]['unique_digests']} unique manifests), reusing")
    if not missing:
        return {r: repos[r] for r, _ in wants}
    shm = Path("/dev/shm")
    staging_parent = shm if shm.is_dir() and shutil.disk_usage(shm).free > (1 << 30) else root
    staging = Path(tempfile.mkdtemp(prefix="janitor-bench-seed-", dir=staging_parent))
    try:
        registry = BenchRegistry(staging).start()
        try:
            for repo, n in missing:
                stale = root / "data" / "docker" / "registry" / "v2" / "repositories" / repo
                if stale.exists():
                    shutil.rmtree(stale)       # re-seed from scratch (another N): no leftover tags
                repos[repo] = _seed_repo(registry.host, repo, n, log)
        finally:
            registry.stop()
        started = time.monotonic()
        (root / "data").mkdir(exist_ok=True)
        subprocess.run(["cp", "-a", f"{staging / 'data'}/.", str(root / "data")], check=True)
        log(f"  merged the seeded storage into {root / 'data'} in {time.monotonic() - started:.1f}s")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    (root / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    return {r: repos[r] for r, _ in wants}


def repo_name(kind: str, n: int) -> str:
    return f"bench/{kind}-{n}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tags", type=int, default=2000)
    parser.add_argument("--repo", default=None, help="default bench/buildkit-N")
    parser.add_argument("--registry", help="HOST:PORT of a running registry (default: our own storage)")
    parser.add_argument("--state-dir", type=Path, default=STATE_DIR)
    args = parser.parse_args()
    wants = [(args.repo or repo_name("buildkit", args.tags), args.tags)]
    if args.registry:
        ensure_seeded_external(args.registry, wants)
    else:
        ensure_seeded(args.state_dir / "registry", wants)


if __name__ == "__main__":
    sys.exit(main())
