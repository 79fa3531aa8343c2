"""What a plain OCI registry cannot list: the manifests an overwritten tag left behind.

Every push of `cache-base` replaces the tag's manifest; GHCR lists the old one as an untagged
version, the Distribution API lists nothing but tags. So the OCI store remembers the digest of
every tag it saw (per target, in the state directory: `remembered.sqlite`), and on later runs
probes the remembered digests no tag reaches any more (`OciRegistry.remembered`).

Bounded: per target, the digests tags point at now (refreshed every run), plus at most
`MAX_REMEMBERED` others, the most recently tagged first; one not seen under a tag for `FORGET_AFTER`
is forgotten, and so is one the registry answers 404 for, or that the janitor deleted.

Damage never stops a run and is never a reason to delete anything: a file that is not SQLite, or
cannot be opened, written or read, is one warning per file (the run goes on without memory: it lists
no remembered manifests, records nothing); a row whose digest, tag or time is not one is skipped
(never probed, never listed) and counted in one warning per target. SQLite's own locking makes
concurrent runs safe (the one that waits gives up after `LOCK_TIMEOUT` s, with the warning).
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Mapping

from ghcr_janitor.core.digests import is_digest
from ghcr_janitor.core.errors import JanitorError
from ghcr_janitor.core.paths import sqlite_file_problem, state_dir
from ghcr_janitor.core.reference import TAG_PATTERN
from ghcr_janitor.core.timeparse import stored_time
from ghcr_janitor.core.words import count

FILE_NAME = "remembered.sqlite"
MAX_REMEMBERED = 1000                  # untagged digests remembered per target (each costs a HEAD a run)
FORGET_AFTER = timedelta(days=180)     # not seen under a tag for this long: forgotten
LOCK_TIMEOUT = 30.0
AGE_SOURCE = "remembered/last-tagged"
_FIX = "move it aside or delete it: a new memory starts (manifests overwritten before then stay unknown)"
log = logging.getLogger(__name__)

# One warning per file and problem for the life of the process (a run opens a memory per target).
_warned: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Entry:
    """A remembered digest: the tag it was last seen under, and when."""

    digest: str
    tag: str | None
    last_tagged: datetime


class DigestMemory:
    """The remembered tag digests of every target, in one SQLite file. Each call opens and closes
    its own connection: nothing stays open between the calls of a run, and any thread may call."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def _warn(self, key: str, message: str) -> None:
        if (str(self.path), key) not in _warned:
            _warned.add((str(self.path), key))
            log.warning(message)

    def _connect(self) -> sqlite3.Connection | None:
        problem = sqlite_file_problem(self.path)
        if problem is not None:
            self._warn("file", f"{self.path}: remembered tag digests not used this run: the file is {problem}; {_FIX}")
            return None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT)
            db.execute("CREATE TABLE IF NOT EXISTS tag_digests (repository TEXT, digest TEXT, tag TEXT,"
                       " last_tagged TEXT, PRIMARY KEY (repository, digest))")
            db.execute("CREATE TABLE IF NOT EXISTS memory_start (repository TEXT PRIMARY KEY, since TEXT)")
            return db
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc)
            return None

    def _failed(self, exc: BaseException) -> None:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        self._warn("file", f"{self.path}: remembered tag digests not used this run ({why}); "
                           f"if this repeats, {_FIX}")

    def _run(self, work):
        """`work(db)` in one transaction; None (warned once) when the file cannot be used."""
        db = self._connect()
        if db is None:
            return None
        try:
            with db:
                return work(db)
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc)
            return None
        finally:
            db.close()

    # --- read ------------------------------------------------------------------------
    def recall(self, repository: str, tagged: frozenset[str] | set[str], now: datetime
               ) -> tuple[list[Entry], datetime | None] | None:
        """The remembered digests of `repository` that are not in `tagged` (at most
        `MAX_REMEMBERED`, most recently tagged first, none forgotten by age), and since when this
        repository's tags are remembered (None: never before). None when the file cannot be used."""
        def work(db: sqlite3.Connection):
            since_row = db.execute("SELECT since FROM memory_start WHERE repository = ?", (repository,)).fetchone()
            rows = db.execute("SELECT digest, tag, last_tagged FROM tag_digests WHERE repository = ?"
                              " ORDER BY last_tagged DESC LIMIT ?",
                              (repository, len(tagged) + MAX_REMEMBERED)).fetchall()
            return since_row, rows

        found = self._run(work)
        if found is None:
            return None
        since_row, rows = found
        since = stored_time(since_row[0], now) if since_row else None
        damaged = 1 if since_row and since is None else 0
        entries: list[Entry] = []
        for digest, tag, stamp in rows:
            when = stored_time(stamp, now)
            if not is_digest(digest) or when is None or (tag is not None and not _is_tag(tag)):
                damaged += 1
                continue
            if digest in tagged or now - when > FORGET_AFTER or len(entries) >= MAX_REMEMBERED:
                continue
            entries.append(Entry(digest, tag, when))
        if damaged:
            self._warn(f"rows {repository}",
                       f"{self.path}: skipped {count(damaged, 'damaged row')} of {repository} (not a digest, tag or "
                       "time with a timezone): never probed, never listed; delete those rows (or the file)")
        return entries, since

    # --- write -----------------------------------------------------------------------
    def record(self, repository: str, tags: Mapping[str, str], now: datetime) -> None:
        """Remember every tag's digest as seen `now`; then forget what is too old or too many."""
        stamp = _stamp(now)
        by_digest: dict[str, str] = {}
        for tag, digest in sorted(tags.items(), reverse=True):     # the first tag name wins
            if is_digest(digest) and _is_tag(tag):
                by_digest[digest] = tag

        def work(db: sqlite3.Connection) -> None:
            db.executemany("INSERT INTO tag_digests VALUES (?, ?, ?, ?) ON CONFLICT (repository, digest)"
                           " DO UPDATE SET tag = excluded.tag, last_tagged = excluded.last_tagged",
                           [(repository, d, t, stamp) for d, t in by_digest.items()])
            db.execute("INSERT OR IGNORE INTO memory_start VALUES (?, ?)", (repository, stamp))
            rows = db.execute("SELECT digest, last_tagged FROM tag_digests WHERE repository = ?",
                              (repository,)).fetchall()
            others = []
            for digest, last in rows:
                when = stored_time(last, now)
                if digest in by_digest or when is None or not isinstance(digest, str):
                    continue                # tagged now; damaged rows are skipped, not deleted
                others.append((when, digest))
            others.sort(reverse=True)
            drop = [d for i, (when, d) in enumerate(others) if i >= MAX_REMEMBERED or now - when > FORGET_AFTER]
            db.executemany("DELETE FROM tag_digests WHERE repository = ? AND digest = ?",
                           [(repository, d) for d in drop])

        self._run(work)

    def forget(self, repository: str, digests: list[str]) -> None:
        """Forget digests known to be gone (404, or deleted by the janitor)."""
        if digests:
            self._run(lambda db: db.executemany("DELETE FROM tag_digests WHERE repository = ? AND digest = ?",
                                                [(repository, d) for d in digests]))


def memory_in(env: Mapping[str, str]) -> DigestMemory | None:
    """The memory in the state directory `env` chooses (nothing is opened yet); None when that
    directory cannot be used (the commands that need it say so, once)."""
    try:
        return DigestMemory(state_dir(env) / FILE_NAME)
    except JanitorError:
        return None


def _is_tag(value: object) -> bool:
    return isinstance(value, str) and bool(TAG_PATTERN.match(value))


def _stamp(now: datetime) -> str:
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    return now.astimezone(timezone.utc).isoformat(timespec="microseconds")   # sorts as text
