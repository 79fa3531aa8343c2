"""`gha:OWNER/REPO` end to end through the CLI, against the local stand-in for the caches REST API
(tests/support/gha_api.py): 250+ entries of every kind over a default branch, open and closed
pull requests, a live and a deleted branch."""

from __future__ import annotations

import json

import pytest

from ghcr_janitor.apply import cache_applier
from ghcr_janitor.plan.file import read_plan
from tests.support.gha_api import CacheRepo, GhaServer, seed

TARGET = "gha:acme/app"
GONE_BY_DEFAULT = ("main-index-old", "main-commit-old", "live-pr-index-old", "live-pr-commit-old",
                   "closed-pr-blob", "closed-pr-index-newest", "closed-pr-index-old", "closed-pr-commit-old",
                   "closed-pr-commit-new", "deleted-branch-blob", "deleted-branch-index-newest")


def gone_ids(state) -> set[int]:
    return {i for role in GONE_BY_DEFAULT for i in state.ids_by_role.get(role, [])}


def test_ls_lists_every_entry_with_kind_family_and_ref_state(gha, cli):
    result = cli("ls", TARGET, "-O", "json")
    assert result.exit_code == 0, result.stderr
    target = json.loads(result.stdout)["targets"][0]
    entries = {e["id"]: e for e in target["entries"]}
    assert len(entries) == len(gha.entries) >= 250 and target["tags"] == [] and target["untagged"] == []
    by_role = gha.ids_by_role
    assert {entries[i]["kind"] for i in by_role["main-blob"]} == {"buildkit-blob"}
    newest = entries[by_role["main-index-newest"][0]]
    assert (newest["kind"], newest["scope"], newest["generation"], newest["ref_state"], newest["newest"]) == \
        ("buildkit-index", "buildkit", 12, "default", True)
    assert newest["family"] == newest["key"].split("#")[0]
    commit = entries[by_role["main-commit-old"][0]]
    assert (commit["kind"], commit["family"]) == ("actions-cache", "Linux-buildx-")
    assert {entries[i]["ref_state"] for i in by_role["closed-pr-blob"]} == {"closed"}
    assert {entries[i]["ref_state"] for i in by_role["live-pr-blob"]} == {"live"}
    assert {entries[i]["ref_state"] for i in by_role["deleted-branch-blob"]} == {"deleted"}
    assert {entries[i]["ref_state"] for i in by_role["live-branch-blob"]} == {"live"}
    foreign = entries[by_role["foreign"][0]]
    assert (foreign["kind"], foreign["foreign"]) == ("actions-cache", True)
    totals = target["totals"]
    assert totals["entries"] == len(gha.entries) and totals["size"] == sum(e["size_in_bytes"] for e in gha.entries.values())
    assert totals["usage"] == totals["size"] and totals["limit"] == 10 * 1024 ** 3
    assert (totals["limit_source"], totals["retention_days"], totals["retention_source"]) == ("default", 7, "default")
    # Requests: the repository, every page, one per distinct ref outside the default branch, usage, and
    # the limits (none set here: the repository's and organisation's storage-limit, GHES's usage-policy,
    # the repository's and organisation's retention-limit all answer 404).
    methods = [m for m, _, _ in gha.requests]
    assert set(methods) == {"GET"}
    pages = [p for _, p, _ in gha.requests if "/actions/caches" in p]
    assert len(pages) == -(-len(gha.entries) // 100)
    assert len(gha.requests) == len(pages) + 1 + 1 + 6 + 1 + 5     # + the default-branch probe
    table = cli("ls", TARGET)
    assert "buildkit-index (newest)" in table.stdout and "per kind:" in table.stdout


def test_dry_run_plans_the_default_policy_and_sends_no_delete(gha, cli):
    result = cli("prune", TARGET, "--dry-run", "-O", "json")
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)["targets"][0]
    planned = {a["cache_id"] for a in plan["actions"]}
    assert planned == gone_ids(gha)
    assert all(a["digest"] is None and a["tag"] is None and a["action"] == "delete" for a in plan["actions"])
    assert all(a["key"] == gha.entries[a["cache_id"]]["key"] and a["ref"] == gha.entries[a["cache_id"]]["ref"]
               for a in plan["actions"])
    assert plan["reclaim_size"] == sum(gha.entries[i]["size_in_bytes"] for i in planned)
    assert plan["cache"]["usage_after"] == plan["cache"]["usage"] - plan["reclaim_size"]
    assert any("buildkit-blob entries of a live ref are never deleted" in n for n in plan["notes"])
    assert {m for m, _, _ in gha.requests} == {"GET"}
    table = cli("prune", TARGET, "--dry-run")
    assert "dry run:" in table.stdout and "Linux-buildx-" in table.stdout


