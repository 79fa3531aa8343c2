"""`janitor apply PLAN.json [--yes]`: apply a saved plan, re-checking every pin."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ghcr_janitor.cli import common as c
from ghcr_janitor.core import words


def register(app: typer.Typer) -> None:
    @app.command("apply")
    def apply(
        plan_file: Annotated[Path, typer.Argument(help="a plan written by `janitor plan -o`")],
        yes: Annotated[bool, typer.Option("--yes", "-y", help="apply without asking")] = False,
        output: c.OutputOpt = c.OutputFormat.table,
        concurrency: c.ConcurrencyOpt = c.DEFAULT_CONCURRENCY,
        insecure: c.InsecureOpt = False,
        username: c.UsernameOpt = None,
        password_stdin: c.PasswordStdinOpt = False,
        owner_type: c.OwnerTypeOpt = None,
        max_requests: c.MaxRequestsOpt = None,
        metrics_file: c.MetricsOpt = None,
        history: c.HistoryOpt = None,
        verbose: c.VerboseOpt = 0,
        quiet: c.QuietOpt = False,
    ) -> None:
        """Apply a plan file: tags that moved since planning are skipped and reported; a plan whose
        pins match nothing in its target is refused (exit 2)."""
        c.set_verbosity(verbose, quiet)
        applying: dict = {}         # the plan's action count and journal, once applying starts

        def interrupted() -> str:
            rerun = f"rerun `janitor apply {plan_file}` to continue"
            if "journal" not in applying:
                return f"interrupted before applying anything: nothing was changed; {rerun}"
            from ghcr_janitor.apply.results import interrupted_message

            return interrupted_message(applying["count"], applying["journal"], rerun)

        async def body() -> int:
            from ghcr_janitor.apply.applier import ForeignPlan
            from ghcr_janitor.apply.results import exit_code
            from ghcr_janitor.cli.build import build_run
            from ghcr_janitor.cli.confirm import confirm_or_refuse
            from ghcr_janitor.cli.outputs import emit_results, report_requests
            from ghcr_janitor.apply.journal import Journal
            from ghcr_janitor.plan.file import read_plan
            from ghcr_janitor.cli.progress import progress_bar
            from ghcr_janitor.core.reference import parse_target

            the_plan = read_plan(plan_file)
            targets = [parse_target(t.target) for t in the_plan.targets]   # bad strings: exit 2 before any contact
            count = sum(len(t.actions) for t in the_plan.targets)
            if count:
                confirm_or_refuse(f"Apply {words.count(count, 'action')} from {plan_file}?", yes,
                                  "add --yes to apply the plan")
            async with build_run(None, False, concurrency, insecure, username, password_stdin, owner_type,
                                 max_requests=max_requests) as run:
                run.targets = targets
                journal = applying["journal"] = Journal.for_plan(plan_file)
                applying["count"] = count
                with progress_bar() as bar:
                    if bar is not None:
                        bar.set_total("apply", count)
                    try:
                        results = await run.apply(the_plan, journal, progress=bar)
                    except ForeignPlan as exc:          # nothing was changed: one line, exit 2
                        raise ForeignPlan(f"{plan_file}: {exc}") from None
            session = run.session
            code = exit_code(results)
            emit_results(results, code, output, plan=the_plan, now=session.inventory.now, metrics_file=metrics_file,
                         history=("apply", history))
            report_requests(session.connect.log, c.verbosity())
            return code

        raise typer.Exit(c.run(body, interrupted))
