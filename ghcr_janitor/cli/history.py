"""`janitor history export` / `janitor history import FILE`: the run history as JSON lines."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ghcr_janitor.cli import common as c

MAX_IMPORT_BYTES = 256 << 20      # ~1,000,000 rows: 200 targets at their bound of 5,000 rows each

history_app = typer.Typer(help="Move the run history (what reports draw from) as JSON lines.",
                          no_args_is_help=True, rich_markup_mode=None)


@history_app.command("export")
def export(history: c.HistoryOpt = None, verbose: c.VerboseOpt = 0, quiet: c.QuietOpt = False) -> None:
    """Print every history row as one JSON object a line, oldest first."""
    c.set_verbosity(verbose, quiet)
    from ghcr_janitor.core.errors import JanitorError
    from ghcr_janitor.report.history import History, history_path, to_json_line

    try:
        store = History(history_path(history, c.settings().env))
        for row in store.rows():
            sys.stdout.write(to_json_line(row) + "\n")
    except JanitorError as exc:
        raise c.fail(exc) from None
    warning = store.skipped_warning()
    if warning:
        c.echo_err(f"warning: {warning}")


@history_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="JSON lines written by `janitor history export` (- for stdin)")],
    history: c.HistoryOpt = None,
    verbose: c.VerboseOpt = 0,
    quiet: c.QuietOpt = False,
) -> None:
    """Add the rows of FILE to the history (rows already there are kept once)."""
    c.set_verbosity(verbose, quiet)
    from ghcr_janitor.core.errors import JanitorError, UsageError
    from ghcr_janitor.report.history import MAX_ROWS_PER_TARGET, History, from_json_line, history_path

    try:
        if str(file) == "-":
            try:
                text = c.read_stdin(MAX_IMPORT_BYTES, "history import -").decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UsageError(f"history import -: standard input is not UTF-8 text (byte {exc.start})") from None
        else:
            text = c.read_user_file(file, MAX_IMPORT_BYTES, "history import")
        rows = [from_json_line(line, f"{file}:{i}") for i, line in enumerate(text.splitlines(), 1) if line.strip()]
        added = History(history_path(history, c.settings().env)).append(rows)
    except JanitorError as exc:
        raise c.fail(exc) from None
    kept = f" (the rest were there already, or older than the newest {MAX_ROWS_PER_TARGET:,} of their target)"
    typer.echo(f"imported {added} of {len(rows)} rows" + (kept if added < len(rows) else ""))


def register(app: typer.Typer) -> None:
    app.add_typer(history_app, name="history")

