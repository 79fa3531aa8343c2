"""Harbor through the CLI against its stand-in (tests/support/harbor_standin.py): the real
docker-registry behind Harbor's /v2 behaviour (tag DELETE 400, digest DELETE = the artifact, GET is
a pull, HEAD is none, index-form caches refused) and its artifacts API, addressed as users write it
(`harbor.example.com/PROJECT/REPO` through a settings file, or a loopback Harbor found by its ping)."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from ghcr_janitor.stores.harbor import registry as harbor
from tests.support.harbor_standin import HarborStandIn
from tests.support.push import OCI_INDEX, OCI_MANIFEST, Pusher

HOST = "harbor.example.com"
NOW = datetime.now(timezone.utc)
SECRET = "harbor-robot-secret-never-printed"
_repos = itertools.count()


def at(days_ago: float):
    return lambda: NOW - timedelta(days=days_ago)


@pytest.fixture
def standin(registry):
    with HarborStandIn(registry.url) as server:
        yield server


@pytest.fixture
def name() -> str:
    """A fresh repository in a fresh project (the session registry is shared)."""
    n = next(_repos)
    return f"proj{n}/app"


def use_settings(tmp_path, monkeypatch, standin: HarborStandIn, extra: str = "") -> None:
    path = tmp_path / "settings.toml"
    path.write_text(f'[hosts."{HOST}"]\nkind = "harbor"\nregistry_url = "{standin.url}"\napi_url = "{standin.url}"\n'
                    + extra)
    monkeypatch.setenv("JANITOR_SETTINGS", str(path))


def push(standin: HarborStandIn, name: str, days_ago: float) -> Pusher:
    standin.clock = at(days_ago)
    return Pusher(standin.url, name)


def cache(standin: HarborStandIn, name: str, tag: str, days_ago: float, seed: str) -> str:
    digest, _ = push(standin, name, days_ago).buildkit_cache(tag, [seed.encode(), b"shared-base-layer"],
                                                             NOW - timedelta(days=days_ago))
    return digest


def policy(tmp_path, text: str):
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def one_target(result) -> dict:
    assert result.exit_code in (0, 4), result.stdout + result.stderr
    return json.loads(result.stdout)["targets"][0]


def test_autodetected_by_its_ping_without_a_settings_file(cli, standin, name):
    """No settings file: a loopback host that answers /api/v2.0/ping with Pong is Harbor (asked once)."""
    cache(standin, name, "cache-a", 3, "a")
    old = cache(standin, name, "cache-a", 2, "a2")      # overwrites cache-a: the first push is untagged now
    target = f"{standin.host}/{name}"
    listed = one_target(cli("ls", target, "--all-tags", "--output", "json"))
    assert json.loads(cli("ls", target, "--output", "json").stdout)["targets"][0]["backend"] == "harbor"
    assert [t["tag"] for t in listed["tags"]] == ["cache-a"] and listed["tags"][0]["digest"] == old
    assert listed["tags"][0]["age_source"] == "harbor/pushed"
    (untagged,) = listed["untagged"]
    assert untagged["untagged_source"] == "listed" and untagged["last_pulled"] is None
    assert standin.count("GET", "/api/v2.0/ping") == 1
    assert standin.count("GET", f"/api/v2.0/projects/{name.split('/')[0]}/repositories/app/artifacts") == 2


def test_dry_run_then_prune_keeps_exactly_what_the_policy_keeps(cli, standin, name, tmp_path, monkeypatch):
    use_settings(tmp_path, monkeypatch, standin)
    target = f"{HOST}/{name}"
    stale = cache(standin, name, "cache-pr-1", 60, "pr1")
    shared = cache(standin, name, "cache-pr-2", 60, "shared")
    Pusher(standin.url, name).manifest("cache-main", standin.manifest(name, shared)[0], OCI_MANIFEST)
    fresh = cache(standin, name, "cache-pr-3", 1, "pr3")
    overwritten = cache(standin, name, "cache-main-old", 90, "old")
    standin.tagdb.pop((name, "cache-main-old"))          # an untagged artifact Harbor lists
    standin.untag(name, "cache-main-old")
    pusher = push(standin, name, 40)
    child, body = pusher.image(None, [b"amd64-layer"], NOW - timedelta(days=40))
    release, _ = pusher.index("v1", [(child, body, {"architecture": "amd64", "os": "linux"})])
    rules = policy(tmp_path, '[[rule]]\nname = "old prs"\nselect = { tags = ["cache-pr-*"] }\nolder_than = "30d"\n'
                             'action = "delete"\n[[rule]]\nname = "untagged"\nselect = { untagged = true }\n'
                             'older_than = "30d"\naction = "delete"\n')
    deletes_before = standin.count("DELETE")
    dry = one_target(cli("prune", target, "--policy", rules, "--dry-run", "--output", "json"))
    planned = {(a["action"], a["tag"], a["digest"]) for a in dry["actions"]}
    assert planned == {("delete", "cache-pr-1", stale), ("untag", "cache-pr-2", shared), ("delete", None, overwritten)}
    assert standin.count("DELETE") == deletes_before
    done = cli("prune", target, "--policy", rules, "--yes")
    assert done.exit_code == 0, done.stdout + done.stderr
    assert standin.tags(name) == {"cache-main": shared, "cache-pr-3": fresh, "v1": release}
    assert standin.listed_tags(name) == standin.tags(name)
    assert standin.digests(name) == {shared, fresh, release, child}
    assert standin.resolve(name, stale) is None and standin.resolve(name, overwritten) is None
    assert standin.resolve(name, child) == child                 # the index's child stays with it
    untags = sorted(p for m, p, _ in standin.calls if m == "DELETE" and "/tags/" in p)
    artifacts = f"/api/v2.0/projects/{name.split('/')[0]}/repositories/app/artifacts"
    assert untags == sorted([f"{artifacts}/{shared}/tags/cache-pr-2",        # the untag
                             f"{artifacts}/{stale}/tags/cache-pr-1"])        # the delete's tag, removed first
    reads = [p.partition("?")[0] for m, p, _ in standin.calls if m == "GET" and p.startswith(f"{artifacts}/sha256:")]
    assert sorted(reads) == sorted([f"{artifacts}/{stale}", f"{artifacts}/{overwritten}"])   # one before each delete
    assert not [p for m, p, _ in standin.calls if m == "DELETE" and p.startswith("/v2/")]   # all through the API
    refused = httpx.delete(f"{standin.url}/v2/{name}/manifests/cache-main")     # Harbor's /v2 has no tag DELETE
    assert refused.status_code == 400 and refused.json()["errors"][0]["code"] == "UNSUPPORTED"


def test_a_nested_repository_name_is_encoded_twice(cli, standin, tmp_path, monkeypatch):
    use_settings(tmp_path, monkeypatch, standin)
    name = f"proj{next(_repos)}/team/app"
    kept = cache(standin, name, "cache-keep", 1, "keep")
    gone = cache(standin, name, "cache-gone", 50, "gone")
    rules = policy(tmp_path, '[[rule]]\nselect = { tags = ["cache-*"] }\nolder_than = "30d"\naction = "delete"\n')
    done = cli("prune", f"{HOST}/{name}", "--policy", rules, "--yes")
    assert done.exit_code == 0, done.stdout + done.stderr
    assert standin.tags(name) == {"cache-keep": kept} and standin.resolve(name, gone) is None
    project = name.split("/")[0]
    assert f"/api/v2.0/projects/{project}/repositories/team%252Fapp/artifacts/{gone}" in \
        [p for m, p, _ in standin.calls if m == "DELETE"]


def test_project_glob_lists_the_projects_repositories(cli, standin, tmp_path, monkeypatch):
    use_settings(tmp_path, monkeypatch, standin)
    project = f"proj{next(_repos)}"
    for repo in ("app", "web", "tools/ci"):
        cache(standin, f"{project}/{repo}", "cache-a", 1, repo)
    cache(standin, f"other{next(_repos)}/app", "cache-a", 1, "other")
    result = cli("ls", f"{HOST}/{project}/*", "--output", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert sorted(t["target"] for t in json.loads(result.stdout)["targets"]) == \
        [f"{HOST}/{project}/{r}" for r in ("app", "tools/ci", "web")]
    assert standin.count("GET", f"/api/v2.0/projects/{project}/repositories?") == 1
    everything = cli("ls", f"{HOST}/*", "--output", "json")
    assert everything.exit_code == 0, everything.stdout + everything.stderr
    assert len(json.loads(everything.stdout)["targets"]) == 4 and standin.count("GET", "/api/v2.0/repositories?") == 1


def test_immutable_tags_are_kept_reported_and_never_sent_a_delete(cli, standin, name, tmp_path, monkeypatch):
    use_settings(tmp_path, monkeypatch, standin)
    standin.immutable = ["cache-release-*"]
    locked = cache(standin, name, "cache-release-1", 90, "rel")
    stale = cache(standin, name, "cache-pr-1", 90, "pr")
    rules = policy(tmp_path, '[[rule]]\nselect = { tags = ["cache-*"] }\nolder_than = "30d"\naction = "delete"\n')
    dry = one_target(cli("prune", f"{HOST}/{name}", "--policy", rules, "--dry-run", "--output", "json"))
    assert [(a["action"], a["tag"]) for a in dry["actions"]] == [("delete", "cache-pr-1")]
    kept = {k["tag"]: k["reason"] for k in dry["kept"]}
    assert kept["cache-release-1"].startswith("locked: immutable on Harbor")
    done = cli("prune", f"{HOST}/{name}", "--policy", rules, "--yes")
    assert done.exit_code == 0, done.stdout + done.stderr
    assert standin.tags(name) == {"cache-release-1": locked} and standin.resolve(name, stale) is None
    assert not [p for m, p, _ in standin.calls if m == "DELETE" and (locked in p or "cache-release" in p)]


def test_a_rule_made_immutable_after_planning_is_refused_in_one_line_without_damage(cli, standin, name, tmp_path,
                                                                                    monkeypatch):
    use_settings(tmp_path, monkeypatch, standin)
    shared = cache(standin, name, "cache-a", 90, "x")
    Pusher(standin.url, name).manifest("cache-b", standin.manifest(name, shared)[0], OCI_MANIFEST)
    rules = policy(tmp_path, '[[rule]]\nselect = { tags = ["cache-a"] }\naction = "delete"\n')
    plan = tmp_path / "plan.json"
    assert cli("plan", f"{HOST}/{name}", "--policy", rules, "-o", plan).exit_code == 0
    standin.immutable = ["cache-a"]
    applied = cli("apply", plan, "--yes", "--output", "json")
    assert applied.exit_code == 4, applied.stdout + applied.stderr
    (result,) = json.loads(applied.stdout)["targets"][0]["results"]
    assert result["status"] == "skipped" and "immutab" in result["reason"] and "\n" not in result["reason"]
    assert standin.tags(name) == {"cache-a": shared, "cache-b": shared}


def test_a_read_only_robot_account_gets_one_line_and_nothing_changes(cli, standin, name, tmp_path, monkeypatch):
    standin.users = {"robot$ci": SECRET, "robot$ro": "read-only-secret"}
    standin.readonly = {"robot$ro"}
    use_settings(tmp_path, monkeypatch, standin, 'username = "robot$ro"\ntoken_env = "HARBOR_RO"\n')
    monkeypatch.setenv("HARBOR_RO", "read-only-secret")
    stale = cache(standin, name, "cache-old", 90, "old")
    rules = policy(tmp_path, '[[rule]]\nselect = { tags = ["cache-*"] }\nolder_than = "30d"\naction = "delete"\n')
    dry = cli("prune", f"{HOST}/{name}", "--policy", rules, "--dry-run")
    assert dry.exit_code == 0, dry.stdout + dry.stderr                 # read-only is enough for a dry run
    done = cli("prune", f"{HOST}/{name}", "--policy", rules, "--yes")
    assert done.exit_code == 1, done.stdout + done.stderr
    lines = [l for l in done.stderr.splitlines() if l.startswith("error")]
    assert len(lines) == 1 and "permission denied (403 FORBIDDEN" in lines[0], done.stderr
    assert "delete permissions" in lines[0]
    assert "Traceback" not in done.stderr
    assert standin.tags(name) == {"cache-old": stale}


def test_wrong_credentials_are_one_line_and_the_secret_is_never_printed(cli, standin, name, tmp_path, monkeypatch):
    standin.users = {"robot$ci": "the-right-one"}
    use_settings(tmp_path, monkeypatch, standin, 'username = "robot$ci"\ntoken_env = "HARBOR_TOKEN"\n')
    monkeypatch.setenv("HARBOR_TOKEN", SECRET)
    cache(standin, name, "cache-a", 1, "a")
    result = cli("-vv", "ls", f"{HOST}/{name}")
    assert result.exit_code == 1
    errors = [l for l in result.stderr.splitlines() if l.startswith("error")]
    assert len(errors) == 1 and "Harbor refused the credentials" in errors[0], result.stderr
    assert SECRET not in result.stdout + result.stderr and "Traceback" not in result.stderr


def test_docker_config_credentials_of_the_host_reach_the_api(cli, standin, name, tmp_path, monkeypatch):
    import base64
    import os

    standin.users = {"robot$ci": SECRET}
    use_settings(tmp_path, monkeypatch, standin)
    config = os.environ["DOCKER_CONFIG"]
    os.makedirs(config, exist_ok=True)
    with open(os.path.join(config, "config.json"), "w") as handle:
        json.dump({"auths": {HOST: {"auth": base64.b64encode(f"robot$ci:{SECRET}".encode()).decode()}}}, handle)
    cache(standin, name, "cache-a", 1, "a")
    result = cli("ls", f"{HOST}/{name}", "--output", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert [t["tag"] for t in one_target(result)["tags"]] == ["cache-a"]


def test_a_tag_moved_by_someone_else_after_planning_is_left_alone(cli, standin, name, tmp_path, monkeypatch):
    use_settings(tmp_path, monkeypatch, standin)
    cache(standin, name, "cache-pr-1", 60, "before")
    rules = policy(tmp_path, '[[rule]]\nselect = { tags = ["cache-pr-*"] }\nolder_than = "30d"\naction = "delete"\n')
    plan = tmp_path / "plan.json"
    assert cli("plan", f"{HOST}/{name}", "--policy", rules, "-o", plan).exit_code == 0
    moved = cache(standin, name, "cache-pr-1", 0, "after")        # a CI job pushed the cache again
    applied = cli("apply", plan, "--yes", "--output", "json")
    assert applied.exit_code == 4, applied.stdout + applied.stderr
    (result,) = json.loads(applied.stdout)["targets"][0]["results"]
    assert result["status"] == "skipped" and "moved" in result["reason"]
    assert standin.tags(name) == {"cache-pr-1": moved}


def test_index_form_caches_are_refused_by_harbor_and_an_unreadable_cache_is_one_line(cli, standin, name, tmp_path,
                                                                                     monkeypatch):
    use_settings(tmp_path, monkeypatch, standin)
    pusher = push(standin, name, 1)
    layer = pusher.layer(b"idx-layer", NOW)
    config = pusher.cache_config([layer])
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [layer, config]}).encode()
    refused = httpx.put(f"{standin.url}/v2/{name}/manifests/cache-idx", content=body,
                        headers={"Content-Type": OCI_INDEX})
    assert refused.status_code == 404                               # goharbor/harbor#14774
    good = cache(standin, name, "cache-ok", 1, "ok")
    broken = cache(standin, name, "cache-broken", 1, "broken")
    standin.unreadable.add(broken)
    result = cli("ls", f"{HOST}/{name}", "--output", "json")
    assert result.exit_code == 1, result.stdout + result.stderr
    said = [l for l in (result.stdout + result.stderr).splitlines() if broken in l and "image-manifest=true" in l]
    assert said and all("cache-broken" in l for l in said), result.stdout + result.stderr
    rules = policy(tmp_path, '[[rule]]\nselect = { tags = ["cache-*"] }\naction = "delete"\n')
    cli("prune", f"{HOST}/{name}", "--policy", rules, "--yes")
    assert standin.tags(name)["cache-broken"] == broken             # nothing done to what could not be read
    assert good


def test_the_janitors_own_reads_do_not_count_as_pulls(cli, standin, name, tmp_path, monkeypatch):
    use_settings(tmp_path, monkeypatch, standin)
    cold = cache(standin, name, "cache-cold", 90, "cold")
    warm = cache(standin, name, "cache-warm", 90, "warm")
    standin.set_times(name, cold, pulled=NOW - timedelta(days=40))
    standin.set_times(name, warm, pulled=NOW - timedelta(days=2))
    never = cache(standin, name, "cache-never", 45, "never")
    standin.clock = lambda: datetime.now(timezone.utc)
    rules = policy(tmp_path, '[[rule]]\nselect = { tags = ["cache-*"], not_pulled_for = "30d" }\naction = "delete"\n')

    def planned() -> set[str]:
        dry = one_target(cli("prune", f"{HOST}/{name}", "--policy", rules, "--dry-run", "--output", "json"))
        return {a["tag"] for a in dry["actions"]}

    assert planned() == {"cache-cold", "cache-never"}
    # The janitor read every manifest (GET by digest: Harbor records a pull), never a tag's.
    assert standin.artifacts[(name, never)].pull_time is not None
    assert all(row.pull_time is None for (r, t), row in standin.tagdb.items() if r == name and t != "cache-warm")
    assert planned() == {"cache-cold", "cache-never"}                # its own reads are seen through
    standin.set_times(name, cold, pulled=datetime.now(timezone.utc) + timedelta(hours=1))   # a deploy pulled it
    assert planned() == {"cache-never"}
    done = cli("prune", f"{HOST}/{name}", "--policy", rules, "--yes")
    assert done.exit_code == 0, done.stdout + done.stderr
    assert standin.digests(name) == {cold, warm}


def test_requests_per_thousand_tags_listed_and_per_hundred_deletes(cli, standin, name, tmp_path, monkeypatch, capsys):
    use_settings(tmp_path, monkeypatch, standin)
    pusher = push(standin, name, 50)
    config = pusher.blob(b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}')
    layer = pusher.blob(b"one shared layer")

    def body(i: int) -> bytes:
        return json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config,
                                      "size": 79},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer,
                                       "size": 16}],
                           "annotations": {"n": str(i)}}).encode()

    for i in range(1000):
        pusher.manifest(f"cache-{i:04d}", body(i), OCI_MANIFEST)
    for i in range(1000, 1100):
        raw = body(i)
        pusher.manifest(pusher_digest(raw), raw, OCI_MANIFEST)        # untagged artifacts
    standin.calls.clear()
    listed = one_target(cli("ls", f"{HOST}/{name}", "--all-tags", "--output", "json"))
    assert len(listed["tags"]) == 1000 and len(listed["untagged"]) == 100
    pages = -(-1100 // 100)
    api_listing = standin.count("GET", "/api/v2.0/")
    manifest_gets = standin.count("GET", f"/v2/{name}/manifests/")
    listing = len(standin.calls)
    assert api_listing == pages                                      # 100 a page: 11 for 1,100 artifacts
    assert manifest_gets == 1100                                     # each manifest once (Harbor has no batch read)
    assert listing - api_listing - manifest_gets <= 2                # the shared config blob, at most

    standin.calls.clear()
    rules = policy(tmp_path, '[[rule]]\nselect = { untagged = true }\naction = "delete"\n')
    pruned = cli("prune", f"{HOST}/{name}", "--all-tags", "--policy", rules, "--yes")
    assert pruned.exit_code == 0, pruned.stdout + pruned.stderr
    assert len(standin.digests(name)) == 1000
    deletes = standin.count("DELETE", "/api/v2.0/")
    looks = -(-100 // 50)                                            # deletes_per_look
    reads = len([p for m, p, _ in standin.calls if m == "GET" and "/artifacts/sha256:" in p])
    api_gets = standin.count("GET", "/api/v2.0/") - reads
    assert deletes == 100 and reads == 100                           # each artifact read right before its delete
    assert api_gets <= pages * (1 + 2 * looks)                       # the inventory, then per look: versions + tags
    assert standin.count("GET", f"/v2/{name}/manifests/") == 0       # every manifest came from the caches
    per_delete = len(standin.calls)
    assert per_delete <= deletes + reads + pages * (1 + 2 * looks) + 4 * looks
    with capsys.disabled():
        print(f"\nHarbor requests, 1,000 tags + 100 untagged listed: {listing} ({api_listing} API pages, "
              f"{manifest_gets} manifest GETs); prune deleting 100 untagged: {per_delete} "
              f"({deletes} DELETEs, {reads} artifact reads, {api_gets} API listing pages, "
              f"{per_delete - deletes - reads - api_gets} /v2)")


def pusher_digest(raw: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(raw).hexdigest()


# --- a tag put on the digest after the last look (review finding H1) --------------------------------
def _foreign_push_at_delete(monkeypatch, standin: HarborStandIn, name: str, digest: str, body: bytes) -> None:
    """A CI job tags `digest` `release` after apply's last look, just as the store starts its delete."""
    original = harbor.HarborRegistry.delete_manifest

    async def delete_manifest(self, d):
        if d == digest:
            Pusher(standin.url, name).manifest("release", body, OCI_MANIFEST)
        return await original(self, d)

    monkeypatch.setattr(harbor.HarborRegistry, "delete_manifest", delete_manifest)


