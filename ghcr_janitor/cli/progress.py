"""A rich progress bar on stderr while inventorying and applying.

    with progress_bar() as progress:          # None when stderr is not a TTY, or with -q
        session.progress = progress
        ...

The callback has the signature the read path and the applier use: `progress(kind, n)`, with
kind "resolve" (one tag resolved) or "apply" (one action done); unknown kinds get a line of
their own. `progress.set_total(kind, n)` gives a kind a known total (else the bar pulses).

Only stderr is drawn on, never stdout, and stdout is not redirected: JSON or a plan on stdout
stays byte-for-byte what it would be without the bar. The bar is transient (gone when done).
rich is imported only when the bar is shown.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

LABELS = {"resolve": "resolving tags", "apply": "applying actions", "inventory": "inventorying", "gc": "gc"}

ProgressCallback = Callable[[str, int], None]


def should_show(enabled: bool | None = None) -> bool:
    """Explicit `enabled` wins; otherwise: stderr is a terminal and -q was not given."""
    if enabled is not None:
        return enabled
    from ghcr_janitor.cli.common import verbosity

    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        tty = False
    return tty and verbosity() >= 0


class _Bar:
    """The callback handed to the read path and the applier; thread-safe (rich Progress is)."""

    def __init__(self, progress) -> None:
        self._progress = progress
        self._tasks: dict[str, int] = {}

    def _task(self, kind: str) -> int:
        task = self._tasks.get(kind)
        if task is None:
            task = self._progress.add_task(LABELS.get(kind, kind), total=None)
            self._tasks[kind] = task
        return task

    def __call__(self, kind: str, n: int = 1) -> None:
        self._progress.advance(self._task(kind), n)

    def set_total(self, kind: str, total: int | None) -> None:
        self._progress.update(self._task(kind), total=total)


@contextmanager
def progress_bar(enabled: bool | None = None) -> Iterator[Optional[_Bar]]:
    """Yield a `progress(kind, n)` callback drawing on stderr, or None when no bar should show."""
    if not should_show(enabled):
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(file=sys.stderr, stderr=True)
    progress = Progress(
        SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
        MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True,
        redirect_stdout=False, redirect_stderr=False,   # never touch stdout: machine output stays clean
    )
    with progress, _logging_through(console):
        yield _Bar(progress)


@contextmanager
def _logging_through(console) -> Iterator[None]:
    """While the bar is live, -v log lines go through rich (printed above the bar, not into it)."""
    import logging

    from rich.file_proxy import FileProxy

    swapped = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is sys.stderr:
            swapped.append(handler)
            handler.setStream(FileProxy(console, sys.stderr))
    try:
        yield
    finally:
        for handler in swapped:
            proxy = handler.setStream(sys.stderr)
            if proxy is not None:
                proxy.flush()
