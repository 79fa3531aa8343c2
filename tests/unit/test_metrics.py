"""--metrics-file: Prometheus text format that prometheus_client's own parser accepts, with the right values."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import datetime, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ghcr_janitor.apply.results import ActionResult, TargetResult
from ghcr_janitor.core.models import Artifact, Inventory
from ghcr_janitor.plan.model import Action, Kept, Plan, TargetPlan
from ghcr_janitor.report.metrics import STAGES, stage_of, write_metrics

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
REPO = "localhost:5000/acme/app"


def dg(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def art(name: str, blobs: dict[str, int]) -> Artifact:
    return Artifact(digest=dg(name), media_type="application/vnd.oci.image.manifest.v1+json",
                    kind="buildkit-cache", closure={dg(name): 10} | {dg(b): s for b, s in blobs.items()},
                    created=datetime(2026, 8, 1, tzinfo=timezone.utc), age_source="buildkit/createdat")


def sample_inventory() -> Inventory:
    """cache-base + its branch variant share `os`; builder has two tags on one digest; one untagged; latest."""
    arts = [art("b", {"os": 1000, "b1": 100}), art("bx", {"os": 1000, "bx1": 50}), art("bu", {"bu1": 300}),
            art("pd", {"pd1": 7}), art("odd", {"o1": 1}), art("img", {"i1": 5000}), art("orphan", {"or1": 40})]
    tags = {"cache-base": dg("b"), "cache-base-feature-x": dg("bx"), "cache-builder": dg("bu"),
            "cache-builder-main": dg("bu"), "cache-python-deps-pr-1": dg("pd"), "cache-retired": dg("odd"),
            "latest": dg("img")}
    return Inventory(target=REPO, tags=tags, artifacts={a.digest: a for a in arts},
                     listed=sorted(t for t in tags if t.startswith("cache-")), untagged=[dg("orphan")])


def sample_plan() -> Plan:
    tp = TargetPlan(target=REPO, reclaim_size=1234, actions=[
        Action("delete", "cache-base-feature-x", dg("bx"), reclaim_size=1234, reason="older than 30d"),
        Action("untag", "cache-builder-main", dg("bu"), reason="shared"),
        Action("delete", None, dg("orphan"), reason="untagged"),
        Action("retag", "cache-base", dg("b"), to="archive-cache-base-2026q4", reason="archive"),
    ], kept=[Kept("cache-base", dg("b"), "protected")])
    return Plan(created="2026-11-01T12:00:00Z", policy="policies/seed-stages.toml", targets=[tp])


def sample_results() -> list[TargetResult]:
    return [TargetResult(REPO, results=[
        ActionResult("retag", "cache-base", dg("b"), "done", "tagged", "archive-cache-base-2026q4"),
        ActionResult("untag", "cache-builder-main", dg("bu"), "skipped", "moved since planning: now sha256:…"),
        ActionResult("delete", "cache-base-feature-x", dg("bx"), "done", "deleted", None, 1234),
        ActionResult("delete", None, dg("orphan"), "failed", "HTTP 500"),
    ])]


def samples(path) -> dict[tuple, float]:
    """(name, sorted labels) -> value, read back with prometheus_client's parser."""
    families = list(text_string_to_metric_families(path.read_text()))
    assert all(f.type == "gauge" for f in families)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def value(found, name, **labels):
    return found[(name, tuple(sorted(labels.items())))]


@pytest.mark.parametrize("tag, stage", [
    ("cache-base", "base"), ("cache-base-feature-x", "base"), ("cache-python-deps", "python-deps"),
    ("cache-python-deps-pr-12", "python-deps"), ("cache-node-deps-main", "node-deps"), ("cache-builder", "builder"),
    ("cache-builderx", "other"), ("cache-retired", "other"), ("latest", "other"), ("base", "base"),
    ("cache-", "other"), (None, "untagged"),
])
def test_stage_folds_branches_and_bounds_cardinality(tag, stage):
    assert stage_of(tag) == stage
    assert stage in STAGES


