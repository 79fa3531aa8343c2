"""plan / prune / apply against the real registry: exactly what the plan says, nothing else."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import oras.client
import pytest

from ghcr_janitor.net.http import RequestLog
from tests.support.push import OCI_MANIFEST, Pusher

NOW = datetime.now(timezone.utc).replace(microsecond=0)
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def request_log(monkeypatch):
    """Every request the janitor sends in this test (method, url, status)."""
    seen: list[tuple[str, str, int]] = []
    original = RequestLog.record

    def record(self, method, url, status):
        seen.append((method, url, status))
        original(self, method, url, status)

    monkeypatch.setattr(RequestLog, "record", record)
    return seen


def seed_stages(repo: Pusher) -> dict[str, int]:
    """The seed's layout: four stage tags, branch variants of various ages, an image. Returns ages."""
    ages = {"cache-base": 2, "cache-python-deps": 3, "cache-node-deps": 1, "cache-builder": 0,
            "cache-base-feature-x": 45, "cache-python-deps-pr-12": 10, "cache-node-deps-pr-7": 90,
            "cache-builder-main": 31, "cache-builder-pr-9": 29, "cache-node-deps-old": 200}
    shared = b"shared-os-layer" * 40
    for i, (tag, days) in enumerate(sorted(ages.items())):
        form = ("manifest", "index", "docker-list")[i % 3]
        repo.buildkit_cache(tag, [shared, f"{tag}-layer".encode() * 5], NOW - timedelta(days=days), form=form)
    repo.image("latest", [b"app" * 30], NOW - timedelta(days=400))
    return ages


def oras_tags(registry, repo: Pusher) -> set[str]:
    return set(oras.client.OrasClient(hostname=registry.host, insecure=True).get_tags(f"{registry.host}/{repo.repo}"))


def run_json(cli, *args):
    result = cli(*args)
    assert result.exit_code in (0, 4), result.output
    return json.loads(result.stdout), result.exit_code


def test_dry_run_changes_nothing_and_sends_no_mutation(cli, registry, repo, request_log):
    seed_stages(repo)
    before = repo.tags()
    for policy in (None, REPO_ROOT / "policies" / "seed-stages.toml"):
        args = ["prune", f"{registry.host}/{repo.repo}", "--dry-run"] + (["--policy", str(policy)] if policy else [])
        result = cli(*args)
        assert result.exit_code == 0, result.output
        assert "dry run" in result.stdout and "delete" in result.stdout
        plan_result = cli("plan", f"{registry.host}/{repo.repo}", *(["--policy", str(policy)] if policy else []))
        assert plan_result.exit_code == 0
    assert request_log, "the request log must have seen the inventory"
    assert [r for r in request_log if r[0] not in ("GET", "HEAD")] == []
    assert repo.tags() == before


@pytest.mark.parametrize("policy", ["default.toml", "seed-stages.toml"])
def test_prune_with_shipped_policy_deletes_exactly_the_plan(cli, registry, repo, policy):
    ages = seed_stages(repo)
    before = repo.tags()
    target = f"{registry.host}/{repo.repo}"
    plan, _ = run_json(cli, "plan", target, "--policy", str(REPO_ROOT / "policies" / policy))
    actions = plan["targets"][0]["actions"]
    planned = {a["tag"] for a in actions if a["action"] == "delete"}
    # Independently: branch variants (tags with a stage prefix and a suffix) older than 30 days.
    stages = ("cache-base-", "cache-python-deps-", "cache-node-deps-", "cache-builder-")
    if policy == "default.toml":
        expected = {t for t, d in ages.items() if t.count("-") >= 2 and t not in
                    ("cache-python-deps", "cache-node-deps") and d > 30}
    else:
        expected = {t for t, d in ages.items() if t.startswith(stages) and d > 30}
    assert planned == expected
    assert all(a["digest"] == before[a["tag"]] for a in actions)

    result, code = run_json(cli, "prune", target, "--policy", str(REPO_ROOT / "policies" / policy), "--yes", "-O", "json")
    assert code == 0
    after = repo.tags()
    assert set(after) == set(before) - expected
    for tag, digest in after.items():                      # every kept tag still on its old digest
        assert before[tag] == digest
    assert oras_tags(registry, repo) == set(after)          # an independent client agrees
    gone = {r["tag"] for t in result["targets"] for r in t["results"] if r["status"] == "done"}
    assert gone == expected


