"""The `janitor` entry point: a light module, so that start-up pays only for what a command needs.

`janitor --version` answers without importing typer; everything else runs the typer application
(`cli/commands.py`), which `app` here names lazily for tests and embedders.
"""

from __future__ import annotations

import gc
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


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from ghcr_janitor import __version__

        sys.stdout.write(f"janitor {__version__}\n")
        return
    from ghcr_janitor.cli.commands import app

    tune_gc()
    app()
