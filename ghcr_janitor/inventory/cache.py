"""Content-addressed manifest cache: digests are immutable, so a hit needs no GET.

One sqlite file, `DIR/manifests.sqlite`: manifests and small config blobs by digest (media
type + exact bytes), and each repository's last tag -> digest map, so a warm run HEADs
tags instead of GETting them. Writes are buffered and committed in batches (thousands of
small files cost more CPU than the requests they save). Every read is verified against its
digest; a bad entry, or a cache that cannot be opened, only costs speed.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from ghcr_janitor.core.digests import digest_of, is_digest
from ghcr_janitor.stores.base import RawManifest

FLUSH_EVERY = 500
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS manifests (digest TEXT PRIMARY KEY, media_type TEXT, body BLOB)",
    "CREATE TABLE IF NOT EXISTS repo_tags (repository TEXT PRIMARY KEY, tags TEXT)",
)


class ManifestCache:
    """Verified manifests and small blobs keyed by digest, in one sqlite file."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0
        self._db: sqlite3.Connection | None = None
        self._broken = False
        self._pending: list[tuple[str, str, bytes]] = []

    def __repr__(self) -> str:
        return f"ManifestCache({str(self.root)!r}, hits={self.hits}, misses={self.misses})"

    def _conn(self) -> sqlite3.Connection | None:
        if self._db is None and not self._broken:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.root / "manifests.sqlite", timeout=30, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                for statement in _SCHEMA:
                    db.execute(statement)
                self._db = db
            except (OSError, sqlite3.Error):
                self._broken = True
        return self._db

    def get(self, digest: str) -> RawManifest | None:
        if not is_digest(digest):
            return None
        row = None
        db = self._conn()
        if db is not None:
            try:
                row = db.execute("SELECT media_type, body FROM manifests WHERE digest = ?", (digest,)).fetchone()
            except sqlite3.Error:
                row = None
        if row is None or not isinstance(row[1], bytes) or digest_of(row[1], digest.split(":")[0]) != digest:
            self.misses += 1
            return None
        self.hits += 1
        return RawManifest(digest, row[0] or "", row[1])

    def put(self, raw: RawManifest) -> None:
        self._pending.append((raw.digest, raw.media_type, raw.body))
        if len(self._pending) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        db = self._conn()
        if db is None or not pending:
            return
        try:
            with db:
                db.execute("BEGIN")
                db.executemany("INSERT OR IGNORE INTO manifests VALUES (?, ?, ?)", pending)
        except sqlite3.Error:
            pass

    def load_tags(self, repository: str) -> dict[str, str]:
        db = self._conn()
        if db is None:
            return {}
        try:
            row = db.execute("SELECT tags FROM repo_tags WHERE repository = ?", (repository,)).fetchone()
            doc = json.loads(row[0]) if row else {}
        except (sqlite3.Error, ValueError, TypeError):
            return {}
        if not isinstance(doc, dict):
            return {}
        return {t: d for t, d in doc.items() if isinstance(t, str) and is_digest(d)}

    def save_tags(self, repository: str, tags: dict[str, str]) -> None:
        self.flush()
        db = self._conn()
        if db is None:
            return
        try:
            db.execute("INSERT OR REPLACE INTO repo_tags VALUES (?, ?)", (repository, json.dumps(tags, sort_keys=True)))
        except sqlite3.Error:
            pass

    def close(self) -> None:
        self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None