def test_two_tags_one_digest_only_one_selected_is_an_untag(cli, registry, repo, tmp_path):
    digest, body = repo.buildkit_cache("cache-pr-1", [b"pr" * 10], NOW - timedelta(days=90))
    repo.manifest("cache-main", body, OCI_MANIFEST)
    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\nname = "prs"\nselect = { tags = ["cache-pr-*"] }\nolder_than = "30d"\naction = "delete"\n')
    plan, _ = run_json(cli, "plan", f"{registry.host}/{repo.repo}", "--policy", str(policy))
    [action] = plan["targets"][0]["actions"]
    assert action["action"] == "untag" and action["reclaim_size"] == 0
    result = cli("prune", f"{registry.host}/{repo.repo}", "--policy", str(policy), "--yes")
    assert result.exit_code == 0, result.output
    assert repo.tags() == {"cache-main": digest}
    # The placeholder used for the untag is gone too (registry 2.8 refuses DELETE by tag).
    listing = repo.client.get(f"{registry.url}/v2/{repo.repo}/tags/list").json()["tags"]
    assert listing == ["cache-main"]


def test_tag_moved_between_plan_and_apply_is_skipped(cli, registry, repo, tmp_path):
    repo.buildkit_cache("cache-pr-1", [b"one" * 10], NOW - timedelta(days=90))
    repo.buildkit_cache("cache-pr-2", [b"two" * 10], NOW - timedelta(days=90))
    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\nselect = { tags = ["cache-pr-*"] }\nolder_than = "30d"\naction = "delete"\n')
    plan_file = tmp_path / "plan.json"
    result = cli("plan", f"{registry.host}/{repo.repo}", "--policy", str(policy), "-o", str(plan_file))
    assert result.exit_code == 0, result.output
    moved, _ = repo.buildkit_cache("cache-pr-1", [b"fresh" * 10], NOW)        # CI re-pushed it
    result = cli("apply", str(plan_file), "--yes", "-O", "json")
    assert result.exit_code == 4, result.output
    doc = json.loads(result.stdout)
    statuses = {r["tag"]: r["status"] for r in doc["targets"][0]["results"]}
    assert statuses == {"cache-pr-1": "skipped", "cache-pr-2": "done"}
    assert repo.tags() == {"cache-pr-1": moved}


def test_retag_keeps_the_digest(cli, registry, repo, tmp_path):
    digest, _ = repo.buildkit_cache("cache-base", [b"base" * 10], datetime(2026, 5, 3, tzinfo=timezone.utc))
    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\nname = "archive"\nselect = { tags = ["cache-base"] }\naction = "retag"\n'
                      'to = "archive-{tag}-{created:%Y}q{quarter}"\n')
    result = cli("prune", f"{registry.host}/{repo.repo}", "--policy", str(policy), "--yes")
    assert result.exit_code == 0, result.output
    assert repo.tags() == {"cache-base": digest, "archive-cache-base-2026q2": digest}


def test_budget_rule_deletes_oldest_over_budget(cli, registry, repo, tmp_path):
    digests = {}
    for i in range(6):
        digests[f"cache-pr-{i}"] = repo.buildkit_cache(f"cache-pr-{i}", [bytes([65 + i]) * 1000],
                                                       NOW - timedelta(days=i))[0]
    plan, _ = run_json(cli, "ls", f"{registry.host}/{repo.repo}", "-O", "json")
    sizes = {t["tag"]: t["size"] for t in plan["targets"][0]["tags"]}
    budget = sizes["cache-pr-0"] + sizes["cache-pr-1"] + sizes["cache-pr-2"] + 10   # three fit
    policy = tmp_path / "p.toml"
    policy.write_text(f'[[rule]]\nselect = {{ tags = ["cache-*"] }}\nkeep_newest = 1\nmax_total_size = {budget}\naction = "delete"\n')
    plan, _ = run_json(cli, "plan", f"{registry.host}/{repo.repo}", "--policy", str(policy))
    target = plan["targets"][0]
    assert sorted(a["tag"] for a in target["actions"]) == ["cache-pr-3", "cache-pr-4", "cache-pr-5"]
    assert target["reclaim_size"] == sum(sizes[t] for t in ("cache-pr-3", "cache-pr-4", "cache-pr-5"))
    assert all("over budget" in a["reason"] for a in target["actions"])


