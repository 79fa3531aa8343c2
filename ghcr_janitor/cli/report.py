"""`janitor report TARGET... [--policy FILE] -o REPORT.html`: where the bytes are, as one HTML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ghcr_janitor.cli import common as c


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        targets: c.Targets = None,
        out: Annotated[Path, typer.Option("-o", "--out", metavar="PATH", help="write the HTML report to this file (- for stdout)")] = ...,
        policy: c.PolicyOpt = None,
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
        history: c.HistoryOpt = None,
        budget_cost: c.BudgetCostOpt = None,
        budget_size: c.BudgetSizeOpt = None,
        fail_over_budget: c.FailOverBudgetOpt = False,
        verbose: c.VerboseOpt = 0,
        quiet: c.QuietOpt = False,
    ) -> None:
        """Write a self-contained HTML report: storage breakdown, cache families, shared layers, the plan, history."""
        c.set_verbosity(verbose, quiet)

        async def body() -> int:
            from ghcr_janitor.cli.build import build_run, plan_with_progress
            from ghcr_janitor.cli.outputs import append_step_summary, report_requests
            from ghcr_janitor.core.errors import UsageError
            from ghcr_janitor.core.humanize import human_size
            from ghcr_janitor.core.words import count
            from ghcr_janitor.plan.planner import load
            from ghcr_janitor.report import html
            from ghcr_janitor.report.history import read_history, record
            from ghcr_janitor.report.markdown import report_markdown

            from ghcr_janitor.cli.outputs import budget_of, check_budget

            html.require_jinja2()                  # before anything is contacted
            budget = budget_of(budget_cost, budget_size, fail_over_budget)
            if str(out) != "-" and not out.resolve().parent.is_dir():
                raise UsageError(f"-o {out}: no such directory {out.resolve().parent}")
            loaded, name = load(policy)
            names = c.gather_targets(targets, targets_file, shard)
            async with build_run(tag, all_tags, concurrency, insecure, username, password_stdin, owner_type, shard,
                                 max_requests) as run:
                the_plan, inventories = await plan_with_progress(run, names, loaded, name)
            session = run.session
            by_repository = {t.repository: t for t in run.targets}    # the run's Targets, not re-parsed
            now = session.inventory.now
            warning = record("report", now, history, c.settings().env, inventories=inventories, plan=the_plan)
            rows, read_warning = read_history(history, c.settings().env)
            for line in filter(None, (warning, read_warning)):
                c.echo_err(f"warning: {line}")
            plans = {t.target: t for t in the_plan.targets}
            reports = [html.target_report(inv, plans[inv.target], rows.get(inv.target, []), now,
                                          unreachable=_unreachable(inv, now, by_repository.get(inv.target)),
                                          budget=budget)
                       for inv in inventories]
            failures = [{"target": t.target, "error": "; ".join(t.errors)} for t in the_plan.targets
                        if t.errors and t.target not in {i.target for i in inventories}]
            document = html.render(reports, now, the_plan.policy, failures)
            c.write_text(out, document)
            for tp in the_plan.targets:
                for error in tp.errors:
                    c.echo_err(f"error: {tp.target}: {error}")
            append_step_summary(report_markdown(reports, None if str(out) == "-" else out.name, failures))
            if str(out) != "-":
                reclaim = the_plan.reclaim_size
                c.echo_err(f"wrote {out}: {count(len(reports), 'target')}, reclaimable {human_size(reclaim)} "
                           f"({reclaim} bytes)")
            report_requests(session.connect.log, c.verbosity())
            over = check_budget(budget, the_plan, inventories, fail_over_budget)     # after the report is written
            return 1 if any(t.errors for t in the_plan.targets) else over

        raise typer.Exit(c.run(body))


def _unreachable(inv, now, target) -> int | None:
    """A local cache dir: the bytes of blobs no tag reaches (what `janitor gc` frees), or None."""
    if not inv.traits.unreachable_blobs or target is None:    # a local layout: blobs no tag reaches may stay
        return None
    from datetime import timedelta

    from ghcr_janitor.core.errors import JanitorError
    from ghcr_janitor.stores.layout.gc import plan_gc

    try:
        found = plan_gc(target.name, timedelta(0), now)      # changes nothing
    except (JanitorError, OSError):
        return None               # the inventory has said what is wrong with the layout
    return sum(size for _, size in found.deleted + found.recent)
