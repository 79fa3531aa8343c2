"""The world moves while apply works: a last look before every delete (issue 19, points 1-5).

Against the real registry. A foreign CI job (plain HTTP pushes, independent of the janitor's
client) acts between planning and apply, or at a chosen request *inside* apply: the hook runs
just before the janitor sends the request it matches.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

import pytest

from ghcr_janitor.stores.oci.registry import OciRegistry, placeholder_manifest
from tests.support.push import OCI_MANIFEST, Pusher, dumps, sha

OLD = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=60)
DELETE_CACHES = '[[rule]]\nname = "old caches"\nselect = { tags = ["cache-*"] }\nolder_than = "30d"\naction = "delete"\n'
PROTECT_BASE = ('protect = ["cache-base"]\n[[rule]]\nname = "aliases"\nselect = { tags = ["cache-alias-*"] }\n'
                'action = "delete"\n')


@dataclass
class Hook:
    when: Callable[[str, str], bool]
    act: Callable[[], None]


@pytest.fixture
def foreign(monkeypatch):
    """Hooks run once, just before the first janitor request they match (method, url)."""
    hooks: list[Hook] = []
    real = OciRegistry._send

    async def send(self, method, url, **kwargs):
        for hook in list(hooks):
            if hook.when(method, str(url)):
                hooks.remove(hook)
                hook.act()
        return await real(self, method, url, **kwargs)

    monkeypatch.setattr(OciRegistry, "_send", send)
    return hooks


def policy(tmp_path, text: str):
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def make_plan(cli, target: str, policy_path, tmp_path):
    plan = tmp_path / "plan.json"
    made = cli("plan", target, "--policy", policy_path, "-o", plan)
    assert made.exit_code == 0, made.stderr
    return plan


def apply(cli, plan) -> tuple[dict, int]:
    result = cli("apply", plan, "--yes", "-O", "json")
    assert result.stdout, result.stderr
    return json.loads(result.stdout), result.exit_code


def outcome(applied: dict, **match) -> dict:
    rows = [r for t in applied["targets"] for r in t["results"]
            if all(r.get(k) == v for k, v in match.items())]
    assert len(rows) == 1, applied
    return rows[0]


def children_readable(repo: Pusher, index_tag: str) -> bool:
    doc = repo.client.get(f"{repo.base}/v2/{repo.repo}/manifests/{index_tag}",
                          headers={"Accept": "application/vnd.oci.image.index.v1+json"}).json()
    return all(repo.client.head(f"{repo.base}/v2/{repo.repo}/manifests/{m['digest']}",
                                headers={"Accept": OCI_MANIFEST}).status_code == 200 for m in doc["manifests"])


def test_tagged_delete_is_skipped_when_an_index_tagged_since_planning_lists_its_digest(cli, registry, repo, tmp_path):
    d, d_body = repo.image("cache-amd64", [b"amd" * 40], OLD)
    e, e_body = repo.image(None, [b"arm" * 40], OLD, platform={"architecture": "arm64"})
    target = f"{registry.host}/{repo.repo}"
    plan = make_plan(cli, target, policy(tmp_path, DELETE_CACHES), tmp_path)
    # `docker buildx imagetools create -t app:release app:cache-amd64 app@E`
    repo.index("release", [(d, d_body, {"architecture": "amd64", "os": "linux"}),
                           (e, e_body, {"architecture": "arm64", "os": "linux"})])
    applied, code = apply(cli, plan)
    row = outcome(applied, tag="cache-amd64")
    assert row["status"] == "skipped" and "release" in row["reason"], row
    assert code != 0
    assert children_readable(repo, "release")
    assert repo.tags()["cache-amd64"] == d


def test_hand_added_delete_of_a_kept_index_child_is_refused(cli, registry, repo, tmp_path):
    d, d_body = repo.image(None, [b"amd" * 40], OLD)
    e, e_body = repo.image(None, [b"arm" * 40], OLD, platform={"architecture": "arm64"})
    repo.index("release", [(d, d_body, {"architecture": "amd64", "os": "linux"}),
                           (e, e_body, {"architecture": "arm64", "os": "linux"})])
    repo.image("cache-old", [b"old" * 40], OLD)
    target = f"{registry.host}/{repo.repo}"
    plan = make_plan(cli, target, policy(tmp_path, DELETE_CACHES), tmp_path)
    doc = json.loads(plan.read_text())
    actions = doc["targets"][0]["actions"]
    assert [a["tag"] for a in actions] == ["cache-old"]
    actions.append(dict(actions[0], tag=None, digest=d))                # an untagged delete of a child
    actions.append(dict(actions[0], tag="release", digest=sha(b"x")))   # a kept tag, pinned wrongly
    plan.write_text(json.dumps(doc))
    applied, code = apply(cli, plan)
    row = outcome(applied, digest=d, tag=None)
    assert row["status"] == "skipped" and "tag release" in row["reason"], row
    assert outcome(applied, tag="release")["status"] == "skipped"
    assert outcome(applied, tag="cache-old")["status"] == "done"
    assert children_readable(repo, "release") and "release" in repo.tags()


def test_a_tag_put_on_a_later_digest_during_apply_saves_it(cli, registry, repo, tmp_path, foreign):
    digests = []
    for i in range(20):
        digest, _ = repo.image(f"cache-b{i:02d}", [b"layer-%d" % i * 20], OLD)
        digests.append(digest)
    target = f"{registry.host}/{repo.repo}"
    plan = make_plan(cli, target, policy(tmp_path, DELETE_CACHES), tmp_path)
    victim = digests[-1]
    deletes = iter(range(100))
    foreign.append(Hook(lambda m, u: m == "DELETE" and next(deletes) == 3,
                        lambda: repo.manifest("release", repo.client.get(
                            f"{repo.base}/v2/{repo.repo}/manifests/{victim}",
                            headers={"Accept": OCI_MANIFEST}).content, OCI_MANIFEST)))
    applied, _ = apply(cli, plan)
    row = outcome(applied, digest=victim)
    assert row["reason"] != "deleted" and "tag release" in row["reason"], row
    assert repo.tags().get("release") == victim
    done = [r for r in applied["targets"][0]["results"] if r["reason"] == "deleted"]
    assert len(done) == 19


def test_untag_skips_when_the_tag_is_pushed_inside_the_untag_window(cli, registry, repo, tmp_path, foreign):
    base, body = repo.image("cache-base", [b"base" * 40], OLD)
    repo.manifest("cache-alias-1", body, OCI_MANIFEST)
    target = f"{registry.host}/{repo.repo}"
    plan = make_plan(cli, target, policy(tmp_path, PROTECT_BASE), tmp_path)
    actions = json.loads(plan.read_text())["targets"][0]["actions"]
    assert [(a["action"], a["tag"]) for a in actions] == [("untag", "cache-alias-1")]
    new, _ = repo.image(None, [b"new build" * 40], OLD)
    new_body = repo.client.get(f"{repo.base}/v2/{repo.repo}/manifests/{new}", headers={"Accept": OCI_MANIFEST}).content
    # Another job pushes cache-alias-1 after apply has read the original manifest, before the placeholder.
    foreign.append(Hook(lambda m, u: "/blobs/" in u, lambda: repo.manifest("cache-alias-1", new_body, OCI_MANIFEST)))
    applied, _ = apply(cli, plan)
    row = outcome(applied, tag="cache-alias-1")
    assert row["status"] == "skipped" and "moved" in row["reason"], row
    assert repo.tags()["cache-alias-1"] == new and repo.tags()["cache-base"] == base


def test_a_rerun_finishes_an_untag_interrupted_after_the_placeholder_push(cli, registry, repo, tmp_path):
    base, body = repo.image("cache-base", [b"base" * 40], OLD)
    repo.blob(b"{}")
    placeholder = repo.manifest("cache-alias-1", placeholder_manifest("cache-alias-1"), OCI_MANIFEST)
    target = f"{registry.host}/{repo.repo}"
    dry = json.loads(cli("prune", target, "--policy", policy(tmp_path, 'protect = ["cache-base"]\n'),
                         "--dry-run", "-O", "json").stdout)["targets"][0]
    assert [(a["action"], a["tag"], a["digest"]) for a in dry["actions"]] == [("delete", "cache-alias-1", placeholder)]
    assert "interrupted untag" in dry["actions"][0]["reason"]
    done = cli("prune", target, "--policy", policy(tmp_path, 'protect = ["cache-base"]\n'), "--yes")
    assert done.exit_code == 0, done.stderr
    assert repo.tags() == {"cache-base": base}


def test_a_placeholder_for_another_tag_or_with_content_is_not_ours_to_finish(cli, registry, repo, tmp_path):
    repo.image("cache-base", [b"base" * 40], OLD)
    repo.blob(b"{}")
    repo.manifest("cache-alias-1", placeholder_manifest("cache-alias-2"), OCI_MANIFEST)
    doc = json.loads(placeholder_manifest("cache-alias-3"))
    doc["layers"] = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": repo.blob(b"data" * 9),
                      "size": 36}]
    repo.manifest("cache-alias-3", dumps(doc), OCI_MANIFEST)
    target = f"{registry.host}/{repo.repo}"
    dry = json.loads(cli("prune", target, "--policy", policy(tmp_path, 'protect = ["cache-base"]\n'),
                         "--dry-run", "-O", "json").stdout)["targets"][0]
    assert dry["actions"] == []


@pytest.mark.parametrize("entry_type", ["application/octet-stream", "application/vnd.oci.image.layer.v1.tar+gzip",
                                        "application/vnd.example.artifact.v1+json"])
def test_an_index_listing_a_planned_digest_under_any_media_type_saves_it(cli, registry, repo, tmp_path, entry_type):
    d, d_body = repo.image("cache-v1", [b"v1" * 40], OLD)
    target = f"{registry.host}/{repo.repo}"
    plan = make_plan(cli, target, policy(tmp_path, DELETE_CACHES), tmp_path)
    body = dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                  "manifests": [{"mediaType": entry_type, "digest": d, "size": len(d_body)}]})
    repo.manifest("release", body, "application/vnd.oci.image.index.v1+json")
    applied, code = apply(cli, plan)
    row = outcome(applied, tag="cache-v1")
    assert row["status"] == "skipped" and "tag release" in row["reason"], row
    assert repo.tags()["cache-v1"] == d and code == 4


@pytest.mark.parametrize("look_alike", ["with-layers", "two-tags"])
def test_apply_never_finishes_a_placeholder_look_alike(cli, registry, repo, tmp_path, look_alike):
    """A tag moved since planning onto a manifest that only carries the placeholder annotations (it
    has content, or another tag uses it) is not the janitor's to delete."""
    repo.image("cache-x", [b"x" * 40], OLD)
    target = f"{registry.host}/{repo.repo}"
    plan = make_plan(cli, target, policy(tmp_path, DELETE_CACHES), tmp_path)
    doc = json.loads(placeholder_manifest("cache-x"))
    repo.blob(b"{}")
    if look_alike == "with-layers":
        doc["layers"] = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                          "digest": repo.blob(b"precious" * 9), "size": 72}]
    body = dumps(doc)
    other = repo.manifest("cache-x", body, OCI_MANIFEST)
    if look_alike == "two-tags":
        repo.manifest("release", body, OCI_MANIFEST)
    applied, code = apply(cli, plan)
    row = outcome(applied, tag="cache-x")
    assert row["status"] == "skipped" and "moved" in row["reason"], row
    assert repo.tags()["cache-x"] == other and code == 4


