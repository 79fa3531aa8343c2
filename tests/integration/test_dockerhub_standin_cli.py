"""Docker Hub through the CLI against its stand-in (tests/support/dockerhub_standin.py): the target
users write (`docker.io/acme/app`), the settings file pointing both of Hub's URLs at the stand-in,
DOCKERHUB_USERNAME + DOCKERHUB_TOKEN. Survivors are checked on the real registry behind it."""

from __future__ import annotations

import itertools
import json
import os
from datetime import datetime, timedelta, timezone

import pytest

from tests.support.dockerhub_standin import TOKEN, USER, DockerHubStandIn
from tests.support.push import OCI_MANIFEST, Pusher

NOW = datetime.now(timezone.utc)
REPO = "acme/app"
TARGET = f"docker.io/{REPO}"
OLD = NOW - timedelta(days=90)
_fresh = itertools.count()


@pytest.fixture
def hub(registry, monkeypatch, tmp_path):
    """The stand-in, the settings file naming it for docker.io, and Hub credentials in the env."""
    with DockerHubStandIn(registry.url) as standin:
        settings = tmp_path / "settings.toml"
        settings.write_text(f'[hosts."docker.io"]\nregistry_url = "{standin.url}"\napi_url = "{standin.url}"\n')
        monkeypatch.setenv("JANITOR_SETTINGS", str(settings))
        monkeypatch.setenv("DOCKERHUB_USERNAME", USER)
        monkeypatch.setenv("DOCKERHUB_TOKEN", TOKEN)
        standin.repo = f"{REPO}-{os.getpid()}-{next(_fresh)}"     # a fresh repository on the session registry
        yield standin


def target(hub) -> str:
    return f"docker.io/{hub.repo}"


def push(hub, tag: str, data: bytes, when: datetime = OLD) -> str:
    """A BuildKit cache pushed to `tag`, Hub's push times set to `when`."""
    digest, _ = Pusher(hub.url, hub.repo).buildkit_cache(tag, [data], when)
    hub.pushed[(hub.repo, digest)] = when
    hub.tag_pushed[(hub.repo, tag)] = when
    return digest


def policy(tmp_path, text: str):
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return str(path)


OLD_CACHES = '[[rule]]\nselect = { tags = ["cache-*"] }\nolder_than = "30d"\naction = "delete"\n' \
             '[[rule]]\nselect = { untagged = true }\nolder_than = "30d"\naction = "delete"\n'


def mutations(hub) -> list[tuple[str, str, int]]:
    """What changed anything: Hub untags and /v2 deletes that were done (the probes name nothing that exists)."""
    return [c for c in hub.calls if c[0] == "DELETE" and 200 <= c[2] < 300]


def seed(hub) -> dict[str, str]:
    """old-1 (90 d), old-2 and release on one digest (90 d), new (1 d), an overwritten tag's old digest."""
    digests = {"old-1": push(hub, "cache-old-1", b"one" * 20), "shared": push(hub, "cache-old-2", b"two" * 20)}
    Pusher(hub.url, hub.repo).manifest("release", hub.manifest(hub.repo, digests["shared"])[0], OCI_MANIFEST)
    hub.tag_pushed[(hub.repo, "release")] = OLD
    digests["overwritten"] = push(hub, "cache-main", b"main-v1" * 20)
    digests["main"] = push(hub, "cache-main", b"main-v2" * 20, NOW - timedelta(days=1))
    digests["new"] = push(hub, "cache-new", b"new" * 20, NOW - timedelta(days=1))
    return digests


def test_ls_lists_tags_and_untagged_images_with_hub_times(cli, hub):
    digests = seed(hub)
    result = cli("ls", target(hub), "--all-tags", "-O", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)["targets"][0]
    tags = {t["tag"]: t for t in doc["tags"]}
    assert {t: v["digest"] for t, v in tags.items()} == {
        "cache-old-1": digests["old-1"], "cache-old-2": digests["shared"], "release": digests["shared"],
        "cache-main": digests["main"], "cache-new": digests["new"]}
    assert tags["cache-old-1"]["pushed"].startswith(OLD.strftime("%Y-%m-%d"))
    assert tags["cache-old-1"]["age_source"] == "dockerhub/pushed"
    (untagged,) = doc["untagged"]
    assert untagged["digest"] == digests["overwritten"] and untagged["untagged_source"] == "listed"
    assert not mutations(hub)


