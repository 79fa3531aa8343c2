"""Request economy at scale (issue 23), counted, never timed: benchmarks/scale.py measures the time.

A GHCR package of 1,000 versions (multi-arch images with attestations, mostly untagged) from the
stand-ins of tests/support/scale_standin.py: one REST page per 100 versions and no more, every
manifest GET once (children already read as a version are not read again), and a warm run reads no
manifest at all. A repository of tags: one GET per tag cold, none warm (a HEAD per tag).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.github_standin import Limits
from tests.support.scale_standin import ScaleGitHub, ScaleServer, SyntheticOci, package, tag_repo

POLICY = Path(__file__).resolve().parents[2] / "policies" / "seed-stages.toml"
VERSIONS = 1_000


@pytest.fixture
def stores(monkeypatch, tmp_path, fast_sleep):
    pkg = package(VERSIONS)
    github = ScaleGitHub(Limits(round_trip=0.0, package_per_minute=None))
    github.add_package("acme", "app", pkg.versions)
    oci = SyntheticOci({"acme/app": pkg, "acme/cache": tag_repo(300)}, delay=0.0)
    with ScaleServer(github) as server, oci:
        for name in ("GH_TOKEN", "DOCKER_CONFIG"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("GITHUB_API_URL", server.url)
        monkeypatch.setenv("GITHUB_TOKEN", "ghs_scale_test")
        monkeypatch.setenv("JANITOR_GHCR_REGISTRY", oci.url)
        monkeypatch.setenv("JANITOR_CACHE_DIR", str(tmp_path / "cache"))
        monkeypatch.setenv("JANITOR_STATE_DIR", str(tmp_path / "state"))
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
        yield pkg, github, oci


def _plan(cli, tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "plan.json"
    result = cli("plan", *args, "--policy", POLICY, "-o", out, "-q")
    assert result.exit_code == 0, result.stdout + result.stderr
    return json.loads(out.read_text())


def test_ghcr_pages_and_manifests_once_cold_none_warm(cli, stores, tmp_path):
    pkg, github, oci = stores
    plan = _plan(cli, tmp_path, "ghcr.io/acme/app", "--owner-type", "org")
    assert github.pages <= VERSIONS // 100 + 1
    assert github.stats.requests == github.pages        # the owner type is given: listing pages only
    assert github.stats.secondary == github.stats.primary == 0
    fetched = {digest: n for (repo, digest), n in oci.gets.items()}
    assert set(fetched) == {v["name"] for v in pkg.versions}        # each version's manifest ...
    assert max(fetched.values()) == 1                               # ... once, children included
    assert oci.counts["manifest HEAD"] == 0
    deletes = [a for a in plan["targets"][0]["actions"] if a["action"] == "delete"]
    assert deletes and all(a["version_id"] for a in deletes)

    github.reset()
    oci.reset()
    again = _plan(cli, tmp_path, "ghcr.io/acme/app", "--owner-type", "org")
    assert github.pages <= VERSIONS // 100 + 1
    assert sum(oci.gets.values()) == 0                  # warm: every manifest from the cache
    assert oci.counts["manifest HEAD"] == 0
    assert len(again["targets"][0]["actions"]) == len(plan["targets"][0]["actions"])


def test_registry_tags_one_get_cold_none_warm(cli, stores, tmp_path):
    _, _, oci = stores
    host = oci.url.removeprefix("http://")
    _plan(cli, tmp_path, f"{host}/acme/cache", "--all-tags")
    assert sum(oci.gets.values()) == 300 and max(oci.gets.values()) == 1
    assert oci.counts["tags"] == 1                      # 300 tags: one page of the tag list
    oci.reset()
    _plan(cli, tmp_path, f"{host}/acme/cache", "--all-tags")
    assert sum(oci.gets.values()) == 0
    assert oci.counts["manifest HEAD"] == 300           # a tag's digest is only known by asking
