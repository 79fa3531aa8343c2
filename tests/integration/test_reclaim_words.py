"""Issue 20 point 9 end to end: a real registry and the Actions-cache stand-in, through the CLI.

On a Distribution registry the figure is what no tag references any more (its GC frees it, less
what other repositories or untagged manifests share): plan and apply say so and apply no longer
says "reclaimed". On the Actions cache, deleting frees at once, and its words say that instead.
"""

from __future__ import annotations

import html
import json
from datetime import datetime, timedelta, timezone

from ghcr_janitor.stores.gha.store import CacheStore
from ghcr_janitor.stores.oci.registry import OciRegistry


def flat(text: str) -> str:
    return " ".join(text.split())


def test_a_registry_plan_and_apply_say_what_their_figure_is(cli, registry, repo, tmp_path, monkeypatch):
    now = datetime.now(timezone.utc)
    repo.buildkit_cache("cache-base", [b"base" * 4000], now)
    repo.buildkit_cache("cache-base-pr-1", [b"base" * 4000, b"pr-1 only" * 5000], now - timedelta(days=60))
    target = f"{registry.host}/{repo.repo}"
    note = OciRegistry.reclaim_note

    plan = cli("plan", target, "-O", "json")
    assert plan.exit_code == 0, plan.stderr
    assert json.loads(plan.stdout)["targets"][0]["reclaim_note"] == note
    table = cli("prune", target, "--dry-run")
    assert table.exit_code == 0 and "would reclaim" in table.stdout and note in flat(table.stdout)
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    metrics = tmp_path / "m.prom"
    applied = cli("prune", target, "--yes", "--metrics-file", metrics)
    assert applied.exit_code == 0, applied.stderr
    last = applied.stdout.strip().splitlines()[-1]
    assert "1 done" in last and note in last and "reclaimed" not in last
    assert note in flat(summary.read_text())
    help_lines = [line for line in metrics.read_text().splitlines() if line.startswith("# HELP ghcr_janitor_reclaim")]
    assert len(help_lines) == 2 and all(note in line for line in help_lines)


def test_the_actions_cache_says_its_figure_is_freed_at_once(cli, gha, tmp_path):
    target = "gha:acme/app"
    plan = cli("plan", target, "-O", "json")
    assert plan.exit_code == 0, plan.stderr
    assert json.loads(plan.stdout)["targets"][0]["reclaim_note"] == CacheStore.reclaim_note
    out = tmp_path / "r.html"
    assert cli("report", target, "-o", out).exit_code == 0
    assert CacheStore.reclaim_note in flat(html.unescape(out.read_text()))
