"""Azure Container Registry through the CLI against its stand-in (tests/support/acr_standin.py, the real
docker-registry behind ACR's /acr/v1 API and token exchange): dry run then prune with exact survivors on
the real registry, a shared digest untagged not deleted, untagged manifests listed and deleted, locks kept
and reported, refusals in one line with no damage, a tag moved or added by someone else between plan and
apply left alone, globs, credentials from each place users keep them, and the request counts."""

from __future__ import annotations

import base64
import json
import itertools
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from tests.support.acr_standin import LOGIN_SERVER, READ_ACTIONS, AcrStandIn
from tests.support.push import OCI_MANIFEST, Pusher, dumps, sha

OLD = datetime.now(timezone.utc) - timedelta(days=90)
_repos = itertools.count(1)
POLICY = ('protect = ["release"]\n'
          '[[rule]]\nname = "stale caches"\nselect = { tags = ["cache-*"] }\nolder_than = "30d"\naction = "delete"\n'
          '[[rule]]\nname = "untagged"\nselect = { untagged = true }\nolder_than = "7d"\naction = "delete"\n')


@pytest.fixture
def acr(registry, tmp_path, monkeypatch):
    with AcrStandIn(registry.url) as standin:
        settings = tmp_path / "settings.toml"
        settings.write_text(f'[hosts."{LOGIN_SERVER}"]\nregistry_url = "{standin.url}"\napi_url = "{standin.url}"\n')
        monkeypatch.setenv("JANITOR_SETTINGS", str(settings))
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
        standin.secret = standin.add_refresh_token()
        monkeypatch.setenv("ACR_REFRESH_TOKEN", standin.secret)
        yield standin


def pusher(standin: AcrStandIn, repo: str | None = None) -> Pusher:
    name = repo or f"team/app{next(_repos)}"
    return Pusher(standin.url, name, client=httpx.Client(timeout=30, headers=standin.pusher_headers()))


def small(p: Pusher, tag: str | None, seed: str) -> str:
    """A tiny OCI manifest (one shared layer, a unique annotation) under `tag`, or by digest."""
    layer = p.blob(b"shared-layer")
    config = p.blob(b"{}")
    body = dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                  "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
                  "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": 12}],
                  "annotations": {"seed": seed}})
    return p.manifest(tag or sha(body), body, OCI_MANIFEST)


def world(standin: AcrStandIn) -> tuple[Pusher, dict[str, str]]:
    """stale cache, fresh cache, a shared digest (stale cache tag + protected release), an overwritten tag's
    old manifest (untagged, old) and a new untagged one."""
    p = pusher(standin)
    d = {"stale": small(p, "cache-stale", "stale"), "fresh": small(p, "cache-fresh", "fresh"),
         "shared": small(p, "cache-shared", "shared"), "overwritten": small(p, "cache-main", "v1")}
    p.manifest("release", *_body_of(standin, p.repo, d["shared"]))
    d["main"] = small(p, "cache-main", "v2")
    d["young_untagged"] = small(p, None, "young")
    for key in ("stale", "shared", "overwritten", "main"):
        standin.set_times(p.repo, d[key], OLD)
    return p, d


def _body_of(standin: AcrStandIn, repo: str, digest: str) -> tuple[bytes, str]:
    body, media = standin.manifest(repo, digest)
    return body, media.split(";")[0]


def target(p: Pusher) -> str:
    return f"{LOGIN_SERVER}/{p.repo}"


def survivors(standin: AcrStandIn, p: Pusher, digests: dict[str, str]) -> tuple[dict[str, str], set[str]]:
    """What the real registry holds: tag -> digest, and which of `digests` still resolve."""
    return standin.tags(p.repo), {k for k, d in digests.items() if standin.resolve(p.repo, d)}


def mutating(standin: AcrStandIn) -> list[tuple[str, str, int]]:
    """The deletes sent (the tests' own pushes are PUTs; the janitor pushes nothing here)."""
    return [c for c in standin.calls if c[0] == "DELETE"]


