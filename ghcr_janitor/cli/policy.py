"""`janitor policy check FILE`: validate a policy and print its rules in words."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ghcr_janitor.cli import common as c

policy_app = typer.Typer(help="Work with policy files.", no_args_is_help=True, rich_markup_mode=None)


@policy_app.command("check")
def check(
    file: Annotated[Optional[Path], typer.Argument(metavar="FILE", help="policy TOML (default: the packaged default)")] = None,
    verbose: c.VerboseOpt = 0,
    quiet: c.QuietOpt = False,
) -> None:
    """Validate a policy file (exit 2 on any mistake) and describe its rules."""
    c.set_verbosity(verbose, quiet)
    from ghcr_janitor.core.errors import JanitorError
    from ghcr_janitor.plan.planner import load
    from ghcr_janitor.policy import describe

    try:
        loaded, name = load(file)
    except JanitorError as exc:
        raise c.fail(exc) from None
    typer.echo(f"{name}: valid")
    for line in describe(loaded):
        typer.echo(line)


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
