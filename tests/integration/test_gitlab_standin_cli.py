"""GitLab through the CLI against its stand-in (tests/support/gitlab_standin.py): the target users
write (`registry.gitlab.com/GROUP/PROJECT/IMAGE`), a settings file pointing that host's API and /v2 at
the stand-in, GITLAB_TOKEN for the REST API. Each scenario runs with and without the registry's
metadata API (`/gitlab/v1/`); survivors are read from the real registry behind the stand-in."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.support.gitlab_standin import GitLabStandIn
from tests.support.push import OCI_MANIFEST, Pusher

HOST = "registry.gitlab.com"
OLD = datetime(2026, 1, 1, tzinfo=timezone.utc)
_n = itertools.count()
ALL_CACHES = '[[rule]]\nname = "caches"\nselect = { tags = ["cache-*"] }\naction = "delete"\n'
EVERY_TAG = '[[rule]]\nname = "all"\nselect = { tags = ["*"] }\naction = "delete"\n'
UNTAGGED = '[[rule]]\nname = "untagged"\nselect = { untagged = true }\naction = "delete"\n'


@pytest.fixture(params=[False, True], ids=["rest", "metadata"])
def gitlab(request, registry, tmp_path, monkeypatch):
    with GitLabStandIn(registry.url, metadata=request.param) as standin:
        settings = tmp_path / "settings.toml"
        settings.write_text(f'[hosts."{HOST}"]\nkind = "gitlab"\nregistry_url = "{standin.url}"\n'
                            f'api_url = "{standin.url}"\n')
        monkeypatch.setenv("JANITOR_SETTINGS", str(settings))
        monkeypatch.setenv("GITLAB_TOKEN", standin.token)
        yield standin


def project(standin: GitLabStandIn) -> tuple[str, Pusher]:
    """A fresh project `acme/appN` with the image `cache`: its target and a pusher."""
    path = f"acme/app{next(_n)}"
    standin.project(path, images=("", "cache"))
    return f"{HOST}/{path}/cache", Pusher(standin.url, f"{path}/cache")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"policy{next(_n)}.toml"
    path.write_text(text)
    return path


def deletes(standin: GitLabStandIn) -> list[tuple[str, str, int]]:
    return [c for c in standin.calls if c[0] == "DELETE"]


def present(pusher: Pusher, digest: str) -> bool:
    return pusher.client.head(f"{pusher.base}/v2/{pusher.repo}/manifests/{digest}",
                              headers={"Accept": OCI_MANIFEST}).status_code == 200


def test_dry_run_then_prune_leaves_exactly_the_kept_tags_and_untags_a_shared_digest(cli, gitlab, tmp_path):
    target, repo = project(gitlab)
    only, _ = repo.buildkit_cache("cache-a", [b"a" * 40], OLD)
    shared, body = repo.buildkit_cache("cache-b", [b"b" * 40], OLD)
    repo.manifest("keep", body, OCI_MANIFEST)                      # the same digest under a kept tag
    image, _ = repo.image("v1", [b"layer" * 10], OLD)
    policy = write(tmp_path, ALL_CACHES)
    dry = cli("prune", target, "--policy", policy, "--dry-run", "-O", "json")
    assert dry.exit_code == 0, dry.output
    planned = {a["tag"]: a for a in json.loads(dry.stdout)["targets"][0]["actions"]}
    assert {t: a["action"] for t, a in planned.items()} == {"cache-a": "delete", "cache-b": "untag"}
    assert deletes(gitlab) == []
    done = cli("prune", target, "--policy", policy, "--yes", "-O", "json")
    assert done.exit_code == 0, done.output
    results = {r["tag"]: r for r in json.loads(done.stdout)["targets"][0]["results"]}
    assert results["cache-b"]["reason"] == "untagged; digest kept", results
    assert repo.tags() == {"keep": shared, "v1": image}
    assert not present(repo, only) and present(repo, shared)
    assert gitlab.bulk_deletes == 0
    if not gitlab.metadata:         # REST tag deletes (a REST token is set), then the untagged digest over /v2
        paths = [p for _, p, _ in deletes(gitlab)]
        assert any(p.endswith("/tags/cache-a") for p in paths) and any(p.endswith("/tags/cache-b") for p in paths)
        assert any(p.endswith(f"/manifests/{only}") for p in paths)


def test_ls_shows_publish_times_only_from_the_metadata_api(cli, gitlab):
    target, repo = project(gitlab)
    repo.image("v1", [b"layer" * 10], OLD)
    pushed = datetime.now(timezone.utc) - timedelta(days=40)
    gitlab.tag_pushed[(repo.repo, "v1")] = pushed
    listed = cli("ls", target, "--all-tags", "-O", "json")
    assert listed.exit_code == 0, listed.output
    [tag] = json.loads(listed.stdout)["targets"][0]["tags"]
    if gitlab.metadata:
        assert tag["age_source"] == "gitlab/published" and tag["pushed"] == tag["created"]
        assert tag["created"].startswith(pushed.strftime("%Y-%m-%d"))
    else:                           # REST created_at is the build time: never an age
        assert "pushed" not in tag and tag["age_source"] == "config.created"


def test_untagged_manifests_are_remembered_listed_and_deleted(cli, gitlab, tmp_path):
    target, repo = project(gitlab)
    first, _ = repo.buildkit_cache("cache-a", [b"one" * 30], OLD)
    assert cli("ls", target, "-O", "json").exit_code == 0              # the first run remembers cache-a
    second, _ = repo.buildkit_cache("cache-a", [b"two" * 30], OLD)     # overwritten: `first` is untagged now
    listed = json.loads(cli("ls", target, "-O", "json").stdout)["targets"][0]
    [entry] = listed["untagged"]
    assert entry["digest"] == first and entry["untagged_source"] == "remembered"
    done = cli("prune", target, "--policy", write(tmp_path, UNTAGGED), "--yes", "-O", "json")
    assert done.exit_code == 0, done.output
    assert [r["reason"] for r in json.loads(done.stdout)["targets"][0]["results"]] == ["deleted"]
    assert not present(repo, first) and repo.tags() == {"cache-a": second}


def test_protected_and_immutable_tags_are_kept_and_reported(cli, gitlab, tmp_path):
    target, repo = project(gitlab)
    path = repo.repo.rsplit("/", 1)[0]
    gitlab.protect(path, "^release-")
    gitlab.protect(path, "^v[0-9]+$", delete=None, push=None)          # an immutability rule
    release, _ = repo.buildkit_cache("release-1", [b"r" * 30], OLD)
    v1, _ = repo.image("v1", [b"i" * 30], OLD)
    cache, _ = repo.buildkit_cache("cache-1", [b"c" * 30], OLD)
    plan_file = tmp_path / "plan.json"
    made = cli("plan", target, "--all-tags", "--policy", write(tmp_path, EVERY_TAG), "-o", plan_file)
    assert made.exit_code == 0, made.output
    doc = json.loads(plan_file.read_text())["targets"][0]
    assert [a["tag"] for a in doc["actions"]] == ["cache-1"]
    kept = {k["tag"]: k["reason"] for k in doc["kept"] if k.get("tag")}
    assert kept["release-1"].startswith("locked: protected tag") and "'^release-'" in kept["release-1"]
    assert kept["v1"].startswith("locked: immutable tag")
    done = cli("prune", target, "--all-tags", "--policy", write(tmp_path, EVERY_TAG), "--yes")
    assert done.exit_code == 0, done.output
    assert repo.tags() == {"release-1": release, "v1": v1}
    assert not [c for c in deletes(gitlab) if "release-1" in c[1] or "/tags/v1" in c[1]]


def test_a_403_on_delete_is_one_failed_line_and_nothing_changes(cli, gitlab, tmp_path, monkeypatch):
    """GitLab older than 18.7 does not list tag rules: a protected tag is known only by the 403 its
    delete gets. A token without the role gets the same. One line per refused action, no damage."""
    target, repo = project(gitlab)
    path = repo.repo.rsplit("/", 1)[0]
    gitlab.rules_status = 404
    gitlab.protect(path, "^cache-p")
    protected, _ = repo.buildkit_cache("cache-p", [b"p" * 30], OLD)
    shared, body = repo.buildkit_cache("cache-s", [b"s" * 30], OLD)
    repo.manifest("keep", body, OCI_MANIFEST)
    done = cli("prune", target, "--policy", write(tmp_path, ALL_CACHES), "--yes", "-O", "json")
    assert done.exit_code != 0
    results = {r["tag"]: r for r in json.loads(done.stdout)["targets"][0]["results"]}
    assert results["cache-p"]["status"] == "failed"
    assert "403" in results["cache-p"]["reason"] and "\n" not in results["cache-p"]["reason"]
    assert results["cache-s"]["status"] == "done"
    assert repo.tags() == {"cache-p": protected, "keep": shared} and present(repo, protected)
    assert "Traceback" not in done.stderr

    gitlab.readonly_tokens.add("glpat-reporter")                       # a Reporter: reads, no deletes
    monkeypatch.setenv("GITLAB_TOKEN", "glpat-reporter")
    shared2, body2 = repo.buildkit_cache("cache-t", [b"t" * 30], OLD)
    repo.manifest("keep2", body2, OCI_MANIFEST)
    before = repo.tags()
    refused = cli("prune", target, "--policy", write(tmp_path, ALL_CACHES), "--yes", "-O", "json")
    assert refused.exit_code != 0
    reasons = [r["reason"] for r in json.loads(refused.stdout)["targets"][0]["results"]]
    assert reasons and all("403" in r and "\n" not in r for r in reasons), reasons
    assert repo.tags() == before
    assert "glpat-reporter" not in refused.stdout + refused.stderr


def test_a_tag_moved_between_plan_and_apply_is_left_alone(cli, gitlab, tmp_path):
    target, repo = project(gitlab)
    repo.buildkit_cache("cache-a", [b"old" * 30], OLD)
    plan_file = tmp_path / "plan.json"
    made = cli("plan", target, "--policy", write(tmp_path, ALL_CACHES), "-o", plan_file)
    assert made.exit_code == 0, made.output
    moved, _ = repo.buildkit_cache("cache-a", [b"new" * 30], OLD)      # a foreign push moves the tag
    applied = cli("apply", plan_file, "--yes", "-O", "json")
    [result] = json.loads(applied.stdout)["targets"][0]["results"]
    assert result["status"] == "skipped" and "moved since planning" in result["reason"]
    assert repo.tags() == {"cache-a": moved}
    assert deletes(gitlab) == []


def test_errors_are_one_line_and_no_token_is_printed(cli, gitlab, monkeypatch):
    monkeypatch.setenv("GITLAB_TOKEN", "glpat-wrong-token-never-printed")
    target, _ = project(gitlab)
    result = cli("-vv", "ls", target)
    assert result.exit_code != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "401" in errors[0] and "GITLAB_TOKEN" in errors[0], result.stderr
    assert "glpat-wrong-token-never-printed" not in result.stdout + result.stderr
    monkeypatch.setenv("GITLAB_TOKEN", gitlab.token)
    missing = cli("ls", f"{HOST}/acme/nothing-here/cache")
    assert missing.exit_code != 0 and "no GitLab project" in missing.stderr and "Traceback" not in missing.stderr


def test_a_group_glob_lists_the_groups_repositories(cli, gitlab):
    target, repo = project(gitlab)
    repo.buildkit_cache("cache-a", [b"g" * 30], OLD)
    group_path = repo.repo.rsplit("/", 1)[0]
    listed = cli("ls", f"{HOST}/{group_path}/*", "-O", "json")
    assert listed.exit_code == 0, listed.output
    targets = [t["target"] for t in json.loads(listed.stdout)["targets"]]
    assert f"{HOST}/{repo.repo}" in targets


# --- a tag put on the digest after the last look (review finding H1) --------------------------------
def test_a_tag_put_on_the_digest_after_the_last_look_keeps_it(cli, gitlab, tmp_path, monkeypatch):
    """GitLab's registry deletes a digest with every tag on it: after untagging what the look saw, the
    store reads the tags once more and sends the digest DELETE only if none points at it (here
    `release`, pushed by a CI job once the look was taken)."""
    from ghcr_janitor.stores.gitlab import registry as gitlab_registry

    target, repo = project(gitlab)
    digest, body = repo.buildkit_cache("cache-a", [b"race-g" * 10], OLD)
    original = gitlab_registry.GitLabRegistry.delete_manifest

    async def delete_manifest(self, d):
        if d == digest:
            repo.manifest("release", body, OCI_MANIFEST)
        return await original(self, d)

    monkeypatch.setattr(gitlab_registry.GitLabRegistry, "delete_manifest", delete_manifest)
    done = cli("prune", target, "--policy", write(tmp_path, ALL_CACHES), "--yes", "-O", "json")
    (result,) = json.loads(done.stdout)["targets"][0]["results"]
    assert repo.tags() == {"release": digest}, "the foreign job's tag went with the digest"
    assert result["status"] == "skipped" and "release" in result["reason"], result
    assert "untagged cache-a" in result["reason"] and present(repo, digest)
    assert not [p for _, p, _ in deletes(gitlab) if p.endswith(f"/manifests/{digest}")]
