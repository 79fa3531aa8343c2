"""Journal vs. reality on the Actions cache (issue 20, point 12): a journalled delete is reported
done only when a look no longer lists its id; an entry back under its id (a restore) is deleted
again; an entry the look no longer lists (evicted) is "gone", not a delete of ours."""

from __future__ import annotations

import copy
import json

TARGET = "gha:acme/app"


def results(cli, plan_file) -> tuple[dict[int, dict], int]:
    applied = cli("apply", plan_file, "--yes", "-O", "json")
    assert applied.stdout, applied.stderr
    return {r["cache_id"]: r for r in json.loads(applied.stdout)["targets"][0]["results"]}, applied.exit_code


def test_a_journalled_delete_whose_entry_is_back_is_deleted_again(gha, cli, tmp_path):
    plan_file = tmp_path / "plan.json"
    assert cli("plan", TARGET, "-o", plan_file).exit_code == 0
    planned = [a["cache_id"] for a in json.loads(plan_file.read_text())["targets"][0]["actions"]]
    backup = {i: copy.deepcopy(gha.entries[i]) for i in planned}
    first, code = results(cli, plan_file)
    assert code == 0 and {r["reason"] for r in first.values()} == {"deleted"}
    restored = planned[:3]
    for i in restored:                              # back under the same id (a restore)
        gha.entries[i] = copy.deepcopy(backup[i])
    again, code = results(cli, plan_file)
    assert code == 0
    assert {i: again[i]["reason"] for i in restored} == {i: "deleted" for i in restored}
    assert all(again[i]["reason"] == "already done (apply journal)" for i in planned if i not in restored)
    assert not set(restored) & set(gha.entries)


def test_an_entry_evicted_before_apply_is_gone_not_done(gha, cli, tmp_path):
    plan_file = tmp_path / "plan.json"
    assert cli("plan", TARGET, "-o", plan_file).exit_code == 0
    evicted = json.loads(plan_file.read_text())["targets"][0]["actions"][0]["cache_id"]
    del gha.entries[evicted]
    outcome, code = results(cli, plan_file)
    assert code == 0
    assert outcome[evicted]["status"] == "gone" and outcome[evicted]["reclaim_size"] == 0
    assert {r["status"] for i, r in outcome.items() if i != evicted} == {"done"}



def test_a_plan_edited_to_name_another_repositorys_cache_deletes_and_counts_nothing(monkeypatch, fast_sleep, cli,
                                                                                    tmp_path):
    """Not refused up front (that would cost REST budget on every apply): each delete is pinned by
    id, key, ref, size and creation time on a fresh look, which no entry of another repository
    carries; none is counted as deleted."""
    import itertools

    from tests.support.gha_api import CacheRepo, GhaServer, seed

    mine, other = CacheRepo(), CacheRepo(repo="other")
    other.ids = itertools.count(90_000)             # GitHub's cache ids are not shared between repositories
    seed(mine)
    seed(other)
    with GhaServer(mine, other) as server:
        monkeypatch.setenv("GITHUB_API_URL", server.url)
        monkeypatch.setenv("GITHUB_TOKEN", mine.token)
        plan_file = tmp_path / "plan.json"
        assert cli("plan", TARGET, "-o", plan_file).exit_code == 0
        doc = json.loads(plan_file.read_text())
        doc["targets"][0]["target"] = "gha:acme/other"
        plan_file.write_text(json.dumps(doc))
        before = dict(other.entries)
        applied = cli("apply", plan_file, "--yes", "-O", "json")
        assert applied.exit_code == 0, applied.stdout + applied.stderr
        statuses = {r["status"] for r in json.loads(applied.stdout)["targets"][0]["results"]}
        assert statuses == {"gone"}
        assert other.entries == before and not [m for m, _, _ in other.requests if m == "DELETE"]
