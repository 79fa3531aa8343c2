"""The `janitor` entry point: a light module, so that start-up pays only for what a command needs.

`janitor --version` answers without importing typer; everything else runs the typer application
(`cli/commands.py`), which `app` here names lazily for tests and embedders.
"""

from __future__ import annotations

import gc
import io
import sys
from typing import Any

# An inventory is many small, long-lived objects (descriptors, closures, tag maps): with the default
# thresholds (700, 10, 10) the collector keeps re-scanning them (1.5 s of a 10,000-tag run, issue 15).
# Young collections every 50,000 allocations, the old generation rarely; the modules imported before
# the command runs are frozen out of every collection.
GC_THRESHOLDS = (50_000, 50, 1000)


def tune_gc() -> None:
    """Fewer, cheaper garbage collections for this process (the CLI calls it once, before a command)."""
    gc.freeze()          # no gc.collect() first: it would cost ~12 ms of start-up for a few KB
    gc.set_threshold(*GC_THRESHOLDS)


def __getattr__(name: str) -> Any:
    if name == "app":
        from ghcr_janitor.cli.commands import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _ChunkedWriter(io.BufferedWriter):
    """Standard output's buffer, taking bytes in pieces no larger than itself.

    CPython's buffered writer loses a broken pipe when one write larger than its buffer is cut
    short (the reader took part, then left: `janitor ls | head -1` on a long listing): the rest
    is dropped and the command exits 0. Pieces go through the buffer, whose flush reports the
    broken pipe, so the command ends quietly with 141 (`common.Command`). Binary level, because
    click wraps `sys.stdout.buffer` in a text writer of its own."""

    PIECE = io.DEFAULT_BUFFER_SIZE

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        for start in range(0, len(view), self.PIECE):
            super().write(view[start:start + self.PIECE])
        return len(view)


def _chunk_stdout() -> None:
    """Give a real standard output (not a terminal, not a test runner's buffer) a `_ChunkedWriter`."""
    out = sys.stdout
    try:
        fd = out.fileno()
        if out.isatty():
            return
    except (AttributeError, OSError, ValueError):
        return
    out.flush()
    sys.stdout = io.TextIOWrapper(_ChunkedWriter(io.FileIO(fd, "w", closefd=False)), encoding=out.encoding,
                                  errors=out.errors, line_buffering=out.line_buffering)


def main() -> None:
    _chunk_stdout()
    if sys.argv[1:] == ["--version"]:
        from ghcr_janitor import __version__

        sys.stdout.write(f"janitor {__version__}\n")
        return
    from ghcr_janitor.cli.commands import app

    tune_gc()
    app()
