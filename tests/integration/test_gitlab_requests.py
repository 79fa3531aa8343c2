"""GitLab: requests per tag listed and per 100 deletes, counted at the stand-in, with bounds derived
from the page sizes (REST: 100 tags a page plus one detail per tag; metadata API: 1,000 a page).
TAGS is kept small for CI time; the bounds are per page, so they hold at any size (the issue note
gives the counts measured at 1,000 tags)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from tests.integration.test_gitlab_standin_cli import HOST, gitlab, project, write  # noqa: F401 (fixture)
from tests.support.push import OCI_MANIFEST, Pusher, dumps

OLD = datetime(2026, 1, 1, tzinfo=timezone.utc)
TAGS = 300


def seed(registry_url: str, repo: str, tags: int) -> None:
    """`tags` tags, each on its own small manifest, pushed straight to the real registry."""
    pusher = Pusher(registry_url, repo)
    digest, body = pusher.buildkit_cache("seed", [b"seed-layer"], OLD)
    doc = json.loads(body)
    for i in range(tags):
        doc["annotations"] = {"n": str(i)}
        pusher.manifest(f"cache-{i:04d}", dumps(doc), OCI_MANIFEST)
    pusher.client.delete(f"{registry_url}/v2/{repo}/manifests/{digest}")


def counts(standin, since: int) -> dict[str, int]:
    calls = standin.calls[since:]
    return {"rest": sum(1 for _, p, _ in calls if p.startswith("/api/v4/")),
            "metadata": sum(1 for _, p, _ in calls if p.startswith("/gitlab/v1/")),
            "v2": sum(1 for _, p, _ in calls if p.startswith("/v2/"))}


def test_requests_per_thousand_tags_listed_and_per_hundred_deletes(cli, gitlab, registry, tmp_path, capsys):
    target, repo = project(gitlab)
    seed(registry.url, repo.repo, TAGS)
    start = len(gitlab.calls)
    listed = cli("ls", target, "-O", "json")
    assert listed.exit_code == 0, listed.output
    assert len(json.loads(listed.stdout)["targets"][0]["tags"]) == TAGS
    listing = counts(gitlab, start)
    fixed = 6           # project lookups (2), repositories, tag rules, keyset probe, /gitlab/v1/ probe
    if gitlab.metadata:
        assert listing["rest"] + listing["metadata"] <= fixed + -(-TAGS // 1000)
    else:
        assert listing["rest"] + listing["metadata"] <= fixed + -(-TAGS // 100) + TAGS
    assert listing["v2"] <= TAGS + 2        # each manifest read once (then cached by digest)

    policy = write(tmp_path, '[[rule]]\nselect = { tags = ["cache-00*"] }\naction = "delete"\n')
    start = len(gitlab.calls)
    done = cli("prune", target, "--policy", policy, "--yes", "-O", "json")
    assert done.exit_code == 0, done.output
    results = json.loads(done.stdout)["targets"][0]["results"]
    assert len(results) == 100 and all(r["reason"] == "deleted" for r in results)
    deleting = counts(gitlab, start)
    deletes = sum(1 for m, p, _ in gitlab.calls[start:] if m == "DELETE")
    assert deletes == 200                   # per digest: the REST untag, then the digest over /v2
    with capsys.disabled():
        mode = "metadata API" if gitlab.metadata else "REST only"
        print(f"\nGitLab ({mode}): ls of {TAGS} tags {listing}; prune deleting 100 of them (listing included) "
              f"{deleting}")