def test_dry_run_then_prune_leaves_exactly_the_survivors(cli, acr, tmp_path):
    p, d = world(acr)
    policy = tmp_path / "p.toml"
    policy.write_text(POLICY)
    before = len(acr.calls)
    dry = cli("prune", target(p), "--policy", policy, "--dry-run", "-O", "json")
    assert dry.exit_code == 0, dry.stdout + dry.stderr
    actions = {(a["action"], a["tag"], a["digest"]) for a in json.loads(dry.stdout)["targets"][0]["actions"]}
    assert actions == {("delete", "cache-stale", d["stale"]), ("untag", "cache-shared", d["shared"]),
                       ("delete", "cache-main", d["main"]), ("delete", None, d["overwritten"])}
    assert [c for c in acr.calls[before:] if c[0] != "GET" and "/oauth2/" not in c[1]] == []

    done = cli("prune", target(p), "--policy", policy, "--yes")
    assert done.exit_code == 0, done.stdout + done.stderr
    tags, present = survivors(acr, p, d)
    assert tags == {"cache-fresh": d["fresh"], "release": d["shared"]}
    assert present == {"fresh", "shared", "young_untagged"}
    # The shared digest lost only its cache tag, through ACR's tag API; never a /v2 DELETE of it.
    sent = [(m, path) for m, path, _ in mutating(acr)]
    assert ("DELETE", f"/acr/v1/{p.repo}/_tags/cache-shared") in sent
    assert not any(d["shared"] in path for _, path in sent)
    assert ("DELETE", f"/v2/{p.repo}/manifests/{d['overwritten']}") in sent
    assert not any(path.startswith(f"/v2/{p.repo}/manifests/cache-") for m, path in sent if m == "DELETE")


def test_untagged_manifests_are_listed_with_their_source_and_deleted(cli, acr, tmp_path):
    p, d = world(acr)
    listed = cli("ls", target(p), "--all-tags", "-O", "json")
    assert listed.exit_code == 0, listed.stderr
    doc = json.loads(listed.stdout)["targets"][0]
    untagged = {u["digest"]: u for u in doc["untagged"]}
    assert set(untagged) == {d["overwritten"], d["young_untagged"]}
    assert {u["untagged_source"] for u in untagged.values()} == {"listed"}
    assert untagged[d["overwritten"]]["age_source"] == "acr/lastUpdateTime"
    assert untagged[d["overwritten"]]["created"].startswith(OLD.strftime("%Y-%m-%d"))
    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\nselect = { untagged = true }\naction = "delete"\n')
    done = cli("prune", target(p), "--policy", policy, "--yes")
    assert done.exit_code == 0, done.stdout + done.stderr
    tags, present = survivors(acr, p, d)
    assert present == {"stale", "fresh", "shared", "main"} and len(tags) == 5


def test_locked_tags_and_manifests_are_kept_with_the_lock_as_reason(cli, acr, tmp_path):
    p, d = world(acr)
    acr.lock_tag(p.repo, "cache-stale")                         # deleteEnabled = false
    acr.lock_tag(p.repo, "cache-shared", writeEnabled=False)    # a write lock refuses deletes too
    acr.lock_manifest(p.repo, d["overwritten"])
    policy = tmp_path / "p.toml"
    policy.write_text(POLICY)
    plan = cli("plan", target(p), "--policy", policy)
    assert plan.exit_code == 0, plan.stderr
    doc = json.loads(plan.stdout)["targets"][0]
    assert {(a["tag"], a["digest"]) for a in doc["actions"]} == {("cache-main", d["main"])}
    kept = json.dumps(doc)
    assert "locked: ACR tag lock: deleteEnabled = false" in kept
    assert "locked: ACR tag lock: writeEnabled = false" in kept
    assert "locked: ACR manifest lock: deleteEnabled = false" in kept
    done = cli("prune", target(p), "--policy", policy, "--yes")
    assert done.exit_code == 0, done.stdout + done.stderr
    tags, present = survivors(acr, p, d)
    assert present == {"stale", "fresh", "shared", "overwritten", "young_untagged"}
    assert "cache-main" not in tags and {"cache-stale", "cache-shared", "release"} <= set(tags)


def test_a_locked_repository_is_kept_whole_with_the_lock_as_reason(cli, acr, tmp_path):
    p, d = world(acr)
    acr.lock_repository(p.repo)
    policy = tmp_path / "p.toml"
    policy.write_text(POLICY)
    done = cli("prune", target(p), "--policy", policy, "--yes")
    assert done.exit_code == 0, done.stdout + done.stderr
    assert "locked: ACR repository lock: deleteEnabled = false" in done.stdout
    assert "error" not in done.stderr
    assert mutating(acr) == []
    assert survivors(acr, p, d)[1] == set(d)


