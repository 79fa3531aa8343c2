"""`janitor prune TARGET... [--policy FILE] --dry-run | --yes`: decide, show, and (with --yes) apply."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

import typer

from ghcr_janitor.cli import common as c


CONFIRM_HINT = "add --yes to apply, or --dry-run to only look"


def register(app: typer.Typer) -> None:
    @app.command("prune")
    def prune(
        targets: c.Targets = None,
        policy: c.PolicyOpt = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="show the plan; send no mutating request")] = False,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="apply without asking")] = False,
        no_gc: Annotated[bool, typer.Option("--no-gc", help="oci-layout targets: do not run gc after deleting")] = False,
        keep_recent: Annotated[str, typer.Option("--keep-recent", metavar="DURATION", help="oci-layout gc grace period")] = "1h",
        output: c.OutputOpt = c.OutputFormat.table,
        tag: c.TagOpt = None,
        all_tags: c.AllTagsOpt = False,
        concurrency: c.ConcurrencyOpt = c.DEFAULT_CONCURRENCY,
        insecure: c.InsecureOpt = False,
        username: c.UsernameOpt = None,
        password_stdin: c.PasswordStdinOpt = False,
        targets_file: c.TargetsFileOpt = None,
        shard: c.ShardOpt = None,
        owner_type: c.OwnerTypeOpt = None,
        max_requests: c.MaxRequestsOpt = None,
        metrics_file: c.MetricsOpt = None,
        history: c.HistoryOpt = None,
        verbose: c.VerboseOpt = 0,
        quiet: c.QuietOpt = False,
    ) -> None:
        """Plan with the policy and show it (--dry-run), or apply it (--yes)."""
        c.set_verbosity(verbose, quiet)
        if dry_run and yes:
            c.echo_err("error: --dry-run and --yes contradict each other")
            raise typer.Exit(2)
        applying: dict = {}         # the plan's action count and journal, once applying starts

        def interrupted() -> str:
            rerun = "rerun the same `janitor prune` command to continue (it plans afresh)"
            if "journal" not in applying:
                return f"interrupted before applying anything: nothing was changed; {rerun}"
            from ghcr_janitor.apply.results import interrupted_message

            return interrupted_message(applying["count"], applying["journal"], rerun)

        async def body() -> int:
            from ghcr_janitor.apply.results import exit_code
            from ghcr_janitor.cli.build import build_run, plan_with_progress
            from ghcr_janitor.cli.confirm import confirm_or_refuse, refuse_unless_confirmable
            from ghcr_janitor.cli.outputs import emit_plan, emit_results, report_requests
            from ghcr_janitor.apply.journal import Journal
            from ghcr_janitor.plan.planner import load
            from ghcr_janitor.policy.units import parse_duration
            from ghcr_janitor.cli.progress import progress_bar
            from ghcr_janitor.core import words

            loaded, name = load(policy)
            grace = _duration(parse_duration, keep_recent)
            if not dry_run:
                refuse_unless_confirmable(yes, CONFIRM_HINT)
            names = c.gather_targets(targets, targets_file, shard)
            # One run of the engine: each store is opened once, for gathering and applying alike.
            async with build_run(tag, all_tags, concurrency, insecure, username, password_stdin, owner_type, shard,
                                 max_requests) as run:
                the_plan, inventories = await plan_with_progress(run, names, loaded, name)
                now = run.now
                planning_failed = any(t.errors for t in the_plan.targets)
                if dry_run:
                    emit_plan(the_plan, output, now, dry_run=True, metrics_file=metrics_file, inventories=inventories,
                              history=("prune", history))
                    report_requests(run.session.connect.log, c.verbosity())
                    return 1 if planning_failed else 0
                if output == c.OutputFormat.table:
                    emit_plan(the_plan, output, now, dry_run=False, summaries=False)
                count = sum(len(t.actions) for t in the_plan.targets)
                if count:
                    confirm_or_refuse(f"Apply {words.count(count, 'action')}?", yes, CONFIRM_HINT)
                journal = applying["journal"] = Journal(None)
                applying["count"] = count
                with progress_bar() as bar:
                    if bar is not None:
                        bar.set_total("apply", count)
                    results = await run.apply(the_plan, journal, progress=bar,
                                              check_targets=False)   # planned from these targets just now
                code = exit_code(results)
                if not no_gc:
                    code = max(code, _gc_report(run.collect_garbage(the_plan, grace, datetime.now(timezone.utc)),
                                                output, results))
            if output == c.OutputFormat.table:
                typer.echo("")
            emit_results(results, code, output, plan=the_plan, now=now, metrics_file=metrics_file,
                         history=("prune", history),
                         inventories=inventories)
            report_requests(run.session.connect.log, c.verbosity())
            return 1 if planning_failed else code

        raise typer.Exit(c.run(body, interrupted))


def _duration(parse, text: str):
    from ghcr_janitor.core.errors import UsageError

    try:
        return parse(text)
    except ValueError as exc:
        raise UsageError(f"--keep-recent {text!r}: {exc}") from None


def _gc_report(collected, output, results) -> int:
    """Say what each store's own gc did after the deletes (`Run.collect_garbage`: oci-layout targets
    with deletions, their blobs go only now); what gc freed becomes that target's reclaimed bytes."""
    from ghcr_janitor.cli.gc import gc_problems

    code = 0
    for done in collected:
        if done.error is not None:          # a lock held too long, a layout gone: said, not a traceback
            c.echo_err(f"error: gc {done.name}: {done.error}")
            code = max(code, c.exit_code_for(done.error))
            continue
        report = done.report
        for result in results:
            if result.target == done.target:
                result.freed = report.bytes_freed
        if output == c.OutputFormat.table:
            from ghcr_janitor.core.humanize import human_size

            said = (f"nothing deleted ({report.blocked})" if report.blocked else
                    f"freed {human_size(report.bytes_freed)} ({report.bytes_freed} bytes) in {len(report.deleted)} blobs")
            typer.echo(f"gc {done.target}: {said}")
        for problem in gc_problems(report):           # stderr, whatever the format
            c.echo_err(f"error: gc {done.target}: {problem}")
        if not report.ok:
            code = 1
    return code
