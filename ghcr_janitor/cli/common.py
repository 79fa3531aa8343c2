"""Options, logging, error handling and target handling shared by every command."""

from __future__ import annotations

import logging
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from typer.core import TyperArgument, TyperCommand, TyperOption

from ghcr_janitor.core.defaults import DEFAULT_CONCURRENCY  # noqa: F401 (used by the commands)
from ghcr_janitor.core.errors import JanitorError, UsageError
from ghcr_janitor.core.settings import Settings


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"


Targets = Annotated[Optional[list[str]], typer.Argument(metavar="TARGET", help="HOST[:PORT]/NAME, ghcr.io/OWNER/NAME, oci-layout:PATH or gha:OWNER/REPO (a last part may be a glob); REPO:TAG restricts the run to that tag", show_default=False)]
OutputOpt = Annotated[OutputFormat, typer.Option("--output", "-O", metavar="FORMAT", help="table, json or markdown")]
TagOpt = Annotated[Optional[list[str]], typer.Option("--tag", metavar="GLOB", help="tag glob to consider (repeatable; default cache-*)")]
AllTagsOpt = Annotated[bool, typer.Option("--all-tags", help="consider every tag, not only --tag globs")]
ConcurrencyOpt = Annotated[int, typer.Option("--concurrency", min=1, max=256, metavar="N", help="parallel registry requests")]
InsecureOpt = Annotated[bool, typer.Option("--insecure", help="allow plain HTTP to a non-loopback registry")]
UsernameOpt = Annotated[Optional[str], typer.Option("--username", "-u", metavar="USER", help="registry user name")]
PasswordStdinOpt = Annotated[bool, typer.Option("--password-stdin", help="read the password or token from stdin")]
VerboseOpt = Annotated[int, typer.Option("--verbose", "-v", count=True, help="more logging (repeatable)")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="errors only")]
PolicyOpt = Annotated[Optional[Path], typer.Option("--policy", "-p", metavar="FILE", help="policy TOML (default: the packaged default policy)")]
MetricsOpt = Annotated[Optional[Path], typer.Option("--metrics-file", metavar="PATH", help="write Prometheus metrics to this file")]
TargetsFileOpt = Annotated[Optional[Path], typer.Option("--targets-file", metavar="PATH", help="file with one target per line")]
ShardOpt = Annotated[Optional[str], typer.Option("--shard", metavar="I/N", help="only the I-th of N shares of the targets (1-based)")]
HistoryOpt = Annotated[Optional[Path], typer.Option("--history", metavar="PATH", help="run history file (sqlite; default: JANITOR_STATE_DIR/history.sqlite)")]
MaxRequestsOpt = Annotated[Optional[int], typer.Option("--max-requests", min=1, metavar="N", help="GitHub REST: send at most N requests this run (shared by every target); stop between targets when the rest cannot finish")]
BudgetCostOpt = Annotated[Optional[str], typer.Option("--budget-cost", metavar="AMOUNT", help="a target's storage cost budget a month, in its price's currency (50) or one named (50USD); over it: one stderr line, exit 3 with --fail-over-budget")]
BudgetSizeOpt = Annotated[Optional[str], typer.Option("--budget-size", metavar="SIZE", help="a target's size budget (20GiB, 500MB); over it: one stderr line, exit 3 with --fail-over-budget")]
FailOverBudgetOpt = Annotated[bool, typer.Option("--fail-over-budget", help="exit 3 when a target is over --budget-cost or --budget-size (after writing every output)")]
OwnerTypeOpt = Annotated[Optional[str], typer.Option("--owner-type", metavar="org|user", help="ghcr.io: whether the owner is an org or a user (default: detect)")]


OVER_BUDGET_EXIT = 3             # a report or plan that completed, over a budget the user asked to fail on
BROKEN_PIPE_EXIT = 141        # 128 + SIGPIPE: what a shell reports for `cat big | head -1`


def broken_pipe() -> "typer.Exit":
    """Standard output's reader went away (`janitor ls | head -1`): stop without a word, exit 141.

    Standard output now points at /dev/null, so that the flush at exit cannot fail a second time
    (the Python documentation's recipe for SIGPIPE)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):       # not a real file (a test runner's buffer): nothing to flush
        pass
    return typer.Exit(BROKEN_PIPE_EXIT)


class _Argument(TyperArgument):
    """An argument's help shows its metavar (TARGET..., PLAN_FILE), not the Python type
    (`<list[str]>`), and the usage line writes it as click does (`[TARGET]...`, `PLAN_FILE`)."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _many(self, name: str) -> str:
        return name + ("..." if self.nargs != 1 and not name.rstrip("]").endswith("...") else "")

    def _rich_display_name(self) -> str:
        return self._many(self.display_name_raw)

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        return self._many(name if self.required else f"[{name}]")


