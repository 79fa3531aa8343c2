"""The janitor's own manifest reads, remembered so that they do not count as pulls (every store
that records pull times: ECR, Docker Hub, Harbor).

ECR records a BatchGetImage as a pull (`lastRecordedPullTime`, aws/containers-roadmap#2390) unless
the caller's principal is in the registry's pull-time update exclusions (README); Docker Hub and
Harbor count a manifest GET (not a HEAD) as a pull. Without this memory the janitor's first read of a
manifest would make it "pulled now" for every later run, and a `not_pulled_for` rule would never
select it. So each read is remembered (state dir, `<store>-reads.sqlite`, `own_reads`): when, and
the pull time the store showed just before it. A later listing whose pull time is within
`SAME_READ` of a remembered read shows that read: the pull time from before it is used instead. A
real pull within those minutes of the janitor's read is taken for the janitor's (an error of
minutes); a pull recorded later than that is a pull.

A state dir that cannot be written costs only this memory (logged), never the run.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

log = logging.getLogger("ghcr_janitor.reads")

# Clock skew between this machine and the store, the read's own length, a store's asynchronous
# pull-time flush (Harbor: 10 s).
SAME_READ = timedelta(minutes=5)
NEVER = ""                           # stored for "never pulled before the janitor's read"
UNKNOWN = "unknown"                  # the pull time before the read is not known: not corrected later

Before = datetime | None | str       # a time, None (never pulled) or UNKNOWN


class OwnReads:
    """(registry, repository, digest) -> when the janitor read it, and the pull time before that."""

    def __init__(self, path: Path | None, store: str = "ECR"):
        self.path = path
        self.store = store
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
                log.info("%s read memory %s unusable (%s): the janitor's own reads may show as pulls", self.store, self.path, exc)
                self._broken = True
                self._db = None
        return self._db

    def recorded(self, keys: list[str]) -> dict[str, tuple[datetime, Before]]:
        """key -> (read_at, pulled_before: a time, None = never pulled, or UNKNOWN)."""
        db = self._conn()
        if db is None or not keys:
            return {}
        found: dict[str, tuple[datetime, Before]] = {}
        try:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                rows = db.execute(f"SELECT key, read_at, pulled_before FROM reads WHERE key IN "
                                  f"({','.join('?' * len(chunk))})", chunk).fetchall()
                for key, read_at, before in rows:
                    try:
                        when = datetime.fromisoformat(read_at)
                        prior: Before = (None if before == NEVER else UNKNOWN if before is None
                                                        else datetime.fromisoformat(before))
                    except (TypeError, ValueError):
                        continue                    # a damaged row: that read is not recognised
                    if when.tzinfo is not None and not (isinstance(prior, datetime) and prior.tzinfo is None):
                        found[key] = (when, prior)
        except sqlite3.Error as exc:
            log.info("%s read memory %s unreadable (%s)", self.store, self.path, exc)
        return found

    def record(self, reads: dict[str, Before], read_at: datetime) -> None:
        """Remember reads made at `read_at`; value: the pull time the store showed before (None: never;
        UNKNOWN: not known, so a later listing cannot be corrected)."""
        db = self._conn()
        if db is None or not reads:
            return
        rows = [(key, read_at.isoformat(),
                 NEVER if before is None else None if before == UNKNOWN else before.isoformat())   # type: ignore[union-attr]
                for key, before in reads.items()]
        try:
            with db:
                db.executemany("INSERT OR REPLACE INTO reads VALUES (?, ?, ?)", rows)
        except sqlite3.Error as exc:
            log.info("%s read memory %s not written (%s)", self.store, self.path, exc)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def corrected(listed: datetime | None, memory: tuple[datetime, Before] | None) -> tuple[datetime | None, bool]:
    """The pull time to use for a listed `lastRecordedPullTime`: the one before the janitor's own read
    when the listing shows that read (and what came before is known); else the listed one."""
    if listed is None or memory is None:
        return listed, False
    read_at, before = memory
    if before == UNKNOWN or abs(listed - read_at) > SAME_READ:
        return listed, False
    return before if not isinstance(before, str) else listed, True


def now() -> datetime:
    return datetime.now(timezone.utc)


def own_reads(env, store: str, file_name: str) -> OwnReads:
    """The memory of the janitor's own reads on `store`, `file_name` in the state dir (none if the
    state dir cannot be named: only this memory is lost)."""
    from ghcr_janitor.core.paths import state_dir

    try:
        return OwnReads(state_dir(env) / file_name, store)
    except Exception as exc:          # noqa: BLE001 - a state dir that cannot be named costs only this memory
        log.info("no %s read memory: %s", store, exc)
        return OwnReads(None, store)


class ManifestMemo:
    """Verified manifests by key ((endpoint, repository, digest) and the like), shared by every store
    of the process: digests are immutable, and where a read counts as a pull or costs an API call
    (ECR, Docker Hub, Harbor) each manifest is read once per run, even when `prune --yes` opens its
    store again to apply. It stops growing at `limit` bytes."""

    def __init__(self, limit: int = 64 << 20):
        self.limit = limit
        self._items: dict = {}
        self._bytes = 0

    def get(self, key):
        return self._items.get(key)

    def put(self, key, raw) -> None:
        if key not in self._items and self._bytes + len(raw.body) <= self.limit:
            self._items[key] = raw
            self._bytes += len(raw.body)

    def forget(self, key) -> None:
        raw = self._items.pop(key, None)
        if raw is not None:
            self._bytes -= len(raw.body)


MANIFESTS = ManifestMemo()