def test_apply_deletes_exactly_the_plan_by_id_and_a_rerun_is_a_no_op(gha, cli, tmp_path):
    before = set(gha.entries)
    plan_file = tmp_path / "plan.json"
    assert cli("plan", TARGET, "-o", plan_file).exit_code == 0
    gha.requests.clear()
    applied = cli("apply", plan_file, "--yes", "-O", "json")
    assert applied.exit_code == 0, applied.stdout + applied.stderr
    assert set(gha.entries) == before - gone_ids(gha)
    deletes = [p for m, p, _ in gha.requests if m == "DELETE"]
    assert sorted(int(p.rsplit("/", 1)[1]) for p in deletes) == sorted(gone_ids(gha))
    # Bounded: a last look (the repository, a listing and a state per ref) per LOOK_EVERY deletes.
    actions = read_plan(plan_file).targets[0].actions
    assert len(gha.requests) == cache_applier.requests_needed(actions, "main")
    looks = [p for m, p, _ in gha.requests if p == "/repos/acme/app"]
    assert len(looks) == -(-len(deletes) // cache_applier.LOOK_EVERY)
    again = cli("apply", plan_file, "--yes")
    assert again.exit_code == 0 and "already done" in again.stdout


def test_entries_that_vanish_or_change_between_plan_and_apply(gha, cli, tmp_path):
    plan_file = tmp_path / "plan.json"
    assert cli("plan", TARGET, "-o", plan_file).exit_code == 0
    actions = json.loads(plan_file.read_text())["targets"][0]["actions"]
    vanished, changed, evicted = actions[0]["cache_id"], actions[1]["cache_id"], actions[2]["cache_id"]
    gha.vanish_on_delete.add(vanished)            # deleted by a concurrent job just before ours
    gha.entries[changed]["size_in_bytes"] += 1    # the id now carries other data
    del gha.entries[evicted]                      # evicted by GitHub
    result = cli("apply", plan_file, "--yes", "-O", "json")
    assert result.exit_code == 4, result.stdout + result.stderr
    outcome = {r["cache_id"]: r for r in json.loads(result.stdout)["targets"][0]["results"]}
    assert outcome[vanished]["status"] == "done"          # our DELETE met a 404: it is gone either way
    assert outcome[evicted]["status"] == "gone"           # the look no longer lists it: nothing sent, not ours
    assert outcome[changed]["status"] == "skipped" and "other data" in outcome[changed]["reason"]
    assert changed in gha.entries


class Killed(BaseException):
    """Stands in for SIGKILL."""


def test_an_interrupted_apply_completes_on_rerun(gha, cli, tmp_path, monkeypatch):
    plan_file = tmp_path / "plan.json"
    assert cli("plan", TARGET, "-o", plan_file).exit_code == 0
    real = cache_applier.CacheApplier._one
    calls = []

    async def dies(self, action, entry, *rest):
        if len(calls) == 40:
            raise Killed()
        calls.append(action.cache_id)
        return await real(self, action, entry, *rest)

    monkeypatch.setattr(cache_applier.CacheApplier, "_one", dies)
    with pytest.raises(Killed):
        cli("apply", plan_file, "--yes")
    assert len(gone_ids(gha) & set(gha.entries)) == len(gone_ids(gha)) - 40
    monkeypatch.setattr(cache_applier.CacheApplier, "_one", real)
    gha.requests.clear()
    rerun = cli("apply", plan_file, "--yes")
    assert rerun.exit_code == 0, rerun.stdout + rerun.stderr
    assert not gone_ids(gha) & set(gha.entries)
    assert len([1 for m, _, _ in gha.requests if m == "DELETE"]) == len(gone_ids(gha)) - 40   # none redone


def test_a_spent_hourly_budget_stops_cleanly_and_a_rerun_continues(gha, cli, tmp_path):
    plan_file = tmp_path / "plan.json"
    assert cli("plan", TARGET, "-o", plan_file).exit_code == 0
    gha.remaining = 3 + 10                          # the listing (3 pages) and 10 deletes, then 0 left
    stopped = cli("apply", plan_file, "--yes", "-O", "json")
    assert stopped.exit_code == 1
    results = json.loads(stopped.stdout)["targets"][0]["results"]
    statuses = [r["status"] for r in results]
    assert statuses.count("done") >= 9 and "failed" in statuses
    assert any(r["reason"].startswith("budget:") for r in results)
    assert all(r["reason"].startswith("not attempted: budget:") for r in results if r["status"] == "failed"
               and not r["reason"].startswith("budget:"))
    gha.remaining = 5000                            # the window reset
    rerun = cli("apply", plan_file, "--yes")
    assert rerun.exit_code == 0, rerun.stdout + rerun.stderr
    assert not gone_ids(gha) & set(gha.entries)


def test_missing_write_permission_and_a_fork_token_are_explained(gha, cli, tmp_path, monkeypatch):
    plan_file = tmp_path / "plan.json"
    assert cli("plan", TARGET, "-o", plan_file).exit_code == 0
    denied = {"message": "Resource not accessible by integration",
              "documentation_url": "https://docs.github.com/rest/actions/cache#delete-a-github-actions-cache-for-a-repository-using-a-cache-id"}
    gha.fail("DELETE", 403, denied)
    result = cli("apply", plan_file, "--yes")
    assert result.exit_code == 1
    assert "Actions write" in result.stderr and "permissions: actions: write" in result.stderr
    assert "not attempted" in result.stdout                 # it stopped instead of failing 200 times
    assert "delete None" not in result.stderr and result.stderr.count("error:") == 1
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"head": {"repo": {"fork": True}}}}))
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    gha.fail("DELETE", 403, denied)
    forked = cli("apply", plan_file, "--yes")
    assert forked.exit_code == 1 and "read-only" in forked.stderr and "pull_request_target" in forked.stderr


