"""The janitor's own manifest reads, remembered so that they do not count as pulls.

ECR records a BatchGetImage as a pull (`lastRecordedPullTime`, aws/containers-roadmap#2390) unless
the caller's principal is in the registry's pull-time update exclusions (README). Without one, the
janitor's first read of a manifest would make it "pulled now" for every later run, and a
`not_pulled_for` rule would never select it. So each read is remembered (state dir,
`ecr-reads.sqlite`): when, and the pull time ECR showed just before it. A later listing whose
`lastRecordedPullTime` is within `SAME_READ` of a remembered read shows that read: the pull time
from before it is used instead. A real pull within those minutes of the janitor's read is taken
for the janitor's (an error of minutes); a pull ECR records later than that is a pull.

A state dir that cannot be written costs only this memory (logged), never the run.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

log = logging.getLogger("ghcr_janitor.ecr")

SAME_READ = timedelta(minutes=5)     # clock skew between this machine and ECR, and the call's own length
NEVER = ""                           # stored for "never pulled before the janitor's read"


class OwnReads:
    """(registry, repository, digest) -> when the janitor read it, and the pull time before that."""

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
                self._db = sqlite3.connect(self.path, timeout=5)
                self._db.execute("CREATE TABLE IF NOT EXISTS reads (key TEXT PRIMARY KEY, read_at TEXT NOT NULL, "
                                 "pulled_before TEXT)")
            except (OSError, sqlite3.Error) as exc:
                log.info("ECR read memory %s unusable (%s): the janitor's own reads may show as pulls", self.path, exc)
                self._broken = True
                self._db = None
        return self._db

    def recorded(self, keys: list[str]) -> dict[str, tuple[datetime, datetime | None | str]]:
        """key -> (read_at, pulled_before: a time, None = never pulled, or "unknown")."""
        db = self._conn()
        if db is None or not keys:
            return {}
        found: dict[str, tuple[datetime, datetime | None | str]] = {}
        try:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                rows = db.execute(f"SELECT key, read_at, pulled_before FROM reads WHERE key IN "
                                  f"({','.join('?' * len(chunk))})", chunk).fetchall()
                for key, read_at, before in rows:
                    try:
                        when = datetime.fromisoformat(read_at)
                        prior: datetime | None | str = (None if before == NEVER else "unknown" if before is None
                                                        else datetime.fromisoformat(before))
                    except (TypeError, ValueError):
                        continue                    # a damaged row: that read is not recognised
                    if when.tzinfo is not None and not (isinstance(prior, datetime) and prior.tzinfo is None):
                        found[key] = (when, prior)
        except sqlite3.Error as exc:
            log.info("ECR read memory %s unreadable (%s)", self.path, exc)
        return found

    def record(self, reads: dict[str, datetime | None | str], read_at: datetime) -> None:
        """Remember reads made at `read_at`; value: the pull time ECR showed before (None: never;
        "unknown": not known, so a later listing cannot be corrected)."""
        db = self._conn()
        if db is None or not reads:
            return
        rows = [(key, read_at.isoformat(),
                 NEVER if before is None else None if before == "unknown" else before.isoformat())   # type: ignore[union-attr]
                for key, before in reads.items()]
        try:
            with db:
                db.executemany("INSERT OR REPLACE INTO reads VALUES (?, ?, ?)", rows)
        except sqlite3.Error as exc:
            log.info("ECR read memory %s not written (%s)", self.path, exc)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def corrected(listed: datetime | None, memory: tuple[datetime, datetime | None | str] | None) -> tuple[datetime | None, bool]:
    """The pull time to use for a listed `lastRecordedPullTime`: the one before the janitor's own read
    when the listing shows that read (and what came before is known); else the listed one."""
    if listed is None or memory is None:
        return listed, False
    read_at, before = memory
    if before == "unknown" or abs(listed - read_at) > SAME_READ:
        return listed, False
    return before if not isinstance(before, str) else listed, True


def now() -> datetime:
    return datetime.now(timezone.utc)
