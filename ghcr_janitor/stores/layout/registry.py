"""Local OCI image layout backend (BuildKit `type=local` cache dirs, `oci-layout:PATH`).

Tags are `org.opencontainers.image.ref.name` annotations on `index.json` descriptors.
Deleting only edits `index.json`; blobs go at `janitor gc` (`ghcr_janitor.stores.layout.gc`).

Concurrency with BuildKit (formats.md 2.1, 2.3): BuildKit takes a `gofrs/flock` on
`DIR/index.json.lock` (TryRLock to read, TryLock to write) and removes the file after
unlocking. We take the same flock, wait for it briefly, and re-check after locking that
the file we hold is still the one at that path (BuildKit may have unlinked it).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from ghcr_janitor.core import mediatypes as mt
from ghcr_janitor.core.digests import check_digest, digest_of, is_digest, verify
from ghcr_janitor.core.files import UnreadableFile, atomic_write
from ghcr_janitor.core.errors import LayoutError, ManifestError, NotFoundError, TagMovedError, UsageError
from ghcr_janitor.core.manifests import load_json, parse_descriptor
from ghcr_janitor.core.models import Descriptor, StoreTraits
from ghcr_janitor.stores.base import RawManifest, Version
from ghcr_janitor.stores.layout.files import (
    INDEX_CAP, OCI_LAYOUT_CAP, blob_path, escapes, not_regular, read_blob, read_layout_file,
)

__all__ = ["LayoutRegistry", "blob_path", "check_layout", "index_lock", "parse_index", "read_index",
           "read_index_bytes", "ref_name"]

OCI_LAYOUT = "oci-layout"
INDEX = "index.json"
LOCK = "index.json.lock"
LOCK_TIMEOUT = 30.0
# image-spec annotations.md: ref ::= component ("/" component)*
_REF_NAME = re.compile(r"^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$")


# --- layout files -------------------------------------------------------------------


def check_layout(root: Path) -> None:
    """Raise LayoutError unless `root/oci-layout` is a JSON object with imageLayoutVersion."""
    path = root / OCI_LAYOUT
    if not root.is_dir():
        raise LayoutError(f"{root}: not a directory (expected an OCI image layout)")
    try:
        doc = json.loads(read_layout_file(path, OCI_LAYOUT_CAP))
    except FileNotFoundError:
        raise LayoutError(f"{path}: missing; {root} is not an OCI image layout") from None
    except (ValueError, RecursionError) as exc:
        raise LayoutError(f"{path}: not JSON ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("imageLayoutVersion"), str):
        raise LayoutError(f"{path}: not a JSON object with an imageLayoutVersion string")


def read_index_bytes(root: Path) -> bytes:
    """The raw bytes of index.json; LayoutError if missing or unreadable."""
    path = root / INDEX
    try:
        return read_layout_file(path, INDEX_CAP)
    except FileNotFoundError:
        raise LayoutError(f"{path}: missing (an OCI image layout needs an index.json)") from None


def parse_index(body: bytes, root: Path) -> tuple[dict[str, Any], list[Descriptor]]:
    """Validate index.json: returns the raw document and its parsed descriptors."""
    where = str(root / INDEX)
    try:
        doc = load_json(body, where)
    except ManifestError as exc:
        raise LayoutError(str(exc)) from None
    if doc.get("schemaVersion") != 2:
        raise LayoutError(f"{where}: schemaVersion is not 2")
    manifests = doc.get("manifests")
    if manifests is None:  # Go marshals an empty slice as null
        manifests = doc["manifests"] = []
    if not isinstance(manifests, list):
        raise LayoutError(f"{where}: manifests is not a list")
    try:
        descs = [parse_descriptor(m, f"{where} manifests[{i}]") for i, m in enumerate(manifests)]
    except ManifestError as exc:
        raise LayoutError(str(exc)) from None
    return doc, descs


def ref_name(desc: Descriptor) -> str | None:
    return desc.annotations.get(mt.REF_NAME)


# --- locking ------------------------------------------------------------------------


def _open_lock(path: Path, create: bool) -> tuple[int, bool] | None:
    """Open (maybe create) the lock file: (fd, created) or None if absent and not created.

    An existing one is opened without blocking or following a symlink and must be a regular
    file (a FIFO there would hang the open; a device is no lock): LayoutError otherwise.
    """
    if create:
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644), True
        except FileExistsError:
            pass
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    why = not_regular(os.fstat(fd).st_mode)
    if why:
        os.close(fd)
        raise LayoutError(f"{path}: {why}; it cannot be BuildKit's lock file")
    return fd, False


def _acquire(path: Path, exclusive: bool, create: bool, deadline: float) -> tuple[int, bool] | None:
    """Lock the file at `path`: (fd, created), or None when reading unlocked is the answer."""
    mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
    while True:
        try:
            opened = _open_lock(path, create)
        except OSError as exc:
            if exclusive or exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise LayoutError(f"{path}: cannot open lock file ({exc.strerror})") from None
            return None  # cannot create the lock file here (read-only): read unlocked
        if opened is None and not create:
            return None
        if opened is not None:
            fd, created = opened
            try:
                fcntl.flock(fd, mode)
                locked = True
            except BlockingIOError:
                locked = False
            if locked:
                try:
                    if os.path.samestat(os.fstat(fd), os.stat(path)):
                        return fd, created
                except FileNotFoundError:
                    pass
                # BuildKit unlinked the file we locked: lock the one at the path now.
            os.close(fd)
            if locked:
                continue
        if time.monotonic() > deadline:
            raise LayoutError(f"{path}: held by another process for too long (is a build writing this cache?)")
        time.sleep(0.05)


@contextmanager
def index_lock(root: Path, exclusive: bool, create: bool = True, timeout: float | None = None) -> Iterator[bool]:
    """Hold BuildKit's flock on `root/index.json.lock`; yields True if a lock is held.

    create=False (reads, dry runs) never creates the file: with no lock file we read
    unlocked. A shared lock on a read-only directory also proceeds unlocked. A lock
    file we created is removed before unlocking (as BuildKit does); one we found is left.
    Waits up to `timeout` seconds (default LOCK_TIMEOUT) for another holder.
    """
    path = root / LOCK
    deadline = time.monotonic() + (LOCK_TIMEOUT if timeout is None else timeout)
    held = _acquire(path, exclusive, create, deadline)
    if held is None:
        yield False
        return
    fd, created = held
    try:
        yield True
    finally:
        if created:
            try:
                os.unlink(path)
            except OSError:
                pass
        os.close(fd)


def read_index(root: Path, create: bool = False, attempts: int = 3) -> tuple[bytes, list[Descriptor]]:
    """index.json bytes and descriptors, read under a shared lock when there is one.

    Reads do not create the lock file (read-only commands leave the directory as it
    was). Unlocked, a read can catch BuildKit rewriting index.json in place: an
    unparsable read is then retried briefly before it counts as corrupt.
    """
    for attempt in range(attempts):
        with index_lock(root, exclusive=False, create=create) as locked:
            body = read_index_bytes(root)
        try:
            return body, parse_index(body, root)[1]
        except LayoutError:
            if locked or attempt == attempts - 1:
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")  # pragma: no cover


def _dump_index(doc: dict[str, Any]) -> bytes:
    # Compact, like BuildKit's json.Marshal; unknown fields are kept as read.
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


# --- the backend --------------------------------------------------------------------


class LayoutRegistry:
    """`Registry` over a local OCI image layout directory."""

    kind = "layout"
    lists_untagged = True
    traits = StoreTraits(place="this cache dir", lists_untagged=True, unreachable_blobs=True, price="layout")
    reclaim_note = ("no longer reachable from any tag of this cache dir; freed by `janitor gc` "
                    "(`janitor prune` runs it after deleting, unless --no-gc)")

    def __init__(self, path: str | os.PathLike[str]):
        self.root = Path(path)
        self.name = str(path)
        self._escape: dict[str, str | None] = {}      # algorithm -> why blobs/<alg> may not be read
        check_layout(self.root)

    # reading

    def _index(self) -> list[Descriptor]:
        return read_index(self.root)[1]

    def _tags(self, descs: list[Descriptor]) -> dict[str, Descriptor]:
        """tag -> descriptor; with duplicate ref names the first wins (as BuildKit reads)."""
        tags: dict[str, Descriptor] = {}
        for desc in descs:
            name = ref_name(desc)
            if name is not None and name not in tags:
                tags[name] = desc
        return tags

    def _read_blob(self, digest: str, max_size: int) -> bytes:
        """A regular file of this layout, at most `max_size` bytes, matching its digest.

        NotFoundError when absent; ManifestError (one line naming the file) when it is a symlink,
        FIFO, device or directory, too large, unreadable, or reached through a directory that
        resolves outside the layout (LayoutError).
        """
        path = blob_path(self.root, digest)
        algorithm = digest.split(":", 1)[0]
        if algorithm not in self._escape:
            self._escape[algorithm] = escapes(self.root, f"blobs/{algorithm}")
        if self._escape[algorithm]:
            raise LayoutError(f"{self._escape[algorithm]}: blobs are not read through it")
        try:
            why = not_regular(os.lstat(path).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"{self.name}: blob {digest} is missing ({path})") from None
        except OSError as exc:
            raise ManifestError(f"{path}: {exc.strerror}") from None
        if why:
            raise ManifestError(f"{path}: {why}")
        try:
            data = read_blob(self.root, digest, max_size)
        except UnreadableFile as exc:
            raise ManifestError(str(exc)) from None
        verify(data, digest, str(path))
        return data

    async def list_tags(self) -> list[str]:
        return sorted(self._tags(self._index()))

    async def list_versions(self) -> list[Version]:
        """One Version per distinct digest in index.json, in index order.

        `created` is left None (the inventory dates artifacts from their manifests);
        `extra["blob_mtime"]` carries the manifest blob's mtime (ISO, UTC) for callers
        that want a last-resort age. It is not an age: git checkouts reset it.
        """
        descs = self._index()
        owner = {tag: d.digest for tag, d in self._tags(descs).items()}
        versions: dict[str, Version] = {}
        for desc in descs:
            if desc.digest in versions:
                continue
            tags = tuple(sorted(t for t, d in owner.items() if d == desc.digest))
            extra: dict[str, Any] = {"size": desc.size}
            try:
                mtime = blob_path(self.root, desc.digest).stat().st_mtime
                extra["blob_mtime"] = datetime.fromtimestamp(mtime, timezone.utc).isoformat()
            except OSError:
                extra["blob_missing"] = True
            versions[desc.digest] = Version(desc.digest, tags, media_type=mt.normalise(desc.media_type), extra=extra)
        return list(versions.values())

    def known_missing(self, digest: str, listed: frozenset[str]) -> bool:
        """The blob store is the complete listing: a blob that is not a file is gone."""
        try:
            return not os.path.lexists(blob_path(self.root, digest))
        except (ManifestError, OSError):
            return False

    async def resolve(self, tag: str) -> str | None:
        desc = self._tags(self._index()).get(tag)
        return desc.digest if desc else None

    async def get_manifest(self, reference: str) -> RawManifest:
        """By tag or digest; the media type is the body's own (its `mediaType`, else its shape),
        else index.json's (normalised: parameters dropped)."""
        descs = self._index()
        if is_digest(reference):
            digest = reference
            desc = next((d for d in descs if d.digest == digest), None)
        else:
            desc = self._tags(descs).get(reference)
            if desc is None:
                raise NotFoundError(f"{self.name}: tag {reference!r} not found in index.json")
            digest = desc.digest
        body = self._read_blob(digest, mt.MAX_MANIFEST_BYTES)
        where = str(blob_path(self.root, digest))
        media_type = mt.content_type(load_json(body, where)) or (mt.normalise(desc.media_type) if desc else None)
        if media_type is None:
            raise ManifestError(f"{where}: not a manifest")
        return RawManifest(digest, media_type, body)

    async def get_blob(self, digest: str, max_size: int) -> bytes:
        return self._read_blob(check_digest(digest), max_size)

    # writing

    def _update_index(self, change: Callable[[list[dict[str, Any]], list[Descriptor]], list[dict[str, Any]]]) -> None:
        """Re-read index.json under the exclusive lock, apply `change`, write it atomically."""
        path = self.root / INDEX
        try:
            with index_lock(self.root, exclusive=True):
                doc, descs = parse_index(read_index_bytes(self.root), self.root)
                doc["manifests"] = change(doc["manifests"], descs)
                atomic_write(path, _dump_index(doc), like=path)
        except OSError as exc:
            raise LayoutError(f"{path}: cannot rewrite index.json: {exc.strerror or exc}") from None

    async def put_manifest(self, tag: str, body: bytes, media_type: str) -> str:
        """Write the blob (atomically, if absent or damaged), then point `tag` at it."""
        if not isinstance(tag, str) or not _REF_NAME.match(tag):
            raise UsageError(f"{tag!r} is not a valid OCI layout ref name")
        if len(body) > mt.MAX_MANIFEST_BYTES:
            raise ManifestError(f"manifest is {len(body)} bytes, over the {mt.MAX_MANIFEST_BYTES} byte cap")
        digest = digest_of(body)
        path = blob_path(self.root, digest)
        escape = escapes(self.root, f"blobs/{digest.split(':')[0]}")
        if escape:
            raise LayoutError(f"{escape}: no blob is written through it")
        try:
            present = digest_of(read_blob(self.root, digest, mt.MAX_MANIFEST_BYTES)) == digest
        except UnreadableFile:
            present = False
        if not present:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(path, body)
            except OSError as exc:
                raise LayoutError(f"{path}: cannot write the manifest blob: {exc.strerror or exc}") from None
        entry = {"mediaType": media_type, "digest": digest, "size": len(body),
                 "annotations": {mt.REF_NAME: tag}}

        def change(raw: list[dict[str, Any]], descs: list[Descriptor]) -> list[dict[str, Any]]:
            # Like BuildKit's insertDesc: drop entries with this ref name, append ours.
            return [r for r, d in zip(raw, descs) if ref_name(d) != tag] + [entry]

        self._update_index(change)
        return digest

    async def delete_manifest(self, digest: str) -> None:
        """Remove every index.json entry with this digest; NotFoundError if there is none."""
        check_digest(digest)

        def change(raw: list[dict[str, Any]], descs: list[Descriptor]) -> list[dict[str, Any]]:
            kept = [r for r, d in zip(raw, descs) if d.digest != digest]
            if len(kept) == len(raw):
                raise NotFoundError(f"{self.name}: {digest} is not in index.json")
            return kept

        self._update_index(change)

    async def delete_tag(self, tag: str, digest: str) -> None:
        """Remove the entries naming `tag`, only if it still points at `digest`.

        NotFoundError if the tag is gone or now points elsewhere (it moved: nothing done).
        """

        def change(raw: list[dict[str, Any]], descs: list[Descriptor]) -> list[dict[str, Any]]:
            current = self._tags(descs).get(tag)
            if current is None:
                raise NotFoundError(f"{self.name}: tag {tag!r} not found in index.json")
            if current.digest != digest:
                raise TagMovedError(f"{self.name}: tag {tag!r} now points at {current.digest}, not {digest}")
            return [r for r, d in zip(raw, descs) if ref_name(d) != tag]

        self._update_index(change)

    async def aclose(self) -> None:
        return None
