"""GHCR: a listing is complete only when it is consistent (issue 19, point 6), and apply checks
untagged and child deletes against what it sees now.

The REST side is the documented-shape stand-in of test_ghcr (respx); the OCI side is the real
registry. Versions are listed by page number, so a version deleted from page 1 while page 2 is
read shifts the first version of page 2 onto page 1, where nobody reads it any more.
"""

from __future__ import annotations

import json
from datetime import timedelta

import httpx

from tests.integration.test_ghcr import NOW, FakeGitHub, api_mock, ghcr_env, make_package, serve  # noqa: F401
from tests.support.push import OCI_INDEX, dumps

UNTAGGED = '[[rule]]\nname = "untagged"\nselect = { untagged = true }\naction = "delete"\n'


class ShiftingGitHub(FakeGitHub):
    """While page 2 is read, another job deletes a page-1 version (`times` listings in a row)."""

    def __init__(self, *args, times: int = 1):
        super().__init__(*args)
        self.times = times
        self.victims: list[str] = []

    def _page(self, request: httpx.Request) -> httpx.Response:
        if "page=2" in str(request.url) and self.times:
            self.times -= 1
            newest = max(self.versions.values(), key=lambda v: v["id"])
            self.victims.append(newest["name"])
            self._delete(newest["id"])
        return super()._page(request)


class HidingGitHub(FakeGitHub):
    """A listing that keeps missing one version, however often it is read."""

    hidden: str = ""

    def _page(self, request: httpx.Request) -> httpx.Response:
        response = super()._page(request)
        kept = [v for v in response.json() if v["name"] != self.hidden]
        return httpx.Response(200, json=kept, headers=response.headers)


def seed_latest_first_on_page_two(pusher, fake, newer: int = 100, extra: int = 0) -> dict:
    """A tagged multi-arch `latest` that is the 101st newest version: the first of page 2."""
    children = []
    for arch in ("amd64", "arm64"):
        digest, body = pusher.image(None, [f"app-{arch}".encode()], NOW - timedelta(days=9),
                                    platform={"architecture": arch})
        fake.add(digest, NOW - timedelta(days=9))
        children.append((digest, body, {"architecture": arch, "os": "linux"}))
    latest, _ = pusher.index("latest", children)
    fake.add(latest, NOW - timedelta(days=9))
    for i in range(newer + extra):      # each push overwrites cache-x: the older ones are untagged now
        digest, _ = pusher.buildkit_cache("cache-x", [b"x-%d" % i], NOW - timedelta(days=5))
        fake.add(digest, NOW - timedelta(days=5))
    fake.sync()
    return {"latest": latest, "children": [c[0] for c in children]}


def test_a_version_list_shifted_by_a_concurrent_delete_is_relisted_before_planning(ghcr_env, api_mock, cli, tmp_path):
    owner, pusher, _ = make_package(ghcr_env)
    fake = ShiftingGitHub(pusher, owner, "app", times=1)
    facts = seed_latest_first_on_page_two(pusher, fake)
    serve(api_mock, fake)
    policy = tmp_path / "p.toml"
    policy.write_text(UNTAGGED)
    dry = cli("prune", f"ghcr.io/{owner}/app", "--policy", policy, "--dry-run", "-O", "json")
    plan = json.loads(dry.stdout)["targets"][0]
    planned = {a["digest"] for a in plan["actions"]}
    assert len(planned) == 99 and fake.victims, plan["actions"]      # 100 untagged, one deleted by the other job
    assert not planned & set(facts["children"]), plan["actions"]
    assert facts["latest"] not in planned


def test_a_listing_that_stays_inconsistent_blocks_untagged_deletes_with_one_line(ghcr_env, api_mock, cli, tmp_path):
    owner, pusher, _ = make_package(ghcr_env)
    fake = HidingGitHub(pusher, owner, "app")
    facts = seed_latest_first_on_page_two(pusher, fake)
    fake.hidden = facts["latest"]
    serve(api_mock, fake)
    policy = tmp_path / "p.toml"
    policy.write_text(UNTAGGED)
    dry = cli("prune", f"ghcr.io/{owner}/app", "--policy", policy, "--dry-run", "-O", "json")
    plan = json.loads(dry.stdout)["targets"][0]
    assert not [a for a in plan["actions"] if a["action"] == "delete"], plan["actions"]
    assert any("incomplete" in line and "latest" in line for line in plan["errors"]), plan["errors"]
    assert sum("incomplete" in line for line in dry.stderr.splitlines()) <= 2, dry.stderr
    assert set(facts["children"]) <= set(fake.versions)


def test_apply_skips_an_untagged_delete_that_an_index_version_pushed_since_planning_lists(
        ghcr_env, api_mock, cli, tmp_path):
    owner, pusher, fake = make_package(ghcr_env)
    old, old_body = pusher.image(None, [b"old-amd64"], NOW - timedelta(days=40))
    fake.add(old, NOW - timedelta(days=40))
    other, _ = pusher.image(None, [b"other"], NOW - timedelta(days=40))
    fake.add(other, NOW - timedelta(days=40))
    fake.sync()
    serve(api_mock, fake)
    policy = tmp_path / "p.toml"
    policy.write_text(UNTAGGED)
    plan_file = tmp_path / "plan.json"
    assert cli("plan", f"ghcr.io/{owner}/app", "--policy", policy, "-o", plan_file).exit_code == 0
    assert {a["digest"] for a in json.loads(plan_file.read_text())["targets"][0]["actions"]} == {old, other}
    # Another job pushes an (untagged) index over `old` by digest.
    body = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": old, "size": len(old_body),
         "platform": {"architecture": "amd64", "os": "linux"}}]})
    index = pusher.manifest(f"sha256:{__import__('hashlib').sha256(body).hexdigest()}", body, OCI_INDEX)
    fake.add(index, NOW)
    applied = cli("apply", plan_file, "--yes", "-O", "json")
    assert applied.stdout, applied.stderr
    rows = {r["digest"]: r for r in json.loads(applied.stdout)["targets"][0]["results"]}
    assert rows[old]["status"] == "skipped" and f"index version {index}" in rows[old]["reason"], rows[old]
    assert rows[other]["status"] == "done" and rows[other]["reason"] == "deleted"
    assert old in fake.versions and other not in fake.versions