def test_a_tag_put_on_the_digest_after_the_last_look_keeps_the_artifact(cli, standin, name, tmp_path, monkeypatch):
    """Harbor deletes an artifact with every tag on it: the store removes the tags the look saw, reads
    the artifact, and sends the DELETE only if no tag is left (here `release`, pushed meanwhile)."""
    use_settings(tmp_path, monkeypatch, standin)
    digest, body = push(standin, name, 40).buildkit_cache("cache-a", [b"race-a" * 10], NOW - timedelta(days=40))
    _foreign_push_at_delete(monkeypatch, standin, name, digest, body)
    rules = policy(tmp_path, '[[rule]]\nselect = { tags = ["cache-*"] }\naction = "delete"\n')
    done = cli("prune", f"{HOST}/{name}", "--policy", rules, "--yes", "--output", "json")
    (result,) = one_target(done)["results"]
    assert standin.tags(name) == {"release": digest}, "the foreign job's tag went with the artifact"
    assert result["status"] == "skipped" and "release" in result["reason"] and "untagged cache-a" in result["reason"]
    assert not [p for m, p, _ in standin.calls if m == "DELETE" and p.endswith(f"/artifacts/{digest}")]


def test_an_untagged_artifact_tagged_after_the_last_look_is_kept(cli, standin, name, tmp_path, monkeypatch):
    use_settings(tmp_path, monkeypatch, standin)
    digest, body = push(standin, name, 40).buildkit_cache("cache-a", [b"race-u" * 10], NOW - timedelta(days=40))
    standin.tagdb.pop((name, "cache-a"))                 # an untagged artifact Harbor lists
    standin.untag(name, "cache-a")
    _foreign_push_at_delete(monkeypatch, standin, name, digest, body)
    rules = policy(tmp_path, '[[rule]]\nselect = { untagged = true }\naction = "delete"\n')
    done = cli("prune", f"{HOST}/{name}", "--policy", rules, "--yes", "--output", "json")
    (result,) = one_target(done)["results"]
    assert standin.tags(name) == {"release": digest} and result["status"] == "skipped", result
    assert not [p for m, p, _ in standin.calls if m == "DELETE"]