def test_a_hand_added_untag_of_another_tag_does_not_license_the_digest_delete(cli, registry, repo, tmp_path):
    d, body = repo.image("cache-a", [b"a" * 40], OLD)
    repo.manifest("release", body, OCI_MANIFEST)
    target = f"{registry.host}/{repo.repo}"
    plan = make_plan(cli, target, policy(tmp_path, DELETE_CACHES), tmp_path)
    doc = json.loads(plan.read_text())
    actions = doc["targets"][0]["actions"]
    assert [(a["action"], a["tag"]) for a in actions] == [("untag", "cache-a")]
    actions[0]["action"] = "delete"
    actions.append(dict(actions[0], action="untag", tag="release"))
    plan.write_text(json.dumps(doc))
    applied, _ = apply(cli, plan)
    assert outcome(applied, tag="cache-a")["reason"].startswith("untagged instead of deleted")
    tags = repo.tags()
    assert "cache-a" not in tags
    assert repo.client.head(f"{repo.base}/v2/{repo.repo}/manifests/{d}",
                            headers={"Accept": OCI_MANIFEST}).status_code == 200


def test_a_tag_created_after_the_looks_tag_list_read_is_still_seen(cli, registry, repo, tmp_path, foreign):
    """`imagetools create -t release` lands while apply HEADs the tags it listed: the look ends by
    reading the tag list again, so the new tag is walked before the delete."""
    d, d_body = repo.image("cache-v1", [b"v1" * 40], OLD)
    target = f"{registry.host}/{repo.repo}"
    plan = make_plan(cli, target, policy(tmp_path, DELETE_CACHES), tmp_path)
    index = dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": [{"mediaType": OCI_MANIFEST, "digest": d, "size": len(d_body)}]})
    foreign.append(Hook(lambda m, u: m == "HEAD" and "/manifests/cache-v1" in u,
                        lambda: repo.manifest("release", index, "application/vnd.oci.image.index.v1+json")))
    applied, code = apply(cli, plan)
    row = outcome(applied, tag="cache-v1")
    assert row["status"] == "skipped" and "tag release" in row["reason"], row
    assert repo.tags()["cache-v1"] == d and code == 4