def test_prune_without_yes_off_tty_refuses_before_contacting(cli, registry, repo, request_log):
    seed_stages(repo)
    before = repo.tags()
    result = cli("prune", f"{registry.host}/{repo.repo}")
    assert result.exit_code == 2
    assert "--yes" in result.stderr and "--dry-run" in result.stderr
    assert request_log == []
    assert repo.tags() == before


def test_failures_are_reported_on_stderr_and_in_json(cli, registry):
    missing = f"{registry.host}/no/such-repo"
    plan = cli("plan", missing, "-O", "json")
    assert plan.exit_code == 1
    assert "error:" in plan.stderr and "no/such-repo" in plan.stderr
    assert json.loads(plan.stdout)["targets"][0]["errors"]
    ls = cli("ls", missing, "-O", "json")
    assert ls.exit_code == 1 and "error:" in ls.stderr
    [target] = json.loads(ls.stdout)["targets"]
    assert target["target"] == missing and target["tags"] == [] and target["errors"]


def test_invalid_policy_exits_2_before_contacting(cli, tmp_path, request_log):
    policy = tmp_path / "bad.toml"
    policy.write_text('[[rule]]\nselect = { tags = ["cache-*"] }\nolder_than = "30 days"\naction = "delete"\n')
    result = cli("prune", "127.0.0.1:1/never/contacted", "--policy", str(policy), "--dry-run")
    assert result.exit_code == 2
    assert "bad.toml" in result.stderr and "older_than" in result.stderr
    assert request_log == []


def test_bad_plan_file_exits_2(cli, tmp_path):
    bad = tmp_path / "plan.json"
    bad.write_text('{"plan_version": 99, "targets": []}')
    result = cli("apply", str(bad), "--yes")
    assert result.exit_code == 2 and "plan_version" in result.stderr


def test_rerun_finishes_an_interrupted_untag(cli, registry, repo, tmp_path):
    """A crash between the placeholder PUT and its DELETE leaves the tag on our placeholder:
    the next apply recognises it and finishes the untag instead of reporting the tag moved."""
    from ghcr_janitor.stores.oci.registry import placeholder_manifest

    digest, body = repo.buildkit_cache("cache-pr-1", [b"pr" * 10], NOW - timedelta(days=90))
    repo.manifest("cache-main", body, OCI_MANIFEST)
    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\nselect = { tags = ["cache-pr-*"] }\nolder_than = "30d"\naction = "delete"\n')
    plan_file = tmp_path / "plan.json"
    assert cli("plan", f"{registry.host}/{repo.repo}", "--policy", str(policy), "-o", str(plan_file)).exit_code == 0
    repo.blob(b"{}")
    repo.manifest("cache-pr-1", placeholder_manifest("cache-pr-1"), OCI_MANIFEST)   # the interrupted state
    result = cli("apply", str(plan_file), "--yes", "-O", "json")
    assert result.exit_code == 0, result.output
    [outcome] = json.loads(result.stdout)["targets"][0]["results"]
    assert outcome["status"] == "done" and "interrupted untag" in outcome["reason"]
    assert repo.tags() == {"cache-main": digest}


def test_a_new_plan_at_the_same_path_does_not_inherit_the_old_journal(cli, registry, repo, tmp_path):
    """cron: `plan -o plan.json && apply plan.json` every day; BuildKit re-pushes identical digests."""
    digest, body = repo.buildkit_cache("cache-pr-1", [b"pr" * 10], NOW - timedelta(days=90))
    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\nselect = { tags = ["cache-pr-*"] }\nolder_than = "30d"\naction = "delete"\n')
    plan_file = tmp_path / "plan.json"
    target = f"{registry.host}/{repo.repo}"
    for day in (1, 2):
        if day == 2:
            repo.manifest("cache-pr-1", body, OCI_MANIFEST)            # the same digest again
        assert cli("plan", target, "--policy", str(policy), "-o", str(plan_file)).exit_code == 0
        result = cli("apply", str(plan_file), "--yes", "-O", "json")
        assert result.exit_code == 0, result.output
        [outcome] = json.loads(result.stdout)["targets"][0]["results"]
        assert outcome["status"] == "done" and "journal" not in outcome["reason"], day
        assert repo.tags() == {}
