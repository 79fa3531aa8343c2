"""GHCR backend against a fake GitHub Packages REST API (respx) and the REAL local registry (OCI side).

The fake keeps package versions like GHCR does: one version per pushed manifest, tags taken from
the registry (a re-pushed tag leaves the old version untagged), untagged versions kept until a
REST DELETE, which also deletes the manifest on the registry.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from pathlib import Path
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, quote

import httpx
import pytest
import respx

from ghcr_janitor.core import mediatypes as mt
from ghcr_janitor.stores.connect import ConnectOptions, open_registry
from ghcr_janitor.core.errors import NotFoundError, RegistryError, TagMovedError
from ghcr_janitor.inventory.gather import InventoryOptions, build_inventory
from ghcr_janitor.core.reference import parse_target
from ghcr_janitor.stores.ghcr.registry import GhcrRegistry
from tests.support.push import OCI_MANIFEST, Pusher, dumps, sha

API = "https://api.github.test"
TOKEN = "ghp_integration_token_value_42"
ORG_ID = 4242
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
_owners = itertools.count()


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeGitHub:
    """GitHub Packages REST for one org package, backed by the local registry's real state."""

    def __init__(self, pusher: Pusher, owner: str, package: str):
        self.pusher, self.owner, self.package = pusher, owner, package
        self.quoted = quote(package, safe="")
        self.versions: dict[str, dict] = {}          # digest -> version object
        self.ids = itertools.count(500_000)
        self.failures: list[tuple[str | None, httpx.Response]] = []
        self.requests: list[tuple[str, str]] = []

    # --- building state ---
    def add(self, digest: str, when: datetime) -> dict:
        """Record a version for a manifest just pushed (tags come from the registry on sync)."""
        vid = next(self.ids)
        self.versions[digest] = {
            "id": vid, "name": digest,
            "url": f"{API}/orgs/{self.owner}/packages/container/{self.quoted}/versions/{vid}",
            "package_html_url": f"https://github.com/orgs/{self.owner}/packages/container/package/{self.quoted}",
            "created_at": stamp(when), "updated_at": stamp(when),
            "html_url": f"https://github.com/orgs/{self.owner}/packages/container/{self.quoted}/{vid}",
            "metadata": {"package_type": "container", "container": {"tags": []}},
        }
        return self.versions[digest]

    def sync(self) -> None:
        tags = self.pusher.tags()
        for digest in set(tags.values()) - set(self.versions):
            self.add(digest, NOW)                    # pushed by the janitor (placeholder) or a retag
        for digest, obj in self.versions.items():
            obj["metadata"]["container"]["tags"] = sorted(t for t, d in tags.items() if d == digest)

    def fail(self, method: str | None, *responses: httpx.Response) -> None:
        """Answer the next matching requests with these responses first."""
        self.failures += [(method, r) for r in responses]

    def by_tag(self, tag: str) -> dict | None:
        return next((v for v in self.versions.values() if tag in v["metadata"]["container"]["tags"]), None)

    # --- answering ---
    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.raw_path.decode()
        self.requests.append((request.method, path))
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.headers["x-github-api-version"] == "2022-11-28"
        for i, (method, response) in enumerate(self.failures):
            if method in (None, request.method):
                del self.failures[i]
                return response
        route = path.split("?", 1)[0]
        listing = {f"/orgs/{self.owner}/packages/container/{self.quoted}/versions",
                   f"/organizations/{ORG_ID}/packages/container/{self.quoted}/versions"}
        if request.method == "GET" and route == f"/orgs/{self.owner}":
            return httpx.Response(200, json={"login": self.owner, "id": ORG_ID})
        if request.method == "GET" and route in listing:
            return self._page(request)
        prefix = f"/orgs/{self.owner}/packages/container/{self.quoted}/versions/"
        if request.method == "DELETE" and route.startswith(prefix):
            return self._delete(int(route[len(prefix):]))
        return httpx.Response(404, json={"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})

    def _page(self, request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.url.query.decode())
        per_page, page = int(query.get("per_page", ["30"])[0]), int(query.get("page", ["1"])[0])
        if page == 1:
            self.sync()
        ordered = sorted(self.versions.values(), key=lambda v: -v["id"])       # newest first
        last = max(1, -(-len(ordered) // per_page))
        link = f"{API}/organizations/{ORG_ID}/packages/container/{self.quoted}/versions?per_page={per_page}&page="
        rels = []
        if page < last:
            rels += [f'<{link}{page + 1}>; rel="next"', f'<{link}{last}>; rel="last"']
        if page > 1:
            rels += [f'<{link}{page - 1}>; rel="prev"', f'<{link}1>; rel="first"']
        headers = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4990", "x-ratelimit-used": "10",
                   "x-ratelimit-reset": "4102444800", "x-ratelimit-resource": "core"}
        if rels:
            headers["link"] = ", ".join(rels)
        return httpx.Response(200, json=ordered[(page - 1) * per_page: page * per_page], headers=headers)

    def _delete(self, vid: int) -> httpx.Response:
        found = next((d for d, v in self.versions.items() if v["id"] == vid), None)
        if found is None:
            return httpx.Response(404, json={"message": "Package version not found."})
        del self.versions[found]
        gone = self.pusher.client.delete(f"{self.pusher.base}/v2/{self.pusher.repo}/manifests/{found}")
        assert gone.status_code in (202, 404), gone.text
        return httpx.Response(204)


@pytest.fixture
def ghcr_env(registry, monkeypatch, fast_sleep):
    monkeypatch.setenv("JANITOR_GHCR_REGISTRY", registry.url)
    monkeypatch.setenv("GITHUB_API_URL", API)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    return registry


def make_package(registry, package: str = "app") -> tuple[str, Pusher, FakeGitHub]:
    owner = f"acme{next(_owners)}x{os.getpid()}"
    pusher = Pusher(registry.url, f"{owner}/{package}")
    return owner, pusher, FakeGitHub(pusher, owner, package)


def seed_scenario(pusher: Pusher, fake: FakeGitHub, old: int = 50, image_age_days: int = 5) -> dict:
    """Tagged caches, `old` untagged former cache-base versions, a multi-arch image, a two-tag version."""
    facts: dict = {"old": []}
    for i in range(old):
        when = NOW - timedelta(days=200 - i)
        digest, _ = pusher.buildkit_cache("cache-base", [b"base-layer-%d" % i], when)
        fake.add(digest, when)
        facts["old"].append((digest, when))
    facts["cache-base"], _ = pusher.buildkit_cache("cache-base", [b"base-layer-now"], NOW - timedelta(days=1))
    fake.add(facts["cache-base"], NOW - timedelta(days=1))
    facts["cache-python-deps"], _ = pusher.buildkit_cache("cache-python-deps", [b"py-1", b"py-2"],
                                                          NOW - timedelta(days=3), form="index")
    fake.add(facts["cache-python-deps"], NOW - timedelta(days=3))
    children = []
    for arch in ("amd64", "arm64"):
        digest, body = pusher.image(None, [f"app-{arch}".encode()], NOW - timedelta(days=image_age_days),
                                    platform={"architecture": arch})
        fake.add(digest, NOW - timedelta(days=image_age_days))
        children.append((digest, body, {"architecture": arch, "os": "linux"}))
    facts["children"] = [c[0] for c in children]
    facts["latest"], _ = pusher.index("latest", children)
    fake.add(facts["latest"], NOW - timedelta(days=image_age_days))
    shared, body = pusher.buildkit_cache("cache-main", [b"main-1"], NOW - timedelta(days=2))
    pusher.manifest("cache-pr-1", body, OCI_MANIFEST)
    fake.add(shared, NOW - timedelta(days=2))
    facts["shared"] = shared
    fake.sync()
    return facts


def run(coro):
    return asyncio.run(coro)


def open_ghcr_target(text: str, log=None) -> GhcrRegistry:
    options = ConnectOptions() if log is None else ConnectOptions(log=log)
    registry = open_registry(parse_target(text), options)
    assert isinstance(registry, GhcrRegistry)
    return registry


@pytest.fixture
def api_mock(ghcr_env):
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="127.0.0.1").pass_through()
        yield mock


def serve(mock, fake: FakeGitHub) -> None:
    mock.route(host="api.github.test").mock(side_effect=fake)


# --- inventory ----------------------------------------------------------------------------------

def test_ghcr_inventory_lists_untagged_versions_with_sizes_ages_and_keeps_children_in_closure(
        ghcr_env, api_mock, fast_sleep):
    owner, pusher, fake = make_package(ghcr_env)
    facts = seed_scenario(pusher, fake)
    serve(api_mock, fake)
    listing = f"/orgs/{owner}/packages/container/app/versions?per_page=100"
    fake.fail("GET", httpx.Response(429, json={"message": "Too many requests"}, headers={"retry-after": "7"}))
    fake.fail("GET", httpx.Response(403, json={
        "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
        "documentation_url": "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api"},
        headers={"retry-after": "11"}))
    target = f"ghcr.io/{owner}/app"
    registry = open_ghcr_target(target)

    async def go():
        try:
            return await build_inventory(registry, target, InventoryOptions(now=NOW))
        finally:
            await registry.aclose()

    inv = run(go())
    # The 429 and the 403 hit the owner lookup; both waits honoured retry-after, then success.
    assert registry.rest_calls == [("GET", f"/orgs/{owner}", 429), ("GET", f"/orgs/{owner}", 403),
                                   ("GET", f"/orgs/{owner}", 200), ("GET", listing, 200)]
    assert fast_sleep == [7, 11]
    assert inv.errors == [] and inv.backend == "ghcr"
    old = [d for d, _ in facts["old"]]
    assert sorted(inv.untagged) == sorted(old)          # roots only: the children follow `latest`
    assert set(facts["children"]) <= set(inv.artifacts)
    for digest, when in facts["old"]:
        art = inv.artifacts[digest]
        assert art.kind == "buildkit-cache" and art.size > 0 and art.unique_size > 0
        assert (art.created, art.age_source) == (when, "ghcr/updated_at")
        assert art.extra["version_id"] == fake.versions[digest]["id"]
    latest = inv.artifacts[facts["latest"]]
    assert latest.kind == "image-index" and set(facts["children"]) <= set(latest.closure)
    assert inv.tags["cache-main"] == inv.tags["cache-pr-1"] == facts["shared"]
    assert inv.tags["cache-base"] == facts["cache-base"]
    assert inv.listed == ["cache-base", "cache-main", "cache-pr-1", "cache-python-deps"]
    assert not any(m in ("DELETE", "PUT", "POST") for m, _, _ in registry.rest_calls)


def test_ghcr_pagination_over_260_versions_with_a_nested_package_name(ghcr_env, api_mock, fast_sleep):
    owner, pusher, fake = make_package(ghcr_env, package="app/cache")
    config = pusher.blob(b"{}")
    layer = pusher.blob(b"shared-layer")
    for i in range(260):
        body = dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                      "config": {"mediaType": mt.OCI_EMPTY, "digest": config, "size": 2},
                      "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer,
                                  "size": 12}], "annotations": {"n": str(i)}})
        fake.add(pusher.manifest(sha(body), body, OCI_MANIFEST), NOW - timedelta(hours=i))
    serve(api_mock, fake)
    target = f"ghcr.io/{owner}/app/cache"
    registry = open_ghcr_target(target)

    async def go():
        try:
            return await build_inventory(registry, target, InventoryOptions(now=NOW))
        finally:
            await registry.aclose()

    inv = run(go())
    base = "/packages/container/app%2Fcache/versions?per_page=100"
    assert registry.rest_calls == [("GET", f"/orgs/{owner}", 200), ("GET", f"/orgs/{owner}{base}", 200),
                                   ("GET", f"/organizations/{ORG_ID}{base}&page=2", 200),
                                   ("GET", f"/organizations/{ORG_ID}{base}&page=3", 200)]
    assert len(inv.untagged) == 260 and inv.errors == []


