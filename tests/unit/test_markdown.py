"""Markdown output and the GitHub step summary: GFM tables that stay tables, short and complete."""

from __future__ import annotations

import re

from ghcr_janitor.apply.results import ActionResult, TargetResult
from ghcr_janitor.plan.model import Action, Plan, TargetPlan
from ghcr_janitor.report.markdown import (MAX_DETAIL_ROWS, MAX_LISTED_PROBLEMS, cell, ls_markdown, plan_markdown,
                                          results_markdown, step_summary)
from tests.unit.test_metrics import NOW, REPO, dg, sample_inventory, sample_plan, sample_results


def tables(text: str) -> list[list[str]]:
    """Every GFM table: consecutive lines starting with `|`; checks header, separator and column counts."""
    found, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append(current)
            current = []
    for table in found:
        widths = {len(re.split(r"(?<!\\)\|", row)) for row in table}
        assert len(widths) == 1, table                       # an unescaped | would add a column
        assert re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", table[1].replace(" ", "")), table[1]
    return found


def test_cell_escapes_pipes_and_newlines():
    assert cell("a|b\nc") == "a\\|b c"
    assert cell(None) == ""


def test_ls_markdown_lists_every_tag_with_totals():
    md = ls_markdown([sample_inventory()], NOW, failures=[{"target": "h/x", "error": "connection refused"}])
    (table,) = tables(md)
    assert "| tag" in table[0] and "unique" in table[0]
    assert len(table) == 2 + 6 + 1                  # header, separator, 6 listed cache tags, 1 untagged
    assert "`cache-base-feature-x`" in md and "*untagged*" in md
    assert f"### `{REPO}`" in md and "6 tags" in md
    assert "### `h/x`" in md and "connection refused" in md


def test_plan_markdown_shows_actions_reclaim_and_errors():
    plan = sample_plan()
    plan.targets[0].errors.append("sha256:abc: manifest | broken\nbadly")
    plan.targets[0].notes.append("registry frees storage after its own gc")
    md = plan_markdown(plan, NOW, dry_run=True)
    tables(md)
    assert md.startswith("## Plan (dry run: nothing changed)")
    assert "would reclaim **1.2 KiB** (1234 bytes)" in md
    assert "2 delete, 1 untag, 1 retag, 1 kept" in md
    assert "retag -> archive-cache-base-2026q4" in md
    assert "manifest \\| broken badly" in md and "> note:" in md
    assert "would" not in plan_markdown(plan, NOW, dry_run=False)


def test_results_markdown_marks_skipped_and_failed():
    md = results_markdown(sample_results())
    (table,) = tables(md)
    assert len(table) == 2 + 4
    assert "**skipped**" in md and "**failed**" in md
    assert "2 done, 1 skipped, 1 failed; reclaimed **1.2 KiB** (1234 bytes)" in md


def test_step_summary_of_a_dry_run_has_one_row_per_repository():
    md = step_summary(sample_plan(), None, NOW, dry_run=True, inventories=[sample_inventory()])
    assert md.startswith("### ghcr-janitor: plan (dry run, nothing changed)")
    summary_table, details = tables(md)
    assert [h.strip() for h in summary_table[0].strip("|").split("|")] == [
        "repository", "tags", "bytes", "reclaimable", "actions", "errors"]
    row = [c.strip() for c in summary_table[2].strip("|").split("|")]
    assert row[0] == f"`{REPO}`" and row[1] == "6 (+1 untagged)" and row[3] == "1.2 KiB"
    assert row[4:] == ["2 delete, 1 untag, 1 retag", "0"]
    assert "<details><summary>4 actions</summary>" in md and len(details) == 2 + 4
    assert "policy `policies/seed-stages.toml`" in md and "would reclaim **1.2 KiB**" in md
    assert len(md.splitlines()) < 30                    # short: a glance, not the whole plan


def test_step_summary_after_apply_counts_outcomes_and_lists_problems():
    md = step_summary(sample_plan(), sample_results(), NOW, dry_run=False)
    summary_table = tables(md)[0]
    header = [h.strip() for h in summary_table[0].strip("|").split("|")]
    row = dict(zip(header, (c.strip() for c in summary_table[2].strip("|").split("|"))))
    assert (row["done"], row["skipped"], row["failed"], row["reclaimed"]) == ("2", "1", "1", "1.2 KiB")
    assert row["bytes"] == "-" and row["errors"] == "**1**"          # apply has no inventory
    assert "**Errors and skipped actions**" in md
    assert "skipped untag `cache-builder-main`" in md and "failed delete untagged" in md


def test_step_summary_of_ls_and_of_failed_targets():
    md = step_summary(None, None, NOW, dry_run=False, inventories=[sample_inventory()],
                      failures=[{"target": "h/down", "error": "connection refused"}])
    assert md.startswith("### ghcr-janitor: inventory")
    (table,) = tables(md)
    assert len(table) == 2 + 2 and "reclaimable" not in table[0]
    assert "`h/down`: connection refused" in md


def test_step_summary_stays_short_with_many_problems_and_actions():
    actions = [Action("delete", f"cache-pr-{i}", dg(f"d{i}"), reason="old") for i in range(150)]
    plan = Plan(created="2026-11-01T12:00:00Z", policy=None, targets=[
        TargetPlan(target=REPO, actions=actions, errors=[f"error {i}" for i in range(40)])])
    results = [TargetResult(REPO, results=[ActionResult("delete", a.tag, a.digest, "failed", "HTTP 500")
                                           for a in actions])]
    md = step_summary(plan, results, NOW, dry_run=False)
    bullets = [line for line in md.splitlines() if line.startswith("- ")]
    assert len(bullets) == MAX_LISTED_PROBLEMS + 1 and "more (see the job log)" in bullets[-1]
    details = tables(md)[1]
    assert len(details) == 2 + MAX_DETAIL_ROWS and "… and 50 more" in md


def test_step_summary_with_nothing():
    assert "*(no targets)*" in step_summary(None, None, None, dry_run=False)