def test_dry_run_then_prune_leaves_exactly_the_survivors(cli, hub, tmp_path):
    digests = seed(hub)
    rules = policy(tmp_path, OLD_CACHES)
    dry = cli("prune", target(hub), "--all-tags", "--policy", rules, "--dry-run", "-O", "json")
    assert dry.exit_code == 0, dry.stdout + dry.stderr
    actions = {(a["action"], a.get("tag"), a["digest"]) for a in json.loads(dry.stdout)["targets"][0]["actions"]}
    assert actions == {("delete", "cache-old-1", digests["old-1"]), ("untag", "cache-old-2", digests["shared"]),
                       ("delete", None, digests["overwritten"])}
    assert not mutations(hub)

    done = cli("prune", target(hub), "--all-tags", "--policy", rules, "--yes", "-O", "json")
    assert done.exit_code == 0, done.stdout + done.stderr
    assert hub.tags(hub.repo) == {"release": digests["shared"], "cache-main": digests["main"],
                                  "cache-new": digests["new"]}
    # The shared digest was untagged, not deleted; the deleted ones are gone from the registry.
    assert hub.resolve(hub.repo, digests["shared"]) == digests["shared"]
    assert hub.resolve(hub.repo, digests["old-1"]) is None
    assert hub.resolve(hub.repo, digests["overwritten"]) is None
    # Hub's OCI DELETE by tag (405) was never tried; untags went through the Hub tag endpoint.
    assert not [c for c in hub.calls if c[0] == "DELETE" and "/manifests/" in c[1] and "sha256:" not in c[1]]
    untags = sorted(c[1] for c in mutations(hub) if "/tags/" in c[1])
    assert untags == [f"/v2/repositories/{hub.repo}/tags/cache-old-1/", f"/v2/repositories/{hub.repo}/tags/cache-old-2/"]


def test_tag_moved_by_someone_else_between_plan_and_apply_is_left_alone(cli, hub, tmp_path):
    old = push(hub, "cache-pr-1", b"pr-1" * 20)
    other = push(hub, "cache-pr-2", b"pr-2" * 20)
    plan_file = tmp_path / "plan.json"
    made = cli("plan", target(hub), "--policy", policy(tmp_path, OLD_CACHES), "-o", str(plan_file))
    assert made.exit_code == 0, made.stdout + made.stderr
    moved = push(hub, "cache-pr-1", b"fresh" * 20, NOW)          # CI pushed it again
    applied = cli("apply", str(plan_file), "--yes", "-O", "json")
    assert applied.exit_code == 4, applied.stdout + applied.stderr
    statuses = {r["tag"]: r["status"] for r in json.loads(applied.stdout)["targets"][0]["results"]}
    assert statuses == {"cache-pr-1": "skipped", "cache-pr-2": "done"}
    assert hub.tags(hub.repo) == {"cache-pr-1": moved}
    assert hub.resolve(hub.repo, old) == old and hub.resolve(hub.repo, other) is None


@pytest.mark.parametrize("refusal, words", [
    ("no-credentials", "no Docker Hub credentials"),
    ("read-only-token", "refuses tag deletes"),
    ("v2-denied", "refuses digest deletes"),
    ("untag-500", "tag delete endpoint answered a probe with HTTP 500"),
])
def test_refused_deletes_are_one_line_and_plan_nothing_destructive(cli, hub, tmp_path, monkeypatch, refusal, words):
    digests = seed(hub)
    if refusal == "no-credentials":
        monkeypatch.delenv("DOCKERHUB_USERNAME")
        monkeypatch.delenv("DOCKERHUB_TOKEN")
    hub.permission = "read" if refusal == "read-only-token" else "delete"
    hub.v2_delete_denied = refusal == "v2-denied"
    hub.untag_status = 500 if refusal == "untag-500" else None
    before = hub.tags(hub.repo)
    rules = policy(tmp_path, OLD_CACHES)
    planned = cli("plan", target(hub), "--all-tags", "--policy", rules, "-O", "json")
    assert planned.exit_code == 1, planned.stdout + planned.stderr       # the blocked actions are the plan's error
    doc = json.loads(planned.stdout)["targets"][0]
    assert doc["actions"] == []
    assert len(doc["errors"]) == 1 and words in doc["errors"][0] and "nothing destructive planned" in doc["errors"][0]
    assert "\n" not in doc["errors"][0] and TOKEN not in planned.stdout + planned.stderr
    applied = cli("prune", target(hub), "--all-tags", "--policy", rules, "--yes")
    assert applied.exit_code == 1 and "Traceback" not in applied.stderr
    assert TOKEN not in applied.stdout + applied.stderr
    assert hub.tags(hub.repo) == before and hub.resolve(hub.repo, digests["overwritten"])
    assert not mutations(hub)


