"""The typer application: global flags, and every command registered from its module.

Imported on demand by `cli/app.py` (typer and what it pulls in are most of the start-up).
"""

from __future__ import annotations

import importlib
from typing import Optional

import typer

from ghcr_janitor.cli import common as c

app = typer.Typer(
    name="janitor",
    help="Keep container-registry build caches under control: list, plan, prune, apply, gc.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,      # plain click usage errors: a short message, no boxes
)

COMMAND_MODULES = ("ls", "inspect", "plan", "prune", "apply", "gc", "policy", "report", "history")


def _version(value: bool) -> None:
    if value:
        from ghcr_janitor import __version__

        typer.echo(f"janitor {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_callback(
    verbose: c.VerboseOpt = 0,
    quiet: c.QuietOpt = False,
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True, help="print the version"),
) -> None:
    """Keep container-registry build caches under control."""
    c.reset_verbosity(verbose, quiet)
    c.forget_settings()


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"ghcr_janitor.cli.{_name}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"ghcr_janitor.cli.{_name}":
            raise
        continue
    _module.register(app)


def _commands(typer_app: typer.Typer):
    yield from typer_app.registered_commands
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            yield from _commands(group.typer_instance)


for _info in _commands(app):             # metavars in help, a quiet broken pipe (common.Command)
    if _info.cls in (None, typer.core.TyperCommand):
        _info.cls = c.Command
