"""Where the janitor keeps its manifest cache and state (XDG defaults, env overrides), and the checks
that a state directory and a state file (SQLite) are usable, each failure one line saying what to do."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from typing import Mapping

from ghcr_janitor.core.errors import UsageError

SQLITE_HEADER = b"SQLite format 3\x00"
_DAMAGED_CODES = tuple(getattr(sqlite3, name) for name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") if hasattr(sqlite3, name))


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("JANITOR_CACHE_DIR"):
        return Path(env["JANITOR_CACHE_DIR"])
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ghcr-janitor"


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """The state directory (first-seen ledger, run history); UsageError (exit 2) naming the variable
    that chose it when it is not, or cannot become, a writable directory."""
    env = os.environ if env is None else env
    if env.get("JANITOR_STATE_DIR"):
        path, source = Path(env["JANITOR_STATE_DIR"]), "JANITOR_STATE_DIR"
    elif env.get("XDG_STATE_HOME"):
        path, source = Path(env["XDG_STATE_HOME"]) / "ghcr-janitor", "XDG_STATE_HOME"
    else:
        path = Path(os.path.expanduser("~"), ".local", "state", "ghcr-janitor")
        source = "the default state directory (set JANITOR_STATE_DIR)"
    _check_directory(path, source)
    return path


def _check_directory(path: Path, source: str) -> None:
    """`path` is a writable directory, or can be made one (its nearest existing ancestor is)."""
    where = f"{source} {path}: must be a directory (it holds the first-seen ledger and the run history)"
    existing = path
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():           # a dangling symlink: mkdir would fail on it
            raise UsageError(f"{where}, but {existing} is a dangling symlink")
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{where}, but {'it' if existing == path else existing} is "
                         f"{'a file' if existing.is_file() else 'not a directory'}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{source} {path}: must be a writable directory, but {existing} is not writable")


def sqlite_file_problem(path: Path) -> str | None:
    """Why `path` cannot be a SQLite database (None if it can, or does not exist yet): read without
    blocking (a FIFO cannot hang the check) and only its 16-byte header."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "not a regular file"
        header = os.read(fd, len(SQLITE_HEADER))
    finally:
        os.close(fd)
    if header and header != SQLITE_HEADER:
        return "not a SQLite database"
    return None


def is_damaged(exc: sqlite3.Error) -> bool:
    """A SQLite error that says the file is not a database, or a damaged one (not: locked, read-only)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and _DAMAGED_CODES:
        return code in _DAMAGED_CODES
    return type(exc) is sqlite3.DatabaseError
