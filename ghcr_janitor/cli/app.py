"""The `janitor` entry point: a light module, so that start-up pays only for what a command needs.

`janitor --version` answers without importing typer; everything else runs the typer application
(`cli/commands.py`), which `app` here names lazily for tests and embedders.
"""

from __future__ import annotations

import sys
from typing import Any


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

    app()
