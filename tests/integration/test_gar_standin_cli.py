"""Google Artifact Registry through the CLI against its stand-in (tests/support/gar_standin.py): the
real docker-registry behind GAR's /v2 behaviour (the tags-list manifest map, tag DELETE = untag,
digest DELETE refused while tagged or in an index) and its REST API, addressed as users write it
(`us-docker.pkg.dev/acme/cache/app`, `gcr.io/acme/app`) through a settings file."""

from __future__ import annotations

import itertools
import json
import os
from datetime import datetime, timedelta, timezone

import pytest

from tests.support.gar_standin import GarStandIn
from tests.support.push import OCI_MANIFEST, Pusher, sha

AR_HOST = "us-docker.pkg.dev"
TOKEN = "ya29.janitor-test-access-token-never-printed"
NOW = datetime.now(timezone.utc)


def at(days_ago: float):
    return lambda: NOW - timedelta(days=days_ago)


_projects = itertools.count()


@pytest.fixture
def NAME() -> str:
    """An image of this test's own on the shared registry."""
    return f"acme{next(_projects)}-{os.getpid()}/cache/app"


@pytest.fixture
def TARGET(NAME) -> str:
    return f"{AR_HOST}/{NAME}"


@pytest.fixture
def standin(registry, monkeypatch, tmp_path):
    with GarStandIn(registry.url, token=TOKEN) as server:
        settings = tmp_path / "settings.toml"
        settings.write_text(f'[hosts."{AR_HOST}"]\nregistry_url = "{server.url}"\napi_url = "{server.url}"\n'
                            f'[hosts."gcr.io"]\nregistry_url = "{server.url}"\n')
        monkeypatch.setenv("JANITOR_SETTINGS", str(settings))
        monkeypatch.setenv("GOOGLE_OAUTH_ACCESS_TOKEN", TOKEN)
        yield server


class Pushing:
    """Push with the stand-in's auth off and its clock at `days_ago`."""

    def __init__(self, standin: GarStandIn, name: str):
        self.standin, self.pusher = standin, Pusher(standin.url, name)

    def __call__(self, days_ago: float):
        self.standin.clock = at(days_ago)
        return self.pusher

    def __enter__(self) -> "Pushing":
        self.token, self.standin.token = self.standin.token, None
        return self

    def __exit__(self, *exc) -> None:
        self.standin.token = self.token
        self.standin.clock = lambda: datetime.now(timezone.utc)


def cache(p: Pusher, tag: str, seed: str) -> str:
    return p.buildkit_cache(tag, [f"{seed}-layer".encode()], NOW - timedelta(days=400))[0]


POLICY = """
protect = ["cache-main", "keep-*"]
[[rule]]
name = "old caches"
select = { tags = ["cache-*"] }
older_than = "30d"
action = "delete"
[[rule]]
name = "untagged"
select = { untagged = true }
older_than = "7d"
action = "delete"
"""


def seed(standin: GarStandIn, NAME: str) -> dict[str, str]:
    """cache-old (60d) and cache-shared+keep-shared (60d, one digest), cache-main overwritten (the
    first push 40 d ago is left untagged), a fresh untagged image (1d), a tagged multi-arch index (60d)."""
    d: dict[str, str] = {}
    with Pushing(standin, NAME) as push_at:
        d["old"] = cache(push_at(60), "cache-old", "old")
        d["shared"] = cache(push_at(60), "cache-shared", "shared")
        push_at(60).manifest("keep-shared", push_at(60).client.get(
            f"{standin.url}/v2/{NAME}/manifests/cache-shared", headers={"Accept": OCI_MANIFEST}).content, OCI_MANIFEST)
        d["main-old"] = cache(push_at(40), "cache-main", "main-1")
        d["main"] = cache(push_at(2), "cache-main", "main-2")
        d["fresh-untagged"] = push_at(1).image(None, [b"fresh"], NOW)[0]
        amd = push_at(60).image(None, [b"amd"], NOW, platform={"architecture": "amd64"})
        arm = push_at(60).image(None, [b"arm"], NOW, platform={"architecture": "arm64"})
        d["amd"], d["arm"] = amd[0], arm[0]
        d["index"] = push_at(60).index("cache-multi", [(amd[0], amd[1], {"os": "linux", "architecture": "amd64"}),
                                                       (arm[0], arm[1], {"os": "linux", "architecture": "arm64"})])[0]
    return d


