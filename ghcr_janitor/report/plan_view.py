"""Plans and apply results as tables (tabulate) and JSON."""

from __future__ import annotations

from datetime import datetime

from ghcr_janitor.core.digests import label_of, pin_of
from ghcr_janitor.core.humanize import human_age, human_size
from ghcr_janitor.core.timeparse import parse_time
from ghcr_janitor.report.cost_view import cost_line, totals_line

PLAN_HEADERS = ["tag", "digest", "kind", "size", "reclaim", "age", "action", "reason"]
RESULT_HEADERS = ["action", "tag", "digest", "status", "reason"]


def plan_headers(target_plan) -> list[str]:
    """A plan of cache entries (pinned by id, named by key) heads its columns `key` and `id`."""
    if any(i.cache_id is not None for i in [*target_plan.actions, *target_plan.kept]):
        return ["key", "id", *PLAN_HEADERS[2:]]
    return PLAN_HEADERS


def plan_rows(target_plan, now: datetime, show_kept: bool = True) -> list[list[str]]:
    rows = []
    for a in target_plan.actions:
        action = f"{a.action} -> {a.to}" if a.to else a.action
        kind = f"{a.kind} ({a.broken})" if a.kind and a.broken else a.kind or "-"
        rows.append([label_of(a), pin_of(a), kind, human_size(a.size or 0),
                     human_size(a.reclaim_size), human_age(parse_time(a.created), now), action, a.reason])
    if show_kept:
        for k in target_plan.kept:
            rows.append([label_of(k), pin_of(k), "", "", "", "", "keep", k.reason])
    return rows


def reclaim_notes(plan=None, inventories: list | None = None, results: list | None = None) -> dict[str, str]:
    """Target -> what its reclaim figure is: the store's sentence, as the store said it at apply time
    (a result's `reclaim_note`, where apply sets one), else as the inventory or the plan carries it."""
    sources = [*(inventories or []), *(plan.targets if plan is not None else []), *(results or [])]
    return {s.target: s.reclaim_note for s in sources if s.reclaim_note}       # later sources win


def reclaim_line(size: int, note: str, verb: str = "", strong=str) -> str:
    """`would reclaim 14.0 MiB (14680064 bytes): <what that is>`; after an apply (`verb` ""):
    `14.0 MiB (14680064 bytes) <what that is>`, never a bare "reclaimed" that a GC may not honour."""
    figure = f"{strong(human_size(size))} ({size} bytes)"
    if verb:
        return f"{verb} {figure}" + (f": {note}" if note else "")
    return f"{figure} {note}" if note else f"reclaimed {figure}"


def applied_line(tr, note: str, strong=str) -> str:
    """What an apply's figure is: bytes a step after the deletes really freed (`freed`: a layout's gc)
    are said as freed; otherwise the figure with the store's sentence (`reclaim_line`)."""
    if getattr(tr, "freed", None) is not None:
        return f"freed {strong(human_size(tr.freed))} ({tr.freed} bytes) by the gc that followed"
    return reclaim_line(tr.reclaimed, note, strong=strong)


def plan_table(plan, now: datetime, dry_run: bool, show_kept: bool = True) -> str:
    from tabulate import tabulate

    out = []
    for tp in plan.targets:
        out.append(tp.target)
        rows = plan_rows(tp, now, show_kept)
        out.append(tabulate(rows, headers=plan_headers(tp), tablefmt="simple") if rows else "(nothing selected)")
        counts = {kind: sum(1 for a in tp.actions if a.action == kind) for kind in ("delete", "untag", "retag")}
        verb = "would reclaim" if dry_run else "reclaims"
        out.append(f"{'dry run: ' if dry_run else ''}{counts['delete']} delete, {counts['untag']} untag, "
                   f"{counts['retag']} retag, {len(tp.kept)} kept; "
                   f"{reclaim_line(tp.reclaim_size, tp.reclaim_note, verb)}")
        if tp.cost is not None:
            out.append(cost_line(tp.cost))
        for note in tp.notes:
            out.append(f"note: {note}")
        out.append("")
    if len(plan.targets) > 1:
        money = totals_line([t.cost for t in plan.targets])
        out.append(f"total: {human_size(plan.reclaim_size)} ({plan.reclaim_size} bytes) over {len(plan.targets)} targets"
                   + (f"; cost: {money}" if money else ""))
    return "\n".join(out).rstrip()


def results_table(results, notes: dict[str, str] | None = None) -> str:
    """`notes`: target -> what its reclaim figure is (`reclaim_notes`)."""
    from tabulate import tabulate

    notes = notes or {}
    out = []
    for tr in results:
        out.append(tr.target)
        rows = [[r.action if not r.to else f"{r.action} -> {r.to}", label_of(r), pin_of(r),
                 r.status, r.reason] for r in tr.results]
        if rows:
            out.append(tabulate(rows, headers=RESULT_HEADERS, tablefmt="simple"))
        out.append(f"{outcome_counts(tr.results)}; {applied_line(tr, notes.get(tr.target, ''))}")
        out.append("")
    return "\n".join(out).rstrip()


def outcome_counts(results) -> str:
    """'2 done, 1 already gone, 0 skipped, 0 failed' ('already gone' only when there are some)."""
    statuses = [r.status for r in results]
    gone = f"{statuses.count('gone')} already gone, " if "gone" in statuses else ""
    return f"{statuses.count('done')} done, {gone}{statuses.count('skipped')} skipped, {statuses.count('failed')} failed"


def results_document(results, code: int, notes: dict[str, str] | None = None) -> dict:
    """`reclaim_note` per target: what `reclaimed_size` is on that store (from the plan)."""
    notes = notes or {}
    return {"version": 1, "exit_code": code, "targets": [
        {"target": tr.target, "error": tr.error, "reclaimed_size": tr.reclaimed,
         "reclaim_note": notes.get(tr.target, ""),
         "results": [r.to_dict() for r in tr.results]} for tr in results]}
