"""Issue 19, point 7: apply derives the refs' states itself, on a last look before its deletes;
the plan's `ref_state` is informational. Against the Actions-cache stand-in (tests/support/gha_api.py)."""

from __future__ import annotations

import json

from ghcr_janitor.apply import cache_applier
from ghcr_janitor.stores.gha.store import CacheStore

TARGET = "gha:acme/app"


def _plan(cli, tmp_path) -> tuple:
    plan_file = tmp_path / "plan.json"
    assert cli("plan", TARGET, "-o", plan_file).exit_code == 0
    return plan_file, json.loads(plan_file.read_text())


def _apply(cli, plan_file) -> dict[int, dict]:
    result = cli("apply", plan_file, "--yes", "-O", "json")
    assert result.exit_code in (0, 4), result.stdout + result.stderr
    return {r["cache_id"]: r for r in json.loads(result.stdout)["targets"][0]["results"]}


def _entry_action(gha, cache_id: int, ref_state: str) -> dict:
    entry = gha.entries[cache_id]
    return {"action": "delete", "tag": None, "digest": None, "cache_id": cache_id, "key": entry["key"],
            "ref": entry["ref"], "ref_state": ref_state, "size": entry["size_in_bytes"],
            "created": entry["created_at"].replace(".000Z", "Z"), "reclaim_size": entry["size_in_bytes"],
            "rule": "edited", "reason": "by hand"}


def test_a_pull_request_reopened_after_planning_keeps_its_newest_generation_and_blobs(gha, cli, tmp_path):
    plan_file, doc = _plan(cli, tmp_path)
    pr5 = {a["cache_id"] for a in doc["targets"][0]["actions"] if a["ref"] == "refs/pull/5/merge"}
    newest = next(i for i in gha.ids_by_role["closed-pr-index-newest"] if gha.entries[i]["ref"] == "refs/pull/5/merge")
    blobs = {i for i in gha.ids_by_role["closed-pr-blob"] if gha.entries[i]["ref"] == "refs/pull/5/merge"}
    assert newest in pr5 and blobs <= pr5                  # planned while the pull request was closed
    gha.pulls[5] = "open"                                   # reopened before apply
    outcome = _apply(cli, plan_file)
    assert newest in gha.entries and blobs <= set(gha.entries)
    for kept in (newest, *blobs):
        assert outcome[kept]["status"] == "skipped"
        assert "refs/pull/5/merge is open again" in outcome[kept]["reason"]
    assert "newest index generation" in outcome[newest]["reason"]
    assert "buildkit-blob of a live ref" in outcome[min(blobs)]["reason"]
    old = set(gha.ids_by_role["closed-pr-index-old"]) & pr5      # superseded generations still go
    assert old and not old & set(gha.entries) and all(outcome[i]["reason"] == "deleted" for i in old)
    pr6 = {a["cache_id"] for a in doc["targets"][0]["actions"] if a["ref"] == "refs/pull/6/merge"}
    assert pr6 and not pr6 & set(gha.entries)              # still closed: gone


def test_a_hand_edited_closed_ref_state_cannot_delete_a_live_branchs_newest_generation(gha, cli, tmp_path):
    plan_file, doc = _plan(cli, tmp_path)
    newest = gha.ids_by_role["live-branch-index-newest"][0]
    blob = gha.ids_by_role["live-branch-blob"][0]
    main_newest = gha.ids_by_role["main-index-newest"][0]
    doc["targets"][0]["actions"][:0] = [_entry_action(gha, newest, "closed"), _entry_action(gha, blob, "deleted"),
                                         _entry_action(gha, main_newest, "closed")]
    plan_file.write_text(json.dumps(doc))
    outcome = _apply(cli, plan_file)
    assert {newest, blob, main_newest} <= set(gha.entries)
    assert outcome[newest]["status"] == outcome[blob]["status"] == outcome[main_newest]["status"] == "skipped"
    assert "refs/heads/feature/live exists (the plan said closed)" in outcome[newest]["reason"]
    assert "newest index generation" in outcome[newest]["reason"]
    assert "refs/heads/feature/live exists (the plan said deleted)" in outcome[blob]["reason"]
    assert "refs/heads/main is the default branch (the plan said closed)" in outcome[main_newest]["reason"]


