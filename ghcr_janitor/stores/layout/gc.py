"""Garbage collection of a local OCI layout (BuildKit `type=local` cache dir).

Reachable = everything referenced from EVERY index.json descriptor, walking each manifest,
index and BuildKit cacheconfig blob once, by its own content (`walk.py`): never by what a
descriptor claims, so a mislabelled descriptor cannot hide a kept blob. A manifest's `subject`
is a weak reference (image-spec: "a weak association"): a referrer neither needs its subject
to be present nor keeps it alive; a subject stays by its own tag.

Deleted: regular files `blobs/<alg>/<hex>` not reachable and not modified within
`keep_recent`; `ingest/` entries idle for a day (or `keep_recent`, if longer). Nothing
else is touched (stray files, nested layouts in sub-directories). A missing *leaf* (a layer
or other blob that references nothing) is reported and gc still collects (the run exits 1
so the damage is noticed). A missing blob that could reference others (a manifest, an index,
an image config, a cacheconfig, an unknown manifest-like type), any reachable blob that cannot
be read (a symlink, FIFO, device), or one gc cannot classify makes the reachable set unknown:
then nothing at all is deleted.

Paths: gc never reads or deletes through a directory (`blobs/`, `blobs/<alg>/`, `ingest/`) that
resolves outside the layout directory: it refuses the layout instead (nothing deleted, one line).
Deletes go through directory descriptors opened without following symlinks (`files.open_dir`).

Locking: BuildKit's flock on `index.json.lock`, shared while reading index.json and
walking, exclusive while deleting; under the exclusive lock index.json is re-read and, if
it changed, the walk is redone. BuildKit writes blobs *before* it updates index.json and
does not touch a blob that already exists, so the grace period protects fresh blobs only:
run gc between builds, not during one.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ghcr_janitor.core.errors import LayoutError
from ghcr_janitor.stores.layout.files import escaping_dirs, open_dir
from ghcr_janitor.stores.layout.registry import check_layout, index_lock, parse_index, read_index_bytes
from ghcr_janitor.stores.layout.walk import walk

INGEST_MAX_AGE = timedelta(hours=24)
_HEX = {"sha256": re.compile(r"^[a-f0-9]{64}$"), "sha512": re.compile(r"^[a-f0-9]{128}$")}


@dataclass
class GcReport:
    """What gc found and did (or, with dry_run, would do)."""

    path: str
    dry_run: bool
    reachable: int = 0
    reachable_bytes: int = 0
    deleted: list[tuple[str, int]] = field(default_factory=list)      # (digest, size)
    recent: list[tuple[str, int]] = field(default_factory=list)       # unreachable, within grace
    missing: list[tuple[str, str]] = field(default_factory=list)      # (digest, referenced by)
    corrupt: list[tuple[str, str]] = field(default_factory=list)      # (digest, reason)
    ingest_removed: list[tuple[str, int]] = field(default_factory=list)  # (relative path, size)
    ignored: list[str] = field(default_factory=list)                  # non-blob files left alone
    errors: list[str] = field(default_factory=list)                   # deletions that failed
    blocked: str | None = None                                        # why nothing was deleted

    @property
    def bytes_freed(self) -> int:
        return sum(size for _, size in self.deleted)

    @property
    def ok(self) -> bool:
        """False when something needs attention (exit code 1 in the CLI)."""
        return not (self.missing or self.corrupt or self.errors or self.blocked)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "dry_run": self.dry_run,
            "reachable": self.reachable,
            "reachable_bytes": self.reachable_bytes,
            "deleted": [{"digest": d, "size": s} for d, s in self.deleted],
            "bytes_freed": self.bytes_freed,
            "recent": [{"digest": d, "size": s} for d, s in self.recent],
            "missing": [{"digest": d, "referenced_by": r} for d, r in self.missing],
            "corrupt": [{"digest": d, "reason": r} for d, r in self.corrupt],
            "ingest_removed": [{"path": p, "size": s} for p, s in self.ingest_removed],
            "ignored": list(self.ignored),
            "errors": list(self.errors),
            "blocked": self.blocked,
        }


# --- reachability -------------------------------------------------------------------


def _walk(root: Path, index_body: bytes, report: GcReport, verify: bool) -> set[str]:
    """Fill report.reachable*, missing, corrupt (and blocked); return the reachable set."""
    _, descs = parse_index(index_body, root)
    found = walk(root, [(d.digest, d.media_type, d.size, "index.json") for d in descs], verify)
    report.reachable, report.reachable_bytes = found.present, found.present_bytes
    report.missing, report.corrupt = found.missing, found.corrupt
    report.blocked = report.blocked or found.blocked
    return found.reachable


# --- candidates ---------------------------------------------------------------------


def _age(now: datetime, mtime: float) -> timedelta:
    return now - datetime.fromtimestamp(mtime, timezone.utc)


def _scan_blobs(root: Path, report: GcReport) -> list[tuple[str, os.stat_result]]:
    """Every regular file named like a blob, as (digest, lstat); others go to `ignored`."""
    found: list[tuple[str, os.stat_result]] = []
    blobs = root / "blobs"
    if not blobs.is_dir():
        return found
    for alg in sorted(os.scandir(blobs), key=lambda e: e.name):
        pattern = _HEX.get(alg.name)
        if pattern is None or not alg.is_dir(follow_symlinks=False):
            report.ignored.append(f"blobs/{alg.name}")
            continue
        for entry in sorted(os.scandir(alg.path), key=lambda e: e.name):
            if pattern.match(entry.name) and entry.is_file(follow_symlinks=False):
                found.append((f"{alg.name}:{entry.name}", entry.stat(follow_symlinks=False)))
            else:
                report.ignored.append(f"blobs/{alg.name}/{entry.name}")
    return found


def _tree_stat(path: Path) -> tuple[float, int]:
    """(newest mtime, total file bytes) of a file or directory tree, never following links."""
    st = path.lstat()
    if not path.is_dir() or path.is_symlink():
        return st.st_mtime, st.st_size
    newest, total = st.st_mtime, 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames:
            newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
        for name in filenames:
            sub = os.lstat(os.path.join(dirpath, name))
            newest, total = max(newest, sub.st_mtime), total + sub.st_size
    return newest, total


def _plan(root: Path, index_body: bytes, keep_recent: timedelta, now: datetime, verify: bool, dry_run: bool) -> GcReport:
    report = GcReport(str(root), dry_run)
    escape = escaping_dirs(root)
    if escape:
        report.blocked = f"{escape}: gc never reads or deletes through it"
        return report
    reachable = _walk(root, index_body, report, verify)
    if report.blocked:
        return report
    for digest, st in _scan_blobs(root, report):
        if digest in reachable:
            continue
        if _age(now, st.st_mtime) < keep_recent:
            report.recent.append((digest, st.st_size))
        else:
            report.deleted.append((digest, st.st_size))
    ingest = root / "ingest"
    if ingest.is_dir() and not ingest.is_symlink():
        limit = max(INGEST_MAX_AGE, keep_recent)
        for entry in sorted(os.listdir(ingest)):
            newest, size = _tree_stat(ingest / entry)
            if _age(now, newest) >= limit:
                report.ingest_removed.append((f"ingest/{entry}", size))
    return report


def _utc(now: datetime) -> datetime:
    return now if now.tzinfo else now.replace(tzinfo=timezone.utc)


# --- entry points -------------------------------------------------------------------


def plan_gc(path: str | os.PathLike[str], keep_recent: timedelta, now: datetime, *, verify: bool = False) -> GcReport:
    """What gc would delete; changes nothing (not even a lock file is created)."""
    root = Path(path)
    check_layout(root)
    with index_lock(root, exclusive=False, create=False):
        return _plan(root, read_index_bytes(root), keep_recent, _utc(now), verify, dry_run=True)


def _delete_blobs(root: Path, report: GcReport, planned: list[tuple[str, int]], keep_recent: timedelta,
                  now: datetime) -> None:
    """Unlink each planned blob through its directory's descriptor, unless it changed meanwhile."""
    by_alg: dict[str, list[tuple[str, int]]] = {}
    for digest, size in planned:
        by_alg.setdefault(digest.split(":")[0], []).append((digest, size))
    for alg, blobs in sorted(by_alg.items()):
        try:
            with open_dir(root, f"blobs/{alg}") as fd:
                for digest, size in blobs:
                    name = digest.split(":")[1]
                    try:
                        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                        if not stat.S_ISREG(st.st_mode) or _age(now, st.st_mtime) < keep_recent:
                            report.recent.append((digest, size))      # rewritten since the walk
                            continue
                        os.unlink(name, dir_fd=fd)
                    except FileNotFoundError:
                        continue
                    except OSError as exc:
                        report.errors.append(f"{root / 'blobs' / alg / name}: {exc.strerror}")
                        continue
                    report.deleted.append((digest, size))
        except (LayoutError, OSError) as exc:
            report.errors.append(str(exc) if isinstance(exc, LayoutError) else f"{root}/blobs/{alg}: {exc.strerror}")