# --- deleting -------------------------------------------------------------------------------------

def test_ghcr_delete_manifest_deletes_the_version_and_refuses_unknown_digests(ghcr_env, api_mock, fast_sleep):
    owner, pusher, fake = make_package(ghcr_env)
    facts = seed_scenario(pusher, fake, old=3)
    serve(api_mock, fake)
    registry = open_ghcr_target(f"ghcr.io/{owner}/app")
    first, second = facts["old"][0][0], facts["old"][1][0]
    ids = {d: fake.versions[d]["id"] for d in (first, second)}
    fake.fail("DELETE", httpx.Response(502, json={"message": "Server Error"}))

    async def go():
        try:
            await registry.delete_manifest(first)
            await registry.delete_manifest(second)
            with pytest.raises(NotFoundError, match="no package version has this digest"):
                await registry.delete_manifest(sha(b"never pushed"))
        finally:
            await registry.aclose()

    run(go())
    path = f"/orgs/{owner}/packages/container/app/versions"
    assert registry.rest_calls == [
        ("GET", f"/orgs/{owner}", 200), ("GET", f"{path}?per_page=100", 200),
        ("DELETE", f"{path}/{ids[first]}", 502), ("DELETE", f"{path}/{ids[first]}", 204),
        ("DELETE", f"{path}/{ids[second]}", 204),
        ("GET", f"{path}?per_page=100", 200),     # unknown digest: one fresh listing, then refused
    ]
    assert first not in fake.versions and second not in fake.versions
    assert pusher.client.head(f"{pusher.base}/v2/{pusher.repo}/manifests/{first}",
                              headers={"Accept": mt.ACCEPT}).status_code == 404
    assert 2.0 in fast_sleep                      # backed off after the 502; deletes were paced


