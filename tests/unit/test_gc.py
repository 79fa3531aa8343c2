"""Blob garbage collection of local OCI layouts, the example generator, and `janitor gc`."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import runpy
from datetime import timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ghcr_janitor.stores.layout import gc as gc_mod
from ghcr_janitor.core.errors import LayoutError
from ghcr_janitor.stores.layout.gc import plan_gc, run_gc
from ghcr_janitor.stores.layout import registry as layout_mod
from tests.layout_factory import (
    DOCKER_LIST, NOW, OLD, LayoutFactory, assert_closure_intact, dumps, sha256, snapshot,
)

HOUR = timedelta(hours=1)
GENERATOR = Path(__file__).resolve().parents[2] / "examples" / "make_buildx_cache.py"


@pytest.fixture
def cache(tmp_path):
    """Two live caches (both forms) sharing base layers, plus orphans of earlier exports."""
    f = LayoutFactory(tmp_path / "buildx-cache")
    base = [f.layer("os"), f.layer("ca")]
    py_old = f.layer("py-old")
    f.live = {
        "cache-python-deps": f.cache_manifest(base + [f.layer("py-new")]),
        "cache-node-deps": f.cache_index(base + [f.layer("node")]),
        "cache-builder": f.cache_manifest(base + [py_old, f.layer("builder")]),
    }
    for tag, desc in f.live.items():
        f.tag(tag, desc)
    # an earlier cache-python-deps export: its root, config and own layer are orphans,
    # py-old is still used by cache-builder, the base layers by everyone.
    before = set(f.refs)
    old = f.cache_manifest(base + [py_old, f.layer("py-gone")])
    f.orphans = (set(f.refs) - before) - {py_old["digest"]}
    f.old_root = old
    return f


def reachable_of(f: LayoutFactory) -> set[str]:
    return set().union(*(f.closure(d["digest"]) for d in f.live.values()))


def deleted(report) -> set[str]:
    return {d for d, _ in report.deleted}


def test_deletes_exactly_the_unreachable_old_blobs(cache):
    report = run_gc(cache.root, HOUR, NOW, dry_run=False)
    assert report.ok and not report.dry_run
    assert deleted(report) == cache.orphans and len(cache.orphans) == 3
    assert report.bytes_freed == sum(s for _, s in report.deleted) > 0
    assert report.reachable == len(reachable_of(cache))
    assert cache.blob_digests() == reachable_of(cache)
    for desc in cache.live.values():
        assert_closure_intact(cache, desc["digest"])
    again = run_gc(cache.root, HOUR, NOW, dry_run=False)
    assert again.deleted == [] and again.ok


def test_dry_run_changes_nothing_and_matches_the_real_run(cache):
    before = snapshot(cache.root)
    dry = run_gc(cache.root, HOUR, NOW, dry_run=True)
    assert snapshot(cache.root) == before
    assert dry.dry_run and deleted(dry) == cache.orphans
    assert plan_gc(cache.root, HOUR, NOW).to_dict() == dry.to_dict()
    real = run_gc(cache.root, HOUR, NOW, dry_run=False)
    assert real.deleted == dry.deleted


def test_dry_run_with_an_existing_lock_file_changes_nothing(cache):
    (cache.root / "index.json.lock").touch()
    os.utime(cache.root, (OLD, OLD))
    before = snapshot(cache.root)
    run_gc(cache.root, HOUR, NOW, dry_run=True)
    assert snapshot(cache.root) == before


def test_grace_period_keeps_fresh_unreachable_blobs(cache):
    fresh = cache.blob(b"written by a running build", mtime=NOW.timestamp() - 60)
    future = cache.blob(b"clock skew", mtime=NOW.timestamp() + 3600)
    report = run_gc(cache.root, HOUR, NOW, dry_run=False)
    recent = {d for d, _ in report.recent}
    assert recent == {fresh["digest"], future["digest"]}
    assert cache.path(fresh["digest"]).exists() and cache.path(future["digest"]).exists()
    assert deleted(report) == cache.orphans
    assert fresh["digest"] in deleted(run_gc(cache.root, timedelta(0), NOW, dry_run=False))


def test_nested_indexes_subject_and_image_blobs_are_reachable(tmp_path):
    f = LayoutFactory(tmp_path / "oci")
    amd, arm = f.image("amd64"), f.image("arm64")
    attestation = f.manifest(f.blob(b"{}", "application/vnd.oci.empty.v1+json"),
                             [f.blob(b'{"predicate":1}', "application/vnd.in-toto+json")], subject=amd)
    inner = f.index([arm, attestation])
    outer = f.index([amd, inner])
    f.tag("app", outer)
    orphan = f.image("old")
    report = run_gc(f.root, HOUR, NOW, dry_run=False)
    assert report.ok
    assert deleted(report) == f.closure(orphan["digest"])
    assert_closure_intact(f, outer["digest"])


@pytest.mark.parametrize("media_type", [None, DOCKER_LIST])
def test_cache_index_entries_are_blobs_but_a_manifest_by_content_is_walked(tmp_path, media_type):
    """Content decides, not the descriptor (design.md, safety rules): a cache index entry whose bytes
    are a manifest is walked, so what it names is kept; plain entries are leaves."""
    f = LayoutFactory(tmp_path / "c")
    named = f.blob(b"named only by the decoy's content")
    orphan = f.blob(b"unreferenced")
    decoy = f.blob(dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                          "config": named, "layers": [named]}))
    kw = {"media_type": media_type} if media_type else {}
    root = f.cache_index([f.layer("a"), decoy], **kw)
    f.tag("cache-a", root)
    report = run_gc(f.root, HOUR, NOW, dry_run=False)
    assert report.ok and deleted(report) == {orphan["digest"]}
    assert f.path(named["digest"]).exists()
    assert_closure_intact(f, root["digest"])


def test_cacheconfig_blob_references_are_kept(tmp_path):
    """Belt and braces: a blob only the cacheconfig names (not the manifest) is kept."""
    f = LayoutFactory(tmp_path / "c")
    hidden = f.layer("only-in-config")
    config = f.cache_config([hidden])
    root = f.manifest(config, [f.layer("listed")])
    f.tag("cache-x", root)
    report = run_gc(f.root, HOUR, NOW, dry_run=False)
    assert report.deleted == [] and f.path(hidden["digest"]).exists()


def test_untagged_index_entries_are_roots_too(tmp_path):
    f = LayoutFactory(tmp_path / "c")
    kept = f.cache_manifest([f.layer("a")])
    f.tag(None, kept)
    assert run_gc(f.root, HOUR, NOW, dry_run=False).deleted == []
    assert_closure_intact(f, kept["digest"])


def test_missing_referenced_manifest_blocks_all_deletion(cache):
    """A lost manifest hides what it referenced (a lost layer does not: see test_gc_shapes.py)."""
    layer = cache.live["cache-node-deps"]["digest"]
    cache.path(layer).unlink()
    stale = cache.root / "ingest" / "dead"
    stale.mkdir(parents=True)
    os.utime(stale, (OLD, OLD))
    before = snapshot(cache.root, dir_mtimes=False)
    report = run_gc(cache.root, HOUR, NOW, dry_run=False)
    assert not report.ok and report.blocked
    assert [d for d, _ in report.missing] == [layer]
    assert report.deleted == [] and report.ingest_removed == []
    assert snapshot(cache.root, dir_mtimes=False) == before


def test_corrupt_manifest_is_reported_and_blocks(cache):
    root = cache.live["cache-python-deps"]["digest"]
    path = cache.path(root)
    path.write_bytes(path.read_bytes().replace(b"schemaVersion", b"schemaVersioN"))
    report = run_gc(cache.root, HOUR, NOW, dry_run=False)
    assert [d for d, _ in report.corrupt] == [root] and "does not match" in report.corrupt[0][1]
    assert report.blocked and report.deleted == [] and not report.ok


def test_corrupt_layer_is_reported_with_verify_and_on_size(cache):
    layer = cache.live["cache-builder"]
    victim = sorted(cache.closure(layer["digest"]) - {layer["digest"]})[0]
    data = cache.path(victim).read_bytes()
    cache.path(victim).write_bytes(bytes([data[0] ^ 1]) + data[1:])  # same size, wrong content
    os.utime(cache.path(victim), (OLD, OLD))
    assert run_gc(cache.root, HOUR, NOW, dry_run=True).corrupt == []  # same size: needs --verify
    report = run_gc(cache.root, HOUR, NOW, dry_run=False, verify=True)
    assert victim in {d for d, _ in report.corrupt} and not report.ok
    # a corrupt leaf does not hide references: orphans still go, the leaf stays
    assert deleted(report) == cache.orphans and cache.path(victim).exists()


def test_wrong_size_leaf_is_corrupt_without_verify(cache):
    leaf = sha256(b"layer py-new\n")  # a layer only cache-python-deps uses
    with open(cache.path(leaf), "ab") as handle:
        handle.write(b"extra")
    report = plan_gc(cache.root, HOUR, NOW)
    assert [d for d, _ in report.corrupt] == [leaf] and "descriptor says" in report.corrupt[0][1]
    assert not report.blocked and deleted(report) == cache.orphans


def test_corrupt_or_missing_index_json_and_oci_layout(cache):
    (cache.root / "index.json").write_text("{not json")
    before = snapshot(cache.root, dir_mtimes=False)
    with pytest.raises(LayoutError, match="index.json"):
        run_gc(cache.root, HOUR, NOW, dry_run=False)
    with pytest.raises(LayoutError, match="index.json"):
        plan_gc(cache.root, HOUR, NOW)
    assert snapshot(cache.root, dir_mtimes=False) == before
    (cache.root / "index.json").unlink()
    with pytest.raises(LayoutError, match="index.json"):
        run_gc(cache.root, HOUR, NOW, dry_run=False)
    (cache.root / "oci-layout").unlink()
    with pytest.raises(LayoutError, match="oci-layout"):
        run_gc(cache.root, HOUR, NOW, dry_run=True)


def test_non_blob_files_and_layout_files_are_left_alone(cache):
    extras = {
        "blobs/sha256/README": b"notes",
        "blobs/sha256/abc123": b"short name",
        "blobs/sha256/" + "A" * 64: b"uppercase",
        "blobs/md5/d41d8cd98f00b204e9800998ecf8427e": b"other algorithm",
        "notes.txt": b"user file",
        "index.json.lock": b"",
    }
    for rel, data in extras.items():
        (cache.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (cache.root / rel).write_bytes(data)
        os.utime(cache.root / rel, (OLD, OLD))
    link = cache.root / "blobs" / "sha256" / ("e" * 64)
    link.symlink_to(cache.root / "notes.txt")
    report = run_gc(cache.root, HOUR, NOW, dry_run=False)
    assert deleted(report) == cache.orphans
    for rel in extras:
        assert (cache.root / rel).exists(), rel
    assert link.is_symlink()
    assert (cache.root / "oci-layout").exists() and (cache.root / "index.json").exists()
    assert "blobs/md5" in report.ignored and "blobs/sha256/README" in report.ignored


def test_ingest_old_entries_removed_fresh_kept(cache):
    ingest = cache.root / "ingest"
    old, fresh = ingest / "old-ref", ingest / "busy-ref"
    for d in (old, fresh):
        d.mkdir(parents=True)
        (d / "data").write_bytes(b"partial")
        (d / "ref").write_text("buildkit/1/x")
    for p in (old / "data", old / "ref", old):
        os.utime(p, (OLD, OLD))
    for p in (fresh / "ref", fresh):
        os.utime(p, (OLD, OLD))
    os.utime(fresh / "data", (NOW.timestamp() - 3 * 3600, NOW.timestamp() - 3 * 3600))  # written 3h ago
    dry = run_gc(cache.root, HOUR, NOW, dry_run=True)
    assert [p for p, _ in dry.ingest_removed] == ["ingest/old-ref"] and old.exists()
    report = run_gc(cache.root, HOUR, NOW, dry_run=False)
    assert report.ingest_removed == [("ingest/old-ref", len(b"partial") + len(b"buildkit/1/x"))]
    assert not old.exists() and fresh.exists() and ingest.exists()


def test_index_update_between_walk_and_delete_is_honoured(cache, monkeypatch):
    """A build re-points a tag at an old orphan while gc walks: gc re-walks under LOCK_EX."""
    real = gc_mod.index_lock

    @contextlib.contextmanager
    def racing_lock(root, exclusive, create=True, timeout=None):
        if exclusive:
            cache.tag("cache-python-deps-old", cache.old_root)
        with real(root, exclusive, create, timeout) as held:
            yield held

    monkeypatch.setattr(gc_mod, "index_lock", racing_lock)
    report = run_gc(cache.root, HOUR, NOW, dry_run=False)
    assert report.ok and report.deleted == []
    assert_closure_intact(cache, cache.old_root["digest"])


def test_waits_for_buildkit_lock_then_gives_up(cache, monkeypatch):
    monkeypatch.setattr(layout_mod, "LOCK_TIMEOUT", 0.2)
    lock = cache.root / "index.json.lock"
    lock.touch()
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # BuildKit is updating index.json
        with pytest.raises(LayoutError, match="index.json.lock"):
            run_gc(cache.root, HOUR, NOW, dry_run=False)
    finally:
        os.close(fd)
    assert cache.blob_digests() >= cache.orphans  # nothing deleted
    assert lock.exists()


def test_lock_created_by_gc_is_removed(cache):
    run_gc(cache.root, HOUR, NOW, dry_run=False)
    assert not (cache.root / "index.json.lock").exists()


def test_report_to_dict_is_json(cache):
    doc = run_gc(cache.root, HOUR, NOW, dry_run=True).to_dict()
    json.dumps(doc)
    assert set(doc) >= {"dry_run", "reachable", "deleted", "bytes_freed", "recent", "missing",
                        "corrupt", "ingest_removed"}


# --- the example generator ----------------------------------------------------------


def generate(dest: Path) -> None:
    runpy.run_path(str(GENERATOR))["main"](["make_buildx_cache.py", str(dest)])


def test_generator_is_reproducible(tmp_path):
    generate(tmp_path / "a")
    generate(tmp_path / "b")
    a, b = snapshot(tmp_path / "a"), snapshot(tmp_path / "b")
    assert a == b and len(a) > 20
    generate(tmp_path / "a")  # regenerating over an existing layout: same again
    assert snapshot(tmp_path / "a") == b
    size = sum(p.stat().st_size for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert size < 64 * 1024


def test_generator_matches_the_committed_example(tmp_path):
    committed = GENERATOR.parent / "buildx-cache"
    if not committed.exists():
        pytest.skip("examples/buildx-cache not generated")
    generate(tmp_path / "fresh")
    content = lambda root: {k: v[0] for k, v in snapshot(root).items()}  # git drops mtimes
    assert content(committed) == content(tmp_path / "fresh")


def test_generator_output_has_orphans_shared_blobs_and_both_forms(tmp_path):
    generate(tmp_path / "ex")
    index = json.loads((tmp_path / "ex" / "index.json").read_bytes())
    kinds = {m["mediaType"] for m in index["manifests"]}
    assert kinds == {"application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json"}
    report = run_gc(tmp_path / "ex", HOUR, NOW, dry_run=True)
    assert report.ok and len(report.deleted) >= 6 and report.recent == []
    real = run_gc(tmp_path / "ex", HOUR, NOW, dry_run=False)
    assert real.deleted == report.deleted
    assert run_gc(tmp_path / "ex", HOUR, NOW, dry_run=False).deleted == []


# --- the CLI ------------------------------------------------------------------------


def _app() -> typer.Typer:
    try:
        from ghcr_janitor.cli.app import app
    except ImportError:
        from ghcr_janitor.cli.gc import register

        app = typer.Typer()
        app.callback()(lambda: None)
        register(app)
    return app


def janitor(*args: str):
    return CliRunner().invoke(_app(), [str(a) for a in args], catch_exceptions=False)


def test_cli_gc_dry_run_then_real_run(tmp_path):
    generate(tmp_path / "ex")
    before = snapshot(tmp_path / "ex")
    result = janitor("gc", "--dry-run", f"oci-layout:{tmp_path / 'ex'}")
    assert result.exit_code == 0, result.output
    assert "would free" in result.stdout and "(8600 bytes) in 8 blobs" in result.stdout
    assert snapshot(tmp_path / "ex") == before
    doc = json.loads(janitor("gc", "--dry-run", "--output", "json", str(tmp_path / "ex")).stdout)
    assert doc["version"] == 1 and doc["dry_run"] is True and len(doc["deleted"]) == 8
    assert doc["target"] == f"oci-layout:{tmp_path / 'ex'}"
    assert doc["bytes_freed"] == sum(d["size"] for d in doc["deleted"])
    result = janitor("gc", str(tmp_path / "ex"))
    assert result.exit_code == 0 and "freed" in result.stdout
    again = json.loads(janitor("gc", "--output", "json", str(tmp_path / "ex")).stdout)
    assert again["deleted"] == [] and again["bytes_freed"] == 0


def test_cli_gc_missing_blob_exits_1_and_deletes_nothing(cache):
    cache.path(cache.live["cache-node-deps"]["digest"]).unlink()
    before = snapshot(cache.root, dir_mtimes=False)
    result = janitor("gc", f"oci-layout:{cache.root}")
    assert result.exit_code == 1
    assert "error: missing blob" in result.stderr and "nothing deleted" in result.stderr
    assert snapshot(cache.root, dir_mtimes=False) == before


@pytest.mark.parametrize("args, code, message", [
    (["localhost:5000/acme/app"], 2, "local OCI layouts only"),
    (["--keep-recent", "soon", "{root}"], 2, "--keep-recent"),
    (["{root}/blobs"], 2, "no oci-layout"),
    (["oci-layout:{root}/nowhere"], 1, "not a directory"),
])
def test_cli_gc_errors(cache, args, code, message):
    result = janitor("gc", *[a.format(root=cache.root) for a in args])
    assert result.exit_code == code
    assert result.stderr.startswith("error: ") and message in result.stderr


def test_cli_gc_corrupt_index_exits_1(cache):
    (cache.root / "index.json").write_text("[]")
    result = janitor("gc", "--dry-run", str(cache.root))
    assert result.exit_code == 1 and "index.json" in result.stderr


def test_cli_gc_keep_recent_zero(cache):
    fresh = cache.blob(b"fresh", mtime=NOW.timestamp())
    os.utime(cache.path(fresh["digest"]))  # now, by the wall clock the CLI uses
    doc = json.loads(janitor("gc", "--dry-run", "--keep-recent", "0", "--output", "json", str(cache.root)).stdout)
    assert fresh["digest"] in {d["digest"] for d in doc["deleted"]}
    doc = json.loads(janitor("gc", "--dry-run", "--output", "json", str(cache.root)).stdout)
    assert fresh["digest"] in {d["digest"] for d in doc["recent"]}
