"""Issue 20 point 9: a reclaim figure says what it is, in the store's own words, in every output.

The sentence is an attribute of the store class (`reclaim_note`), carried by the inventory and the
plan; these tests give a store a sentence of its own and find exactly it in the plan (table,
Markdown, JSON), the apply output (table, Markdown, JSON), the step summary, the metrics' HELP and
the HTML report: nothing above stores/ writes its own version or picks one by store kind.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ghcr_janitor.apply.results import ActionResult, TargetResult
from ghcr_janitor.inventory.gather import InventoryOptions, build_inventory
from ghcr_janitor.plan.model import new_plan
from ghcr_janitor.plan.planner import plan_inventory
from ghcr_janitor.policy.loader import load_default_policy
from ghcr_janitor.stores.base import Registry
from ghcr_janitor.stores.layout.registry import LayoutRegistry

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
SENTENCE = "what a test store says about its reclaim figure, and nothing else does"


class SayingLayout(LayoutRegistry):
    """A layout store with a sentence of its own (same kind, so no kind switch can find it)."""

    reclaim_note = SENTENCE


@pytest.fixture
def cache_dir(layout) -> Path:
    """The example BuildKit cache dir (conftest's `layout`)."""
    return layout


def _inventory(store):
    return asyncio.run(build_inventory(store, f"oci-layout:{store.name}", InventoryOptions(now=NOW, all_tags=True)))


def test_every_store_states_its_reclaim_figure_and_the_protocol_has_a_default():
    from ghcr_janitor.stores.gha.store import CacheStore
    from ghcr_janitor.stores.ghcr.registry import GhcrRegistry
    from ghcr_janitor.stores.oci.registry import OciRegistry

    notes = {cls.__name__: cls.reclaim_note for cls in (OciRegistry, GhcrRegistry, LayoutRegistry, CacheStore)}
    assert all(notes.values()) and len(set(notes.values())) == 4, notes
    assert "garbage" in notes["OciRegistry"] and "other repositories" in notes["OciRegistry"]
    assert "untagged" in notes["OciRegistry"]
    assert "janitor gc" in notes["LayoutRegistry"]
    assert "as soon as the entries are deleted" in notes["CacheStore"]
    assert "no size per version" in notes["GhcrRegistry"]
    assert Registry.reclaim_note            # a store that says nothing more still says what the figure counts


def test_the_inventory_and_the_plan_carry_the_stores_sentence(cache_dir):
    inv = _inventory(SayingLayout(cache_dir))
    assert inv.reclaim_note == SENTENCE
    assert _inventory(LayoutRegistry(cache_dir)).reclaim_note == LayoutRegistry.reclaim_note
    tp = plan_inventory(inv, load_default_policy(), NOW)
    assert tp.reclaim_note == SENTENCE and tp.reclaim_size > 0
    assert new_plan("default", [tp], NOW).to_dict()["targets"][0]["reclaim_note"] == SENTENCE


def test_the_sentence_is_in_every_output_after_a_plan_and_an_apply(cache_dir, tmp_path):
    from ghcr_janitor.report import html
    from ghcr_janitor.report.markdown import plan_markdown, results_markdown, step_summary
    from ghcr_janitor.report.metrics import build_registry
    from ghcr_janitor.report.plan_view import plan_table, reclaim_notes, results_document, results_table

    inv = _inventory(SayingLayout(cache_dir))
    tp = plan_inventory(inv, load_default_policy(), NOW)
    plan = new_plan("default", [tp], NOW)
    done = TargetResult(tp.target, [ActionResult(a.action, a.tag, a.digest, "done", "deleted",
                                                 reclaim_size=a.reclaim_size) for a in tp.actions])
    notes = reclaim_notes(plan)
    assert notes == {tp.target: SENTENCE}

    def flat(text: str) -> str:
        return " ".join(text.split())

    assert SENTENCE in plan_table(plan, NOW, dry_run=True)
    assert SENTENCE in plan_markdown(plan, NOW, dry_run=True)
    applied = results_table([done], notes)
    assert SENTENCE in applied and "reclaimed" not in applied     # after an apply: the figure and what it is
    assert SENTENCE in results_markdown([done], notes)
    assert results_document([done], 0, notes)["targets"][0]["reclaim_note"] == SENTENCE
    for summary in (step_summary(plan, None, NOW, True, inventories=[inv]), step_summary(plan, [done], NOW, False)):
        assert SENTENCE in flat(summary)
    from prometheus_client.exposition import generate_latest

    metrics = generate_latest(build_registry([inv], plan, [done], now=0.0)).decode()
    helps = [line for line in metrics.splitlines() if line.startswith(("# HELP ghcr_janitor_reclaim"))]
    assert len(helps) == 2 and all(SENTENCE in line for line in helps), helps
    page = html.render([html.target_report(inv, tp, [], NOW)], NOW, "default", [])
    assert SENTENCE in flat(page)


def test_a_run_over_two_stores_says_each_sentence_with_its_repositories():
    from ghcr_janitor.report.markdown import step_summary
    from ghcr_janitor.report.metrics import reclaim_help
    from ghcr_janitor.plan.model import TargetPlan

    plan = new_plan("default", [TargetPlan("a", reclaim_note="first store's words"),
                                TargetPlan("b", reclaim_note="second store's words")], NOW)
    text = step_summary(plan, None, NOW, True)
    assert "- `a`: first store's words" in text and "- `b`: second store's words" in text
    help_text = reclaim_help({"a": "first store's words", "b": "second store's words", "c": "first store's words"})
    assert help_text == "; a, c: first store's words; b: second store's words" and "\n" not in help_text


def test_a_sentence_the_store_gave_at_apply_time_wins_over_the_plan_files():
    """A plan file is a request: where apply's result carries the store's sentence, that is shown."""
    from ghcr_janitor.plan.model import TargetPlan
    from ghcr_janitor.report.plan_view import reclaim_notes

    plan = new_plan("default", [TargetPlan("a", reclaim_note="edited into the plan file")], NOW)
    result = TargetResult("a")
    result.reclaim_note = SENTENCE          # as apply sets it from the store it opened
    assert reclaim_notes(plan, None, [result]) == {"a": SENTENCE}
    assert reclaim_notes(plan, None, [TargetResult("a")]) == {"a": "edited into the plan file"}
