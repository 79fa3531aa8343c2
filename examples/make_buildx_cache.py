#!/usr/bin/env python3
"""Generate a small, reproducible BuildKit `type=local` cache directory for the quick start.

    python examples/make_buildx_cache.py /tmp/buildx-cache
    janitor gc --dry-run oci-layout:/tmp/buildx-cache

Default output: examples/buildx-cache/ next to this script. Every run writes byte-identical
files with identical mtimes (no randomness, no clock): the story is a CI runner that
exported caches with `--cache-to type=local,dest=DIR,tag=cache-<stage>,mode=max` between
2026-08-02 and 2026-11-23, as formats.md section 1-2 describes:

- image-manifest form (BuildKit >= 0.21; config = `application/vnd.buildkit.cacheconfig.v0`)
  and the older index-of-blobs form (layers + cacheconfig as index entries);
- base layers shared by every cache, a `mode=max` layer listed twice under two parents;
- orphans: earlier exports of re-pointed tags (root, cacheconfig and their own layers),
  which BuildKit never deletes. Each file's mtime is the time of the export that wrote it.

Layer blobs are FAKE (short text, not gzip): the janitor never reads layers. Do not feed
this directory to `docker buildx build --cache-from`. Stdlib only; needs Python 3.9+.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from datetime import datetime
from pathlib import Path

LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"

# Layer name -> buildkit/createdat (Go RFC 3339 nanoseconds, some with local offsets).
LAYERS = {
    "base-os": "2026-07-28T09:14:02.118734529Z",
    "base-ca-certs": "2026-07-28T09:14:05.90211Z",
    "base-tools": "2026-08-14T16:40:11.302948117+02:00",
    "node-deps-pr-12": "2026-08-02T07:31:58.66120901-07:00",
    "node-deps-v1": "2026-09-10T13:22:10.5Z",
    "python-deps-v1": "2026-10-02T11:20:45.447120003Z",
    "builder-feature-x": "2026-10-20T15:55:01.019283746Z",
    "builder-v1": "2026-10-30T10:00:12.9Z",
    "node-deps-v2": "2026-11-18T19:45:02.000318744+01:00",
    "python-deps-v2": "2026-11-21T08:05:33.120004871Z",
    "builder-v2": "2026-11-23T06:12:44.824466102Z",
}
BASE = ["base-os", "base-ca-certs", "base-tools"]

# Exports in the order they ran: (tag, form, layer chains). A later export of the same
# tag re-points it, orphaning the earlier root (as BuildKit's index.json update does).
EXPORTS = [
    ("cache-node-deps-pr-12", "index", [["base-os", "base-ca-certs", "node-deps-pr-12"]]),
    ("cache-base", "manifest", [BASE]),
    ("cache-node-deps", "index", [["base-os", "base-ca-certs", "node-deps-v1"]]),
    ("cache-python-deps", "manifest", [BASE + ["python-deps-v1"]]),
    ("cache-builder-feature-x", "manifest", [BASE + ["python-deps-v1", "builder-feature-x"]]),
    ("cache-builder", "manifest", [BASE + ["python-deps-v1", "builder-v1"]]),
    ("cache-node-deps", "index", [["base-os", "base-ca-certs", "node-deps-v2"]]),
    ("cache-python-deps", "manifest", [BASE + ["python-deps-v2"]]),
    # mode=max: python-deps-v2 also cached on a shorter chain, so it is listed twice.
    ("cache-builder", "manifest", [BASE + ["python-deps-v2", "builder-v2"], ["base-os", "python-deps-v2"]]),
]
EXPORT_DELAY = 40  # seconds between the newest layer and the export finishing


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def marshal(doc: object) -> bytes:
    """Compact JSON like Go's json.Marshal."""
    return json.dumps(doc, separators=(",", ":")).encode()


def epoch(stamp: str) -> int:
    """Whole seconds since the epoch of a Go RFC 3339 (nanosecond) time."""
    main, _, rest = stamp.partition(".")
    offset = rest.lstrip("0123456789") if rest else main[19:]
    return int(datetime.fromisoformat(main[:19] + (offset.replace("Z", "+00:00") or "+00:00")).timestamp())


def layer_blob(name: str) -> bytes:
    return f"FAKE LAYER {name}: stands in for a tar+gzip layer; ghcr-janitor never reads layers.\n".encode()


