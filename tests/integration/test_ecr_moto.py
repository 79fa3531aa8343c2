"""ECR end to end through the CLI against moto's ECR server (a real emulator of the ECR API, started here
on 127.0.0.1; AWS_ENDPOINT_URL_ECR points the janitor at it): ls, plan, prune --dry-run, prune --yes,
apply, a multi-arch index with its children, the untag of a shared digest."""

from __future__ import annotations

import json

import pytest

from tests.support.ecr_moto import HOST, MotoEcr, aws_env, cache_manifest, image_manifest, index

POLICY = """
protect = ["cache-base"]
[[rule]]
name = "branch caches"
select = { tags = ["cache-*-*"] }
action = "delete"
[[rule]]
name = "old releases"
select = { tags = ["old-*"] }
action = "delete"
[[rule]]
name = "untagged"
select = { untagged = true }
action = "delete"
"""


@pytest.fixture(scope="module")
def moto():
    server = MotoEcr()
    try:
        yield server
    finally:
        server.stop()


_names = iter(range(10_000))


@pytest.fixture
def ecr(moto, monkeypatch, tmp_path):
    aws_env(monkeypatch, moto.url, tmp_path)
    repo = moto.repository(f"team/app{next(_names)}")
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    return repo, policy


def _seed(repo):
    shared_layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": "sha256:" + "5" * 64, "size": 5000}
    base = cache_manifest("base", shared=[shared_layer])
    branch = cache_manifest("branch", shared=[shared_layer])
    amd, arm = image_manifest("amd"), image_manifest("arm")
    multi = index([(amd, "amd64"), (arm, "arm64")])
    digests = {
        "base": repo.put(base, "cache-base"),
        "branch": repo.put(branch, "cache-main-feature"),
        "stale": repo.put(cache_manifest("stale")),                 # an overwritten cache: untagged
        "amd": repo.put(amd), "arm": repo.put(arm),                 # index children: untagged in ECR
    }
    digests["multi"] = repo.put(multi, "old-release")
    shared = cache_manifest("shared")
    digests["shared"] = repo.put(shared, "cache-pr-fix")
    repo.put(shared, "keep-me")                                     # the same digest under a kept tag
    return digests


def _json(result) -> dict:
    assert result.exit_code in (0, 4), result.stdout + result.stderr
    return json.loads(result.stdout)


def test_ls_lists_tags_untagged_roots_and_sizes_from_the_manifests(cli, ecr):
    repo, _ = ecr
    d = _seed(repo)
    doc = _json(cli("ls", f"{HOST}/{repo.name}", "--all-tags", "--output", "json"))
    (target,) = doc["targets"]
    assert target["backend"] == "ecr"
    tags = {t["tag"]: t for t in target["tags"]}
    assert set(tags) == {"cache-base", "cache-main-feature", "old-release", "cache-pr-fix", "keep-me"}
    assert tags["old-release"]["kind"] == "image-index" and tags["old-release"]["digest"] == d["multi"]
    assert tags["cache-base"]["kind"] == "buildkit-cache"
    assert all(t["age_source"] == "ecr/pushed" and t["created"] for t in tags.values())
    # The index counts its own manifest, both children and all their blobs (ECR's imageSizeInBytes
    # would say the largest child); the shared layer is not unique to either cache.
    children = image_manifest("amd"), image_manifest("arm")
    blobs = sum(c["config"]["size"] + sum(layer["size"] for layer in c["layers"]) for c in children)
    manifests = sum(len(json.dumps(c, separators=(",", ":"))) for c in children)
    assert tags["old-release"]["size"] == blobs + manifests + len(json.dumps(index(
        [(children[0], "amd64"), (children[1], "arm64")]), separators=(",", ":")))
    assert tags["cache-base"]["unique_size"] == tags["cache-base"]["size"] - 5000
    untagged = {u["digest"] for u in target["untagged"]}
    assert untagged == {d["stale"]}                    # index children follow their index


def test_prune_dry_run_changes_nothing_and_yes_deletes_untags_and_keeps(cli, ecr):
    repo, policy = ecr
    d = _seed(repo)
    before = repo.images()
    target = f"{HOST}/{repo.name}"

    dry = cli("prune", target, "--all-tags", "--policy", str(policy), "--dry-run", "--output", "json")
    assert dry.exit_code == 0, dry.stdout + dry.stderr
    assert repo.images() == before
    actions = {(a["action"], a["tag"], a["digest"]) for a in json.loads(dry.stdout)["targets"][0]["actions"]}
    assert ("untag", "cache-pr-fix", d["shared"]) in actions           # keep-me keeps the digest
    assert ("delete", "old-release", d["multi"]) in actions
    assert {("delete", None, d["amd"]), ("delete", None, d["arm"])} <= actions
    assert ("delete", None, d["stale"]) in actions

    done = cli("prune", target, "--all-tags", "--policy", str(policy), "--yes")
    assert done.exit_code == 0, done.stdout + done.stderr
    after = repo.images()
    assert after == {d["base"]: ["cache-base"], d["shared"]: ["keep-me"]}


def test_plan_then_apply_a_saved_plan(cli, ecr, tmp_path):
    repo, policy = ecr
    d = _seed(repo)
    target = f"{HOST}/{repo.name}"
    plan = tmp_path / "plan.json"
    made = cli("plan", target, "--all-tags", "--policy", str(policy), "-o", str(plan))
    assert made.exit_code == 0, made.stdout + made.stderr
    assert json.loads(plan.read_text())["targets"][0]["backend"] == "ecr"
    repo.put(cache_manifest("branch", shared=[{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                               "digest": "sha256:" + "5" * 64, "size": 5000}]), "cache-new")
    applied = cli("apply", str(plan), "--yes")
    assert applied.exit_code == 0, applied.stdout + applied.stderr
    # cache-main-feature's digest got a new tag after planning: untagged, not deleted.
    assert repo.images()[d["branch"]] == ["cache-new"]
    assert d["multi"] not in repo.images() and d["stale"] not in repo.images()


def test_host_globs_expand_with_describe_repositories(cli, ecr, moto):
    repo, _ = ecr
    other = moto.repository(f"elsewhere/app{next(_names)}")
    repo.put(cache_manifest("a"), "cache-a")
    other.put(cache_manifest("b"), "cache-b")
    result = cli("ls", f"{HOST}/team/*", "--output", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    listed = {t["target"] for t in json.loads(result.stdout)["targets"]}
    assert f"{HOST}/{repo.name}" in listed
    assert not any(name.startswith(f"{HOST}/elsewhere/") for name in listed)
    assert f"expanded {HOST}/team/*" in result.stderr
