"""Overwritten manifests on a plain OCI registry (issue 21 point 5), against the real `docker-registry`.

Every push of a `cache-*` tag leaves the previous manifest untagged, and the Distribution API cannot
list it. The janitor remembers each tag's digest (state dir, `remembered.sqlite`); on later runs the
remembered digests no tag reaches are HEADed by digest and those still there are listed as untagged
(`untagged_source: "remembered"`), sized, planned by `untagged = true`, deleted by digest after the
last look, and the registry's own garbage collection then frees what the plan said.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ghcr_janitor.stores.oci import memory as m
from ghcr_janitor.net.http import ThreadedClient
from tests.support.push import OCI_MANIFEST, Pusher, sha
from tests.support.registry import RegistryServer

NOW = datetime.now(timezone.utc).replace(microsecond=0)
UNTAGGED = '[[rule]]\nname = "overwritten caches"\nselect = { untagged = true }\naction = "delete"\n'
CACHE_A = '[[rule]]\nname = "cache-a"\nselect = { tags = ["cache-a"] }\naction = "delete"\n'
SHARED = b"shared-base-layer" * 40


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(m, "_warned", set())


@pytest.fixture
def requests(monkeypatch) -> list[tuple[str, str]]:
    """Every registry request the janitor sends (its HTTP client's, whoever calls it): (method, path)."""
    sent: list[tuple[str, str]] = []
    real = ThreadedClient.send

    async def send(self, method, url, *args, **kwargs):
        sent.append((method, str(url).split("/v2/", 1)[-1]))
        return await real(self, method, url, *args, **kwargs)

    monkeypatch.setattr(ThreadedClient, "send", send)
    return sent


def memory_file() -> Path:
    return Path(os.environ["JANITOR_STATE_DIR"]) / m.FILE_NAME


def ls(cli, target: str, *extra: str) -> dict:
    result = cli("ls", target, "-O", "json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["targets"][0]


def push_cache(repo: Pusher, tag: str, own: bytes, when: datetime, *more: bytes) -> tuple[str, bytes]:
    return repo.buildkit_cache(tag, [SHARED, *more, own], when, form="manifest")


def closure_sizes(body: bytes) -> dict[str, int]:
    doc = json.loads(body)
    sizes = {sha(body): len(body)}
    for desc in [doc["config"], *doc["layers"]]:
        sizes[desc["digest"]] = desc["size"]
    return sizes


def plan(cli, target: str, policy: str, tmp_path) -> tuple[Path, dict]:
    path, out = tmp_path / "policy.toml", tmp_path / "plan.json"
    path.write_text(policy)
    made = cli("plan", target, "--policy", path, "-o", out)
    assert made.exit_code == 0, made.output
    return out, json.loads(out.read_text())["targets"][0]


def apply(cli, plan_file: Path) -> tuple[dict, int]:
    result = cli("apply", plan_file, "--yes", "-O", "json")
    assert result.stdout, result.output
    return json.loads(result.stdout)["targets"][0], result.exit_code


def test_an_overwritten_cache_is_listed_as_remembered_untagged_with_its_closure(cli, registry, repo, requests):
    target = f"{registry.host}/{repo.repo}"
    d1, b1 = push_cache(repo, "cache-a", b"first-build" * 30, NOW - timedelta(days=3))
    _, base = push_cache(repo, "cache-base", b"base" * 30, NOW - timedelta(days=5))
    table = cli("ls", target)                                                  # the first run knows none
    assert table.exit_code == 0 and "remembered: none yet" in table.stdout, table.stdout
    again = ls(cli, target)
    assert again["untagged"] == [] and again["totals"]["remembered"]["count"] == 0

    d2, b2 = push_cache(repo, "cache-a", b"second-build" * 30, NOW)            # overwrites cache-a
    requests.clear()
    second = ls(cli, target)
    [entry] = second["untagged"]
    sizes = closure_sizes(b1)
    others = set(closure_sizes(b2)) | set(closure_sizes(base))
    assert entry["digest"] == d1 and entry["untagged_source"] == "remembered"
    assert entry["kind"] == "buildkit-cache" and entry["age_source"] == "remembered/last-tagged"
    assert entry["size"] == sum(sizes.values())
    assert entry["unique_size"] == sum(s for d, s in sizes.items() if d not in others)   # the shared layer is not
    seen = datetime.fromisoformat(entry["created"].replace("Z", "+00:00"))
    assert abs((seen - NOW).total_seconds()) < 600                             # when the first run saw it tagged
    since = datetime.fromisoformat(second["totals"]["remembered"]["since"].replace("Z", "+00:00"))
    assert second["totals"]["remembered"]["count"] == 1 and since == seen.replace(microsecond=0)
    # What the memory costs: one HEAD by digest per remembered digest no tag has, and no GET (the
    # manifest was read, and cached, when it was tagged).
    assert requests.count(("HEAD", f"{repo.repo}/manifests/{d1}")) == 1
    assert ("GET", f"{repo.repo}/manifests/{d1}") not in requests
    table = cli("ls", target)
    assert "<untagged>" in table.stdout and "remembered: 1 untagged manifest" in table.stdout, table.stdout
    # The listing filter (--tag) narrows tags, not what is untagged.
    assert [u["digest"] for u in ls(cli, target, "--tag", "cache-base")["untagged"]] == [d1]


def test_a_remembered_digest_tagged_again_is_not_untagged(cli, registry, repo):
    target = f"{registry.host}/{repo.repo}"
    d1, b1 = push_cache(repo, "cache-a", b"one" * 30, NOW)
    assert ls(cli, target)["totals"]["remembered"] == {"count": 0, "since": None}
    push_cache(repo, "cache-a", b"two" * 30, NOW)
    assert [u["digest"] for u in ls(cli, target)["untagged"]] == [d1]
    repo.manifest("cache-a-again", b1, OCI_MANIFEST)                          # someone tags it again
    again = ls(cli, target)
    assert again["untagged"] == [] and again["totals"]["remembered"]["count"] == 0


def test_plan_deletes_the_remembered_digest_apply_deletes_it_by_digest_and_forgets_it(cli, registry, repo, tmp_path,
                                                                                       requests):
    target = f"{registry.host}/{repo.repo}"
    d1, _ = push_cache(repo, "cache-a", b"one" * 30, NOW)
    ls(cli, target)
    d2, _ = push_cache(repo, "cache-a", b"two" * 30, NOW)
    plan_file, planned = plan(cli, target, UNTAGGED, tmp_path)
    [action] = planned["actions"]
    assert (action["action"], action["tag"], action["digest"]) == ("delete", None, d1)
    assert action["reclaim_size"] > 0 and planned["reclaim_size"] == action["reclaim_size"]
    requests.clear()
    applied, code = apply(cli, plan_file)
    assert code == 0 and [r["reason"] for r in applied["results"]] == ["deleted"]
    assert ("DELETE", f"{repo.repo}/manifests/{d1}") in requests
    assert repo.tags() == {"cache-a": d2}
    assert repo.client.head(f"{repo.base}/v2/{repo.repo}/manifests/{d1}",
                            headers={"Accept": OCI_MANIFEST}).status_code == 404
    db = sqlite3.connect(memory_file())
    assert d1 not in {d for (d,) in db.execute("SELECT digest FROM tag_digests")}     # forgotten at the delete
    db.close()
    requests.clear()
    assert ls(cli, target)["untagged"] == []
    assert not [r for r in requests if r[0] == "HEAD" and "manifests/sha256:" in r[1]]  # nothing left to probe


def test_a_remembered_digest_a_tagged_index_lists_is_never_deleted(cli, registry, repo, tmp_path):
    """Listed as untagged at planning; between plan and apply another job builds a tagged index over
    it: the last look sees the index and the delete is skipped, naming the tag."""
    target = f"{registry.host}/{repo.repo}"
    d1, b1 = push_cache(repo, "cache-a", b"one" * 30, NOW)
    ls(cli, target)
    push_cache(repo, "cache-a", b"two" * 30, NOW)
    plan_file, planned = plan(cli, target, UNTAGGED, tmp_path)
    assert [a["digest"] for a in planned["actions"]] == [d1]
    repo.index("multi", [(d1, b1, {"architecture": "amd64", "os": "linux"})])
    applied, code = apply(cli, plan_file)
    [result] = applied["results"]
    assert code == 4 and result["status"] == "skipped" and "tag multi" in result["reason"], result
    assert repo.client.head(f"{repo.base}/v2/{repo.repo}/manifests/{d1}",
                            headers={"Accept": OCI_MANIFEST}).status_code == 200
    # And a run now does not list it: the tagged index lists it.
    assert ls(cli, target)["untagged"] == []


def test_a_damaged_memory_file_warns_once_and_the_run_goes_on(cli, registry, repo):
    other = Pusher(repo.base, repo.repo + "-other")
    for pusher in (repo, other):
        push_cache(pusher, "cache-a", b"one" * 30, NOW)
    targets = [f"{registry.host}/{repo.repo}", f"{registry.host}/{other.repo}"]
    memory_file().parent.mkdir(parents=True, exist_ok=True)
    memory_file().write_bytes(b"this is not a database\n" * 10)
    result = cli("ls", *targets, "-O", "json")
    assert result.exit_code == 0, result.output
    warned = [line for line in result.stderr.splitlines() if m.FILE_NAME in line]
    assert len(warned) == 1 and "not used this run" in warned[0], result.stderr
    assert "Traceback" not in result.output
    doc = json.loads(result.stdout)
    assert [len(t["tags"]) for t in doc["targets"]] == [1, 1]
    assert all("remembered" not in t["totals"] for t in doc["targets"])
    assert memory_file().read_bytes() == b"this is not a database\n" * 10       # left for the user to move


def test_the_memory_is_bounded_and_each_run_heads_at_most_that_many(cli, registry, repo, monkeypatch, requests):
    monkeypatch.setattr(m, "MAX_REMEMBERED", 2)
    target = f"{registry.host}/{repo.repo}"
    builds = []
    for i in range(5):                              # cache-a overwritten four times, a run after each push
        builds.append(push_cache(repo, "cache-a", f"build-{i}".encode() * 30, NOW)[0])
        requests.clear()
        listed = ls(cli, target)
    heads = [r for r in requests if r[0] == "HEAD" and "manifests/sha256:" in r[1]]
    assert len(heads) == 2
    assert sorted(u["digest"] for u in listed["untagged"]) == sorted(builds[2:4])
    db = sqlite3.connect(memory_file())
    assert db.execute("SELECT COUNT(*) FROM tag_digests").fetchone()[0] == 3      # the tagged one + 2
    db.close()


# --- what the registry's garbage collection frees ---------------------------------------------

def blob_bytes(server: RegistryServer) -> int:
    root = server.storage / "data" / "docker" / "registry" / "v2" / "blobs"
    return sum(p.stat().st_size for p in root.rglob("data") if p.is_file())


def garbage_collect(server: RegistryServer) -> None:
    done = subprocess.run([server.binary, "garbage-collect", str(server.storage / "config.yml")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def own_registry():
    """A registry of this test alone: garbage collection looks at every repository it holds."""
    server = RegistryServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("policy", [UNTAGGED, CACHE_A], ids=["remembered-untagged", "overwritten-tag"])
def test_garbage_collection_frees_what_the_plan_said(cli, own_registry, tmp_path, policy):
    """Two builds of one stage share most layers (`common`). Deleting the remembered manifest frees
    its own bytes; deleting the tag that overwrote it frees the new build's own bytes, not the layer
    the remembered manifest still holds. Either way the registry's `garbage-collect` frees exactly
    the plan's reclaim figure (before the janitor remembered, the second figure counted `common`)."""
    repo = Pusher(own_registry.url, "acme/app")
    target = f"{own_registry.host}/acme/app"
    common = b"layer-both-builds-have" * 60
    push_cache(repo, "cache-a", b"first" * 50, NOW - timedelta(days=1), common)
    push_cache(repo, "cache-base", b"base" * 50, NOW)
    ls(cli, target)
    push_cache(repo, "cache-a", b"second" * 70, NOW, common)
    plan_file, planned = plan(cli, target, policy, tmp_path)
    assert len(planned["actions"]) == 1 and planned["reclaim_size"] > 0
    garbage_collect(own_registry)
    before = blob_bytes(own_registry)
    applied, code = apply(cli, plan_file)
    assert code == 0 and applied["results"][0]["status"] == "done", applied
    garbage_collect(own_registry)
    assert before - blob_bytes(own_registry) == planned["reclaim_size"]
