"""The janitor's own manifest reads on Harbor, remembered so that they do not count as pulls.

Harbor records every manifest GET over `/v2` as a pull of the artifact (and of the parent indexes
of a child it reads: `updateParentArtifactPullTime`); a HEAD is no pull. The janitor reads each
manifest by digest (never by tag: a tag's own `pull_time` stays untouched), once per machine (the
inventory's manifest cache) and once per process (this store's cache), and HEADs tags for its last
looks. What is left, a first read of a digest, is remembered here (state dir, `harbor-reads.sqlite`):
when, and the pull time Harbor listed just before it. A later listing whose `pull_time` is within
`SAME_READ` of a remembered read shows that read: the pull time from before it is used instead. A
real pull within those minutes of the janitor's read is taken for the janitor's (an error of
minutes); one Harbor records later than that is a pull.

A state dir that cannot be written costs only this memory (logged), never the run.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

log = logging.getLogger("ghcr_janitor.harbor")

SAME_READ = timedelta(minutes=5)     # clock skew, the read's own length, Harbor's async pull-time flush (10 s)
NEVER = ""                           # stored for "never pulled before the janitor's read"
UNKNOWN = "unknown"                  # the pull time before the read is not known: not corrected later

Before = datetime | None | str       # a time, None (never pulled) or UNKNOWN


class OwnReads:
    """key (host/repository@digest) -> when the janitor read it, and the pull time before that."""

    def __init__(self, path: Path | None):
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._broken = path is None

    def _conn(self) -> sqlite3.Connection | None:
        if self._broken:
            return None
        if self._db is None:
            assert self.path is not None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, timeout=5, check_same_thread=False)
                self._db.execute("CREATE TABLE IF NOT EXISTS reads (key TEXT PRIMARY KEY, read_at TEXT NOT NULL, "
                                 "pulled_before TEXT)")
            except (OSError, sqlite3.Error) as exc:
                log.info("Harbor read memory %s unusable (%s): the janitor's own reads may show as pulls", self.path, exc)
                self._broken, self._db = True, None
        return self._db

    def recorded(self, keys: list[str]) -> dict[str, tuple[datetime, Before]]:
        """key -> (read_at, pulled_before) for the keys remembered."""
        db = self._conn()
        found: dict[str, tuple[datetime, Before]] = {}
        if db is None or not keys:
            return found
        try:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                rows = db.execute(f"SELECT key, read_at, pulled_before FROM reads WHERE key IN "
                                  f"({','.join('?' * len(chunk))})", chunk).fetchall()
                for key, read_at, before in rows:
                    try:
                        prior: Before = (None if before == NEVER else UNKNOWN if before is None
                                         else datetime.fromisoformat(before))
                        found[key] = (datetime.fromisoformat(read_at), prior)
                    except (TypeError, ValueError):
                        continue            # a damaged row: that read is not recognised
        except sqlite3.Error as exc:
            log.info("Harbor read memory %s unreadable (%s)", self.path, exc)
        return found

    def record(self, reads: dict[str, Before], read_at: datetime) -> None:
        """Remember reads made at `read_at`, with the pull time Harbor showed before each."""
        db = self._conn()
        if db is None or not reads:
            return
        rows = [(key, read_at.isoformat(),
                 NEVER if before is None else None if isinstance(before, str) else before.isoformat())
                for key, before in reads.items()]
        try:
            with db:
                db.executemany("INSERT OR REPLACE INTO reads VALUES (?, ?, ?)", rows)
        except sqlite3.Error as exc:
            log.info("Harbor read memory %s not written (%s)", self.path, exc)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def corrected(listed: datetime | None, memory: tuple[datetime, Before] | None) -> tuple[datetime | None, bool]:
    """The pull time to use for a listed `pull_time`: the one before the janitor's own read when the
    listing shows that read (and what came before is known); else the listed one. Second value:
    the listing showed the janitor's read."""
    if listed is None or memory is None:
        return listed, False
    read_at, before = memory
    if isinstance(before, str) or abs(listed - read_at) > SAME_READ:
        return listed, False
    return before, True


def now() -> datetime:
    return datetime.now(timezone.utc)