class Command(TyperCommand):
    """Every janitor command (`commands.py` makes it the default): metavars in help, never a
    type name, and a quiet exit 141 when standard output's reader goes away."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, TyperArgument):
                param.__class__ = _Argument
                if param.metavar is None:
                    param.metavar = (param.name or "value").upper()
            elif isinstance(param, TyperOption) and param.metavar is None and not (param.is_flag or param.count):
                param.metavar = (param.name or "value").upper()

    def invoke(self, ctx: Any) -> Any:
        try:
            try:
                return super().invoke(ctx)
            finally:
                sys.stdout.flush()          # a broken pipe shows here, not as a message at exit
        except BrokenPipeError:
            raise broken_pipe() from None


_state: dict[str, int] = {"verbosity": 0}
_QUIET = -1
_NOISY_LOGGERS = ("httpx", "httpcore", "hpack", "h2")


def reset_verbosity(verbose: int = 0, quiet: bool = False) -> None:
    """Start of an invocation (the app callback): forget what an earlier in-process run set."""
    _state["verbosity"] = 0
    set_verbosity(verbose, quiet)


def set_verbosity(verbose: int = 0, quiet: bool = False) -> None:
    """-v/-q may come before or after the subcommand: the louder or quieter wins."""
    if quiet:
        _state["verbosity"] = _QUIET
    elif verbose and _state["verbosity"] != _QUIET:
        _state["verbosity"] = max(_state["verbosity"], verbose)
    level = {_QUIET: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(_state["verbosity"], logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    # HTTP libraries' own debug logs only at -vv and above.
    for noisy in _NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.NOTSET if _state["verbosity"] >= 2 else logging.WARNING)


def verbosity() -> int:
    return _state["verbosity"]


_settings: list[Settings] = []


def forget_settings() -> None:
    """Start of an invocation (the app callback): the environment is read afresh."""
    _settings.clear()


def settings() -> Settings:
    """This invocation's settings (core.settings), built from the environment on first use and kept
    for the rest of the command: UsageError (exit 2) naming a malformed variable."""
    if not _settings:
        _settings.append(Settings.from_env())
    return _settings[0]


def echo_err(message: str) -> None:
    typer.echo(message, err=True)


def exit_code_for(exc: JanitorError) -> int:
    """The documented exit code an error ends a command with (docs/cli.md): usage errors (flags,
    targets, environment, policy and plan files) 2, everything else 1."""
    return 2 if isinstance(exc, UsageError) else 1


def fail(exc: JanitorError) -> "typer.Exit":
    echo_err(f"error: {exc}")
    return typer.Exit(exit_code_for(exc))


def run(coro_factory: Callable[[], Any], interrupted: Callable[[], str] | None = None) -> Any:
    """Run an async command body; errors become a one-line message and an exit code.

    Ctrl-C is exit 130 within moments, whatever the network does: the first SIGINT halts the request
    workers (nothing more is sent; a request the server stalls is abandoned, never waited for) and
    cancels the body; `interrupted()` then says what was done in one line. A SIGINT after the first
    one's message has begun exits at once."""
    import asyncio
    import os
    import signal

    from ghcr_janitor.net import workers
    from ghcr_janitor.net.http import mutations

    workers.resume()
    mutations.clear()
    chained: list = []
    outer = signal.getsignal(signal.SIGINT)     # what to put back (asyncio leaves ours in place)

    def set_sigint(handler) -> Any:
        try:
            return signal.signal(signal.SIGINT, handler)
        except ValueError:              # not the main thread: signals are not ours to handle
            return None

    async def main() -> Any:
        previous = signal.getsignal(signal.SIGINT)      # asyncio's: cancels the body, then KeyboardInterrupt

        def on_sigint(signum, frame) -> None:
            workers.halt()
            previous(signum, frame)

        if not (callable(previous) and set_sigint(on_sigint) is not None):    # SIGINT ignored: leave it so
            return await coro_factory()
        chained.append(on_sigint)
        # Any thread may receive a Ctrl-C; the handler runs on this one, whose loop may sleep while a
        # request stalls a worker: the signal writes to this socket, and the loop wakes to run it.
        import socket

        loop = asyncio.get_running_loop()
        wake, woken = socket.socketpair()
        wake.setblocking(False)
        woken.setblocking(False)

        def drain() -> None:
            try:
                while woken.recv(512):
                    pass
            except OSError:
                pass

        loop.add_reader(woken.fileno(), drain)
        previous_fd = signal.set_wakeup_fd(wake.fileno(), warn_on_full_buffer=False)
        try:
            return await coro_factory()
        finally:
            signal.set_wakeup_fd(previous_fd)
            loop.remove_reader(woken.fileno())
            wake.close()
            woken.close()

    def stop() -> "typer.Exit":
        previous = set_sigint(lambda signum, frame: os._exit(130)) if chained else None
        try:
            message = "interrupted"
            if interrupted is not None:
                try:
                    message = interrupted() or message
                except Exception:       # the account is best effort; the exit code is not
                    pass
            echo_err(message)
        finally:
            if previous is not None:
                set_sigint(previous)
        return typer.Exit(130)

    try:
        return asyncio.run(main())
    except BrokenPipeError:             # standard output's reader went away: `Command` exits quietly
        raise
    except KeyboardInterrupt:
        raise stop() from None
    except asyncio.CancelledError:
        if workers.halted():
            raise stop() from None
        raise
    except (JanitorError, OSError) as exc:
        if workers.halted():            # what an abandoned request left behind
            raise stop() from None
        raise _failure(exc) from None
    finally:
        if chained and signal.getsignal(signal.SIGINT) is chained[0]:
            set_sigint(outer if outer is not None else signal.default_int_handler)