def layer_desc(name: str) -> dict:
    data = layer_blob(name)
    return {"mediaType": LAYER, "digest": sha256(data), "size": len(data),
            "annotations": {"buildkit/createdat": LAYERS[name],
                            "containerd.io/uncompressed": sha256(b"uncompressed " + data)}}


def cache_config(chains: list[list[str]]) -> tuple[bytes, list[str]]:
    """The cacheconfig JSON and the layer names in its (sorted) `layers` order."""
    keys = sorted({tuple(chain[:i + 1]) for chain in chains for i in range(len(chain))},
                  key=lambda k: [sha256(layer_blob(n)) for n in reversed(k)])
    index = {k: i for i, k in enumerate(keys)}
    layers = []
    for key in keys:
        entry: dict = {"blob": sha256(layer_blob(key[-1]))}
        parent = index[key[:-1]] if len(key) > 1 else -1
        if parent != 0:  # Go omitempty: an absent parent means 0
            entry["parent"] = parent
        layers.append(entry)
    record_keys = [()] + keys
    digests = {k: sha256(("cache key " + "/".join(k)).encode()) for k in record_keys}
    ordered = sorted(record_keys, key=lambda k: digests[k])
    position = {k: i for i, k in enumerate(ordered)}
    records = []
    for key in ordered:
        record: dict = {}
        if key:
            record["layers"] = [{"layer": index[key], "createdAt": LAYERS[key[-1]]}]
        record["digest"] = digests[key]
        if key:
            link: dict = {"link": position[key[:-1]]}
            if len(key) == 1:
                link = {"selector": sha256(b"selector /src"), **link}
            record["inputs"] = [[link]]
        records.append(record)
    return marshal({"layers": layers, "records": records}), [k[-1] for k in keys]


def export_time(chains: list[list[str]]) -> int:
    """When an export finished (seconds since the epoch)."""
    return max(epoch(LAYERS[n]) for chain in chains for n in chain) + EXPORT_DELAY


def build(dest: Path, exports: int | None = None) -> None:
    """Write the cache dir as it stood after the first `exports` exports (default: all)."""
    blobs: dict[str, tuple[bytes, int]] = {}  # digest -> (content, mtime of first writer)
    index: list[dict] = []
    last = 0
    for tag, form, chains in EXPORTS[:exports]:
        when = export_time(chains)
        last = max(last, when)
        config, names = cache_config(chains)
        config_desc = {"mediaType": CACHE_CONFIG, "digest": sha256(config), "size": len(config)}
        layers = [layer_desc(n) for n in names]
        if form == "manifest":
            root = marshal({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc, "layers": layers})
        else:
            root = marshal({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": layers + [config_desc]})
        for data in [layer_blob(n) for n in names] + [config, root]:
            blobs.setdefault(sha256(data), (data, when))
        index = [d for d in index if d["annotations"][REF_NAME] != tag]
        index.append({"mediaType": OCI_MANIFEST if form == "manifest" else OCI_INDEX,
                      "digest": sha256(root), "size": len(root), "annotations": {REF_NAME: tag}})
    store = dest / "blobs" / "sha256"
    store.mkdir(parents=True)
    for digest, (data, when) in sorted(blobs.items()):
        path = store / digest.split(":", 1)[1]
        path.write_bytes(data)
        os.utime(path, (when, when))
    files = {"oci-layout": marshal({"imageLayoutVersion": "1.0.0"}),
             "index.json": marshal({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index})}
    for name, data in files.items():
        (dest / name).write_bytes(data)
        os.utime(dest / name, (last, last))
    for path in (store, store.parent, dest):
        os.utime(path, (last, last))


def main(argv: list[str]) -> int:
    if len(argv) > 2 or (len(argv) == 2 and argv[1].startswith("-")):
        print(f"usage: {Path(argv[0]).name} [DEST]   (default: examples/buildx-cache; DEST is replaced)",
              file=sys.stderr)
        return 0 if len(argv) == 2 and argv[1] in ("-h", "--help") else 2
    dest = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent / "buildx-cache"
    if dest.exists():
        if not (dest / "oci-layout").is_file() and any(dest.iterdir()):
            print(f"error: {dest} exists and is not an OCI layout; refusing to replace it", file=sys.stderr)
            return 2
        shutil.rmtree(dest)
    build(dest)
    print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