def test_refusals_are_one_line_and_change_nothing(cli, acr, tmp_path, monkeypatch):
    p, d = world(acr)
    policy = tmp_path / "p.toml"
    policy.write_text(POLICY)
    reader = acr.add_refresh_token(READ_ACTIONS)
    monkeypatch.setenv("ACR_REFRESH_TOKEN", reader)
    dry = cli("prune", target(p), "--policy", policy, "--dry-run")        # read-only is enough for a dry run
    assert dry.exit_code == 0, dry.stdout + dry.stderr
    done = cli("prune", target(p), "--policy", policy, "--yes")
    assert done.exit_code == 1, done.stdout + done.stderr
    out = done.stdout + done.stderr
    assert "Traceback" not in out and reader not in out
    assert "lack the delete permission" in out
    assert survivors(acr, p, d)[1] == set(d) and len(survivors(acr, p, d)[0]) == 5
    assert {s for m, _, s in mutating(acr)} == {401}

    monkeypatch.setenv("ACR_REFRESH_TOKEN", "not-a-token")
    refused = cli("ls", target(p))
    assert refused.exit_code == 1
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "refused (401)" in errors[0] and "ACR_REFRESH_TOKEN" in errors[0], refused.stderr
    assert "not-a-token" not in refused.stdout + refused.stderr


def test_a_lock_or_a_move_after_planning_is_left_alone(cli, acr, tmp_path):
    p, d = world(acr)
    policy = tmp_path / "p.toml"
    policy.write_text(POLICY)
    plan_file = tmp_path / "plan.json"
    planned = cli("plan", target(p), "--policy", policy, "-o", plan_file)
    assert planned.exit_code == 0, planned.stderr
    # Someone else, after planning: pushes cache-main again (it moves), tags the planned untagged
    # manifest (a digest delete would drop that tag) and locks cache-stale.
    moved = small(p, "cache-main", "v3")
    p.manifest("keep-me", *_body_of(acr, p.repo, d["overwritten"]))
    acr.lock_tag(p.repo, "cache-stale")
    done = cli("apply", plan_file, "--yes")
    assert done.exit_code == 4, done.stdout + done.stderr
    tags, present = survivors(acr, p, d)
    assert tags["cache-main"] == moved and tags["keep-me"] == d["overwritten"] and tags["cache-stale"] == d["stale"]
    assert "cache-shared" not in tags and tags["release"] == d["shared"]
    assert present == set(d)            # nothing deleted: main moved away from its pinned digest, so it stays
    assert not any(c[0] == "DELETE" and "/v2/" in c[1] for c in acr.calls)


def test_a_tag_added_after_the_last_look_stops_the_digest_delete(acr):
    """The guard in AcrRegistry.delete_manifest: a tag the last look did not see is never dropped."""
    import asyncio

    from ghcr_janitor.core.errors import TagMovedError
    from ghcr_janitor.core.reference import Target
    from ghcr_janitor.core.settings import Settings
    from ghcr_janitor.stores.acr.registry import open_store
    from ghcr_janitor.stores.connect import ConnectOptions

    p, d = world(acr)
    settings = Settings.from_env()
    store = open_store(Target("acr", LOGIN_SERVER, p.repo), ConnectOptions(settings=settings),
                       settings.host(LOGIN_SERVER))

    async def run() -> None:
        try:
            await store.current_tags()                          # the last look
            p.manifest("late", *_body_of(acr, p.repo, d["overwritten"]))
            with pytest.raises(TagMovedError, match="late"):
                await store.delete_manifest(d["overwritten"])
        finally:
            await store.aclose()

    asyncio.run(run())
    assert acr.resolve(p.repo, d["overwritten"]) and acr.tags(p.repo)["late"] == d["overwritten"]


def test_globs_list_the_registrys_repositories(cli, acr):
    a, b = pusher(acr, "team/one"), pusher(acr, "team/sub/two")
    small(a, "cache-x", "x")
    small(b, "cache-y", "y")
    small(pusher(acr, "other/three"), "cache-z", "z")
    listed = cli("ls", f"{LOGIN_SERVER}/team/*", "-O", "json")
    assert listed.exit_code == 0, listed.stderr
    assert sorted(t["target"] for t in json.loads(listed.stdout)["targets"]) == [
        f"{LOGIN_SERVER}/team/one", f"{LOGIN_SERVER}/team/sub/two"]
    assert any(path.startswith("/acr/v1/_catalog") for _, path, _ in acr.calls)


