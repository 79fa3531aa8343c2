"""Ask before mutating: on a TTY a prompt, off a TTY a refusal (exit 2)."""

from __future__ import annotations

import sys

import typer

from ghcr_janitor.errors import UsageError


def confirm_or_refuse(question: str, yes: bool, hint: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"refusing to change anything without confirmation (not a terminal): {hint}")
    if not typer.confirm(question, default=False, err=True):
        raise typer.Exit(1)
