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
from tests.support.push import OCI_MANIFEST, Pusher

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
    present = set(standin._present(NAME))
    assert present == {d["main"], d["shared"], d["fresh-untagged"]}
    # GAR refused nothing: the tags went first, the index before its platform manifests.
    refused = [c for c in standin.calls if c[0] == "DELETE" and c[2] == 400]
    assert refused == []