def test_listing_needs_read_and_rate_limits_are_waited_out(gha, cli, fast_sleep):
    gha.fail("GET", 429, {"message": "Too many requests"}, **{"retry-after": "7"})
    gha.fail("GET", 403, {"message": "You have exceeded a secondary rate limit."}, **{"retry-after": "11"})
    ok = cli("ls", TARGET, "-O", "json")
    assert ok.exit_code == 0, ok.stderr
    assert fast_sleep[:2] == [7, 11]
    gha.fail("GET", 403, {"message": "Resource not accessible by integration"})
    denied = cli("ls", TARGET)
    assert denied.exit_code == 1 and "Actions read" in denied.stderr
    assert gha.token not in denied.stderr + denied.stdout


def test_summaries_metrics_and_markdown_cover_the_actions_cache(gha, cli, tmp_path, monkeypatch):
    from prometheus_client.parser import text_string_to_metric_families

    summary, metrics = tmp_path / "summary.md", tmp_path / "m.prom"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = cli("prune", TARGET, "--dry-run", "--metrics-file", metrics)
    assert result.exit_code == 0, result.stderr
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(metrics.read_text()) for s in f.samples}
    usage = sum(e["size_in_bytes"] for e in gha.entries.values())
    assert samples[("ghcr_janitor_actions_cache_usage_bytes", (("repository", TARGET),))] == usage
    assert samples[("ghcr_janitor_actions_cache_limit_bytes", (("repository", TARGET),))] == 10 * 1024 ** 3
    closed = [v for (n, labels), v in samples.items() if n == "ghcr_janitor_actions_cache_bytes"
              and ("ref_state", "closed") in labels]
    assert sum(closed) == sum(gha.entries[i]["size_in_bytes"] for role in ("closed-pr-blob", "closed-pr-index-newest",
                                                                            "closed-pr-index-old", "closed-pr-commit-old",
                                                                            "closed-pr-commit-new")
                             for i in gha.ids_by_role[role])
    text = summary.read_text()
    assert TARGET in text and "cache entries" in text and "usage" in text
    markdown = cli("ls", TARGET, "-O", "markdown")
    assert markdown.exit_code == 0 and "buildkit-index" in markdown.stdout


