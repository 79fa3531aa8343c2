"""Print plans and results in the chosen format; Markdown step summary and metrics on request."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import typer

from ghcr_janitor.cli.common import OVER_BUDGET_EXIT, OutputFormat, settings


def emit_plan(plan, fmt: OutputFormat, now: datetime, dry_run: bool, metrics_file: Path | None = None,
              inventories: list | None = None, summaries: bool = True, history: tuple[str, Path | None] | None = None) -> None:
    from ghcr_janitor.report.plan_view import plan_table

    if fmt == OutputFormat.json:
        typer.echo(json.dumps(plan.to_dict(), indent=2))
    elif fmt == OutputFormat.markdown:
        from ghcr_janitor.report.markdown import plan_markdown

        typer.echo(plan_markdown(plan, now, dry_run))
    else:
        typer.echo(plan_table(plan, now, dry_run))
    for target_plan in plan.targets:         # stderr, whatever the stdout format
        for error in target_plan.errors:
            typer.echo(f"error: {target_plan.target}: {error}", err=True)
        for warning in target_plan.warnings:
            typer.echo(f"warning: {target_plan.target}: {warning}", err=True)
    if summaries:       # prune --yes shows the plan first, then summarises once, with the results
        emit_summaries(plan=plan, results=None, now=now, dry_run=dry_run, metrics_file=metrics_file,
                       inventories=inventories, history=history)


def emit_results(results, code: int, fmt: OutputFormat, plan=None, now: datetime | None = None,
                 metrics_file: Path | None = None, inventories: list | None = None,
                 history: tuple[str, Path | None] | None = None) -> None:
    from ghcr_janitor.report.plan_view import reclaim_notes, results_document, results_table

    notes = reclaim_notes(plan, inventories, results)     # what each target's reclaimed figure is
    if fmt == OutputFormat.json:
        typer.echo(json.dumps(results_document(results, code, notes), indent=2))
    elif fmt == OutputFormat.markdown:
        from ghcr_janitor.report.markdown import results_markdown

        typer.echo(results_markdown(results, notes))
    else:
        typer.echo(results_table(results, notes))
    for result in results:                    # stderr, whatever the stdout format
        if result.error:
            typer.echo(f"error: {result.target}: {result.error}", err=True)
        for failed in (r for r in result.results if r.status == "failed"):
            typer.echo(f"error: {result.target}: {failed.action} {failed.label}: {failed.reason}", err=True)
    emit_summaries(plan=plan, results=results, now=now, dry_run=False, metrics_file=metrics_file,
                   inventories=inventories, history=history)


def emit_summaries(plan=None, results=None, now: datetime | None = None, dry_run: bool = False,
                   metrics_file: Path | None = None, inventories: list | None = None,
                   failures: list[dict] | None = None, history: tuple[str, Path | None] | None = None) -> None:
    """GITHUB_STEP_SUMMARY (appended Markdown), the Prometheus textfile when asked for, and one
    history row per target (`history`: the command and --history; a failing history only warns).

    `failures`: targets whose inventory failed entirely (`ls`; plans carry theirs as target errors).
    """
    if history is not None and now is not None:
        from ghcr_janitor.report.history import record

        warning = record(history[0], now, history[1], settings().env, inventories=inventories, plan=plan,
                         results=results)
        if warning:
            typer.echo(f"warning: {warning}", err=True)
    if settings().step_summary:
        from ghcr_janitor.report.markdown import step_summary

        append_step_summary(step_summary(plan, results, now, dry_run, inventories=inventories, failures=failures))
    if metrics_file is not None:
        from ghcr_janitor.core.errors import JanitorError
        from ghcr_janitor.report.metrics import write_metrics

        try:
            write_metrics(metrics_file, inventories=inventories, plans=plan, results=results,
                          errors=len(failures or []))
        except OSError as exc:
            raise JanitorError(f"--metrics-file {metrics_file}: {exc.strerror or exc}") from None


def append_step_summary(text: str) -> None:
    """Append Markdown to $GITHUB_STEP_SUMMARY when it is set (a failure only warns: a summary is a nicety)."""
    summary = settings().step_summary
    if not summary:
        return
    from ghcr_janitor.core.files import UnreadableFile, append_regular

    try:
        append_regular(summary, (text + "\n").encode("utf-8"))
    except UnreadableFile as exc:
        typer.echo(f"warning: GITHUB_STEP_SUMMARY {exc}", err=True)


def report_requests(log, verbosity: int) -> None:
    """One stderr line with the requests a run sent per host; always for GitHub's REST API
    (its budget is small: 1,000 an hour for GITHUB_TOKEN), otherwise at -v."""
    from ghcr_janitor.net.http import netloc, requests_summary

    summary = requests_summary(log)
    rest_hosts = {netloc(settings().github_api_url)} & set(summary)
    if verbosity < 0 or not summary or (verbosity < 1 and not rest_hosts):
        return
    parts = []
    for host, methods in sorted(summary.items()):
        kind = "GitHub REST" if host in rest_hosts else "registry"
        detail = ", ".join(f"{m} {n}" for m, n in sorted(methods.items()))
        parts.append(f"{host} ({kind}): {sum(methods.values())} [{detail}]")
    typer.echo("requests: " + "; ".join(parts), err=True)


def budget_of(cost: str | None, size: str | None, fail: bool):
    """The budget the flags set (UsageError, exit 2, before anything is contacted: a malformed one,
    or --fail-over-budget without one)."""
    from ghcr_janitor.core.errors import UsageError
    from ghcr_janitor.report.budget import parse_budget

    budget = parse_budget(cost, size)
    if fail and not budget:
        raise UsageError("--fail-over-budget needs a budget: --budget-cost AMOUNT and/or --budget-size SIZE")
    return budget


def check_budget(budget, plan, inventories: list, fail: bool) -> int:
    """One stderr line per target over its budget (and per target whose cost budget cannot be
    checked); 3 when asked to fail and one is over, else 0."""
    from ghcr_janitor.plan.cost import stored_size
    from ghcr_janitor.report.budget import reasons, unchecked

    if not budget:
        return 0
    by_inv = {inv.target: inv for inv in inventories}
    over = 0
    for tp in plan.targets:
        inv = by_inv.get(tp.target)
        if inv is None:             # not read: its error says so
            continue
        cost = tp.cost if tp.cost is not None else inv.cost
        warning = unchecked(budget, tp.target, cost)
        if warning:
            typer.echo(f"warning: {warning}", err=True)
        why = reasons(budget, cost, stored_size(inv))
        if why:
            over += 1
            typer.echo(f"over budget: {tp.target}: {'; '.join(why)}", err=True)
    return OVER_BUDGET_EXIT if fail and over else 0
