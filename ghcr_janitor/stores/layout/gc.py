"""Garbage collection of a local OCI layout (BuildKit `type=local` cache dir).

Reachable = everything referenced from EVERY index.json descriptor, walking indexes,
manifests (config, layers) and BuildKit cacheconfig blobs (`layers[].blob`), dispatching
on each descriptor's mediaType; layer blobs are never read (formats.md 2.3). A manifest's
`subject` is a weak reference (image-spec: "a weak association"): a referrer neither needs
its subject to be present nor keeps it alive; a subject stays by its own tag.

Deleted: regular files `blobs/<alg>/<hex>` not reachable and not modified within
`keep_recent`; `ingest/` entries idle for a day (or `keep_recent`, if longer). Nothing
else is touched (stray files, nested layouts in sub-directories). A missing *leaf* (a layer
or other blob that references nothing) is reported and gc still collects (the run exits 1
so the damage is noticed). A missing or unreadable blob that could reference others (a
manifest, an index, an image config, a cacheconfig, an unknown manifest-like type) makes
the reachable set unknown: then nothing at all is deleted.

Locking: BuildKit's flock on `index.json.lock`, shared while reading index.json and
walking, exclusive while deleting; under the exclusive lock index.json is re-read and, if
it changed, the walk is redone. BuildKit writes blobs *before* it updates index.json and
does not touch a blob that already exists, so the grace period protects fresh blobs only:
run gc between builds, not during one.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ghcr_janitor.core import mediatypes as mt
from ghcr_janitor.core.digests import check_digest, verify as verify_digest
from ghcr_janitor.core.errors import ManifestError
from ghcr_janitor.core.manifests import parse_cache_config, parse_manifest
from ghcr_janitor.stores.layout.registry import (
    blob_path, check_layout, index_lock, parse_index, read_index_bytes,
)

INGEST_MAX_AGE = timedelta(hours=24)
_HEX = {"sha256": re.compile(r"^[a-f0-9]{64}$"), "sha512": re.compile(r"^[a-f0-9]{128}$")}
_WALKED = mt.ALL_MANIFEST_TYPES | {mt.BUILDKIT_CACHE_CONFIG}


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


def _hash_file(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return f"{algorithm}:{h.hexdigest()}"


def _children(path: Path, digest: str, media_type: str) -> list[tuple[str, str | None, int | None]]:
    """(digest, mediaType, size) of what a manifest, index or cacheconfig blob references."""
    if path.stat().st_size > mt.MAX_MANIFEST_BYTES:
        raise ManifestError(f"{path}: larger than {mt.MAX_MANIFEST_BYTES} bytes, not read")
    body = path.read_bytes()
    verify_digest(body, digest, str(path))
    if media_type == mt.BUILDKIT_CACHE_CONFIG:
        blobs = parse_cache_config(body, str(path))["blobs"]
        return [(check_digest(b, f"{path}: cache config blob"), None, None) for b in blobs]
    manifest = parse_manifest(body, digest, media_type, str(path))
    if manifest.media_type not in mt.ALL_MANIFEST_TYPES:
        raise ManifestError(f"{path}: described as {media_type} but is {manifest.media_type}")
    descs = list(manifest.blobs) + list(manifest.children)      # not the subject: a weak reference
    return [(d.digest, d.media_type, d.size) for d in descs]


def _unwalkable(media_type: str | None, parent: str) -> bool:
    """A descriptor that may reference blobs but whose format gc does not know."""
    if media_type is None or media_type in _WALKED:
        return False
    return parent == "index.json" or "manifest" in media_type or media_type.endswith("index.v1+json")


def _may_reference(media_type: str | None, parent: str) -> bool:
    """Could a blob of this type reference other blobs (so that losing it hides them)?"""
    return media_type in _WALKED or media_type in mt.IMAGE_CONFIG_TYPES or _unwalkable(media_type, parent)


def _walk(root: Path, index_body: bytes, report: GcReport, verify: bool) -> set[str]:
    """Fill report.reachable*, missing, corrupt (and blocked); return the reachable set."""
    _, descs = parse_index(index_body, root)
    stack = [(d.digest, d.media_type, d.size, "index.json") for d in reversed(descs)]
    late: list[tuple[str, str | None, int | None, str]] = []  # cacheconfig refs: no descriptor
    seen: set[str] = set()
    present = 0
    lost_referrers = 0          # missing blobs that could have referenced others
    while stack or late:
        digest, media_type, size, parent = stack.pop() if stack else late.pop()
        if digest in seen:
            continue
        seen.add(digest)
        path = blob_path(root, digest)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            report.missing.append((digest, parent))
            lost_referrers += _may_reference(media_type, parent)
            continue
        present += 1
        walked = media_type in _WALKED
        problem = None
        if not path.is_file():
            problem = "not a regular file"
        elif size is not None and st.st_size != size:
            problem = f"{st.st_size} bytes on disk, descriptor says {size}"
        elif walked:
            try:
                children = _children(path, digest, media_type)
            except (ManifestError, OSError) as exc:
                problem = str(exc)
            else:
                for d, m, s in reversed(children):
                    (stack if m is not None else late).append((d, m, s, digest))
        elif _unwalkable(media_type, parent):
            # A root, or something that looks like a manifest, of a type we cannot read: what it
            # references is unknown, so nothing may be deleted.
            report.blocked = report.blocked or (
                f"cannot walk {media_type} {digest} (from {parent}): the reachable set is unknown")
        elif verify and _hash_file(path, digest.split(":")[0]) != digest:
            problem = "content does not match its digest"
        if problem:
            report.corrupt.append((digest, problem))
            if walked:
                report.blocked = report.blocked or f"cannot read {digest}: the reachable set is unknown"
        report.reachable_bytes += st.st_size
    report.reachable = present
    if lost_referrers:
        report.blocked = (f"{lost_referrers} referenced manifest/index/config blob(s) missing: the layout is "
                          "damaged and what they referenced is unknown")
    return seen


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


def _execute(root: Path, report: GcReport, keep_recent: timedelta, now: datetime) -> None:
    planned, report.deleted = report.deleted, []
    for digest, size in planned:
        path = blob_path(root, digest)
        try:
            if _age(now, path.lstat().st_mtime) < keep_recent:  # rewritten since the walk
                report.recent.append((digest, size))
                continue
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            report.errors.append(f"{path}: {exc.strerror}")
            continue
        report.deleted.append((digest, size))
    planned_ingest, report.ingest_removed = report.ingest_removed, []
    for rel, size in planned_ingest:
        target = root / rel
        try:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            report.errors.append(f"{target}: {exc.strerror}")
            continue
        report.ingest_removed.append((rel, size))


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
