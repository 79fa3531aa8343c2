"""Markdown: `--output markdown` for ls/plan/prune/apply, and the GitHub step summary.

Tables use tabulate's "github" format (GitHub-flavoured Markdown pipe tables). Free text
(reasons, errors) is escaped so a `|` cannot break a table and a newline cannot end a row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from ghcr_janitor.core.humanize import human_size
from ghcr_janitor.core.words import count
from ghcr_janitor.report.cost_view import a_month, cost_line, saves, totals_line

ACTION_KINDS = ("delete", "untag", "retag")
MAX_LISTED_PROBLEMS = 20       # errors / skipped / failed lines in a step summary
MAX_DETAIL_ROWS = 100          # rows in the collapsed action list of a step summary


def cell(value: Any) -> str:
    """Text safe inside a GFM table cell."""
    text = "" if value is None else str(value)
    return " ".join(text.replace("\\", "\\\\").replace("|", "\\|").split())


def code(value: Any) -> str:
    """`value` as inline code, safe inside a table cell."""
    text = cell(value)
    return f"`{text}`" if text else ""


def table(rows: list[list[Any]], headers: list[str], align: Iterable[str] | None = None) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True,
                    colalign=tuple(align) if align is not None else None)


def _bullets(lines: list[str], limit: int = MAX_LISTED_PROBLEMS) -> list[str]:
    out = [f"- {cell(line)}" for line in lines[:limit]]
    if len(lines) > limit:
        out.append(f"- … and {len(lines) - limit} more")
    return out


# --- ls ----------------------------------------------------------------------------------------

def ls_markdown(inventories: list, now: datetime, failures: list[dict] | None = None) -> str:
    """One section per repository: the tag table, totals, errors."""
    from ghcr_janitor.report.inventory_view import LS_HEADERS, cache_table, inventory_dict, ls_rows, remembered_line

    out: list[str] = []
    for inv in inventories:
        if inv.traits.entries:
            out += [f"### {code(inv.target)}", "", "```", cache_table(inv, now), "```", ""]
            continue
        totals = inventory_dict(inv)["totals"]
        out.append(f"### {code(inv.target)}")
        out.append("")
        rows = [[code(r[0]) if r[0] != "<untagged>" else "*untagged*", code(r[1]), *[cell(v) for v in r[2:]]]
                for r in ls_rows(inv, now)]
        if rows:
            out.append(table(rows, LS_HEADERS, ("left", "left", "left", "right", "right", "left", "right", "left")))
        else:
            out.append("*(no matching tags)*")
        out.append("")
        out.append(f"**{count(totals['tags'], 'tag')}, {count(totals['artifacts'], 'artifact')}, {human_size(totals['size'])}** "
                   f"({totals['size']} bytes, each blob counted once); repository: {count(totals['repository_tags'], 'tag')}, "
                   f"{human_size(totals['repository_size'])}")
        if "remembered" in totals:          # a store that remembers its tags' digests: what it found
            out += ["", cell(remembered_line(totals["remembered"]))]
        if inv.cost is not None:
            out += ["", cell(cost_line(inv.cost))]
        if inv.errors or inv.warnings:
            out.append("")
            out.extend(_bullets([f"error: {e}" for e in inv.errors] + [f"warning: {w}" for w in inv.warnings]))
        out.append("")
    for failure in failures or []:
        out.append(f"### {code(failure.get('target'))}")
        out.append("")
        out.append(f"- error: {cell(failure.get('error'))}")
        out.append("")
    return "\n".join(out).rstrip() or "*(no targets)*"


# --- plan --------------------------------------------------------------------------------------

def _counts(actions: Iterable) -> dict[str, int]:
    counts = dict.fromkeys(ACTION_KINDS, 0)
    for a in actions:
        counts[a.action] = counts.get(a.action, 0) + 1
    return counts


def plan_markdown(plan, now: datetime, dry_run: bool) -> str:
    """The plan: per repository a table of actions and kept tags, the reclaim, notes and errors."""
    from ghcr_janitor.report.plan_view import plan_headers, plan_rows

    title = "Plan (dry run: nothing changed)" if dry_run else "Plan"
    out = [f"## {title}", ""]
    if plan.policy:
        out += [f"Policy: {code(plan.policy)}", ""]
    verb = "would reclaim" if dry_run else "reclaims"
    for tp in plan.targets:
        out += [f"### {code(tp.target)}", ""]
        rows = [[code(r[0]) if r[0] != "<untagged>" else "*untagged*", code(r[1]), *[cell(v) for v in r[2:]]]
                for r in plan_rows(tp, now)]
        if rows:
            out.append(table(rows, plan_headers(tp), ("left", "left", "left", "right", "right", "right", "left", "left")))
        else:
            out.append("*(nothing selected)*")
        c = _counts(tp.actions)
        out += ["", f"{c['delete']} delete, {c['untag']} untag, {c['retag']} retag, {len(tp.kept)} kept; "
                    f"{verb} **{human_size(tp.reclaim_size)}** ({tp.reclaim_size} bytes)"
                    + (f": {cell(tp.reclaim_note)}" if tp.reclaim_note else "")]
        if tp.cost is not None:
            out += ["", cell(cost_line(tp.cost))]
        for note in tp.notes:
            out += ["", f"> note: {cell(note)}"]
        if tp.errors or tp.warnings:
            out.append("")
            out.extend(_bullets([f"error: {e}" for e in tp.errors] + [f"warning: {w}" for w in tp.warnings]))
        out.append("")
    if len(plan.targets) > 1:
        money = totals_line([t.cost for t in plan.targets])
        out.append(f"**Total: {verb} {human_size(plan.reclaim_size)}** ({plan.reclaim_size} bytes) "
                   f"over {len(plan.targets)} targets" + (f"; cost: {cell(money)}" if money else ""))
    return "\n".join(out).rstrip()


# --- apply results -----------------------------------------------------------------------------

def results_markdown(results: list, notes: dict[str, str] | None = None) -> str:
    """What an apply did: per repository a table of actions with their status; `notes`: target ->
    what its reclaim figure is (`plan_view.reclaim_notes`)."""
    from ghcr_janitor.core.digests import label_of, pin_of
    from ghcr_janitor.report.plan_view import RESULT_HEADERS, applied_line, outcome_counts

    out = ["## Applied", ""]
    for tr in results:
        out += [f"### {code(tr.target)}", ""]
        if tr.error:
            out += [f"- error: {cell(tr.error)}", ""]
        rows = [[cell(r.action if not r.to else f"{r.action} -> {r.to}"), code(label_of(r)) if r.tag or r.key else "*untagged*",
                 code(pin_of(r)), _status(r.status), cell(r.reason)] for r in tr.results]
        if rows:
            out += [table(rows, RESULT_HEADERS), ""]
        out += [f"{outcome_counts(tr.results)}; "
                + applied_line(tr, cell((notes or {}).get(tr.target, "")), strong=lambda s: f"**{s}**"), ""]
    return "\n".join(out).rstrip()


def _status(status: str) -> str:
    return {"done": "done", "gone": "already gone", "skipped": "**skipped**", "failed": "**failed**"}.get(status, cell(status))


# --- GitHub step summary -----------------------------------------------------------------------

def step_summary(plan, results, now: datetime | None, dry_run: bool, inventories: list | None = None,
                 failures: list[dict] | None = None) -> str:
    """A short Markdown report for $GITHUB_STEP_SUMMARY.

    One row per repository (tags, bytes, reclaimable, actions by kind, outcome, errors), then
    the errors and the skipped/failed actions, then every action in a collapsed section.
    Works for `ls` (inventories only), `plan`/`prune --dry-run` (plan), `prune --yes` and
    `apply` (plan and results); `apply` has no inventory, so tags and bytes show `-` there.
    """
    from ghcr_janitor.core.digests import label_of, pin_of
    from ghcr_janitor.report.inventory_view import inventory_dict
    from ghcr_janitor.report.metrics import repository_errors

    from ghcr_janitor.report.plan_view import reclaim_notes

    inventories = list(inventories or [])
    notes = reclaim_notes(plan, inventories, results) if plan is not None or results is not None else {}
    by_inv = {i.target: i for i in inventories}
    by_plan = {t.target: t for t in (plan.targets if plan is not None else [])}
    by_result = {r.target: r for r in (results or [])}
    failed_targets = {str(f.get("target")): str(f.get("error")) for f in failures or []}
    repos = list(dict.fromkeys([*by_inv, *by_plan, *by_result, *failed_targets]))

    if results is not None:
        what = "applied"
    elif plan is not None:
        what = "plan (dry run, nothing changed)" if dry_run else "plan"
    else:
        what = "inventory"
    out = [f"### ghcr-janitor: {what}", ""]
    facts = [f"{len(repos)} {'repository' if len(repos) == 1 else 'repositories'}"]
    if plan is not None and plan.policy:
        facts.insert(0, f"policy {code(plan.policy)}")
    if plan is not None:
        verb = "would reclaim" if results is None else "planned to reclaim"
        facts.append(f"{verb} **{human_size(plan.reclaim_size)}**")
    if results is not None:
        facts.append(f"done actions reclaim **{human_size(sum(r.reclaimed for r in results))}**"
                     + (" (what that is: below)" if notes else ""))
    if now is not None:
        facts.append(now.strftime("%Y-%m-%d %H:%M UTC") if now.utcoffset() is not None else now.isoformat())
    out += [" · ".join(facts), ""]

    costs = {repo: _cost_of(by_inv.get(repo), by_plan.get(repo)) for repo in repos}
    priced = any(c is not None for c in costs.values())
    headers = ["repository", "tags", "bytes"]
    if priced:                      # money only where some store has a known price
        headers += ["cost a month"] + (["saves a month"] if plan is not None else [])
    if plan is not None:
        headers += ["reclaimable", "actions"]
    if results is not None:
        headers += ["done", "already gone", "skipped", "failed", "reclaimed"]
    headers.append("errors")
    rows = []
    problems: list[str] = []
    for repo in repos:
        inv, tp, tr = by_inv.get(repo), by_plan.get(repo), by_result.get(repo)
        if inv is not None:
            totals = inventory_dict(inv)["totals"]
            if inv.traits.entries:
                usage, limit = totals.get("usage"), totals.get("limit")
                tags = f"{totals['entries']} cache entries"
                size = human_size(totals["size"]) + (f" (usage {human_size(usage)} of {human_size(limit)})"
                                                      if isinstance(usage, int) and isinstance(limit, int) else "")
            else:
                tags = str(totals["tags"]) + (f" (+{len(inv.untagged)} untagged)" if inv.untagged else "")
                size = human_size(totals["size"])
        elif tp is not None:
            tags, size = str(len({a.tag for a in tp.actions if a.tag} | {k.tag for k in tp.kept if k.tag})), "-"
        else:
            tags, size = "-", "-"
        row = [code(repo), tags, size]
        if priced:
            row += [a_month(costs[repo])] + ([saves(costs[repo])] if plan is not None else [])
        if plan is not None:
            counts = _counts(tp.actions) if tp is not None else {}
            kinds = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "none"
            row += [human_size(tp.reclaim_size) if tp is not None else "-", kinds]
        if results is not None:
            statuses = [r.status for r in tr.results] if tr is not None else []
            row += [str(statuses.count("done")), str(statuses.count("gone")), str(statuses.count("skipped")),
                    str(statuses.count("failed")),
                    human_size(tr.reclaimed) if tr is not None else "-"]
        errors = repository_errors(inv, tp, tr) + (1 if repo in failed_targets else 0)
        row.append(f"**{errors}**" if errors else "0")
        rows.append(row)
        if repo in failed_targets:
            problems.append(f"{code(repo)}: {cell(failed_targets[repo])}")
        source = tp.errors if tp is not None else inv.errors if inv is not None else []
        problems += [f"{code(repo)}: {cell(e)}" for e in dict.fromkeys(source)]
        if tr is not None:
            if tr.error:
                problems.append(f"{code(repo)}: {cell(tr.error)}")
            problems += [f"{code(repo)}: {r.status} {r.action} {code(label_of(r)) if r.tag or r.key else 'untagged'} "
                         f"({code(pin_of(r))}): {cell(r.reason)}"
                         for r in tr.results if r.status in ("skipped", "failed")]
    if rows:
        align = ["right" if h not in ("repository", "actions") else "left" for h in headers]
        out.append(table(rows, headers, align))
    else:
        out.append("*(no targets)*")

    out += _reclaim_notes_lines({repo: notes[repo] for repo in repos if repo in notes})
    out += _price_lines([c for c in costs.values() if c is not None])

    if problems:
        out += ["", "**Errors and skipped actions**", ""]
        shown = problems[:MAX_LISTED_PROBLEMS]
        out += [f"- {p}" for p in shown]
        if len(problems) > len(shown):
            out.append(f"- … and {len(problems) - len(shown)} more (see the job log)")

    detail = _action_details(plan, results)
    if detail:
        out += ["", detail]
    return "\n".join(out).rstrip() + "\n"


def _cost_of(inv, tp):
    """The plan's cost (with what it saves) where there is a plan, else the inventory's."""
    return tp.cost if tp is not None and tp.cost is not None else inv.cost if inv is not None else None


def _price_lines(costs: list) -> list[str]:
    """Each price the money figures use, once: what it is, its date and its source."""
    prices = list(dict.fromkeys((c.price.describe(), c.price.source) for c in costs))
    return ["", "Prices: " + "; ".join(f"{cell(what)}, {cell(source)}" for what, source in prices)
            + ". Storage only: data transfer is not priced."] if prices else []


def _reclaim_notes_lines(notes: dict[str, str]) -> list[str]:
    """What the reclaim figures are, each sentence once (with the repositories it is about)."""
    if not notes:
        return []
    by_note: dict[str, list[str]] = {}
    for repo, note in notes.items():
        by_note.setdefault(note, []).append(repo)
    if len(by_note) == 1:
        return ["", f"Reclaim figures: {cell(next(iter(by_note)))}."]
    return ["", "Reclaim figures:", ""] + [f"- {', '.join(code(r) for r in repos)}: {cell(note)}"
                                          for note, repos in by_note.items()]


def _action_details(plan, results) -> str:
    """Every action (capped), collapsed: the reader opens it only when curious."""
    from ghcr_janitor.core.digests import label_of, pin_of

    rows = []
    if results is not None:
        for tr in results:
            for r in tr.results:
                rows.append([code(tr.target), cell(r.action if not r.to else f"{r.action} -> {r.to}"),
                             code(label_of(r)) if r.tag or r.key else "*untagged*", code(pin_of(r)), _status(r.status),
                             human_size(r.reclaim_size), cell(r.reason)])
        headers = ["repository", "action", "tag", "digest", "status", "reclaimed", "reason"]
    elif plan is not None:
        for tp in plan.targets:
            for a in tp.actions:
                rows.append([code(tp.target), cell(a.action if not a.to else f"{a.action} -> {a.to}"),
                             code(label_of(a)) if a.tag or a.key else "*untagged*", code(pin_of(a)),
                             human_size(a.reclaim_size), cell(a.reason)])
        headers = ["repository", "action", "tag", "digest", "reclaim", "reason"]
    if not rows:
        return ""
    shown = rows[:MAX_DETAIL_ROWS]
    lines = [f"<details><summary>{len(rows)} actions</summary>", "", table(shown, headers)]
    if len(rows) > len(shown):
        lines += ["", f"… and {len(rows) - len(shown)} more: the plan file (`janitor plan -o`; the Action's `plan` output) lists every action."]
    lines += ["", "</details>"]
    return "\n".join(lines)


# --- `janitor report`: the text version --------------------------------------------------------

def report_markdown(reports: list, out_name: str | None = None, failures: list[dict] | None = None,
                    families: int = 5) -> str:
    """The HTML report in a few lines (step summaries): per target the reclaimable bytes, the
    outlook, and the largest families; targets that could not be read, with their error."""
    out = ["### ghcr-janitor: where the bytes are", ""]
    if out_name:
        out += [f"Full report: {code(out_name)}", ""]
    rows = [[code(r.target), human_size(r.breakdown.total), human_size(r.plan.reclaim_size), a_month(r.cost), saves(r.cost),
             cell(r.trend.sentence(r.what) + (f"; {r.budget_sentence}" if r.budget_sentence else ""))]
            for r in reports]
    rows += [[code(f["target"]), "-", "-", "-", "-", f"**error**: {cell(f['error'])}"] for f in failures or []]
    out.append(table(rows, ["target", "stored", "reclaimable", "cost a month", "saves a month", "outlook"],
                     ["left", "right", "right", "right", "right", "left"]) if rows else "*(no targets)*")
    out += _price_lines([r.cost for r in reports if r.cost is not None])
    over = [f"{code(r.target)}: {cell('; '.join(r.over))}" for r in reports if r.over]
    if over:
        out += ["", "**Over budget**", ""] + [f"- {line}" for line in over]
    for r in reports:
        top = r.families[:families]
        if top:
            out += ["", f"Largest families of {code(r.target)}: "
                    + ", ".join(f"{code(f.name)} {human_size(f.bytes)} ({human_size(f.only)} only there)" for f in top)]
    return "\n".join(out).rstrip() + "\n"
