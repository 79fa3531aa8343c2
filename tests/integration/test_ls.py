"""`janitor ls` / `inspect` against the real registry: kinds, sizes, unique bytes, ages, pagination."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import oras.client
import pytest

from tests.support.push import Pusher, dumps, sha

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def _ls(cli, target: str, *extra: str) -> dict:
    result = cli("ls", target, "-O", "json", *extra)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["version"] == 1
    return doc["targets"][0]


def _closure_sizes(pusher: Pusher, body: bytes) -> dict[str, int]:
    """Digest -> size of everything a pushed manifest needs, computed from what we pushed."""
    doc = json.loads(body)
    sizes = {sha(body): len(body)}
    for desc in ([doc["config"]] if "config" in doc else []) + doc.get("layers", []) + doc.get("manifests", []):
        sizes[desc["digest"]] = desc["size"]
    return sizes


def test_buildkit_cache_forms_kinds_sizes_and_shared_bytes(cli, repo, registry):
    shared = b"shared-base-layer" * 50
    t_base = NOW - timedelta(days=3)
    d1, b1 = repo.buildkit_cache("cache-base", [shared, b"base-only" * 7], t_base, form="manifest")
    d2, b2 = repo.buildkit_cache("cache-pr-1", [shared, b"pr-1-only" * 9], NOW - timedelta(days=40), form="index")
    d3, b3 = repo.buildkit_cache("cache-legacy", [b"legacy" * 11], NOW - timedelta(days=100),
                                 form="docker-list", duplicate_first=True)
    repo.manifest("cache-alias", b1, "application/vnd.oci.image.manifest.v1+json")  # two tags, one digest

    inv = _ls(cli, f"{registry.host}/{repo.repo}")
    tags = {t["tag"]: t for t in inv["tags"]}
    assert set(tags) == {"cache-base", "cache-pr-1", "cache-legacy", "cache-alias"}
    assert {t["kind"] for t in tags.values()} == {"buildkit-cache"}
    assert tags["cache-base"]["digest"] == tags["cache-alias"]["digest"] == d1
    assert tags["cache-pr-1"]["media_type"] == "application/vnd.oci.image.index.v1+json"
    assert tags["cache-legacy"]["media_type"] == "application/vnd.docker.distribution.manifest.list.v2+json"

    closures = {d: _closure_sizes(repo, b) for d, b in ((d1, b1), (d2, b2), (d3, b3))}
    for tag, digest in (("cache-base", d1), ("cache-pr-1", d2), ("cache-legacy", d3)):
        assert tags[tag]["size"] == sum(closures[digest].values()), tag
        others = set().union(*(set(c) for d, c in closures.items() if d != digest))
        unique = sum(s for blob, s in closures[digest].items() if blob not in others)
        assert tags[tag]["unique_size"] == unique, tag
    # The shared layer is what separates size from unique size.
    assert tags["cache-base"]["size"] - tags["cache-base"]["unique_size"] == len(shared)
    # A blob listed twice in one cache counts once.
    assert tags["cache-legacy"]["size"] == len(b3) + sum(
        {d["digest"]: d["size"] for d in json.loads(b3)["manifests"]}.values())

    union = {}
    for closure in closures.values():
        union.update(closure)
    assert inv["totals"] == {**inv["totals"], "tags": 4, "artifacts": 3, "size": sum(union.values())}
    assert inv["untagged"] == []

    created = datetime.fromisoformat(tags["cache-base"]["created"].replace("Z", "+00:00"))
    assert abs(created - t_base) < timedelta(seconds=1)
    assert tags["cache-base"]["age_source"] == "buildkit/createdat"


def test_images_index_and_oras_artifact(cli, repo, registry, tmp_path, monkeypatch):
    created = NOW - timedelta(days=5)
    img, img_body = repo.image("v1", [b"docker-layer" * 20], created, docker=True)
    arm, arm_body = repo.image(None, [b"arm-layer" * 5], created, platform={"architecture": "arm64"})
    amd, amd_body = repo.image(None, [b"amd-layer" * 5], created)
    idx, idx_body = repo.index("multi", [(arm, arm_body, {"architecture": "arm64", "os": "linux"}),
                                         (amd, amd_body, {"architecture": "amd64", "os": "linux"})])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("an artifact pushed with oras-py\n")
    oras.client.OrasClient(hostname=registry.host, insecure=True).push(
        files=["notes.txt"], target=f"{registry.host}/{repo.repo}:artifact-1")

    inv = _ls(cli, f"{registry.host}/{repo.repo}", "--all-tags")
    tags = {t["tag"]: t for t in inv["tags"]}
    assert tags["v1"]["kind"] == "image"
    assert tags["v1"]["media_type"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert tags["v1"]["digest"] == img
    assert tags["v1"]["age_source"] == "config.created"
    assert tags["multi"]["kind"] == "image-index"
    # An index's size includes its children's manifests and blobs.
    children = {**_closure_sizes(repo, arm_body), **_closure_sizes(repo, amd_body)}
    assert tags["multi"]["size"] == len(idx_body) + sum(children.values())
    assert tags["artifact-1"]["kind"] == "artifact"
    assert tags["artifact-1"]["age_source"] == "first-seen"

    # The default --tag cache-* lists none of these.
    assert _ls(cli, f"{registry.host}/{repo.repo}")["tags"] == []


def test_many_tags_and_warm_cache(cli, repo, registry):
    layer = repo.layer(b"common" * 10, NOW)
    config = repo.cache_config([layer])

    def push(i: int) -> None:
        body = dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": config, "layers": [layer], "annotations": {"n": str(i)}})
        repo.manifest(f"cache-{i:05d}", body, "application/vnd.oci.image.manifest.v1+json")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(push, range(1100)))
    inv = _ls(cli, f"{registry.host}/{repo.repo}")
    assert len(inv["tags"]) == 1100
    assert [t["tag"] for t in inv["tags"]] == sorted(t["tag"] for t in inv["tags"])
    # Warm: the same answer from the content-addressed cache.
    assert _ls(cli, f"{registry.host}/{repo.repo}")["tags"] == inv["tags"]


def test_inspect_buildkit_cache(cli, repo, registry):
    repo.buildkit_cache("cache-base", [b"a" * 10, b"b" * 20], NOW - timedelta(days=1), duplicate_first=True)
    result = cli("inspect", f"{registry.host}/{repo.repo}:cache-base", "-O", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["kind"] == "buildkit-cache"
    assert doc["cache"]["layers"] == 2 and doc["cache"]["layer_entries"] == 3
    assert doc["cache"]["records"] == 3
    assert doc["config"]["media_type"] == "application/vnd.buildkit.cacheconfig.v0"
    text = cli("inspect", f"{registry.host}/{repo.repo}:cache-base")
    assert "buildkit-cache" in text.stdout and "records" in text.stdout


def test_missing_repository_and_tag_are_errors(cli, registry):
    result = cli("ls", f"{registry.host}/no/such-repo")
    assert result.exit_code == 1
    assert "not found" in result.stderr
    result = cli("inspect", f"{registry.host}/no/such-repo:cache-x")
    assert result.exit_code == 1


@pytest.mark.parametrize("bad", ["noslash", "https://127.0.0.1:5000/x", "127.0.0.1:5000/UPPER", "127.0.0.1:5000/x:bad tag"])
def test_bad_targets_exit_2(cli, bad):
    result = cli("ls", bad)
    assert result.exit_code == 2
    assert "error:" in result.stderr