@pytest.mark.parametrize("where", ["docker-az-login", "docker-admin", "aad", "settings-token"])
def test_credentials_from_where_users_keep_them(cli, acr, tmp_path, monkeypatch, where):
    p = pusher(acr)
    small(p, "cache-a", "a")
    monkeypatch.delenv("ACR_REFRESH_TOKEN")
    docker = tmp_path / "docker"
    docker.mkdir(exist_ok=True)
    if where == "docker-az-login":            # what `az acr login` leaves: the null GUID and a refresh token
        auth = base64.b64encode(f"00000000-0000-0000-0000-000000000000:{acr.secret}".encode()).decode()
        (docker / "config.json").write_text(json.dumps({"auths": {LOGIN_SERVER: {"auth": auth}}}))
    elif where == "docker-admin":
        acr.add_user("janitortest", "admin-password-never-printed")
        auth = base64.b64encode(b"janitortest:admin-password-never-printed").decode()
        (docker / "config.json").write_text(json.dumps({"auths": {LOGIN_SERVER: {"auth": auth}}}))
    elif where == "aad":
        monkeypatch.setenv("AZURE_ACCESS_TOKEN", acr.add_aad_token())
    else:
        settings = tmp_path / "settings.toml"
        settings.write_text(settings.read_text() + 'token_env = "MY_ACR_TOKEN"\n')
        monkeypatch.setenv("MY_ACR_TOKEN", acr.secret)
    listed = cli("ls", target(p), "-O", "json")
    assert listed.exit_code == 0, listed.stderr
    assert [t["tag"] for t in json.loads(listed.stdout)["targets"][0]["tags"]] == ["cache-a"]
    exchanged = [path for m, path, _ in acr.calls if path.startswith("/oauth2/")]
    assert ("/oauth2/exchange" in exchanged) == (where == "aad")
    assert "admin-password-never-printed" not in listed.stdout + listed.stderr


def test_an_unset_token_variable_is_a_usage_error_before_any_request(cli, acr, tmp_path):
    settings = tmp_path / "settings.toml"
    settings.write_text(settings.read_text() + 'token_env = "UNSET_ACR_TOKEN"\n')
    before = len(acr.calls)
    result = cli("ls", f"{LOGIN_SERVER}/team/app")
    assert result.exit_code == 2 and "UNSET_ACR_TOKEN" in result.stderr
    assert len(acr.calls) == before


def _counts(calls: list[tuple[str, str, int]]) -> dict[str, int]:
    """Requests by what they are: token exchanges, /acr/v1 listings and reads, /v2 reads, deletes."""
    out: dict[str, int] = {}
    for method, path, _ in calls:
        if path.startswith("/oauth2/"):
            key = "token"
        elif method == "DELETE":
            key = "DELETE " + ("/acr/v1 tag" if path.startswith("/acr/v1/") else "/v2 digest")
        elif path.startswith("/acr/v1/") and "?n=" in path or "&n=" in path:
            key = "/acr/v1 listing page"
        elif path.startswith("/acr/v1/"):
            key = "/acr/v1 item"
        else:
            key = f"{method} /v2"
        out[key] = out.get(key, 0) + 1
    return out


