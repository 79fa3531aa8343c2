"""Ask before mutating: on a TTY a prompt, off a TTY a refusal (exit 2)."""

from __future__ import annotations

import sys

import typer

from ghcr_janitor.core.errors import UsageError


def refuse_unless_confirmable(yes: bool, hint: str) -> None:
    """Off a terminal without --yes: refuse at once (exit 2), before anything is contacted."""
    if not yes and not sys.stdin.isatty():
        raise UsageError(f"refusing to change anything without confirmation (not a terminal): {hint}")


def confirm_or_refuse(question: str, yes: bool, hint: str) -> None:
    refuse_unless_confirmable(yes, hint)
    if yes:
        return
    if not typer.confirm(question, default=False, err=True):
        typer.echo("aborted: nothing was changed", err=True)
        raise typer.Exit(1)