def test_ghcr_delete_tag_untags_with_a_placeholder_and_leaves_none_behind(ghcr_env, api_mock, fast_sleep):
    owner, pusher, fake = make_package(ghcr_env)
    facts = seed_scenario(pusher, fake, old=2)
    serve(api_mock, fake)
    registry = open_ghcr_target(f"ghcr.io/{owner}/app")
    before = set(fake.versions)

    async def go():
        try:
            await registry.delete_tag("cache-pr-1", facts["shared"])
            return await registry.resolve("cache-pr-1"), await registry.resolve("cache-main")
        finally:
            await registry.aclose()

    gone, main = run(go())
    assert (gone, main) == (None, facts["shared"])
    path = f"/orgs/{owner}/packages/container/app/versions"
    calls = registry.rest_calls
    placeholder_id = int(calls[3][1].rsplit("/", 1)[1])
    assert calls == [("GET", f"/orgs/{owner}", 200), ("GET", f"{path}?per_page=100", 200),
                     ("GET", f"{path}?per_page=100", 200), ("DELETE", f"{path}/{placeholder_id}", 204)]
    fake.sync()
    assert set(fake.versions) == before                      # the placeholder version is gone
    assert fake.versions[facts["shared"]]["metadata"]["container"]["tags"] == ["cache-main"]
    assert "cache-pr-1" not in pusher.tags() and pusher.tags()["cache-main"] == facts["shared"]


