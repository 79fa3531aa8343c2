"""Run history: one row of totals per target per run (`ls`, `plan`, `prune`, `apply`), for reports.

A sqlite file, `JANITOR_STATE_DIR/history.sqlite` unless `--history FILE` says otherwise, so a CI
workflow can keep it as an artifact or in a cache between scheduled runs. The schema is versioned
(`PRAGMA user_version`), each target keeps its newest `MAX_ROWS_PER_TARGET` rows, and every append
is one transaction (two concurrent runs are safe: sqlite locks the file). A history that cannot be
read or written costs a one-line warning, never the run; a damaged row (a count that is not a
non-negative integer, a time that is not a time, ...) is skipped and counted in one warning.
`janitor history export|import` moves it as JSON lines.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from ghcr_janitor.core.errors import JanitorError
from ghcr_janitor.core.paths import is_damaged
from ghcr_janitor.core.timeparse import format_time, parse_time
from ghcr_janitor.core.words import count

SCHEMA_VERSION = 1
MAX_ROWS_PER_TARGET = 5_000
FILE_NAME = "history.sqlite"
FUTURE_SLACK = timedelta(days=1)      # imported rows may be this far ahead of this machine's clock
_FIX = "move it aside or delete it (a new history starts)"


class HistoryError(JanitorError):
    """The history file cannot be used (one line, naming the file)."""


@dataclass(frozen=True)
class Row:
    time: str
    command: str
    target: str
    backend: str | None
    items: int | None    # tags listed, or cache entries (None: the run did not list, e.g. apply)
    bytes: int | None
    unique_bytes: int | None
    reclaimable: int | None
    reclaimed: int | None


FIELDS = tuple(Row.__dataclass_fields__)
_COUNTS = ("items", "bytes", "unique_bytes", "reclaimable", "reclaimed")


def repository_totals(inv) -> tuple[int, int, int]:
    """What a history row counts, the whole repository whatever `--tag` listed: its tags (the
    Actions cache: entries), its bytes (each blob once) and the bytes held by one root only."""
    if inv.traits.entries:              # cache entries: each holds its own bytes, shared with none
        size = inv.total_size()
        return len(inv.artifacts), size, size
    roots = inv.roots()
    return len(inv.tags), inv.total_size(), sum(inv.artifacts[d].unique_size for d in roots)


def rows_for_run(command: str, now: datetime, inventories: list | None = None, plan: Any = None,
                 results: list | None = None) -> list[Row]:
    """One row per target the run saw, from its inventory, plan and apply results."""
    stamp = format_time(now.astimezone(timezone.utc)) or ""
    plans = {t.target: t for t in (plan.targets if plan is not None else [])}
    done = {r.target: r for r in results or []}
    rows = []
    for inv in inventories or []:
        tp, tr = plans.get(inv.target), done.get(inv.target)
        items, size, unique = repository_totals(inv)
        rows.append(Row(stamp, command, inv.target, inv.backend, items, size, unique,
                        tp.reclaim_size if tp is not None else None, tr.reclaimed if tr is not None else None))
    seen = {r.target for r in rows}
    for target, tp in plans.items():     # apply: what the plan file says, and what was freed
        if target not in seen:
            tr = done.get(target)
            rows.append(Row(stamp, command, target, tp.backend, None, None, None, tp.reclaim_size,
                            tr.reclaimed if tr is not None else None))
    return rows


class History:
    """The history file at `path` (created on first append)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.skipped = 0        # damaged rows `rows()` left out

    def skipped_warning(self) -> str | None:
        """One line counting the damaged rows the last `rows()` skipped, or None."""
        if not self.skipped:
            return None
        return (f"{self.path}: skipped {count(self.skipped, 'damaged row')} of the run history (a value of the wrong type, or a time "
                "that is not a time); the rest are used")

    def _open(self, create: bool) -> sqlite3.Connection:
        if not create and not self.path.exists():
            raise HistoryError(f"{self.path}: no history file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30)
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                db.close()
                raise HistoryError(f"{self.path}: history schema {version} is newer than this janitor's "
                                   f"({SCHEMA_VERSION}); upgrade the janitor")
            if version < SCHEMA_VERSION:
                with db:
                    db.execute("CREATE TABLE IF NOT EXISTS history (time TEXT NOT NULL, command TEXT NOT NULL, "
                               "target TEXT NOT NULL, backend TEXT, items INTEGER, bytes INTEGER, "
                               "unique_bytes INTEGER, reclaimable INTEGER, reclaimed INTEGER, "
                               "UNIQUE (time, command, target))")
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            return db
        except sqlite3.Error as exc:
            fix = f": {_FIX}" if is_damaged(exc) else ""
            raise HistoryError(f"{self.path}: not a usable history file ({exc}){fix}") from None
        except OSError as exc:
            raise HistoryError(f"{self.path}: {exc.strerror or exc}") from None

    def append(self, rows: Iterable[Row]) -> int:
        """Add rows (a row already there is kept once); trim each target to its newest rows.
        Returns how many more rows the history holds than before."""
        rows = list(rows)
        if not rows:
            return 0
        db = self._open(create=True)
        try:
            with db:
                count_sql = "SELECT COUNT(*) FROM history"
                before = db.execute(count_sql).fetchone()[0]
                db.executemany(f"INSERT OR IGNORE INTO history VALUES ({', '.join('?' * len(FIELDS))})",
                               [tuple(getattr(r, f) for f in FIELDS) for r in rows])
                for target in {r.target for r in rows}:
                    db.execute("DELETE FROM history WHERE target = ? AND rowid NOT IN (SELECT rowid FROM history "
                               "WHERE target = ? ORDER BY time DESC LIMIT ?)", (target, target, MAX_ROWS_PER_TARGET))
                return max(0, db.execute(count_sql).fetchone()[0] - before)
        except sqlite3.Error as exc:
            raise HistoryError(f"{self.path}: cannot write the history ({exc})") from None
        finally:
            db.close()

    def rows(self) -> Iterator[Row]:
        """Every well-formed row, oldest first; damaged ones are counted in `skipped`."""
        self.skipped = 0
        db = self._open(create=False)
        try:
            for values in db.execute(f"SELECT {', '.join(FIELDS)} FROM history ORDER BY time, target, command"):
                row = Row(*values)
                if _well_formed(row):
                    yield row
                else:
                    self.skipped += 1
        except sqlite3.Error as exc:
            fix = f": {_FIX}" if is_damaged(exc) else ""
            raise HistoryError(f"{self.path}: cannot read the history ({exc}){fix}") from None
        finally:
            db.close()


def _well_formed(row: Row) -> bool:
    """Every field has the type `Row` says (counts: non-negative integers) and the time is a time."""
    for name in _COUNTS:
        value = getattr(row, name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            return False
    if row.backend is not None and not isinstance(row.backend, str):
        return False
    if not all(isinstance(v, str) and v for v in (row.time, row.command, row.target)):
        return False
    return parse_time(row.time) is not None


def to_json_line(row: Row) -> str:
    return json.dumps(asdict(row), sort_keys=True)


def from_json_line(line: str, where: str) -> Row:
    """A row from one JSON line; HistoryError naming `where` (FILE:LINE) if it is not one."""
    try:
        doc = json.loads(line)
    except ValueError as exc:
        raise HistoryError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(doc, dict) or set(doc) != set(FIELDS):
        raise HistoryError(f"{where}: expected an object with exactly {', '.join(FIELDS)}")
    for name in FIELDS:
        value = doc[name]
        if name in _COUNTS:
            ok = value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)
        elif name == "backend":
            ok = value is None or isinstance(value, str)
        else:
            ok = isinstance(value, str) and value != ""
        if not ok:
            raise HistoryError(f"{where}: {name}: unexpected {json.dumps(value)[:40]}")
    when = parse_time(doc["time"])
    if when is None:
        raise HistoryError(f"{where}: time: invalid time {doc['time'][:40]!r}")
    if when > datetime.now(timezone.utc) + FUTURE_SLACK:
        raise HistoryError(f"{where}: time: {doc['time'][:40]} is in the future (a wrong clock?)")
    doc["time"] = format_time(when.astimezone(timezone.utc))     # one spelling per instant: kept once
    return Row(**doc)


def history_path(explicit: Path | None, env) -> Path:
    from ghcr_janitor.core.paths import state_dir

    return Path(explicit) if explicit is not None else state_dir(env) / FILE_NAME


def record(command: str, now: datetime, explicit: Path | None, env, **facts) -> str | None:
    """Append this run's rows; the warning to show if the history could not take them."""
    rows = rows_for_run(command, now, **facts)
    if not rows:
        return None
    try:
        History(history_path(explicit, env)).append(rows)
    except HistoryError as exc:
        return f"history not recorded: {exc}"
    return None


def read_history(explicit: Path | None, env) -> tuple[dict[str, list[Row]], str | None]:
    """Every target's rows, oldest first, and the warning to show if the history cannot be read
    (no history file yet is not a warning: the report just has no history to draw)."""
    path = history_path(explicit, env)
    if not path.exists():
        return {}, None
    found: dict[str, list[Row]] = {}
    store = History(path)
    try:
        for row in store.rows():
            found.setdefault(row.target, []).append(row)
    except HistoryError as exc:
        return {}, f"history not read: {exc}"
    return found, store.skipped_warning()