def _failure(exc: Exception) -> "typer.Exit":
    """One line and the exit code for an error that ends a command (network trouble that outlasted
    the retries is a JanitorError: the stores map it)."""
    if isinstance(exc, JanitorError):
        return fail(exc)
    if isinstance(exc, OSError):        # last resort: a file we could not read or write
        echo_err(f"error: {exc.filename or 'I/O'}: {exc.strerror or exc}")
        return typer.Exit(1)
    echo_err(f"error: {type(exc).__name__}: {exc}")
    return typer.Exit(1)


MAX_PASSWORD_BYTES = 1 << 20          # --password-stdin: tokens are a few kB
MAX_TARGETS_FILE_BYTES = 16 << 20     # --targets-file: ~100,000 targets


def read_stdin(cap: int, what: str) -> bytes:
    """At most `cap` bytes of standard input; UsageError naming `what` (the flag) beyond that."""
    stream = getattr(sys.stdin, "buffer", None)
    data = stream.read(cap + 1) if stream is not None else sys.stdin.read(cap + 1).encode("utf-8")
    if len(data) > cap:
        raise UsageError(f"{what}: standard input is over the {cap} byte limit")
    return data


def read_password(password_stdin: bool) -> str | None:
    if not password_stdin:
        return None
    try:
        data = read_stdin(MAX_PASSWORD_BYTES, "--password-stdin").decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("--password-stdin: standard input is not UTF-8 text") from None
    return data.rstrip("\r\n")


def read_user_file(path: Path, cap: int, what: str) -> str:
    """A user-given text file, regular and at most `cap` bytes; UsageError naming `what` (the flag
    or argument) and the file in one line otherwise (a FIFO or /dev/zero never hangs the run)."""
    from ghcr_janitor.core.files import UnreadableFile, read_regular

    try:
        return read_regular(path, cap).decode("utf-8")
    except UnreadableFile as exc:
        raise UsageError(f"{what} {exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{what} {path}: not UTF-8 text (byte {exc.start})") from None


def gather_targets(targets: list[str] | None, targets_file: Path | None, shard: str | None) -> list[str]:
    """Positional targets plus --targets-file lines (--shard is checked here and applied by the
    session, after globs are expanded: `shard_spec`)."""
    found = list(targets or [])
    if targets_file is not None:
        text = read_user_file(targets_file, MAX_TARGETS_FILE_BYTES, "--targets-file")
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                found.append(line)
    if not found:
        raise UsageError("no target given: name at least one TARGET (or --targets-file)")
    shard_spec(shard)
    return found


def shard_spec(shard: str | None) -> tuple[int, int] | None:
    """--shard I/N parsed (UsageError, exit 2, when malformed), or None."""
    if not shard:
        return None
    from ghcr_janitor.core.shard import parse_shard

    return parse_shard(shard)


def write_text(path: Path, text: str) -> None:
    """Write a whole output file atomically (`-`: stdout); a one-line error naming the file."""
    if str(path) == "-":
        sys.stdout.write(text)
        return
    from ghcr_janitor.core.files import atomic_write

    try:
        atomic_write(path, text.encode("utf-8"), like=path)
    except OSError as exc:
        raise JanitorError(f"{path}: cannot write: {exc.strerror or exc}") from None
