"""First-seen ledger: when this janitor first saw a digest in a repository (sqlite).

The last-resort age source: an artifact with no registry time and no annotation gets
the time the janitor first saw it, so it ages from then on instead of never.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

SOURCE = "first-seen"


class Ledger:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS first_seen (repository TEXT, digest TEXT, seen TEXT,"
                " PRIMARY KEY (repository, digest))"
            )
        return self._db

    def first_seen(self, repository: str, digests: list[str], now: datetime) -> dict[str, datetime]:
        """Record `now` for digests not yet known; return every digest's first-seen time."""
        if not digests:
            return {}
        try:
            db = self._conn()
            with db:
                db.executemany(
                    "INSERT OR IGNORE INTO first_seen VALUES (?, ?, ?)",
                    [(repository, d, now.astimezone(timezone.utc).isoformat()) for d in digests],
                )
            rows = []
            for start in range(0, len(digests), 500):
                chunk = digests[start:start + 500]
                rows += db.execute(
                    f"SELECT digest, seen FROM first_seen WHERE repository = ? AND digest IN ({','.join('?' * len(chunk))})",
                    [repository, *chunk],
                ).fetchall()
        except sqlite3.Error:
            return {}
        return {d: datetime.fromisoformat(s) for d, s in rows}

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