def test_inventory_plan_and_results_metrics(tmp_path):
    path = tmp_path / "janitor.prom"
    write_metrics(path, inventories=[sample_inventory()], plans=sample_plan(), results=sample_results(),
                  errors=0, now=NOW.timestamp())
    found = samples(path)
    r = {"repository": REPO}
    assert value(found, "ghcr_janitor_tags", **r, stage="base") == 2
    assert value(found, "ghcr_janitor_tags", **r, stage="builder") == 2
    assert value(found, "ghcr_janitor_tags", **r, stage="python-deps") == 1
    assert value(found, "ghcr_janitor_tags", **r, stage="other") == 1          # cache-retired; latest is not listed
    assert value(found, "ghcr_janitor_tags", **r, stage="untagged") == 1
    # bytes per stage count each blob once: the two base caches share `os`.
    assert value(found, "ghcr_janitor_bytes", **r, stage="base") == 10 + 10 + 1000 + 100 + 50
    assert value(found, "ghcr_janitor_bytes", **r, stage="builder") == 10 + 300             # one digest, two tags
    assert value(found, "ghcr_janitor_bytes", **r, stage="untagged") == 10 + 40
    assert value(found, "ghcr_janitor_repository_tags", **r) == 7
    assert value(found, "ghcr_janitor_repository_bytes", **r) == sample_inventory().total_size()
    assert value(found, "ghcr_janitor_untagged_artifacts", **r) == 1
    assert value(found, "ghcr_janitor_reclaimable_bytes", **r) == 1234
    assert value(found, "ghcr_janitor_reclaimed_bytes", **r) == 1234
    actions = {(k[1][0][1], k[1][2][1]): v for k, v in found.items() if k[0] == "ghcr_janitor_actions"}
    assert actions[("delete", "planned")] == 2 and actions[("untag", "planned")] == 1
    assert actions[("retag", "planned")] == 1
    assert actions[("delete", "done")] == 1 and actions[("delete", "failed")] == 1
    assert actions[("untag", "skipped")] == 1 and actions[("retag", "done")] == 1
    assert actions[("untag", "done")] == 0
    assert value(found, "ghcr_janitor_repository_errors", **r) == 1                  # the failed delete
    assert value(found, "ghcr_janitor_errors") == 1
    assert value(found, "ghcr_janitor_repositories") == 1
    assert value(found, "ghcr_janitor_last_run_timestamp_seconds") == NOW.timestamp()
    assert value(found, "ghcr_janitor_last_run_success") == 0
    assert value(found, "ghcr_janitor_last_success_timestamp_seconds") == 0         # never succeeded before
    stages = {dict(k[1])["stage"] for k in found if k[0] == "ghcr_janitor_tags"}
    assert stages <= set(STAGES)


def test_dry_run_has_planned_actions_and_reclaimable_but_no_outcomes(tmp_path):
    path = tmp_path / "dry.prom"
    write_metrics(path, inventories=[sample_inventory()], plans=sample_plan(), results=None, errors=0,
                  now=NOW.timestamp())
    found = samples(path)
    assert value(found, "ghcr_janitor_reclaimable_bytes", repository=REPO) == 1234
    statuses = {dict(k[1])["status"] for k in found if k[0] == "ghcr_janitor_actions"}
    assert statuses == {"planned"}
    assert not any(k[0] == "ghcr_janitor_reclaimed_bytes" for k in found)
    assert value(found, "ghcr_janitor_last_run_success") == 1
    assert value(found, "ghcr_janitor_last_success_timestamp_seconds") == NOW.timestamp()


def test_last_success_survives_a_failed_run_and_the_file_is_replaced_atomically(tmp_path):
    path = tmp_path / "textfile" / "janitor.prom"          # the directory is created
    write_metrics(path, inventories=[sample_inventory()], plans=None, results=None, errors=0, now=1000.0)
    write_metrics(path, inventories=None, plans=None, results=None, errors=2, now=2000.0)
    found = samples(path)
    assert value(found, "ghcr_janitor_errors") == 2
    assert value(found, "ghcr_janitor_last_run_timestamp_seconds") == 2000.0
    assert value(found, "ghcr_janitor_last_success_timestamp_seconds") == 1000.0
    assert value(found, "ghcr_janitor_last_run_success") == 0
    assert [p.name for p in path.parent.iterdir()] == ["janitor.prom"]    # no temp file left behind
    write_metrics(path, now=3000.0)
    assert value(samples(path), "ghcr_janitor_last_success_timestamp_seconds") == 3000.0


def test_nothing_known_still_writes_a_valid_file(tmp_path):
    path = tmp_path / "empty.prom"
    write_metrics(path, inventories=None, plans=None, results=None, errors=None)
    found = samples(path)
    assert value(found, "ghcr_janitor_repositories") == 0
    assert value(found, "ghcr_janitor_last_run_timestamp_seconds") > 1.7e9


def test_a_foreign_previous_file_is_replaced(tmp_path):
    path = tmp_path / "x.prom"
    path.write_text("this is { not prometheus\n")
    write_metrics(path, errors=1, now=5.0)
    assert value(samples(path), "ghcr_janitor_last_success_timestamp_seconds") == 0


def test_cli_start_up_does_not_import_prometheus_client_or_rich():
    code = ("import sys, ghcr_janitor.cli.app, ghcr_janitor.cli.outputs, ghcr_janitor.cli.progress, "
            "ghcr_janitor.report.markdown; print(sorted(m for m in ('prometheus_client', 'rich') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_action_already_gone_has_its_own_outcome_in_metrics_and_text(tmp_path):
    """'gone' (nothing to do: someone else removed it) is counted as itself, never as done."""
    from ghcr_janitor.report.markdown import results_markdown
    from ghcr_janitor.report.plan_view import results_table

    results = [TargetResult(REPO, [ActionResult("delete", "cache-pr-1", dg("pd"), "done", "deleted", reclaim_size=7),
                                   ActionResult("delete", "cache-pr-2", dg("bx"), "gone", "already gone")])]
    path = tmp_path / "janitor.prom"
    write_metrics(path, inventories=[sample_inventory()], plans=sample_plan(), results=results, errors=0,
                  now=NOW.timestamp())
    actions = {(k[1][0][1], k[1][2][1]): v for k, v in samples(path).items() if k[0] == "ghcr_janitor_actions"}
    assert actions[("delete", "done")] == 1 and actions[("delete", "gone")] == 1
    assert "1 done, 1 already gone, 0 skipped, 0 failed" in results_table(results)
    assert "1 done, 1 already gone, 0 skipped, 0 failed" in results_markdown(results)
