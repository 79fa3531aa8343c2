"""ls / plan / prune / apply / gc on a local BuildKit cache dir, exactly as on a registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.layout_factory import snapshot


@pytest.fixture
def cache_dir(layout) -> Path:
    """The example BuildKit cache dir (conftest's `layout`)."""
    return layout


def blobs(root: Path) -> set[str]:
    return {f"sha256:{p.name}" for p in (root / "blobs" / "sha256").iterdir()}


def test_dry_run_changes_no_byte(cli, cache_dir):
    before = snapshot(cache_dir)
    for args in (["prune", f"oci-layout:{cache_dir}", "--dry-run"], ["plan", str(cache_dir)],
                 ["gc", f"oci-layout:{cache_dir}", "--dry-run"], ["ls", str(cache_dir)]):
        result = cli(*args)
        assert result.exit_code == 0, result.output
    assert snapshot(cache_dir) == before


def test_prune_deletes_tags_then_collects_their_blobs(cli, cache_dir):
    target = f"oci-layout:{cache_dir}"
    plan = json.loads(cli("plan", target).stdout)["targets"][0]
    doomed = {a["tag"] for a in plan["actions"] if a["action"] == "delete"}
    assert doomed, "the example has stale branch caches"
    gc_plan = json.loads(cli("gc", target, "--dry-run", "-O", "json").stdout)
    orphans = {d["digest"] for d in gc_plan["deleted"]}
    before_blobs = blobs(cache_dir)

    result = cli("prune", target, "--yes")
    assert result.exit_code == 0, result.output
    listing = json.loads(cli("ls", target, "-O", "json", "--all-tags").stdout)["targets"][0]
    left = {t["tag"] for t in listing["tags"]}
    assert not left & doomed and {"cache-base", "cache-builder"} <= left
    after_blobs = blobs(cache_dir)
    assert orphans <= before_blobs - after_blobs                 # old orphans collected
    freed = before_blobs - after_blobs - orphans
    assert freed, "the deleted caches' own blobs were collected too"
    # Every remaining tag is intact: gc on the result finds nothing missing and nothing to free.
    again = json.loads(cli("gc", target, "-O", "json").stdout)
    assert again["missing"] == [] and again["deleted"] == []


def test_prune_no_gc_leaves_blobs_for_later(cli, cache_dir):
    before_blobs = blobs(cache_dir)
    result = cli("prune", f"oci-layout:{cache_dir}", "--yes", "--no-gc")
    assert result.exit_code == 0, result.output
    assert blobs(cache_dir) == before_blobs
    assert json.loads(cli("gc", f"oci-layout:{cache_dir}", "--dry-run", "-O", "json").stdout)["deleted"]


def test_one_layout_has_one_target_name_however_its_path_is_spelled(cli, layout):
    import json as _json

    names = set()
    for spelling in (f"oci-layout:{layout}", f"oci-layout:{layout}/", f"oci-layout:{layout}/./", str(layout) + "/"):
        result = cli("ls", spelling, "-O", "json")
        assert result.exit_code == 0, result.stderr
        names.add(_json.loads(result.stdout)["targets"][0]["target"])
    assert names == {f"oci-layout:{layout}"}