def test_a_500_on_delete_is_verified_not_assumed(cli, hub, tmp_path, monkeypatch):
    from ghcr_janitor.stores.dockerhub import registry as hub_registry

    monkeypatch.setattr(hub_registry, "VERIFY_WAITS", (0.01, 0.01, 0.01))
    finishes = push(hub, "cache-a", b"a" * 20)
    stuck = push(hub, "cache-b", b"b" * 20)
    hub.background_500[finishes] = 2            # gone after two HEADs: Hub finished it in the background
    hub.stuck_500.add(stuck)
    result = cli("prune", target(hub), "--policy", policy(tmp_path, OLD_CACHES), "--yes", "-O", "json")
    assert result.exit_code == 1, result.stdout + result.stderr           # a failed action
    outcome = {r["tag"]: r for r in json.loads(result.stdout)["targets"][0]["results"]}
    assert outcome["cache-a"]["status"] == "done"
    assert outcome["cache-b"]["status"] == "failed"
    assert "answered 500 and the manifest is still there after 3 checks" in outcome["cache-b"]["reason"]
    assert hub.resolve(hub.repo, finishes) is None and hub.resolve(hub.repo, stuck) == stuck
    assert hub.head_count(hub.repo, stuck) >= 4          # checked, not assumed


def test_a_tag_added_after_the_look_makes_hub_refuse_and_nothing_is_lost(cli, hub, tmp_path, monkeypatch):
    """Hub's own 403 backs the batch of deletes after one look: a tag pushed onto a digest after the
    look (just before its DELETE) keeps it: one failed line, the tag and the manifest stay."""
    from ghcr_janitor.stores.dockerhub.registry import DockerHubRegistry

    digests = seed(hub)
    real = DockerHubRegistry.delete_manifest

    async def tagged_meanwhile(self, digest):
        if digest == digests["overwritten"]:
            Pusher(hub.url, hub.repo).manifest("pinned", hub.manifest(hub.repo, digest)[0], OCI_MANIFEST)
        return await real(self, digest)

    monkeypatch.setattr(DockerHubRegistry, "delete_manifest", tagged_meanwhile)
    result = cli("prune", target(hub), "--all-tags", "--policy", policy(tmp_path, OLD_CACHES), "--yes", "-O", "json")
    assert result.exit_code == 1, result.stdout + result.stderr
    [failed] = [r for r in json.loads(result.stdout)["targets"][0]["results"] if r["status"] == "failed"]
    assert failed["digest"] == digests["overwritten"] and "Docker Hub refused (HTTP 403" in failed["reason"]
    assert hub.tags(hub.repo)["pinned"] == digests["overwritten"]


def test_not_pulled_for_sees_through_the_janitors_own_reads(cli, hub, tmp_path):
    cold = push(hub, "cache-cold", b"cold" * 20)
    warm = push(hub, "cache-warm", b"warm" * 20)
    hub.pulled[(hub.repo, cold)] = NOW - timedelta(days=40)
    hub.pulled[(hub.repo, warm)] = NOW - timedelta(days=2)
    rules = policy(tmp_path, '[[rule]]\nselect = { tags = ["cache-*"], not_pulled_for = "30d" }\naction = "delete"\n')
    first = cli("prune", target(hub), "--policy", rules, "--dry-run", "-O", "json")
    assert [a["tag"] for a in json.loads(first.stdout)["targets"][0]["actions"]] == ["cache-cold"]
    # Hub counted the janitor's manifest GETs as pulls...
    assert hub.pulled[(hub.repo, cold)] > NOW
    second = cli("prune", target(hub), "--policy", rules, "--dry-run", "-O", "json")
    # ...and the janitor remembers its reads: the pull before them still counts.
    assert [a["tag"] for a in json.loads(second.stdout)["targets"][0]["actions"]] == ["cache-cold"]