def test_ghcr_delete_tag_refuses_a_moved_tag(ghcr_env, api_mock, fast_sleep):
    owner, pusher, fake = make_package(ghcr_env)
    facts = seed_scenario(pusher, fake, old=1)
    serve(api_mock, fake)
    registry = open_ghcr_target(f"ghcr.io/{owner}/app")

    async def go():
        try:
            with pytest.raises(TagMovedError, match="now points at"):
                await registry.delete_tag("cache-pr-1", facts["cache-base"])
        finally:
            await registry.aclose()

    run(go())
    assert not any(m == "DELETE" for m, _, _ in registry.rest_calls)
    assert pusher.tags()["cache-pr-1"] == facts["shared"]


def test_ghcr_failed_placeholder_delete_is_reported_and_a_rerun_finishes_it(ghcr_env, api_mock, fast_sleep):
    owner, pusher, fake = make_package(ghcr_env)
    facts = seed_scenario(pusher, fake, old=1)
    serve(api_mock, fake)
    before = set(fake.versions)
    fake.fail("DELETE", *[httpx.Response(500, json={"message": "Server Error"}) for _ in range(15)])
    registry = open_ghcr_target(f"ghcr.io/{owner}/app")

    async def first():
        try:
            with pytest.raises(RegistryError) as info:
                await registry.delete_tag("cache-pr-1", facts["shared"])
            return str(info.value)
        finally:
            await registry.aclose()

    message = run(first())
    placeholder = fake.by_tag("cache-pr-1")
    assert placeholder is not None and placeholder["name"] != facts["shared"]
    assert f"placeholder version {placeholder['id']}" in message and "rerun to finish" in message
    assert TOKEN not in message
    body = json.loads(pusher.client.get(f"{pusher.base}/v2/{pusher.repo}/manifests/cache-pr-1",
                                        headers={"Accept": mt.ACCEPT}).content)
    assert body["annotations"][mt.PLACEHOLDER] == "true"

    again = open_ghcr_target(f"ghcr.io/{owner}/app")

    async def rerun():
        try:
            assert await again.pending_placeholder("cache-pr-1") == placeholder["name"]
            await again.delete_tag("cache-pr-1", facts["shared"])
        finally:
            await again.aclose()

    run(rerun())
    fake.sync()
    assert set(fake.versions) == before
    assert "cache-pr-1" not in pusher.tags()


