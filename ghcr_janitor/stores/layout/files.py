"""Safe access to the files of a local OCI layout.

Every directory on a path must resolve inside the layout directory; every read is of a regular file
(never a symlink, FIFO or device) and bounded (`core.files.read_regular`); deletes go through
directory descriptors opened component by component without following symlinks, so a directory
swapped for a symlink after the check cannot redirect a delete elsewhere.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ghcr_janitor.core.digests import check_digest
from ghcr_janitor.core.errors import LayoutError
from ghcr_janitor.core.files import UnreadableFile, open_regular, read_regular

OCI_LAYOUT_CAP = 64 * 1024            # {"imageLayoutVersion": "1.0.0"} and little else
INDEX_CAP = 64 * 1024 * 1024          # index.json: ~200 bytes a tag, so some 300,000 tags
SNIFF_BYTES = 64                      # enough to see past blanks and a byte-order mark
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_KINDS = ((stat.S_ISLNK, "a symlink"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory"), (stat.S_ISSOCK, "a socket"))


def blob_path(root: Path, digest: str) -> Path:
    """`root/blobs/<alg>/<hex>` for a validated digest."""
    algorithm, _, encoded = check_digest(digest).partition(":")
    return root / "blobs" / algorithm / encoded


def not_regular(mode: int) -> str | None:
    """Why a file of this (lstat) mode is not read as a blob, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    return f"{kind}, not a regular file"


def escapes(root: Path, rel: str) -> str | None:
    """Why `root/rel` may not be used, in one line: it resolves outside the layout directory (through
    a symlink anywhere on the path). None when absent or inside."""
    path = root / rel
    if not os.path.lexists(path):
        return None
    real_root, real = os.path.realpath(root), os.path.realpath(path)
    if real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep):
        return None
    return f"{path} resolves to {real}, outside the layout directory {real_root}"


def escaping_dirs(root: Path) -> str | None:
    """The first of `blobs/`, `ingest/` and the directories in `blobs/` that resolves outside the
    layout, in one line; None when none does."""
    for rel in ("blobs", "ingest"):
        why = escapes(root, rel)
        if why:
            return why
    blobs = root / "blobs"
    if blobs.is_dir():
        for name in sorted(os.listdir(blobs)):
            why = escapes(root, f"blobs/{name}")
            if why and (blobs / name).is_dir():
                return why
    return None


def read_layout_file(path: Path, cap: int) -> bytes:
    """`oci-layout` or `index.json`: a regular file of the layout (not a symlink), at most `cap` bytes.

    FileNotFoundError when absent; LayoutError (one line naming the file and why) otherwise.
    """
    try:
        return read_regular(path, cap, follow_symlinks=False)
    except UnreadableFile as exc:
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path)) from None
        except OSError:
            raise LayoutError(str(exc)) from None
        why = not_regular(mode)
        raise LayoutError(f"{path}: {why}" if why else str(exc)) from None


def read_blob(root: Path, digest: str, cap: int) -> bytes:
    """A blob's bytes: a regular file, at most `cap` bytes; `UnreadableFile` (one line) otherwise."""
    path = blob_path(root, digest)
    try:
        return read_regular(path, cap, follow_symlinks=False)
    except UnreadableFile as exc:
        try:
            why = not_regular(os.lstat(path).st_mode)
        except OSError:
            why = None
        if why:
            raise UnreadableFile(path, why) from None
        raise exc from None


def looks_like_json(root: Path, digest: str) -> bool:
    """Whether a blob's first bytes could open a JSON object: `{` after blanks, NULs or a byte-order
    mark. Reads at most SNIFF_BYTES of a regular file and never blocks; `UnreadableFile` otherwise."""
    with open_regular(blob_path(root, digest), follow_symlinks=False) as (fd, _):
        head = os.read(fd, SNIFF_BYTES)
    return head.lstrip(b" \t\r\n\x00\xef\xbb\xbf\xfe\xff").startswith(b"{")


def hash_blob(root: Path, digest: str) -> str:
    """The digest of a blob's content (same algorithm), streamed: any size, but only a regular
    file, opened without blocking or following a symlink; `UnreadableFile` otherwise."""
    h = hashlib.new(digest.split(":", 1)[0])
    with open_regular(blob_path(root, digest), follow_symlinks=False) as (fd, _):
        for chunk in iter(lambda: os.read(fd, 1 << 20), b""):
            h.update(chunk)
    return f"{digest.split(':', 1)[0]}:{h.hexdigest()}"


@contextmanager
def open_dir(root: Path, rel: str) -> Iterator[int]:
    """A descriptor for the directory `root/rel`, for deletes with `dir_fd=`.

    Checked to resolve inside the layout, then opened from the real layout directory one component
    at a time without following symlinks: a swap after the check fails instead of leading elsewhere.
    LayoutError (one line) when it escapes or cannot be opened.
    """
    why = escapes(root, rel)
    if why:
        raise LayoutError(why)
    real_root = os.path.realpath(root)
    parts = Path(os.path.relpath(os.path.realpath(root / rel), real_root)).parts
    fd = os.open(real_root, _DIR_FLAGS)
    try:
        for part in parts:
            if part == ".":
                continue
            try:
                sub = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise LayoutError(f"{root / rel}: cannot open ({exc.strerror}); did it change while gc ran?") from None
            os.close(fd)
            fd = sub
        yield fd
    finally:
        os.close(fd)
