"""Files written whole or not at all, and read only when regular and bounded."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes | Iterable[bytes], like: Path | None = None) -> None:
    """Write `data` (bytes, or chunks of them: a big file need not be held whole) to a temp file in
    path's directory, fsync, rename over path, fsync the dir.

    Mode (and owner, when permitted) are copied from `like` if it exists, else 0644.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, (bytes, bytearray, memoryview)):
                handle.write(data)
            else:
                handle.writelines(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            st = os.stat(like) if like is not None else None
        except FileNotFoundError:
            st = None
        os.chmod(tmp, (st.st_mode & 0o7777) if st else 0o644)
        if st is not None and (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
            try:
                os.chown(tmp, st.st_uid, st.st_gid)
            except PermissionError:
                pass
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


class UnreadableFile(OSError):
    """A file that is not a regular file, is larger than its cap, or cannot be read.

    `str()` is one line naming the path and why; callers wrap it in their own error type.
    """

    def __init__(self, path: str | os.PathLike, why: str):
        super().__init__(f"{os.fspath(path)}: {why}")
        self.path = os.fspath(path)
        self.why = why

    def __str__(self) -> str:
        return f"{self.path}: {self.why}"


@contextmanager
def open_regular(path: str | os.PathLike, flags: int = os.O_RDONLY, *, follow_symlinks: bool = True,
                 mode: int = 0o644) -> Iterator[tuple[int, os.stat_result]]:
    """A blocking descriptor of a regular file, and its stat; never blocks on a FIFO or device.

    Opened with O_NONBLOCK (so a FIFO cannot hang the open), then checked with fstat on the open
    descriptor (so a swap between check and use cannot slip a device in). Anything but a regular
    file, or any OS error on the way, is `UnreadableFile`. `follow_symlinks=False` refuses a
    symlink as the last component.
    """
    flags |= os.O_CLOEXEC | os.O_NONBLOCK | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags, mode)
    except OSError as exc:
        raise UnreadableFile(path, _why(exc)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnreadableFile(path, f"not a regular file ({_file_kind(st.st_mode)})")
        os.set_blocking(fd, True)
        yield fd, st
    except UnreadableFile:
        raise
    except OSError as exc:
        raise UnreadableFile(path, _why(exc)) from None
    finally:
        os.close(fd)


def read_regular(path: str | os.PathLike, cap: int, *, follow_symlinks: bool = True) -> bytes:
    """The bytes of a regular file, at most `cap` of them (`open_regular`'s checks); more than
    `cap` bytes (by size, and again while reading: a file may grow) is `UnreadableFile`."""
    with open_regular(path, follow_symlinks=follow_symlinks) as (fd, st):
        if st.st_size > cap:
            raise UnreadableFile(path, f"{st.st_size} bytes, over the {cap} byte limit")
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, min(1 << 20, cap + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > cap:
                raise UnreadableFile(path, f"over the {cap} byte limit")
        return b"".join(chunks)


def _why(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symlink loop (or a symlink where none is allowed)"
    return exc.strerror or str(exc)


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symlink")):
        if test(mode):
            return name
    return "not a regular file"


def append_regular(path: str | os.PathLike, data: bytes, *, sync: bool = False, mode: int = 0o644) -> None:
    """Append `data` to a regular file (created with `mode` if missing), with `open_regular`'s
    checks: one `write` call, continued only if the disk cut it short; `sync` fsyncs after it."""
    with open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode=mode) as (fd, _):
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if sync:
            os.fsync(fd)