def test_ghcr_resolve_sees_a_tag_that_moved(ghcr_env, api_mock, fast_sleep):
    owner, pusher, fake = make_package(ghcr_env)
    facts = seed_scenario(pusher, fake, old=1)
    serve(api_mock, fake)
    registry = open_ghcr_target(f"ghcr.io/{owner}/app")
    registry.listing_ttl = 0

    async def go():
        try:
            first = await registry.resolve("cache-base")
            moved, _ = pusher.buildkit_cache("cache-base", [b"base-layer-newer"], NOW)
            return first, moved, await registry.resolve("cache-base")
        finally:
            await registry.aclose()

    first, moved, now = run(go())
    assert first == facts["cache-base"] and now == moved != first


def test_ghcr_missing_token_is_a_clear_error(registry, monkeypatch, fast_sleep):
    monkeypatch.setenv("JANITOR_GHCR_REGISTRY", registry.url)
    monkeypatch.setenv("GITHUB_API_URL", API)
    reg = open_ghcr_target("ghcr.io/acme/app")

    async def go():
        try:
            with pytest.raises(Exception, match="set GITHUB_TOKEN or GH_TOKEN"):
                await reg.list_versions()
        finally:
            await reg.aclose()

    with respx.mock(assert_all_called=False) as mock:
        route = mock.route(host="api.github.test")
        run(go())
    assert not route.called


# --- end to end through the CLI -------------------------------------------------------------------

POLICY = """
protect = ["cache-base", "cache-python-deps", "cache-main", "latest"]
[[rule]]
name = "old untagged"
select = { untagged = true }
older_than = "30d"
action = "delete"
[[rule]]
name = "pull request caches"
select = { tags = ["cache-pr-*"] }
action = "delete"
"""


