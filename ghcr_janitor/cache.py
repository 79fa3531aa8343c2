"""Content-addressed manifest cache on disk: digests are immutable, so a hit needs no GET.

Layout: `DIR/manifests/<alg>/<hex>` holds `<media type>\\n<exact bytes>`; `DIR/tags/<key>.json`
remembers each repository's last tag -> digest map so a warm run HEADs tags instead of
GETting them. Every read is verified against its digest; a bad entry is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from ghcr_janitor.digests import digest_of, is_digest
from ghcr_janitor.registry.base import RawManifest


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class ManifestCache:
    """A directory of verified manifests and small blobs keyed by digest."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def _path(self, digest: str) -> Path:
        algorithm, _, hexpart = digest.partition(":")
        return self.root / "manifests" / algorithm / hexpart

    def get(self, digest: str) -> RawManifest | None:
        if not is_digest(digest):
            return None
        try:
            data = self._path(digest).read_bytes()
        except OSError:
            self.misses += 1
            return None
        media_type, sep, body = data.partition(b"\n")
        if not sep or digest_of(body, digest.split(":")[0]) != digest:
            self.misses += 1
            return None
        self.hits += 1
        return RawManifest(digest, media_type.decode("utf-8", "replace"), body)

    def put(self, raw: RawManifest) -> None:
        try:
            _atomic_write(self._path(raw.digest), raw.media_type.encode() + b"\n" + raw.body)
        except OSError:
            pass  # a cache that cannot be written only costs speed

    def _tags_path(self, repository: str) -> Path:
        key = hashlib.sha256(repository.encode()).hexdigest()[:32]
        return self.root / "tags" / f"{key}.json"

    def load_tags(self, repository: str) -> dict[str, str]:
        try:
            doc = json.loads(self._tags_path(repository).read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(doc, dict):
            return {}
        return {t: d for t, d in doc.items() if isinstance(t, str) and is_digest(d)}

    def save_tags(self, repository: str, tags: dict[str, str]) -> None:
        try:
            _atomic_write(self._tags_path(repository), json.dumps(tags, sort_keys=True).encode())
        except OSError:
            pass
