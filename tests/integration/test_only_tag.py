"""`REPO:TAG` on ls / plan / prune / report restricts the run to that one tag (issue 20, point 7);
`@DIGEST` there is a usage error. Against the real registry."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.integration.test_prune import NOW, REPO_ROOT, request_log, run_json, seed_stages  # noqa: F401 (fixture)
from tests.support.push import OCI_MANIFEST

SEED_POLICY = str(REPO_ROOT / "policies" / "seed-stages.toml")


def _only_line(stderr: str, target: str, tag: str) -> None:
    assert f"{target}: only tag {tag}" in stderr.splitlines()


def test_ls_with_tag_lists_that_tag_only_with_the_whole_repository_sizes(cli, registry, repo):
    seed_stages(repo)
    target = f"{registry.host}/{repo.repo}"
    whole, _ = run_json(cli, "ls", target, "-O", "json")
    by_tag = {t["tag"]: t for t in whole["targets"][0]["tags"]}
    result = cli("ls", f"{target}:cache-builder-pr-9", "-O", "json")
    assert result.exit_code == 0, result.output
    _only_line(result.stderr, f"{target}:cache-builder-pr-9", "cache-builder-pr-9")
    [entry] = json.loads(result.stdout)["targets"]
    assert entry["target"] == target and entry["only_tag"] == "cache-builder-pr-9"
    assert entry["tags"] == [by_tag["cache-builder-pr-9"]]          # unique_size as in the whole listing
    assert entry["untagged"] == [] and entry["totals"]["tags"] == 1
    assert entry["totals"]["repository_tags"] == whole["targets"][0]["totals"]["repository_tags"]
    assert whole["targets"][0]["only_tag"] is None
    # The tag is matched literally, whatever --tag says: `latest` is outside the default cache-*.
    result = cli("ls", f"{target}:latest", "-O", "json", "--tag", "nothing-*")
    assert result.exit_code == 0, result.output
    assert [t["tag"] for t in json.loads(result.stdout)["targets"][0]["tags"]] == ["latest"]
    # The table too lists the one tag.
    table = cli("ls", f"{target}:cache-builder-pr-9")
    assert table.exit_code == 0 and "cache-builder-pr-9" in table.stdout and "cache-base " not in table.stdout


def test_ls_and_plan_of_a_tag_the_repository_lacks_is_an_error(cli, registry, repo):
    seed_stages(repo)
    target = f"{registry.host}/{repo.repo}:cache-nope"
    for command in ("ls", "plan"):
        result = cli(command, target)
        assert result.exit_code == 1, result.output
        error = f"error: {registry.host}/{repo.repo}: no tag 'cache-nope' in this repository"
        assert error in result.stderr, result.output
        if command == "ls":                     # the table on stdout, the error on stderr only
            assert "no tag" not in result.stdout, result.stdout


def test_plan_with_tag_holds_only_that_tags_actions(cli, registry, repo):
    seed_stages(repo)
    target = f"{registry.host}/{repo.repo}"
    whole, _ = run_json(cli, "plan", target, "--policy", SEED_POLICY)
    assert len(whole["targets"][0]["actions"]) > 1           # the whole plan does more
    assert whole["targets"][0]["only_tag"] is None
    result = cli("plan", f"{target}:cache-node-deps-pr-7", "--policy", SEED_POLICY)
    assert result.exit_code == 0, result.output
    _only_line(result.stderr, f"{target}:cache-node-deps-pr-7", "cache-node-deps-pr-7")
    [tp] = json.loads(result.stdout)["targets"]
    assert tp["target"] == target and tp["only_tag"] == "cache-node-deps-pr-7"
    [action] = tp["actions"]
    assert (action["action"], action["tag"]) == ("delete", "cache-node-deps-pr-7")
    assert tp["reclaim_size"] == action["reclaim_size"] > 0
    assert {k["tag"] for k in tp["kept"]} <= {"cache-node-deps-pr-7"}
    # A tag the policy keeps: no action, its kept entry says why.
    result = cli("plan", f"{target}:cache-base", "--policy", SEED_POLICY)
    [tp] = json.loads(result.stdout)["targets"]
    assert tp["actions"] == [] and tp["reclaim_size"] == 0
    assert [(k["tag"], k["reason"]) for k in tp["kept"]] == [("cache-base", "protected by 'cache-base'")]


def test_prune_with_tag_changes_that_tag_only(cli, registry, repo, request_log):
    seed_stages(repo)
    before = repo.tags()
    target = f"{registry.host}/{repo.repo}"
    result = cli("prune", f"{target}:cache-builder-main", "--policy", SEED_POLICY, "--yes", "-O", "json")
    assert result.exit_code == 0, result.output
    _only_line(result.stderr, f"{target}:cache-builder-main", "cache-builder-main")
    after = repo.tags()
    assert after == {t: d for t, d in before.items() if t != "cache-builder-main"}
    deletes = [url for method, url, _ in request_log if method == "DELETE"]
    assert deletes == [f"{registry.url}/v2/{repo.repo}/manifests/{before['cache-builder-main']}"]


def test_prune_with_tag_whose_digest_another_deleted_tag_shares_only_untags(cli, registry, repo, tmp_path):
    """Both tags would go in a whole run (one delete of the digest); restricted to one, the other
    tag stays, so the digest stays: the run untags, and reclaims nothing."""
    digest, body = repo.buildkit_cache("cache-pr-1", [b"pr" * 10], NOW - timedelta(days=90))
    repo.manifest("cache-pr-1-copy", body, OCI_MANIFEST)
    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\nname = "prs"\nselect = { tags = ["cache-pr-*"] }\nolder_than = "30d"\naction = "delete"\n')
    target = f"{registry.host}/{repo.repo}"
    whole, _ = run_json(cli, "plan", target, "--policy", str(policy))
    assert {a["action"] for a in whole["targets"][0]["actions"]} == {"delete"}
    restricted, _ = run_json(cli, "plan", f"{target}:cache-pr-1", "--policy", str(policy))
    [action] = restricted["targets"][0]["actions"]
    assert (action["action"], action["tag"], action["reclaim_size"]) == ("untag", "cache-pr-1", 0)
    assert restricted["targets"][0]["reclaim_size"] == 0
    result = cli("prune", f"{target}:cache-pr-1", "--policy", str(policy), "--yes")
    assert result.exit_code == 0, result.output
    assert repo.tags() == {"cache-pr-1-copy": digest}


def test_apply_of_a_restricted_plan_stays_restricted(cli, registry, repo, tmp_path):
    seed_stages(repo)
    before = repo.tags()
    target = f"{registry.host}/{repo.repo}"
    plan_file = tmp_path / "plan.json"
    result = cli("plan", f"{target}:cache-node-deps-old", "--policy", SEED_POLICY, "-o", str(plan_file))
    assert result.exit_code == 0, result.output
    assert json.loads(plan_file.read_text())["targets"][0]["only_tag"] == "cache-node-deps-old"
    result = cli("apply", str(plan_file), "--yes")
    assert result.exit_code == 0, result.output
    assert repo.tags() == {t: d for t, d in before.items() if t != "cache-node-deps-old"}


@pytest.mark.parametrize("command", ["ls", "plan", "prune", "report"])
def test_digest_target_is_a_usage_error_before_anything_is_contacted(cli, registry, repo, request_log, command, tmp_path):
    digest, _ = repo.buildkit_cache("cache-a", [b"a" * 10], NOW)
    extra = {"prune": ["--yes"], "report": ["-o", str(tmp_path / "r.html")]}.get(command, [])
    result = cli(command, f"{registry.host}/{repo.repo}@{digest}", *extra)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "@DIGEST names one artifact, for `janitor inspect`" in lines[0]
    assert request_log == []
    assert result.stdout == ""


@pytest.mark.parametrize("text, words", [
    ("127.0.0.1:5000/team/*:cache-x", "a glob target takes no :TAG"),
    ("gha:acme/app:cache-x", "a gha: target takes no :TAG"),
])
def test_tag_on_a_glob_or_an_actions_cache_target_is_a_usage_error(cli, text, words):
    result = cli("plan", text)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr


def test_inspect_still_takes_tag_and_digest(cli, registry, repo):
    digest, _ = repo.buildkit_cache("cache-a", [b"a" * 10], NOW)
    for ref in (":cache-a", f"@{digest}"):
        result = cli("inspect", f"{registry.host}/{repo.repo}{ref}", "-O", "json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["digest"] == digest


def _layout_tags(path) -> set[str]:
    index = json.loads((path / "index.json").read_text())
    return {m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]}


def test_an_oci_layout_tag_restricts_the_run_too(cli, layout):
    before = _layout_tags(layout)
    whole, _ = run_json(cli, "plan", f"oci-layout:{layout}")
    deleted = sorted(a["tag"] for a in whole["targets"][0]["actions"])
    assert len(deleted) > 1
    result = cli("prune", f"oci-layout:{layout}:{deleted[0]}", "--yes", "-O", "json")
    assert result.exit_code == 0, result.output
    assert f"oci-layout:{layout}:{deleted[0]}: only tag {deleted[0]}" in result.stderr
    assert _layout_tags(layout) == before - {deleted[0]}