def test_ghcr_prune_dry_run_then_plan_and_apply_end_to_end(ghcr_env, api_mock, fast_sleep, tmp_path, cli):
    owner, pusher, fake = make_package(ghcr_env)
    facts = seed_scenario(pusher, fake, old=50, image_age_days=100)   # children old enough to be selected
    serve(api_mock, fake)
    oci_calls = api_mock.routes[0].calls                        # the pass-through route to the registry
    seeded = len(oci_calls)
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    target = f"ghcr.io/{owner}/app"
    old = sorted(d for d, _ in facts["old"])

    dry = cli("prune", target, "--policy", policy, "--dry-run", "--output", "json")
    assert dry.exit_code == 0, dry.stderr
    planned = json.loads(dry.stdout)["targets"][0]
    assert sorted(a["digest"] for a in planned["actions"] if a["action"] == "delete") == old
    assert [(a["action"], a["tag"]) for a in planned["actions"] if a["tag"]] == [("untag", "cache-pr-1")]
    assert all(a["reclaim_size"] > 0 for a in planned["actions"] if a["action"] == "delete")
    acted = {a["digest"] for a in planned["actions"]}
    assert not set(facts["children"]) & acted                 # multi-arch children follow the kept index
    assert all(m == "GET" for m, _ in fake.requests)
    assert len(oci_calls) > seeded
    assert all(c.request.method in ("GET", "HEAD") for c in list(oci_calls)[seeded:])

    plan_file = tmp_path / "plan.json"
    assert cli("plan", target, "--policy", policy, "-o", plan_file).exit_code == 0
    ids = {fake.versions[d]["id"] for d in old}
    fake.requests.clear()
    applied = cli("apply", plan_file, "--yes")
    assert applied.exit_code == 0, applied.stdout + applied.stderr
    deletes = [p for m, p in fake.requests if m == "DELETE"]
    prefix = f"/orgs/{owner}/packages/container/app/versions/"
    deleted_ids = {int(p[len(prefix):]) for p in deletes}
    assert len(deletes) == 51 and ids < deleted_ids          # the 50 planned versions + one placeholder
    fake.sync()
    assert not set(old) & set(fake.versions)
    assert set(facts["children"]) <= set(fake.versions)
    assert sorted(t for v in fake.versions.values() for t in v["metadata"]["container"]["tags"]) == [
        "cache-base", "cache-main", "cache-python-deps", "latest"]
    assert len(fake.versions) == 6                           # no placeholder left behind


def test_ghcr_seed_stages_policy_dry_run_lists_untagged_versions(ghcr_env, api_mock, fast_sleep, cli):
    """The issue's 'done when': the shipped seed-stages policy on a GHCR package, dry run."""
    owner, pusher, fake = make_package(ghcr_env)
    facts = seed_scenario(pusher, fake, old=12, image_age_days=100)
    serve(api_mock, fake)
    policy = Path(__file__).resolve().parents[2] / "policies" / "seed-stages.toml"
    dry = cli("prune", f"ghcr.io/{owner}/app", "--policy", policy, "--dry-run", "-O", "json")
    assert dry.exit_code == 0, dry.stderr
    target = json.loads(dry.stdout)["targets"][0]
    untagged = [a for a in target["actions"] if a["tag"] is None]
    assert sorted(a["digest"] for a in untagged) == sorted(d for d, _ in facts["old"])
    assert all(a["size"] > 0 and a["created"] and a["age_source"].startswith("ghcr/") for a in untagged)
    acted = {a["digest"] for a in target["actions"]}
    assert not set(facts["children"]) & acted             # old, untagged, but children of kept `latest`
    assert all(m == "GET" for m, _ in fake.requests)
    rest_line = next(line for line in dry.stderr.splitlines() if line.startswith("requests:"))
    assert "api.github.test (GitHub REST)" in rest_line and "DELETE" not in rest_line
    table = cli("prune", f"ghcr.io/{owner}/app", "--policy", policy, "--dry-run")
    assert "<untagged>" in table.stdout and "untagged versions" not in table.stderr


def test_ghcr_token_never_leaks_on_the_happy_path(ghcr_env, api_mock, fast_sleep, tmp_path, cli, caplog):
    """GITHUB_TOKEN through plan, dry run and apply at -vv: not in output, logs, plan or journal."""
    import logging

    caplog.set_level(logging.DEBUG)
    owner, pusher, fake = make_package(ghcr_env)
    seed_scenario(pusher, fake, old=3, image_age_days=100)
    serve(api_mock, fake)
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    target = f"ghcr.io/{owner}/app"
    plan_file = tmp_path / "plan.json"
    outputs = [cli("-vv", "prune", target, "--policy", policy, "--dry-run"),
               cli("plan", target, "--policy", policy, "-o", plan_file, "-vv"),
               cli("apply", plan_file, "--yes", "-vv")]
    assert [r.exit_code for r in outputs] == [0, 0, 0], [r.output for r in outputs]
    texts = [r.stdout + r.stderr for r in outputs] + [plan_file.read_text(),
             (tmp_path / "plan.json.journal").read_text(), caplog.text]
    assert all(TOKEN not in text for text in texts)
    assert any("GitHub REST" in r.stderr for r in outputs)
