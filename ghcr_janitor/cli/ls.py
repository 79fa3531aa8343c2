"""`janitor ls TARGET...`: the inventory."""

from __future__ import annotations

import json
import sys

import typer

from ghcr_janitor.cli import common as c


def register(app: typer.Typer) -> None:
    @app.command("ls")
    def ls(
        targets: c.Targets = None,
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
        """List tags with digests, kinds, sizes, unique sizes and ages."""
        c.set_verbosity(verbose, quiet)

        async def body() -> int:
            from ghcr_janitor.cli.build import build_run
            from ghcr_janitor.report import inventory_view as view
            from ghcr_janitor.cli.progress import progress_bar

            names = c.gather_targets(targets, targets_file, shard)
            async with build_run(tag, all_tags, concurrency, insecure, username, password_stdin, owner_type, shard,
                                 max_requests) as run:
                with progress_bar() as bar:
                    run.session.progress = bar
                    results = await run.inventories(names)
            session = run.session
            inventories, only_tags = _shown(results)
            failures = [{"target": str(r.target), "error": r.error} for r in results if r.error]
            if output == c.OutputFormat.json:
                doc = view.ls_document(inventories, failures)
                for entry, only_tag in zip(doc["targets"], only_tags + [r.target.tag for r in results if r.error]):
                    entry["only_tag"] = only_tag            # a REPO:TAG target lists that tag only
                json.dump(doc, sys.stdout, indent=2)   # streamed
                sys.stdout.write("\n")
            elif output == c.OutputFormat.markdown:
                from ghcr_janitor.report.markdown import ls_markdown

                typer.echo(ls_markdown(inventories, session.inventory.now, failures))
            elif inventories:
                typer.echo("\n\n".join(view.ls_table(i, session.inventory.now) for i in inventories))
            for failure in failures:
                c.echo_err(f"error: {failure['target']}: {failure['error']}")
            for inventory in inventories:
                for error in inventory.errors:          # stderr, whatever the format
                    c.echo_err(f"error: {inventory.target}: {error}")
                for warning in inventory.warnings:      # stderr, whatever the format (as plan does)
                    c.echo_err(f"warning: {inventory.target}: {warning}")
            from ghcr_janitor.cli.outputs import emit_summaries, report_requests

            emit_summaries(now=session.inventory.now, metrics_file=metrics_file, inventories=inventories, history=("ls", history),
                           failures=failures)
            report_requests(session.connect.log, c.verbosity())
            bad = failures or any(i.errors for i in inventories)
            return 1 if bad else 0

        code = c.run(body)
        raise typer.Exit(code)


def _shown(results) -> tuple[list, list]:
    """The inventories to list, and each one's `only_tag`: a `REPO:TAG` target shows that tag
    alone (sizes and unique sizes stay the whole repository's); a tag it does not have is an
    error of that target."""
    from ghcr_janitor.plan import only_tag as restrict

    shown, tags = [], []
    for result in results:
        inventory, tag = result.inventory, result.target.tag
        if inventory is None:
            continue
        if tag is not None:
            missing = restrict.missing_tag(inventory, tag)
            inventory = restrict.for_listing(inventory, tag)
            if missing is not None:
                inventory.errors = [*inventory.errors, missing]
        shown.append(inventory)
        tags.append(tag)
    return shown, tags