def test_ls_lists_upload_times_and_untagged_manifests(cli, standin, NAME, TARGET):
    d = seed(standin, NAME)
    result = cli("ls", TARGET, "--all-tags", "--output", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    target = json.loads(result.stdout)["targets"][0]
    tags = {t["tag"]: t for t in target["tags"]}
    assert set(tags) == {"cache-old", "cache-shared", "keep-shared", "cache-main", "cache-multi"}
    assert tags["cache-old"]["age_source"] == "gar/uploaded"
    assert tags["cache-old"]["pushed"].startswith((NOW - timedelta(days=60)).strftime("%Y-%m-%d"))
    assert tags["cache-main"]["digest"] == d["main"]
    untagged = {u["digest"]: u for u in target["untagged"]}
    # The index's platform manifests follow it: only the two untagged roots are listed.
    assert set(untagged) == {d["main-old"], d["fresh-untagged"]}
    assert {u["untagged_source"] for u in untagged.values()} == {"listed"}
    assert untagged[d["main-old"]]["pushed"].startswith((NOW - timedelta(days=40)).strftime("%Y-%m-%d"))
    assert TOKEN not in result.stdout + result.stderr


def test_dry_run_then_prune_leaves_exact_survivors(cli, standin, tmp_path, NAME, TARGET):
    d = seed(standin, NAME)
    policy = tmp_path / "p.toml"
    policy.write_text(POLICY)
    before = len(standin.calls)
    dry = cli("prune", TARGET, "--all-tags", "--policy", policy, "--dry-run", "--output", "json")
    assert dry.exit_code == 0, dry.stdout + dry.stderr
    assert not [c for c in standin.calls[before:] if c[0] in ("DELETE", "PUT", "POST", "PATCH")]
    actions = {(a["action"], a["tag"], a["digest"]) for a in json.loads(dry.stdout)["targets"][0]["actions"]}
    assert ("delete", "cache-old", d["old"]) in actions
    assert ("untag", "cache-shared", d["shared"]) in actions or ("delete", "cache-shared", d["shared"]) in actions
    assert ("delete", None, d["main-old"]) in actions
    assert ("delete", "cache-multi", d["index"]) in actions
    assert all(a[2] != d["fresh-untagged"] and a[2] != d["main"] for a in actions)

    done = cli("prune", TARGET, "--all-tags", "--policy", policy, "--yes")
    assert done.exit_code == 0, done.stdout + done.stderr
    assert standin.tags(NAME) == {"cache-main": d["main"], "keep-shared": d["shared"]}
    present = set(standin.present(NAME))
    assert present == {d["main"], d["shared"], d["fresh-untagged"]}
    # GAR refused nothing: the tags went first, the index before its platform manifests.
    refused = [c for c in standin.calls if c[0] == "DELETE" and c[2] == 400]
    assert refused == []


def errors_of(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error")]


def test_a_reader_token_fails_each_delete_in_one_line_and_damages_nothing(cli, standin, tmp_path, NAME, TARGET,
                                                                             monkeypatch):
    d = seed(standin, NAME)
    tags_before, present_before = standin.tags(NAME), set(standin.present(NAME))
    standin.readonly.add("ya29.reader-never-printed")
    monkeypatch.setenv("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.reader-never-printed")
    policy = tmp_path / "p.toml"
    policy.write_text(POLICY)
    done = cli("-vv", "prune", TARGET, "--all-tags", "--policy", policy, "--yes", "--output", "json")
    assert done.exit_code == 1, done.stdout + done.stderr
    results = json.loads(done.stdout)["targets"][0]["results"]
    failed = [r for r in results if r["status"] == "failed"]
    assert failed and all("\n" not in r["reason"] and "roles/artifactregistry.repoAdmin" in r["reason"] for r in failed)
    assert "Traceback" not in done.stderr and "reader-never-printed" not in done.stdout + done.stderr
    assert standin.tags(NAME) == tags_before and set(standin.present(NAME)) == present_before
    assert d["old"] in present_before


def test_immutable_tags_are_kept_and_reported_and_untagged_manifests_still_go(cli, standin, tmp_path, NAME, TARGET):
    d = seed(standin, NAME)
    standin.immutable.add("/".join(NAME.split("/")[:2]))
    policy = tmp_path / "p.toml"
    policy.write_text(POLICY)
    plan = cli("plan", TARGET, "--all-tags", "--policy", policy)
    assert plan.exit_code == 0, plan.stdout + plan.stderr
    target = json.loads(plan.stdout)["targets"][0]
    kept = {k["tag"]: k["reason"] for k in target["kept"] if k["tag"]}
    assert "immutable tags" in kept["cache-old"] and "immutable tags" in kept["cache-shared"]
    assert {a["digest"] for a in target["actions"]} == {d["main-old"]}
    done = cli("prune", TARGET, "--all-tags", "--policy", policy, "--yes")
    assert done.exit_code == 0, done.stdout + done.stderr
    assert d["main-old"] not in standin.present(NAME) and d["old"] in standin.present(NAME)
    assert not [c for c in standin.calls if c[0] == "DELETE" and "/manifests/cache-" in c[1]]


def test_a_tag_moved_between_plan_and_apply_is_left_alone(cli, standin, tmp_path, NAME, TARGET):
    d = seed(standin, NAME)
    policy = tmp_path / "p.toml"
    policy.write_text(POLICY)
    plan_file = tmp_path / "plan.json"
    planned = cli("plan", TARGET, "--all-tags", "--policy", policy, "-o", plan_file)
    assert planned.exit_code == 0, planned.stdout + planned.stderr
    with Pushing(standin, NAME) as push_at:                # a foreign build overwrites cache-old...
        moved = cache(push_at(0), "cache-old", "rebuilt")
        push_at(0).manifest("cache-x", standin.manifest(NAME, d["main-old"])[0], OCI_MANIFEST)  # ...and tags it
    applied = cli("apply", plan_file, "--yes", "--output", "json")
    assert applied.exit_code == 4, applied.stdout + applied.stderr
    results = {(r["tag"], r["digest"]): r for r in json.loads(applied.stdout)["targets"][0]["results"]}
    assert results[("cache-old", d["old"])]["status"] == "skipped"
    assert results[(None, d["main-old"])]["status"] == "skipped"
    assert standin.tags(NAME)["cache-old"] == moved and standin.tags(NAME)["cache-x"] == d["main-old"]
    assert d["main-old"] in standin.present(NAME)


def test_gcr_io_lists_its_string_upload_times(cli, registry, monkeypatch, tmp_path):
    name = f"acme{next(_projects)}-{os.getpid()}/app"
    with GarStandIn(registry.url, flavour="gcr") as server:
        settings = tmp_path / "settings.toml"
        settings.write_text(f'[hosts."gcr.io"]\nregistry_url = "{server.url}"\n')
        monkeypatch.setenv("JANITOR_SETTINGS", str(settings))
        with Pushing(server, name) as push_at:
            digest = cache(push_at(50), "cache-a", "gcr")
        listed = server.tags_list(name).body
        assert isinstance(listed["manifest"][digest]["timeUploadedMs"], str)
        result = cli("ls", f"gcr.io/{name}", "--all-tags", "--output", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    (tag,) = json.loads(result.stdout)["targets"][0]["tags"]
    assert tag["age_source"] == "gar/uploaded"
    assert tag["pushed"].startswith((NOW - timedelta(days=50)).strftime("%Y-%m-%d"))


def test_a_glob_expands_to_the_repository_images(cli, standin, NAME):
    project = NAME.split("/")[0]
    for image in ("app", "team/api"):
        with Pushing(standin, f"{project}/cache/{image}") as push_at:
            cache(push_at(1), "cache-a", image)
    result = cli("ls", f"{AR_HOST}/{project}/cache/*", "--output", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert sorted(t["target"] for t in json.loads(result.stdout)["targets"]) == \
        [f"{AR_HOST}/{project}/cache/app", f"{AR_HOST}/{project}/cache/team/api"]
    assert f"expanded {AR_HOST}/{project}/cache/*: 2 targets" in result.stderr


def test_a_key_file_without_google_auth_is_one_usage_line_before_any_request(cli, standin, TARGET, monkeypatch,
                                                                              tmp_path):
    from ghcr_janitor.stores.gar import tokens

    monkeypatch.setattr(tokens, "has_google_auth", lambda: False)
    monkeypatch.delenv("GOOGLE_OAUTH_ACCESS_TOKEN")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "sa.json"))
    before = len(standin.calls)
    result = cli("ls", TARGET)
    assert result.exit_code == 2
    assert errors_of(result) == [f"error: {tokens.INSTALL_HINT}"]
    assert len(standin.calls) == before


def test_requests_per_thousand_tags_listed_and_per_hundred_deletes(cli, standin, tmp_path, NAME, TARGET, capsys):
    """1,000 tags on 1,000 manifests plus 100 untagged: the listing is one GET whatever the count
    (GAR sends the whole map); 100 deletes cost one DELETE each plus a look (a fresh list, twice)
    per `deletes_per_look` deletes."""
    from ghcr_janitor.stores.gar.registry import GarRegistry

    with Pushing(standin, NAME) as push_at:
        p = push_at(100)
        config = p.blob(b"{}")
        for i in range(1100):
            body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                               "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
                               "layers": [], "annotations": {"n": str(i)}}).encode()
            p.manifest(f"cache-{i}" if i < 1000 else sha(body), body, OCI_MANIFEST)
    standin.calls.clear()
    listed = cli("ls", TARGET, "--all-tags", "--output", "json")
    assert listed.exit_code == 0, listed.stderr
    target = json.loads(listed.stdout)["targets"][0]
    assert len(target["tags"]) == 1000 and len(target["untagged"]) == 100
    lists = standin.count("GET", f"/v2/{NAME}/tags/list")
    rest = standin.count("GET", "/v1/")
    reads = standin.count("GET", f"/v2/{NAME}/manifests/")
    assert lists <= 2 and rest == 1            # one page (+ at most one 401 before the token)
    assert reads <= 1100                       # each manifest read once
    per_listing = {"tags/list": lists, "REST": rest, "manifest GETs": reads, "all": len(standin.calls)}

    standin.calls.clear()
    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\nselect = { untagged = true }\naction = "delete"\n')
    pruned = cli("prune", TARGET, "--all-tags", "--policy", policy, "--yes")
    assert pruned.exit_code == 0, pruned.stdout + pruned.stderr
    assert len(standin.present(NAME)) == 1000
    deletes = [c for c in standin.calls if c[0] == "DELETE"]
    looks = -(-100 // GarRegistry.deletes_per_look)
    assert len([c for c in deletes if c[2] == 202]) == 100
    assert len(deletes) <= 100 + 16                          # + the first DELETEs' 401s (token scope)
    assert standin.count("GET", f"/v2/{NAME}/tags/list") <= 2 + 3 * looks     # the inventory's, then per look
    per_delete = {"DELETE": len(deletes), "tags/list": standin.count("GET", f"/v2/{NAME}/tags/list"),
                  "all": len(standin.calls)}
    with capsys.disabled():
        print(f"\nGAR requests, 1,000 tags listed: {per_listing}; prune deleting 100 untagged: {per_delete}")
