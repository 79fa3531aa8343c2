"""Build OCI image layouts (BuildKit local cache dirs) programmatically for tests.

Every builder method writes its blob and returns the descriptor (a dict, as in JSON);
the factory remembers what each blob references, so tests can compute a tag's full
closure without going through the code under test.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path

LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"

# A fixed "old" time for blobs (well past any grace period relative to NOW).
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
OLD = NOW.timestamp() - 30 * 86400


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def dumps(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


class LayoutFactory:
    """An OCI layout under construction at `root` (created with oci-layout and index.json)."""

    def __init__(self, root: Path, mtime: float = OLD):
        self.root = Path(root)
        self.mtime = mtime
        self.refs: dict[str, list[str]] = {}   # digest -> digests it references
        self.entries: list[dict] = []          # index.json manifests
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "oci-layout").write_bytes(dumps({"imageLayoutVersion": "1.0.0"}))
        self.write_index()

    # blobs

    def path(self, digest: str) -> Path:
        algorithm, _, encoded = digest.partition(":")
        return self.root / "blobs" / algorithm / encoded

    def blob(self, data: bytes, media_type: str = LAYER, refs: list[str] = (), mtime: float | None = None,
             annotations: dict | None = None) -> dict:
        digest = sha256(data)
        path = self.path(digest)
        path.write_bytes(data)
        stamp = self.mtime if mtime is None else mtime
        os.utime(path, (stamp, stamp))
        self.refs[digest] = list(refs)
        desc = {"mediaType": media_type, "digest": digest, "size": len(data)}
        if annotations:
            desc["annotations"] = annotations
        return desc

    def layer(self, name: str, created: str = "2026-11-01T10:00:00.123456789Z", **kw) -> dict:
        data = f"layer {name}\n".encode()
        return self.blob(data, LAYER, annotations={"buildkit/createdat": created,
                                                   "containerd.io/uncompressed": sha256(data + b"u")}, **kw)

    def cache_config(self, layers: list[dict], **kw) -> dict:
        doc = {"layers": [{"blob": l["digest"], "parent": i - 1} if i != 1 else {"blob": l["digest"]}
                          for i, l in enumerate(layers)],
               "records": [{"digest": sha256(b"rec0")},
                           {"layers": [{"layer": 0, "createdAt": "2026-11-01T10:00:00.5Z"}],
                            "digest": sha256(b"rec1"), "inputs": [[{"link": 0}]]}]}
        return self.blob(dumps(doc), CACHE_CONFIG, refs=[l["digest"] for l in layers], **kw)

    def manifest(self, config: dict, layers: list[dict], subject: dict | None = None, **kw) -> dict:
        doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers}
        if subject:
            doc["subject"] = subject
        refs = [config["digest"]] + [l["digest"] for l in layers] + ([subject["digest"]] if subject else [])
        return self.blob(dumps(doc), OCI_MANIFEST, refs=refs, **kw)

    def cache_manifest(self, layers: list[dict], **kw) -> dict:
        """Image-manifest form (BuildKit >= 0.21): config is the cacheconfig."""
        return self.manifest(self.cache_config(layers, **kw), layers, **kw)

    def cache_index(self, layers: list[dict], media_type: str = OCI_INDEX, **kw) -> dict:
        """Index-of-blobs form: layer entries, then the cacheconfig entry last."""
        entries = layers + [self.cache_config(layers, **kw)]
        doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
        return self.blob(dumps(doc), media_type, refs=[e["digest"] for e in entries], **kw)

    def image(self, name: str, **kw) -> dict:
        config = self.blob(dumps({"architecture": "amd64", "os": "linux", "note": name}), IMAGE_CONFIG, **kw)
        return self.manifest(config, [self.layer(f"{name}-rootfs", **kw)], **kw)

    def index(self, children: list[dict], **kw) -> dict:
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}
        return self.blob(dumps(doc), OCI_INDEX, refs=[c["digest"] for c in children], **kw)

    # index.json

    def tag(self, name: str | None, desc: dict, **extra) -> None:
        """Add an index.json entry (name None: untagged) and rewrite index.json."""
        entry = {k: desc[k] for k in ("mediaType", "digest", "size")}
        if name is not None:
            entry["annotations"] = {REF_NAME: name}
        entry.update(extra)
        self.entries.append(entry)
        self.write_index()

    def write_index(self) -> None:
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.entries}
        (self.root / "index.json").write_bytes(dumps(doc))

    # inspection

    def closure(self, digest: str) -> set[str]:
        """Every digest `digest` needs, from what the factory recorded when building."""
        seen: set[str] = set()
        stack = [digest]
        while stack:
            d = stack.pop()
            if d not in seen:
                seen.add(d)
                stack.extend(self.refs.get(d, []))
        return seen

    def blob_digests(self) -> set[str]:
        store = self.root / "blobs" / "sha256"
        return {f"sha256:{p.name}" for p in store.iterdir() if p.is_file()}


def snapshot(root: Path, dir_mtimes: bool = True) -> dict[str, tuple[str, int]]:
    """path -> (sha256 of content or 'dir', mtime_ns) for every file and directory.

    dir_mtimes=False zeroes directory mtimes: taking the lock creates and removes
    index.json.lock, which changes the layout directory's mtime and nothing else.
    """
    out: dict[str, tuple[str, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            if name in dirnames:
                out[str(path.relative_to(root))] = ("dir", st.st_mtime_ns if dir_mtimes else 0)
            else:
                out[str(path.relative_to(root))] = (hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns)
    out["."] = ("dir", Path(root).lstat().st_mtime_ns if dir_mtimes else 0)
    return out


def assert_closure_intact(factory: LayoutFactory, digest: str) -> None:
    """Every blob in digest's closure exists and hashes to its name."""
    for d in factory.closure(digest):
        path = factory.path(d)
        assert path.is_file(), f"{d} missing"
        assert sha256(path.read_bytes()) == d, f"{d} content changed"


# --- blobs that are not plain files (issue 19: symlink loops, FIFOs, devices, huge files) --------


def make_loop(path: Path) -> None:
    path.unlink()
    path.symlink_to(path.name)                        # a link to itself: ELOOP


def make_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def make_zero(path: Path) -> None:
    path.unlink()
    path.symlink_to("/dev/zero")


def make_huge(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(8 << 30)                      # sparse: 8 GiB that take no disk


SHAPES = {"loop": make_loop, "fifo": make_fifo, "zero": make_zero, "huge": make_huge}
