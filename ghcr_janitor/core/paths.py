"""Where the janitor keeps its manifest cache and state (XDG defaults, env overrides: `core.settings`
reads the names), and the checks that a state directory and a state file (SQLite) are usable, each
failure one line saying what to do."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from typing import Mapping

from ghcr_janitor.core.settings import cache_dir_in, check_directory, state_dir_in

SQLITE_HEADER = b"SQLite format 3\x00"
_DAMAGED_CODES = tuple(getattr(sqlite3, name) for name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") if hasattr(sqlite3, name))


def cache_dir(env: Mapping[str, str]) -> Path:
    """The manifest cache's directory as `env` chooses it (core.settings reads the names)."""
    return cache_dir_in(env)


def state_dir(env: Mapping[str, str]) -> Path:
    """The state directory (first-seen ledger, run history) as `env` chooses it; UsageError (exit 2)
    naming the variable that chose it when it is not, or cannot become, a writable directory."""
    path, source = state_dir_in(env)
    check_directory(path, source)
    return path


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
