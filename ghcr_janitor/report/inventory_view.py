"""`janitor ls` output: JSON (cli.md version 1) and the table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ghcr_janitor.core.digests import short
from ghcr_janitor.core.models import Artifact, Inventory, cache_item_id
from ghcr_janitor.core.words import count
from ghcr_janitor.core.humanize import human_age, human_size
from ghcr_janitor.core.timeparse import format_time
from ghcr_janitor.report.cost_view import cost_dict, cost_line

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
        # Where the store records them (ECR, Docker Hub, Harbor, ...): push time, last recorded pull (null:
        # never pulled), build time (GitLab's REST created_at, never an age), archived, vendor locks.
        **{k: format_time(v) for k, v in art.extra.items() if k in ("pushed", "last_pulled", "built")},
        **({"archived": bool(art.extra["archived"])} if "archived" in art.extra else {}),
        **({"locked": str(art.extra["locked"])} if art.extra.get("locked") else {}),
        **({"locked_tags": {t: str(r) for t, r in sorted(art.extra["locked_tags"].items()) if t in art.tags}}
           if art.extra.get("locked_tags") else {}),
    }


def untagged_source(inv: Inventory, art: Artifact) -> str | None:
    """How the janitor knows of an untagged root: as the artifact says ("remembered": seen under a tag
    on an earlier run), else "listed" where the store lists its untagged versions (GHCR, layouts)."""
    return art.untagged_source or ("listed" if inv.traits.lists_untagged else None)


def listed_digests(inv: Inventory) -> list[str]:
    return sorted({inv.tags[t] for t in inv.listed} | set(inv.untagged))


def cache_entry(art: Artifact) -> dict[str, Any]:
    """One Actions-cache entry as `ls -O json` shows it (cli.md, `gha:` targets)."""
    labels = art.labels
    return {"id": labels["cache_id"], "key": labels["key"], "ref": labels["ref"], "version": labels["version"],
            "kind": art.kind, "family": labels["family"], "ref_state": labels["ref_state"],
            "scope": labels.get("scope"), "generation": labels.get("generation"), "sig": labels.get("sig", False),
            "foreign": labels.get("foreign", False), "newest": labels.get("newest", False), "size": art.size,
            "created": format_time(labels.get("created_at")), "last_accessed": format_time(labels.get("last_accessed_at"))}


def _sums(items: list[tuple[str, int]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for name, size in items:
        slot = out.setdefault(name, {"entries": 0, "size": 0})
        slot["entries"] += 1
        slot["size"] += size
    return dict(sorted(out.items()))


def cache_dict(inv: Inventory) -> dict[str, Any]:
    """A store of cache entries (`gha:` targets): its entries, totals per ref, kind and ref state,
    usage and limit."""
    arts = [inv.artifacts[d] for d in inv.untagged]
    facts = inv.facts
    return {
        "target": inv.target, "backend": inv.backend, "tags": [], "untagged": [],
        "entries": [cache_entry(a) for a in arts],
        "totals": {"entries": len(arts), "size": sum(a.size for a in arts), "usage": facts.get("usage"),
                   "limit": facts.get("limit"), "limit_source": facts.get("limit_source"),
                   "retention_days": facts.get("retention_days"), "retention_source": facts.get("retention_source"),
                   "default_branch": facts.get("default_branch"),
                   "per_ref": _sums([(a.labels["ref"], a.size) for a in arts]),
                   "per_kind": _sums([(a.kind, a.size) for a in arts]),
                   "per_ref_state": _sums([(a.labels["ref_state"], a.size) for a in arts]),
                   "cost": cost_dict(inv.cost)},
        "errors": inv.errors, "warnings": inv.warnings,
    }


def inventory_dict(inv: Inventory) -> dict[str, Any]:
    if inv.traits.entries:
        return cache_dict(inv)
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
        entry = {**_entry(art), "untagged_source": untagged_source(inv, art)}
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
            # A store that remembers tags (plain OCI registries): untagged manifests found by memory.
            **({"remembered": inv.facts["remembered"]} if "remembered" in inv.facts else {}),
            "cost": cost_dict(inv.cost),        # null: no known price (never a guess)
        },
        "errors": inv.errors,
        "warnings": inv.warnings,
    }


def failed_target_dict(target: str, error: str) -> dict[str, Any]:
    """A target whose inventory failed: listed like the others, empty, with its error."""
    return {"target": target, "backend": None, "tags": [], "untagged": [],
            "totals": {"tags": 0, "artifacts": 0, "size": 0, "unique_size": 0, "repository_tags": 0,
                       "repository_size": 0, "cost": None},
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


CACHE_HEADERS = ["id", "key", "ref", "kind", "ref state", "size", "last used", "created"]


def cache_table(inv: Inventory, now: datetime) -> str:
    from tabulate import tabulate

    doc = cache_dict(inv)
    rows = [[e["id"], e["key"], e["ref"], e["kind"] + (" (newest)" if e["newest"] else ""), e["ref_state"],
             human_size(e["size"]), human_age(inv.artifacts[cache_item_id(e['id'])].labels.get("last_accessed_at"), now),
             human_age(inv.artifacts[cache_item_id(e['id'])].labels.get("created_at"), now)] for e in doc["entries"]]
    totals = doc["totals"]
    lines = [inv.target, tabulate(rows, headers=CACHE_HEADERS, tablefmt="simple") if rows else "(no cache entries)"]
    kinds = ", ".join(f"{k} {human_size(v['size'])} ({v['entries']})" for k, v in totals["per_kind"].items())
    states = ", ".join(f"{k} {human_size(v['size'])} ({v['entries']})" for k, v in totals["per_ref_state"].items())
    usage = totals["usage"]
    lines.append(f"total: {totals['entries']} entries, {human_size(totals['size'])} ({totals['size']} bytes); "
                 f"usage {human_size(usage) if usage is not None else 'unknown'} of limit "
                 f"{human_size(totals['limit'])} (source: {totals['limit_source']})"
                 + (f", retention {totals['retention_days']} days (source: {totals['retention_source']})"
                    if totals.get("retention_days") is not None else ""))
    if kinds:
        lines.append(f"per kind: {kinds}; per ref state: {states}")
    if inv.cost is not None:
        lines.append(cost_line(inv.cost))
    for error in inv.errors:
        lines.append(f"error: {error}")
    return "\n".join(lines)


def ls_table(inv: Inventory, now: datetime) -> str:
    from tabulate import tabulate

    if inv.traits.entries:
        return cache_table(inv, now)
    doc = inventory_dict(inv)
    totals = doc["totals"]
    body = tabulate(ls_rows(inv, now), headers=LS_HEADERS, tablefmt="simple") if totals["artifacts"] else "(no matching tags)"
    lines = [f"{inv.target}", body,
             f"total: {count(totals['tags'], 'tag')}, {count(totals['artifacts'], 'artifact')}, "
             f"{human_size(totals['size'])} ({totals['size']} bytes; each blob counted once); "
             f"repository: {count(totals['repository_tags'], 'tag')}, {human_size(totals['repository_size'])}"]
    if "remembered" in totals:
        lines.append(remembered_line(totals["remembered"]))
    if inv.cost is not None:
        lines.append(cost_line(inv.cost))
    return "\n".join(lines)      # errors go to stderr (cli/ls.py)


def remembered_line(fact: dict[str, Any]) -> str:
    """What a store's memory of earlier runs' tags found (`totals.remembered`), in one line."""
    if fact.get("since") is None:
        return ("remembered: none yet (this run is the first to remember this repository's tags; a manifest "
                "an overwritten tag leaves behind is found from the next run on)")
    return (f"remembered: {count(fact['count'], 'untagged manifest')} once seen under a tag here "
            f"(tags remembered since {fact['since'][:10]})")