def test_a_pull_request_reopened_during_a_long_apply_keeps_what_it_needs(gha, cli, tmp_path, monkeypatch):
    plan_file, doc = _plan(cli, tmp_path)
    actions = doc["targets"][0]["actions"]
    # Plan order: PR 6's entries come late; reopen it once apply has deleted 20 entries.
    pr6 = [a["cache_id"] for a in actions if a["ref"] == "refs/pull/6/merge"]
    assert [a["cache_id"] for a in actions].index(pr6[0]) > 20
    newest = next(i for i in gha.ids_by_role["closed-pr-index-newest"] if gha.entries[i]["ref"] == "refs/pull/6/merge")
    real = CacheStore.delete
    sent: list[int] = []

    async def delete(self, cache_id, **how):
        sent.append(cache_id)
        if len(sent) == 20:
            gha.pulls[6] = "open"
        return await real(self, cache_id, **how)

    monkeypatch.setattr(CacheStore, "delete", delete)
    outcome = _apply(cli, plan_file)
    assert outcome[newest]["status"] == "skipped" and "refs/pull/6/merge is open again" in outcome[newest]["reason"]
    blobs = [i for i in gha.ids_by_role["closed-pr-blob"] if i in pr6]
    assert blobs and set(blobs) <= set(gha.entries)


def test_a_delete_answered_404_is_already_gone_not_deleted_bytes(gha, cli, tmp_path):
    plan_file, doc = _plan(cli, tmp_path)
    first = doc["targets"][0]["actions"][0]["cache_id"]
    gha.vanish_on_delete.add(first)                 # another job deletes it between our look and our DELETE
    result = cli("apply", plan_file, "--yes", "-O", "json")
    target = json.loads(result.stdout)["targets"][0]
    outcome = {r["cache_id"]: r for r in target["results"]}
    assert outcome[first]["status"] == "done" and outcome[first]["reason"].startswith("already gone")
    assert outcome[first]["reclaim_size"] == 0


def test_a_rate_limit_wait_longer_than_a_look_is_good_for_sends_nothing_until_apply_looks_again(gha, cli, tmp_path,
                                                                                              fast_sleep):
    plan_file, doc = _plan(cli, tmp_path)
    first = doc["targets"][0]["actions"][0]["cache_id"]
    gha.requests.clear()
    gha.fail("DELETE", 429, {"message": "Too many requests"}, **{"retry-after": "3"})    # short: waited out
    gha.fail("DELETE", 429, {"message": "Too many requests"}, **{"retry-after": "60"})   # longer than a look lasts
    outcome = _apply(cli, plan_file)
    assert outcome[first]["reason"] == "deleted" and first not in gha.entries
    assert 3 in fast_sleep and 60 not in fast_sleep
    deletes = [p for m, p, _ in gha.requests if m == "DELETE"]
    looks = [p for _, p, _ in gha.requests if p == "/repos/acme/app"]
    assert len(looks) == -(-len(doc["targets"][0]["actions"]) // cache_applier.LOOK_EVERY) + 1
    path = f"/repos/acme/app/actions/caches/{first}"
    tries = [i for i, (m, p, _) in enumerate(gha.requests) if p == path]
    assert [gha.requests[i][2] for i in tries] == [429, 429, 204]
    assert ("GET", "/repos/acme/app", 200) in gha.requests[tries[1]:tries[2]]     # a new look before it
    assert len(deletes) == len(doc["targets"][0]["actions"]) + 2


def test_deletes_rate_limited_past_every_look_stop_the_run_for_a_rerun(gha, cli, tmp_path, fast_sleep):
    plan_file, doc = _plan(cli, tmp_path)
    for _ in range(cache_applier.LOOKS_PER_BATCH):
        gha.fail("DELETE", 429, {"message": "Too many requests"}, **{"retry-after": "60"})
    result = cli("apply", plan_file, "--yes", "-O", "json")
    assert result.exit_code == 1
    results = json.loads(result.stdout)["targets"][0]["results"]
    assert results[0]["status"] == "failed" and results[0]["reason"].startswith("budget: GitHub kept rate-limiting")
    assert all(r["reason"].startswith("not attempted: budget:") for r in results[cache_applier.LOOK_EVERY:])
    assert not [p for m, p, s in gha.requests if m == "DELETE" and s == 204]
    assert cli("apply", plan_file, "--yes").exit_code == 0                     # a rerun finishes
