"""First-seen ledger: when this janitor first saw a digest in a repository (sqlite).

The last-resort age source: an artifact with no registry time and no annotation gets
the time the janitor first saw it, so it ages from then on instead of never.

Damage never crashes a run: a row whose `seen` is not an aware ISO time (text, NULL, a number,
a BLOB, no timezone, in the future) is skipped — that artifact's age is unknown, so age rules
keep it — and counted in one warning per repository. A file that is not a SQLite database at
all is one error line naming it and what to do.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ghcr_janitor.core.errors import JanitorError
from ghcr_janitor.core.paths import is_damaged, sqlite_file_problem
from ghcr_janitor.core.timeparse import stored_time
from ghcr_janitor.core.words import count

SOURCE = "first-seen"
_FIX = "move it aside or delete it (a new ledger starts: undated artifacts then age from today)"
log = logging.getLogger(__name__)


class LedgerError(JanitorError):
    """The ledger file cannot be used (one line: the file, why, and what to do)."""


class Ledger:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._warned: set[str] = set()
        problem = sqlite_file_problem(self.path)     # before anything is contacted: one line, once
        if problem is not None:
            raise LedgerError(f"{self.path}: first-seen ledger is {problem}: {_FIX}")

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
        """Record `now` for digests not yet known; return every readable digest's first-seen time."""
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
        except sqlite3.Error as exc:
            if is_damaged(exc):
                raise LedgerError(f"{self.path}: first-seen ledger is damaged ({exc}): {_FIX}") from None
            self._warn_once("", f"{self.path}: first-seen ledger not used this run ({exc})")
            return {}
        except OSError as exc:
            raise LedgerError(f"{self.path}: cannot open the first-seen ledger: {exc.strerror or exc}") from None
        found = {d: when for d, s in rows if (when := stored_time(s, now)) is not None}
        skipped = len(rows) - len(found)
        if skipped:
            self._warn_once(repository, f"{self.path}: skipped {count(skipped, 'damaged first-seen row')} of {repository} "
                                        "(not a time with a timezone): their ages are unknown, so age rules keep "
                                        "them; delete those rows (or the file) to restart their ages from today")
        return found

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