def test_requests_per_thousand_tags_listed_and_per_hundred_deletes(cli, acr, tmp_path, capsys):
    p = pusher(acr)
    # 1,000 tags on 10 real manifests (9 more tags each in ACR's metadata: pushing 1,000 manifests
    # through the stand-in takes half a minute), and 100 untagged manifests.
    tagged = [small(p, f"cache-{i:04d}", f"t{i}") for i in range(10)]
    for i, digest in enumerate(tagged):
        acr.add_tags(p.repo, digest, [f"cache-{i:04d}-{j}" for j in range(99)])
    untagged = [small(p, None, f"u{i}") for i in range(100)]
    for digest in untagged:
        acr.set_times(p.repo, digest, OLD)
    start = len(acr.calls)
    listed = cli("ls", target(p), "--all-tags", "-O", "json")
    assert listed.exit_code == 0, listed.stderr
    doc = json.loads(listed.stdout)["targets"][0]
    assert len(doc["tags"]) == 1000 and len(doc["untagged"]) == 100
    per_listing = _counts(acr.calls[start:])
    # 110 manifests and 1,000 tags at 1,000 a page: 1 + 1 listing pages, the repository's attributes,
    # a token per scope (metadata_read, pull); each manifest is read once over /v2 (as on every store).
    assert per_listing == {"token": 2, "/acr/v1 listing page": 2, "/acr/v1 item": 1, "GET /v2": 110}

    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\nselect = { untagged = true }\nolder_than = "7d"\naction = "delete"\n')
    start = len(acr.calls)
    pruned = cli("prune", target(p), "--all-tags", "--policy", policy, "--yes")
    assert pruned.exit_code == 0, pruned.stdout + pruned.stderr
    assert {d for d in acr.manifests[p.repo]} == set(tagged)
    per_prune = _counts(acr.calls[start:])
    # The inventory as above, then a last look per 16 deletes (7 looks: the listings again, the tag
    # listing twice more), and per delete one fresh read of the manifest and the DELETE itself.
    looks = -(-100 // 16)
    assert per_prune["DELETE /v2 digest"] == 100 and "DELETE /acr/v1 tag" not in per_prune
    assert per_prune["/acr/v1 item"] == 1 + looks + 100
    assert per_prune["/acr/v1 listing page"] <= 2 + looks * (1 + 1 + 2)
    assert per_prune["token"] <= 3
    with capsys.disabled():
        print(f"\nACR requests, ls of 1,000 tags + 100 untagged: {per_listing}; "
              f"prune deleting 100 untagged: {per_prune}")


def test_an_untag_rereads_the_tag_right_before_it(acr):
    """The guard in AcrRegistry.delete_tag: a tag moved or locked since the last look is left alone."""
    import asyncio

    from ghcr_janitor.core.errors import TagMovedError
    from ghcr_janitor.core.reference import Target
    from ghcr_janitor.core.settings import Settings
    from ghcr_janitor.stores.acr.api import LockedError
    from ghcr_janitor.stores.acr.registry import open_store
    from ghcr_janitor.stores.connect import ConnectOptions

    p, d = world(acr)
    settings = Settings.from_env()
    store = open_store(Target("acr", LOGIN_SERVER, p.repo), ConnectOptions(settings=settings),
                       settings.host(LOGIN_SERVER))
    moved = small(p, "cache-shared", "moved")
    acr.lock_tag(p.repo, "release")

    async def run() -> None:
        try:
            with pytest.raises(TagMovedError, match="now points at"):
                await store.delete_tag("cache-shared", d["shared"])
            with pytest.raises(LockedError, match="deleteEnabled = false"):
                await store.delete_tag("release", d["shared"])
        finally:
            await store.aclose()

    asyncio.run(run())
    assert acr.tags(p.repo)["cache-shared"] == moved and acr.tags(p.repo)["release"] == d["shared"]
    assert mutating(acr) == []


def test_index_children_acr_lists_untagged_are_not_deleted_as_untagged(cli, acr, tmp_path):
    """ACR lists a multi-arch image's platform manifests as untagged (acr purge once deleted them,
    Azure/acr-cli#131): they follow their tagged index, never the untagged rule."""
    p = pusher(acr)
    amd = p.image(None, [b"amd-layer"], OLD, platform={"architecture": "amd64"})
    arm = p.image(None, [b"arm-layer"], OLD, platform={"architecture": "arm64"})
    index, _ = p.index("release", [(amd[0], amd[1], {"os": "linux", "architecture": "amd64"}),
                                   (arm[0], arm[1], {"os": "linux", "architecture": "arm64"})])
    orphan = small(p, None, "orphan")
    for digest in (amd[0], arm[0], index, orphan):
        acr.set_times(p.repo, digest, OLD)
    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\nselect = { untagged = true }\naction = "delete"\n')
    done = cli("-vv", "prune", target(p), "--policy", policy, "--yes")
    assert done.exit_code == 0, done.stdout + done.stderr
    assert set(acr.manifests[p.repo]) == {amd[0], arm[0], index}
    assert all(acr.resolve(p.repo, d) for d in (amd[0], arm[0], index)) and not acr.resolve(p.repo, orphan)
    assert acr.secret not in done.stdout + done.stderr
