"""`janitor inspect TARGET:TAG`: one artifact in detail."""

from __future__ import annotations

import json

import typer

from ghcr_janitor.cli import common as c


def _text(doc: dict) -> str:
    from tabulate import tabulate

    from ghcr_janitor.core.humanize import human_size

    lines = [
        f"target:      {doc['target']}",
        f"digest:      {doc['digest']}",
        f"kind:        {doc['kind']}",
        f"media type:  {doc['media_type']}",
        f"size:        {human_size(doc['size'])} ({doc['size']} bytes, manifest {doc['manifest_size']} bytes)",
        f"created:     {doc['created'] or '-'} ({doc['age_source'] or 'unknown'})",
    ]
    if doc.get("artifact_type"):
        lines.append(f"artifact:    {doc['artifact_type']}")
    if doc.get("config"):
        lines.append(f"config:      {doc['config']['media_type']} {doc['config']['digest']} ({doc['config']['size']} bytes)")
    cache = doc.get("cache")
    if cache:
        lines.append(f"cache:       {cache['layers']} layers ({cache['layer_entries']} entries), "
                     f"{cache.get('records', '?')} records, newest createdat {cache['newest_createdat'] or '-'}")
    rows = [[b["media_type"], b["digest"], human_size(b["size"]),
             (b.get("annotations") or {}).get("buildkit/createdat", "")] for b in doc["blobs"]]
    if rows:
        lines.append("")
        lines.append(tabulate(rows, headers=["blob media type", "digest", "size", "createdat"]))
    children = [[ch["media_type"], ch["digest"], human_size(ch["size"]), ch.get("describes") or "-"]
                for ch in doc["children"]]
    if children:
        lines.append("")
        lines.append(tabulate(children, headers=["child manifest", "digest", "size", "platform"]))
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command("inspect")
    def inspect(
        target: str = typer.Argument(..., metavar="TARGET", help="REPO:TAG or REPO@DIGEST", show_default=False),
        output: c.OutputOpt = c.OutputFormat.table,
        insecure: c.InsecureOpt = False,
        username: c.UsernameOpt = None,
        password_stdin: c.PasswordStdinOpt = False,
        owner_type: c.OwnerTypeOpt = None,
        verbose: c.VerboseOpt = 0,
        quiet: c.QuietOpt = False,
    ) -> None:
        """Show one artifact: media types, blobs and sizes, BuildKit cache records."""
        c.set_verbosity(verbose, quiet)

        async def body() -> None:
            from ghcr_janitor.cli.build import build_session
            from ghcr_janitor.inventory.inspect import inspect_artifact
            from ghcr_janitor.core.reference import parse_target

            parsed = parse_target(target)
            session = build_session(None, False, c.DEFAULT_CONCURRENCY, insecure, username, password_stdin, owner_type)
            doc = await session.with_registry(parsed, lambda reg: inspect_artifact(reg, parsed, session.inventory))
            if output == c.OutputFormat.json:
                typer.echo(json.dumps(doc, indent=2))
            elif output == c.OutputFormat.markdown:
                typer.echo(f"### `{doc['target']}`\n\n```\n{_text(doc)}\n```")
            else:
                typer.echo(_text(doc))

        c.run(body)
