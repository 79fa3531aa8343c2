"""Print plans and results in the chosen format; Markdown step summary and metrics on request."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import typer

from ghcr_janitor.cli.common import OutputFormat


def emit_plan(plan, fmt: OutputFormat, now: datetime, dry_run: bool, metrics_file: Path | None = None) -> None:
    from ghcr_janitor.report.plan_view import plan_table

    if fmt == OutputFormat.json:
        typer.echo(json.dumps(plan.to_dict(), indent=2))
    elif fmt == OutputFormat.markdown:
        from ghcr_janitor.report.markdown import plan_markdown

        typer.echo(plan_markdown(plan, now, dry_run))
    else:
        typer.echo(plan_table(plan, now, dry_run))
    _summaries(plan=plan, results=None, now=now, dry_run=dry_run, metrics_file=metrics_file)


def emit_results(results, code: int, fmt: OutputFormat, plan=None, now: datetime | None = None,
                 metrics_file: Path | None = None) -> None:
    from ghcr_janitor.report.plan_view import results_document, results_table

    if fmt == OutputFormat.json:
        typer.echo(json.dumps(results_document(results, code), indent=2))
    elif fmt == OutputFormat.markdown:
        from ghcr_janitor.report.markdown import results_markdown

        typer.echo(results_markdown(results))
    else:
        typer.echo(results_table(results))
    _summaries(plan=plan, results=results, now=now, dry_run=False, metrics_file=metrics_file)


def _summaries(plan, results, now, dry_run: bool, metrics_file: Path | None) -> None:
    """GITHUB_STEP_SUMMARY (appended Markdown) and the Prometheus textfile, when asked for."""
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            from ghcr_janitor.report.markdown import step_summary
        except ImportError:
            step_summary = None
        if step_summary is not None:
            with open(summary, "a", encoding="utf-8") as handle:
                handle.write(step_summary(plan, results, now, dry_run) + "\n")
    if metrics_file is not None:
        from ghcr_janitor.report.metrics import write_metrics

        write_metrics(metrics_file, inventories=None, plans=plan, results=results, errors=0)
