"""Journal vs. reality (issue 20, point 12), against the real registry.

The apply journal is a hint, never proof: after a restore from backup the journalled actions are
carried out again. An action whose tag is already gone is "gone", not "done" (the Action's
`deleted` output does not count it). A plan edited to name another repository is refused (exit 2)
before anything is touched; a plan whose tags merely moved still applies, with skips; a plan all
of whose actions were done (nothing of its pins left) still reruns from its verified journal.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from ghcr_janitor.stores.oci.registry import OciRegistry
from tests.support.push import OCI_MANIFEST, Pusher

ROOT_POLICY = ('protect = ["cache-base"]\n[[rule]]\nname = "aliases"\nselect = { tags = ["cache-old-alias"] }\n'
               'action = "delete"\n[[rule]]\nname = "old caches"\nselect = { tags = ["cache-*"] }\n'
               'older_than = "30d"\naction = "delete"\n')
ALL_POLICY = '[[rule]]\nname = "all"\nselect = { tags = ["cache-*"] }\naction = "delete"\n'
OLD = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=60)
NEW = datetime.now(timezone.utc).replace(microsecond=0)


def seed(repo: Pusher, salt: bytes = b"") -> dict[str, bytes]:
    """cache-base (kept), an alias of it (an untag), and three stale caches (deletes)."""
    bodies = {}
    _, bodies["cache-base"] = repo.buildkit_cache("cache-base", [b"base" + salt], NEW)
    repo.manifest("cache-old-alias", bodies["cache-base"], OCI_MANIFEST)
    bodies["cache-old-alias"] = bodies["cache-base"]
    for i in range(3):
        _, bodies[f"cache-old-{i}"] = repo.buildkit_cache(f"cache-old-{i}", [b"old%d" % i + salt], OLD)
    return bodies


def make_plan(cli, tmp_path, target: str, policy: str = ROOT_POLICY):
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(policy)
    plan = tmp_path / "plan.json"
    made = cli("plan", target, "--policy", policy_file, "-o", plan)
    assert made.exit_code == 0, made.stderr
    return plan


def apply(cli, plan) -> tuple[dict, int, str]:
    result = cli("apply", plan, "--yes", "-O", "json")
    return (json.loads(result.stdout) if result.stdout.strip() else {}), result.exit_code, result.stderr


def rows(applied: dict) -> dict[str, dict]:
    return {r["tag"]: r for t in applied["targets"] for r in t["results"]}


def action_outputs(applied: dict, tmp_path) -> dict[str, str]:
    """What the GitHub Action would output for this apply (action/outputs.py)."""
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "result.json"
    path.write_text(json.dumps(applied))
    script = Path(__file__).resolve().parents[2] / "action" / "outputs.py"
    out = subprocess.run([sys.executable, str(script), str(path)], capture_output=True, text=True, check=True)
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def test_after_a_restore_from_backup_the_journalled_actions_are_carried_out_again(cli, registry, repo, tmp_path,
                                                                                  monkeypatch):
    bodies = seed(repo)
    plan = make_plan(cli, tmp_path, f"{registry.host}/{repo.repo}")
    before = repo.tags()
    first, code, err = apply(cli, plan)
    assert code == 0, err
    assert set(repo.tags()) == {"cache-base"}

    # The registry is restored from a backup: every tag back on its digest.
    for tag, body in bodies.items():
        repo.manifest(tag, body, OCI_MANIFEST)
    assert repo.tags() == before

    again, code, err = apply(cli, plan)
    assert code == 0, err
    outcome = rows(again)
    assert {t: r["status"] for t, r in outcome.items()} == {t: "done" for t in before if t != "cache-base"}
    assert not any("journal" in r["reason"] for r in outcome.values()), outcome
    assert outcome["cache-old-0"]["reason"] == "deleted" and outcome["cache-old-alias"]["reason"].startswith("untagged")
    assert set(repo.tags()) == {"cache-base"}

    # A third run: now the journal is right, and the store confirms it, cheaply: one HEAD per
    # journalled tag (no last look; no pin check either: this plan's journal names this target).
    sent: list[tuple[str, str]] = []
    real = OciRegistry._send

    async def counting(self, method, url, **kwargs):
        sent.append((method, str(url).rsplit("/v2/", 1)[1]))
        return await real(self, method, url, **kwargs)

    monkeypatch.setattr(OciRegistry, "_send", counting)
    third, code, err = apply(cli, plan)
    assert code == 0, err
    assert all(r["status"] == "done" and r["reason"] == "already done (apply journal)" for r in rows(third).values())
    assert sorted(sent) == sorted(("HEAD", f"{repo.repo}/manifests/{t}") for t in rows(third)), sent


def test_a_tag_pushed_back_after_apply_is_redone_the_others_are_journalled(cli, registry, repo, tmp_path):
    bodies = seed(repo)
    plan = make_plan(cli, tmp_path, f"{registry.host}/{repo.repo}")
    assert apply(cli, plan)[1] == 0
    repo.manifest("cache-old-1", bodies["cache-old-1"], OCI_MANIFEST)      # one tag restored
    again, code, err = apply(cli, plan)
    assert code == 0, err
    outcome = rows(again)
    assert outcome["cache-old-1"]["reason"] == "deleted"
    assert {t for t, r in outcome.items() if r["reason"] == "already done (apply journal)"} == {
        "cache-old-0", "cache-old-2", "cache-old-alias"}
    assert set(repo.tags()) == {"cache-base"}


def test_a_tag_already_gone_is_gone_not_done_and_not_counted(cli, registry, repo, tmp_path):
    seed(repo)
    plan = make_plan(cli, tmp_path, f"{registry.host}/{repo.repo}")
    digest = repo.tags()["cache-old-2"]
    repo.client.delete(f"{repo.base}/v2/{repo.repo}/manifests/{digest}")    # another job deleted it
    applied, code, err = apply(cli, plan)
    assert code == 0, err
    outcome = rows(applied)
    assert outcome["cache-old-2"]["status"] == "gone"
    assert outcome["cache-old-2"]["reason"].startswith("already gone") and outcome["cache-old-2"]["reclaim_size"] == 0
    assert [outcome[t]["status"] for t in ("cache-old-0", "cache-old-1", "cache-old-alias")] == ["done"] * 3
    assert action_outputs(applied, tmp_path)["deleted"] == "2"      # not 3: cache-old-2 was not ours
    assert action_outputs(applied, tmp_path)["untagged"] == "1"
    table = cli("apply", plan, "--yes")
    assert table.exit_code == 0


def test_a_plan_edited_to_name_another_repository_is_refused(cli, registry, repo, tmp_path):
    seed(repo)
    other = Pusher(registry.url, f"{repo.repo}-other")
    seed(other, salt=b"-other")
    plan = make_plan(cli, tmp_path, f"{registry.host}/{repo.repo}")
    doc = json.loads(plan.read_text())
    pins = len(doc["targets"][0]["kept"]) + len(doc["targets"][0]["actions"])
    doc["targets"][0]["target"] = f"{registry.host}/{other.repo}"
    plan.write_text(json.dumps(doc))
    other_before, mine_before = other.tags(), repo.tags()

    result = cli("apply", plan, "--yes", "-O", "json")
    assert result.exit_code == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"{plan}: target {registry.host}/{other.repo} matches none of the plan's {pins} pinned tags" in lines[0]
    assert "planned for another target?" in lines[0]
    assert other.tags() == other_before and repo.tags() == mine_before
    journal = plan.with_name(plan.name + ".journal")
    assert not journal.exists() or "done" not in journal.read_text()


def test_one_foreign_target_refuses_the_whole_plan_before_any_target_is_touched(cli, registry, repo, tmp_path):
    seed(repo)
    other = Pusher(registry.url, f"{repo.repo}-b")
    seed(other, salt=b"-b")
    third = Pusher(registry.url, f"{repo.repo}-c")
    seed(third, salt=b"-c")
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(ROOT_POLICY)
    plan = tmp_path / "plan.json"
    made = cli("plan", f"{registry.host}/{repo.repo}", f"{registry.host}/{other.repo}", "--policy", policy_file,
               "-o", plan)
    assert made.exit_code == 0, made.stderr
    doc = json.loads(plan.read_text())
    doc["targets"].sort(key=lambda t: t["target"])
    doc["targets"][1]["target"] = f"{registry.host}/{third.repo}"      # the second target: another repo
    plan.write_text(json.dumps(doc))
    mine, thirds = repo.tags(), third.tags()
    result = cli("apply", plan, "--yes")
    assert result.exit_code == 2, result.stdout + result.stderr
    assert f"target {registry.host}/{third.repo} matches none" in result.stderr
    assert repo.tags() == mine and third.tags() == thirds           # the first (matching) target untouched too


def test_a_plan_whose_tags_all_moved_still_applies_with_skips(cli, registry, repo, tmp_path):
    seed(repo)
    plan = make_plan(cli, tmp_path, f"{registry.host}/{repo.repo}")
    for tag in list(repo.tags()):                    # CI re-pushed every tag (old digests stay, untagged)
        repo.buildkit_cache(tag, [b"rebuilt-" + tag.encode()], NEW)
    moved = repo.tags()
    applied, code, err = apply(cli, plan)
    assert code == 4, err
    assert {r["status"] for r in rows(applied).values()} == {"skipped"}
    assert repo.tags() == moved


def test_a_plan_for_a_repository_that_does_not_exist_is_refused(cli, registry, repo, tmp_path):
    seed(repo)
    plan = make_plan(cli, tmp_path, f"{registry.host}/{repo.repo}")
    doc = json.loads(plan.read_text())
    doc["targets"][0]["target"] = f"{registry.host}/{repo.repo}-missing"
    plan.write_text(json.dumps(doc))
    result = cli("apply", plan, "--yes")
    assert result.exit_code == 2 and "matches none of the plan's" in result.stderr, result.stderr


def test_a_finished_plan_with_nothing_left_of_its_pins_reruns_from_its_checked_journal(cli, registry, repo, tmp_path):
    """Every pin of this plan is gone (it deleted everything): its own journal, checked, says done."""
    for i in range(3):
        repo.buildkit_cache(f"cache-x{i}", [b"x%d" % i], OLD)
    plan = make_plan(cli, tmp_path, f"{registry.host}/{repo.repo}", ALL_POLICY)
    assert json.loads(plan.read_text())["targets"][0]["kept"] == []
    first, code, err = apply(cli, plan)
    assert code == 0, err
    assert repo.tags() == {}
    again, code, err = apply(cli, plan)
    assert code == 0, err
    assert {r["reason"] for r in rows(again).values()} == {"already done (apply journal)"}

    # Without the journal, the same plan now matches nothing in the repository: refused.
    plan.with_name(plan.name + ".journal").unlink()
    result = cli("apply", plan, "--yes")
    assert result.exit_code == 2 and "matches none" in result.stderr, result.stdout + result.stderr


@pytest.mark.parametrize("gone", [False, True], ids=["present", "deleted-meanwhile"])
def test_a_plan_of_one_target_with_an_untagged_pin_only_checks_the_digest(cli, registry, repo, tmp_path, gone):
    """A hand-made plan whose only pin is an untagged digest: found (applied) or not (refused)."""
    repo.image("latest", [b"tagged"], NEW)              # not pinned: the repository has a tag list
    digest, _ = repo.image(None, [b"orphan"], OLD)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({
        "plan_version": 1, "created": "2026-12-01T00:00:00Z", "policy": None,
        "targets": [{"target": f"{registry.host}/{repo.repo}", "reclaim_size": 0, "kept": [],
                     "actions": [{"action": "delete", "tag": None, "digest": digest, "reclaim_size": 0,
                                  "rule": "by hand", "reason": "an orphan"}]}]}))
    if not gone:
        result = cli("apply", plan, "--yes", "-O", "json")
        assert result.exit_code == 0, result.stderr
        assert rows(json.loads(result.stdout))[None]["reason"] == "deleted"
    else:
        repo.client.delete(f"{repo.base}/v2/{repo.repo}/manifests/{digest}")
        result = cli("apply", plan, "--yes")
        assert result.exit_code == 2 and "matches none of the plan's 1 pinned digests" in result.stderr, result.stderr


def test_two_deleted_tags_on_one_digest_are_both_done_not_gone(cli, registry, repo, tmp_path):
    """The first delete removes the digest with both tags: the second tag is gone by our hand."""
    _, body = repo.buildkit_cache("cache-a", [b"shared"], OLD)
    repo.manifest("cache-b", body, OCI_MANIFEST)
    plan = make_plan(cli, tmp_path, f"{registry.host}/{repo.repo}", ALL_POLICY)
    assert [a["action"] for a in json.loads(plan.read_text())["targets"][0]["actions"]] == ["delete", "delete"]
    applied, code, err = apply(cli, plan)
    assert code == 0, err
    outcome = rows(applied)
    assert outcome["cache-a"]["reason"] == "deleted" and outcome["cache-b"]["status"] == "done", outcome
    assert repo.tags() == {}


def test_a_local_cache_dir_restored_from_backup_is_cleaned_again_and_another_dir_is_refused(cli, layout, tmp_path):
    import shutil

    policy_file = tmp_path / "policy.toml"
    policy_file.write_text('[[rule]]\nname = "pr caches"\nselect = { tags = ["cache-*-pr-*", "cache-*-feature-*"] }\n'
                           'action = "delete"\n')
    plan = tmp_path / "plan.json"
    assert cli("plan", f"oci-layout:{layout}", "--policy", policy_file, "-o", plan).exit_code == 0
    planned = {a["tag"] for a in json.loads(plan.read_text())["targets"][0]["actions"]}
    assert planned
    backup = (layout / "index.json").read_bytes()
    first, code, err = apply(cli, plan)
    assert code == 0, err
    (layout / "index.json").write_bytes(backup)            # restored (apply leaves blobs to `janitor gc`)
    again, code, err = apply(cli, plan)
    assert code == 0, err
    assert {t: r["reason"] for t, r in rows(again).items()} == {t: "deleted" for t in planned}

    other = tmp_path / "other-cache"
    shutil.copytree(layout, other)
    (other / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": []}))   # nothing of the plan
    doc = json.loads(plan.read_text())
    doc["targets"][0]["target"] = f"oci-layout:{other}"
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(doc))
    result = cli("apply", edited, "--yes")
    assert result.exit_code == 2 and "planned for another target?" in result.stderr, result.stdout + result.stderr
