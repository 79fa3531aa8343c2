"""`janitor ls` output: JSON (cli.md version 1) and the table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ghcr_janitor.core.digests import short
from ghcr_janitor.core.models import Artifact, Inventory
from ghcr_janitor.report.humanize import human_age, human_size
from ghcr_janitor.core.timeparse import format_time

JSON_VERSION = 1


def _entry(art: Artifact) -> dict[str, Any]:
    return {
        "digest": art.digest,
        "kind": art.kind,
        "media_type": art.media_type,
        "size": art.size,
        "unique_size": art.unique_size,
        "created": format_time(art.created),
        "age_source": art.age_source,
        "broken": art.broken,
        **({"missing": list(art.missing)} if art.missing else {}),
    }


def listed_digests(inv: Inventory) -> list[str]:
    return sorted({inv.tags[t] for t in inv.listed} | set(inv.untagged))


def inventory_dict(inv: Inventory) -> dict[str, Any]:
    tags = []
    for tag in inv.listed:
        art = inv.artifacts[inv.tags[tag]]
        entry = {"tag": tag, **_entry(art)}
        if art.error:
            entry["error"] = art.error
        tags.append(entry)
    untagged = []
    for digest in inv.untagged:
        art = inv.artifacts[digest]
        entry = _entry(art)
        entry.update({k: v for k, v in art.extra.items() if k in ("version_id",)})
        if art.error:
            entry["error"] = art.error
        untagged.append(entry)
    digests = listed_digests(inv)
    return {
        "target": inv.target,
        "backend": inv.backend,
        "tags": tags,
        "untagged": untagged,
        "totals": {
            "tags": len(inv.listed),
            "artifacts": len(digests),
            "size": inv.total_size(digests),
            "unique_size": sum(inv.artifacts[d].unique_size for d in digests),
            "repository_tags": len(inv.tags),
            "repository_size": inv.total_size(),
        },
        "errors": inv.errors,
        "warnings": inv.warnings,
    }


def failed_target_dict(target: str, error: str) -> dict[str, Any]:
    """A target whose inventory failed: listed like the others, empty, with its error."""
    return {"target": target, "backend": None, "tags": [], "untagged": [],
            "totals": {"tags": 0, "artifacts": 0, "size": 0, "unique_size": 0, "repository_tags": 0,
                       "repository_size": 0},
            "errors": [error], "warnings": []}


def ls_document(inventories: list[Inventory], errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """Every target in `targets`, failed ones too (with `errors`); failures also listed at the top."""
    targets = [inventory_dict(i) for i in inventories]
    targets += [failed_target_dict(e["target"], e["error"]) for e in errors or []]
    doc: dict[str, Any] = {"version": JSON_VERSION, "targets": targets}
    if errors:
        doc["errors"] = errors
    return doc


def kind_text(art: Artifact) -> str:
    """The kind as JSON has it, with a broken index marked: `image-index (partial)`."""
    return f"{art.kind} ({art.broken})" if art.broken else art.kind


def ls_rows(inv: Inventory, now: datetime) -> list[list[str]]:
    rows = []
    entries = [(tag, inv.artifacts[inv.tags[tag]]) for tag in inv.listed]
    entries += [("<untagged>", inv.artifacts[digest]) for digest in inv.untagged]
    for label, art in entries:
        rows.append([label, short(art.digest), kind_text(art), human_size(art.size),
                     human_size(art.unique_size), format_time(art.created) or "-", human_age(art.created, now),
                     art.age_source or "-"])
    return rows


LS_HEADERS = ["tag", "digest", "kind", "size", "unique", "created", "age", "age source"]


def ls_table(inv: Inventory, now: datetime) -> str:
    from tabulate import tabulate

    doc = inventory_dict(inv)
    totals = doc["totals"]
    body = tabulate(ls_rows(inv, now), headers=LS_HEADERS, tablefmt="simple") if totals["artifacts"] else "(no matching tags)"
    lines = [f"{inv.target}", body,
             f"total: {totals['tags']} tags, {totals['artifacts']} artifacts, {human_size(totals['size'])} "
             f"({totals['size']} bytes; each blob counted once); repository: {totals['repository_tags']} tags, "
             f"{human_size(totals['repository_size'])}"]
    for error in inv.errors:
        lines.append(f"error: {error}")
    return "\n".join(lines)
