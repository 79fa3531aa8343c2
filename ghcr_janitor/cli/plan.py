"""`janitor plan TARGET... [--policy FILE] [-o PLAN.json]`: decide, write the plan."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ghcr_janitor.cli import common as c


def register(app: typer.Typer) -> None:
    @app.command("plan")
    def plan(
        targets: c.Targets = None,
        policy: c.PolicyOpt = None,
        out: Annotated[Optional[Path], typer.Option("-o", "--out", metavar="PLAN_FILE", help="write the plan JSON to this file")] = None,
        output: Annotated[Optional[c.OutputFormat], typer.Option("--output", "-O", metavar="FORMAT", help="stdout format: json (default without -o), table or markdown")] = None,
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
        budget_cost: c.BudgetCostOpt = None,
        budget_size: c.BudgetSizeOpt = None,
        fail_over_budget: c.FailOverBudgetOpt = False,
        verbose: c.VerboseOpt = 0,
        quiet: c.QuietOpt = False,
    ) -> None:
        """Decide what the policy would do and write the plan (stdout without -o)."""
        c.set_verbosity(verbose, quiet)

        async def body() -> int:
            from ghcr_janitor.cli.build import build_run, plan_with_progress
            from ghcr_janitor.cli.outputs import budget_of, check_budget, emit_plan, report_requests
            from ghcr_janitor.plan.file import write_plan
            from ghcr_janitor.plan.planner import load

            loaded, name = load(policy)            # policy errors: exit 2, nothing contacted
            budget = budget_of(budget_cost, budget_size, fail_over_budget)
            names = c.gather_targets(targets, targets_file, shard)
            async with build_run(tag, all_tags, concurrency, insecure, username, password_stdin, owner_type, shard,
                                 max_requests) as run:
                the_plan, inventories = await plan_with_progress(run, names, loaded, name)
            session = run.session
            if out is not None:
                write_plan(the_plan, out)
            fmt = output or (c.OutputFormat.table if out is not None else c.OutputFormat.json)
            emit_plan(the_plan, fmt, session.inventory.now, dry_run=True, metrics_file=metrics_file, history=("plan", history),
                      inventories=inventories)
            report_requests(session.connect.log, c.verbosity())
            over = check_budget(budget, the_plan, inventories, fail_over_budget)     # after the plan is written
            return 1 if any(t.errors for t in the_plan.targets) else over

        raise typer.Exit(c.run(body))