def _delete_ingest(root: Path, report: GcReport, planned: list[tuple[str, int]]) -> None:
    """Remove each planned `ingest/` entry through the directory's descriptor."""
    if not planned:
        return
    try:
        with open_dir(root, "ingest") as fd:
            for rel, size in planned:
                name = rel.split("/", 1)[1]
                try:
                    if stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                        shutil.rmtree(name, dir_fd=fd)
                    else:
                        os.unlink(name, dir_fd=fd)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    report.errors.append(f"{root / rel}: {exc.strerror}")
                    continue
                report.ingest_removed.append((rel, size))
    except (LayoutError, OSError) as exc:
        report.errors.append(str(exc) if isinstance(exc, LayoutError) else f"{root}/ingest: {exc.strerror}")


def _execute(root: Path, report: GcReport, keep_recent: timedelta, now: datetime) -> None:
    planned, report.deleted = report.deleted, []
    planned_ingest, report.ingest_removed = report.ingest_removed, []
    escape = escaping_dirs(root)           # checked again under the exclusive lock
    if escape:
        report.blocked = f"{escape}: gc never reads or deletes through it"
        return
    _delete_blobs(root, report, planned, keep_recent, now)
    _delete_ingest(root, report, planned_ingest)


def run_gc(path: str | os.PathLike[str], keep_recent: timedelta, now: datetime, dry_run: bool, *, verify: bool = False) -> GcReport:
    """Delete unreachable, old-enough blobs (or only report them when dry_run)."""
    if dry_run:
        return plan_gc(path, keep_recent, now, verify=verify)
    root, now = Path(path), _utc(now)
    check_layout(root)
    with index_lock(root, exclusive=False):
        body = read_index_bytes(root)
        report = _plan(root, body, keep_recent, now, verify, dry_run=False)
    if report.blocked:
        return report
    with index_lock(root, exclusive=True):
        current = read_index_bytes(root)
        if current != body:  # a build updated index.json meanwhile: walk again
            report = _plan(root, current, keep_recent, now, verify, dry_run=False)
        if not report.blocked:
            _execute(root, report, keep_recent, now)
    return report
