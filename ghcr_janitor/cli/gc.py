"""`janitor gc TARGET`: delete unreachable blobs of a local OCI layout (thin wrapper over gc.py)."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from typing import Annotated

import typer

from ghcr_janitor.cli import common as c
from ghcr_janitor.core.errors import JanitorError, UsageError


def parse_keep_recent(text: str) -> timedelta:
    """`0` or a policy duration (`30s`, `15m`, `1h`, `7d`, `1h30m`)."""
    from ghcr_janitor.policy.units import parse_duration

    if text.strip() == "0":
        return timedelta(0)
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--keep-recent: {exc}") from None


def _layout_path(text: str) -> str:
    """The layout directory a TARGET names; UsageError for anything else."""
    from ghcr_janitor.core.reference import LAYOUT, parse_target

    if not text.startswith("oci-layout:") and os.path.isdir(text) and not os.path.isfile(os.path.join(text, "oci-layout")):
        raise UsageError(f"{text}: directory has no oci-layout file; gc works on OCI image layouts (oci-layout:PATH)")
    target = parse_target(text)
    if target.kind != LAYOUT:
        raise UsageError(f"gc works on local OCI layouts only (oci-layout:PATH), not {target.repository}; "
                         "registries collect their own blobs")
    if target.tag or target.digest:
        raise UsageError(f"gc works on a whole layout; drop the :TAG/@DIGEST from {text!r}")
    return target.name


def _table(report, keep_recent: timedelta, markdown: bool = False) -> str:
    from tabulate import tabulate

    from ghcr_janitor.core.digests import short
    from ghcr_janitor.core.humanize import human_size

    verb = "would delete" if report.dry_run else "deleted"
    lines = []
    if report.deleted:
        rows = [(f"`{d}`" if markdown else short(d), human_size(s), s) for d, s in report.deleted]
        lines.append(tabulate(rows, headers=[f"blob ({verb})", "size", "bytes"],
                              tablefmt="github" if markdown else "simple", colalign=("left", "right", "right")))
        lines.append("")
    for rel, size in report.ingest_removed:
        lines.append(f"{verb} stale {rel} ({human_size(size)})")
    lines.append(f"kept {report.reachable} reachable blobs ({human_size(report.reachable_bytes)})")
    if report.recent:
        lines.append(f"skipped {len(report.recent)} unreachable blobs modified within {keep_recent} "
                     f"({human_size(sum(s for _, s in report.recent))})")
    if report.ignored:
        lines.append(f"left alone {len(report.ignored)} entries under blobs/ that are not blobs")
    freed = report.bytes_freed
    lead = "would free" if report.dry_run else "freed"
    count = len(report.deleted)
    lines.append(f"{lead} {human_size(freed)} ({freed} bytes) in {count} blob{'' if count == 1 else 's'}")
    if markdown:
        return "\n\n".join(line for line in lines if line)
    return "\n".join(lines)


def gc_problems(report) -> list[str]:
    """One line per problem; a corrupt blob that is the reason nothing was deleted is said once."""
    out = [f"missing blob {d} (referenced by {r})" for d, r in report.missing]
    out += [f"corrupt blob {d}: {r}" for d, r in report.corrupt if not (report.blocked and r in report.blocked)]
    out += list(report.errors)
    if report.blocked:
        out.append(f"nothing deleted: {report.blocked}")
    return out


def _step_summary(target: str, report, keep_recent: timedelta) -> None:
    """Append a Markdown summary to $GITHUB_STEP_SUMMARY when it is set (cli.md)."""
    if not c.settings().step_summary:
        return
    text = f"### janitor gc `{target}`\n\n{_table(report, keep_recent, markdown=True)}\n"
    text += "".join(f"\n- :x: {line}" for line in gc_problems(report)) + "\n"
    from ghcr_janitor.cli.outputs import append_step_summary

    append_step_summary(text.rstrip("\n"))


def register(app: typer.Typer) -> None:
    """Add `gc` to the janitor app."""

    @app.command("gc")
    def gc(
        target: Annotated[str, typer.Argument(metavar="TARGET", help="oci-layout:PATH, or a directory holding an oci-layout file", show_default=False)],
        dry_run: Annotated[bool, typer.Option("--dry-run", help="report what would be deleted; change nothing")] = False,
        keep_recent: Annotated[str, typer.Option("--keep-recent", metavar="DURATION", help="never delete blobs modified within this (0, 30m, 1h, 2d)")] = "1h",
        output: c.OutputOpt = c.OutputFormat.table,
        verify: Annotated[bool, typer.Option("--verify", help="also hash every reachable layer blob")] = False,
        verbose: c.VerboseOpt = 0,
        quiet: c.QuietOpt = False,
    ) -> None:
        """Delete blobs of a local BuildKit cache dir that no index.json tag reaches.

        Run it between builds: a blob modified within --keep-recent is never deleted.
        Every manifest, index and cache config is walked by its own content, whatever the
        descriptors say. A missing layer blob is reported (exit 1) and unreachable blobs are
        still collected; a missing manifest, index or config, a blob gc cannot read or
        classify, or a blobs/ or ingest/ directory leading outside the layout means nothing
        is deleted (exit 1, one line).
        """
        from ghcr_janitor.stores.layout.gc import run_gc

        c.set_verbosity(verbose, quiet)
        try:
            c.settings()                # a malformed environment variable: exit 2 before any delete
            path = _layout_path(target)
            grace = parse_keep_recent(keep_recent)
            report = run_gc(path, grace, datetime.now(timezone.utc), dry_run, verify=verify)
        except JanitorError as exc:
            raise c.fail(exc) from None
        name = f"oci-layout:{path}"
        if output == c.OutputFormat.json:
            doc = {"version": 1, "target": name, **report.to_dict(),
                   "keep_recent_seconds": int(grace.total_seconds())}
            typer.echo(json.dumps(doc, indent=2))
        else:
            typer.echo(_table(report, grace, markdown=output == c.OutputFormat.markdown))
        _step_summary(name, report, grace)
        for line in gc_problems(report):
            c.echo_err(f"error: {line}")
        raise typer.Exit(0 if report.ok else 1)