def test_apply_re_checks_the_floor_on_a_hand_edited_plan(gha, cli, tmp_path):
    plan_file = tmp_path / "plan.json"
    assert cli("plan", TARGET, "-o", plan_file).exit_code == 0
    doc = json.loads(plan_file.read_text())
    newest = gha.ids_by_role["main-index-newest"][0]
    entry = gha.entries[newest]
    doc["targets"][0]["actions"].insert(0, {
        "action": "delete", "tag": None, "digest": None, "cache_id": newest, "key": entry["key"], "ref": entry["ref"],
        "ref_state": "default", "size": entry["size_in_bytes"], "created": entry["created_at"].replace(".000Z", "Z"),
        "reclaim_size": 2048, "rule": "edited", "reason": "by hand"})
    plan_file.write_text(json.dumps(doc))
    result = cli("apply", plan_file, "--yes", "-O", "json")
    assert result.exit_code == 4, result.stdout + result.stderr
    outcome = {r["cache_id"]: r for r in json.loads(result.stdout)["targets"][0]["results"]}
    assert outcome[newest]["status"] == "skipped" and "newest index generation" in outcome[newest]["reason"]
    assert newest in gha.entries


def test_degraded_facts_are_said_and_listings_without_link_are_complete(gha, cli, monkeypatch):
    import tests.support.gha_api as stand_in

    original = stand_in.CacheRepo._page

    def no_link(self, query, limits):
        status, body, headers = original(self, query, limits)
        headers.pop("link", None)
        return status, body, headers

    monkeypatch.setattr(stand_in.CacheRepo, "_page", no_link)
    gha.branches.discard("feature/live")
    gha.fail("GET", 500, {"message": "Server Error"})          # answered to the first lookup, retried
    gha.pulls.pop(8)                                          # a pull request the API cannot find
    result = cli("ls", TARGET, "-O", "json")
    assert result.exit_code == 0, result.stderr
    target = json.loads(result.stdout)["targets"][0]
    assert len(target["entries"]) == len(gha.entries)          # pages by number when Link is missing
    assert any("refs/pull/8/merge" in w and "treated as live" in w for w in target["warnings"])
    assert "warning:" in result.stderr


def test_an_entry_without_a_version_is_a_one_line_error_and_nothing_is_planned(gha, cli):
    del gha.entries[gha.ids_by_role["main-blob"][0]]["version"]
    result = cli("prune", TARGET, "--dry-run", "-O", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["targets"][0]["actions"] == []
    assert "version is missing" in result.stderr


def test_one_request_budget_for_the_run_stops_between_targets_and_a_rerun_finishes(cli, tmp_path, monkeypatch,
                                                                                   fast_sleep):
    first, second = CacheRepo(repo="app"), CacheRepo(repo="web")
    seed(first)
    seed(second)
    with GhaServer(first, second) as server:
        monkeypatch.setenv("GITHUB_API_URL", server.url)
        monkeypatch.setenv("GITHUB_TOKEN", first.token)
        second.token = first.token
        plan_file = tmp_path / "plan.json"
        assert cli("plan", "gha:acme/app", "gha:acme/web", "-o", plan_file).exit_code == 0
        planned = [len(t["actions"]) for t in json.loads(plan_file.read_text())["targets"]]
        first_cost = cache_applier.requests_needed(read_plan(plan_file).targets[0].actions, "main")
        server.remaining = first_cost + 40               # the first target fits, then 40 requests are left
        stopped = cli("apply", plan_file, "--yes", "-O", "json")
        assert stopped.exit_code == 4, stopped.stdout + stopped.stderr
        targets = json.loads(stopped.stdout)["targets"]
        assert {r["status"] for r in targets[0]["results"]} == {"done"}
        assert {r["status"] for r in targets[1]["results"]} == {"skipped"}
        assert "budget: 40 requests left, resets at 2100-01-01" in targets[1]["results"][0]["reason"]
        assert not [p for m, p, _ in second.requests if m == "DELETE"]      # stopped before starting it
        server.remaining, first.remaining, second.remaining = None, 5000, 5000      # the hour is over
        seen = len(first.requests)
        rerun = cli("apply", plan_file, "--yes")
        assert rerun.exit_code == 0, rerun.stdout + rerun.stderr
        assert len([p for m, p, _ in second.requests if m == "DELETE"]) == planned[1]
        assert not [p for m, p, _ in first.requests[seen:] if m == "DELETE"]         # journaled: not redone
        capped = cli("ls", "gha:acme/app", "gha:acme/web", "--max-requests", "5")
        assert capped.exit_code == 1 and "--max-requests 5 used up" in capped.stderr