def test_a_namespace_glob_lists_its_repositories(cli, hub):
    push(hub, "cache-a", b"glob-a" * 20)
    result = cli("ls", f"docker.io/{hub.repo.split('/')[0]}/*", "-O", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert target(hub) in {t["target"] for t in json.loads(result.stdout)["targets"]}
    short = cli("ls", hub.repo, "-O", "json")            # NS/REPO is docker.io/NS/REPO, as docker reads it
    assert short.exit_code == 0 and json.loads(short.stdout)["targets"][0]["target"] == target(hub)


def test_requests_per_thousand_tags_listed_and_per_hundred_deletes(cli, hub, tmp_path, capsys):
    pusher = Pusher(hub.url, hub.repo)
    digests = []
    tags = 300              # small for CI time: the bounds are per page (the issue note has 1,000 tags)
    for i in range(tags):
        digest, _ = pusher.buildkit_cache(f"cache-{i:04d}", [f"layer-{i}".encode()], OLD)
        hub.pushed[(hub.repo, digest)] = OLD
        hub.tag_pushed[(hub.repo, f"cache-{i:04d}")] = OLD if i < 100 else NOW
        digests.append(digest)
    hub.calls.clear()
    listed = cli("ls", target(hub), "--all-tags", "-O", "json")
    assert listed.exit_code == 0, listed.stderr
    assert len(json.loads(listed.stdout)["targets"][0]["tags"]) == tags
    api = [c for c in hub.calls if not c[1].startswith("/v2/" + hub.repo)]
    v2 = [c for c in hub.calls if c[1].startswith("/v2/" + hub.repo)]
    per_listing = {"hub_api": len(api), "v2": len(v2)}
    # 10 tag pages + 1 image page + a login + the 2 probes' API side; /v2: one GET per manifest
    # (read once, then cached), and the digest probe.
    assert len(api) <= -(-tags // 100) + 1 + 3
    assert len(v2) <= tags + 2

    hub.calls.clear()
    rules = policy(tmp_path, '[[rule]]\nselect = { tags = ["cache-*"] }\nolder_than = "30d"\naction = "delete"\n')
    pruned = cli("prune", target(hub), "--policy", rules, "--yes", "-O", "json")
    assert pruned.exit_code == 0, pruned.stdout + pruned.stderr
    assert len(hub.tags(hub.repo)) == tags - 100 and all(hub.resolve(hub.repo, d) is None for d in digests[:100])
    per_delete = {"hub_api": len([c for c in hub.calls if not c[1].startswith("/v2/" + hub.repo)]),
                  "v2": len([c for c in hub.calls if c[1].startswith("/v2/" + hub.repo)])}
    # Listing (as above) + one look (10 tag pages, the /v2 tag list) + per delete: HEAD, Hub untag,
    # HEAD (verified), DELETE by digest.
    assert per_delete["hub_api"] <= 2 * (-(-tags // 100) + 1) + 3 + 100 + 5
    assert per_delete["v2"] <= tags + 2 + 3 * 100 + 20
    with capsys.disabled():
        print(f"\nDocker Hub requests, {tags} tags listed: {per_listing}; prune deleting 100 tags: {per_delete}")


def test_a_tag_moved_after_the_last_look_is_not_untagged_from_its_new_digest(cli, hub, tmp_path, monkeypatch):
    """The store's own HEAD right before Hub's untag: CI re-pushes the tag after apply's last look;
    the untag is refused (skipped) and the new push keeps its tag."""
    from ghcr_janitor.stores.dockerhub.registry import DockerHubRegistry

    digests = seed(hub)
    real = DockerHubRegistry.delete_tag
    fresh: dict[str, str] = {}

    async def repushed_meanwhile(self, tag, digest):
        if tag == "cache-old-2" and not fresh:
            fresh[tag] = push(hub, tag, b"re-pushed" * 20, NOW)
        return await real(self, tag, digest)

    monkeypatch.setattr(DockerHubRegistry, "delete_tag", repushed_meanwhile)
    result = cli("prune", target(hub), "--all-tags", "--policy", policy(tmp_path, OLD_CACHES), "--yes", "-O", "json")
    assert result.exit_code == 4, result.stdout + result.stderr
    outcome = {r["tag"]: r for r in json.loads(result.stdout)["targets"][0]["results"]}
    assert outcome["cache-old-2"]["status"] == "skipped" and "moved since planning" in outcome["cache-old-2"]["reason"]
    assert hub.tags(hub.repo)["cache-old-2"] == fresh["cache-old-2"]
    assert hub.resolve(hub.repo, digests["shared"]) == digests["shared"]


def test_errors_are_one_line_and_the_token_is_never_printed(cli, hub, monkeypatch):
    push(hub, "cache-a", b"secret-check" * 20)
    monkeypatch.setenv("DOCKERHUB_TOKEN", "dckr_pat_wrong-janitor-test-secret")
    result = cli("-vv", "ls", target(hub))              # DEBUG: every logger the CLI lets through
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "refused the login" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert "wrong-janitor-test-secret" not in result.stdout + result.stderr
    monkeypatch.setenv("DOCKERHUB_TOKEN", TOKEN)
    fine = cli("-vv", "prune", target(hub), "--dry-run")
    assert fine.exit_code == 0, fine.stdout + fine.stderr
    assert TOKEN not in fine.stdout + fine.stderr and "eyJ" not in fine.stdout + fine.stderr
