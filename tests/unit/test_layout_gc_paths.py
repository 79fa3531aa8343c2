"""gc never reads or deletes through a path that resolves outside the layout (issue 19, point 9), and
a blob that is a symlink loop, a FIFO, a device or huge never crashes or hangs it (points 10, 11):
one line naming the file, nothing deleted."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from ghcr_janitor.core.errors import LayoutError
from ghcr_janitor.stores.layout.gc import plan_gc, run_gc
from tests.layout_factory import LAYER, NOW, SHAPES, LayoutFactory, snapshot

ZERO = timedelta(0)


@pytest.fixture
def two(tmp_path):
    """Layout B with a tagged image and an orphan; an empty layout A beside it (no tags: every blob
    its blobs/ holds is unreachable from A)."""
    b = LayoutFactory(tmp_path / "B")
    b.kept = b.image("b-kept")
    b.tag("b", b.kept)
    b.orphan = b.blob(b"b's orphan")
    return LayoutFactory(tmp_path / "A"), b


def assert_refused(a: LayoutFactory, b: LayoutFactory, *needles: str) -> None:
    before = snapshot(b.root, dir_mtimes=False)
    before_a = snapshot(a.root, dir_mtimes=False)
    for dry_run in (True, False):
        report = run_gc(a.root, ZERO, NOW, dry_run=dry_run)
        assert report.blocked and not report.ok and report.deleted == [] and report.ingest_removed == []
        assert "\n" not in report.blocked
        for needle in needles:
            assert needle in report.blocked, report.blocked
    assert snapshot(b.root, dir_mtimes=False) == before
    assert snapshot(a.root, dir_mtimes=False) == before_a


def test_gc_refuses_a_blobs_dir_symlinked_to_another_layout(two):
    a, b = two
    for p in (a.root / "blobs" / "sha256").iterdir():
        p.unlink()
    (a.root / "blobs" / "sha256").rmdir()
    (a.root / "blobs").rmdir()
    (a.root / "blobs").symlink_to(b.root / "blobs")
    assert_refused(a, b, "blobs", "outside")


def test_gc_refuses_a_blobs_dir_symlinked_through_a_relative_path(two):
    a, b = two
    blobs = a.root / "blobs"
    os.rename(blobs, a.root / "old-blobs")
    blobs.symlink_to(Path("..") / "B" / "blobs")
    assert_refused(a, b, "blobs", "outside")


def test_gc_refuses_an_algorithm_dir_symlinked_outside(two):
    a, b = two
    store = a.root / "blobs" / "sha256"
    os.rename(store, a.root / "blobs" / "old")
    store.symlink_to(b.root / "blobs" / "sha256")
    assert_refused(a, b, "blobs/sha256", "outside")


def test_gc_refuses_an_ingest_dir_symlinked_outside(two, tmp_path):
    a, b = two
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "old-ref").mkdir(parents=True)
    os.utime(elsewhere / "old-ref", (0, 0))
    (a.root / "ingest").symlink_to(elsewhere)
    assert_refused(a, b, "ingest", "outside")
    assert (elsewhere / "old-ref").is_dir()


def test_gc_refuses_an_index_json_that_is_a_symlink(two):
    a, b = two
    (a.root / "index.json").unlink()
    (a.root / "index.json").symlink_to(b.root / "index.json")
    a.blob(b"a's orphan")
    before = snapshot(a.root, dir_mtimes=False)
    with pytest.raises(LayoutError, match="index.json") as caught:
        run_gc(a.root, ZERO, NOW, dry_run=False)
    assert "\n" not in str(caught.value)
    assert snapshot(a.root, dir_mtimes=False) == before


def test_a_layout_reached_through_a_symlinked_root_is_collected(two, tmp_path):
    """The target directory itself may be a symlink: containment is checked against where it resolves."""
    a, _ = two
    a.tag("a", a.image("a-kept"))
    orphan = a.blob(b"a's orphan")
    link = tmp_path / "link-to-A"
    link.symlink_to(a.root)
    report = run_gc(link, ZERO, NOW, dry_run=False)
    assert report.ok and {d for d, _ in report.deleted} == {orphan["digest"]}


def test_cli_gc_refuses_symlinked_blobs_with_one_line(two, cli):
    a, b = two
    os.rename(a.root / "blobs", a.root / "old-blobs")
    (a.root / "blobs").symlink_to(b.root / "blobs")
    before = snapshot(b.root, dir_mtimes=False)
    result = cli("gc", f"oci-layout:{a.root}", "--keep-recent", "0")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nothing deleted" in errors[0] and "outside" in errors[0], result.stderr
    assert snapshot(b.root, dir_mtimes=False) == before


# --- blobs that are not plain files -------------------------------------------------------


@pytest.fixture
def cache(tmp_path):
    f = LayoutFactory(tmp_path / "c")
    f.victim = f.image("victim")                      # its manifest blob gets replaced
    f.layer_victim = f.layer("victim-layer")
    f.other = f.image("other")
    f.tag("v", f.victim)
    f.tag("w", f.manifest(f.blob(b"{}", "application/vnd.oci.empty.v1+json"), [f.layer_victim]))
    f.tag("o", f.other)
    f.orphan = f.blob(b"orphan")
    return f


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_gc_blocks_on_an_unreadable_manifest_blob_and_names_it(cache, shape):
    path = cache.path(cache.victim["digest"])
    SHAPES[shape](path)
    before = snapshot_without(cache.root, path)
    for dry_run in (True, False):
        report = run_gc(cache.root, ZERO, NOW, dry_run=dry_run)
        assert report.blocked and report.deleted == [] and not report.ok
        problems = [r for d, r in report.corrupt if d == cache.victim["digest"]]
        assert problems and "\n" not in problems[0]
        assert str(path) in problems[0] or cache.victim["digest"] in report.blocked
    assert snapshot_without(cache.root, path) == before


@pytest.mark.parametrize("shape", ["loop", "fifo", "zero"])
def test_gc_blocks_on_an_unreadable_layer_blob(cache, shape):
    """What an unreadable blob holds is unknown (it could be a manifest): nothing is deleted."""
    path = cache.path(cache.layer_victim["digest"])
    SHAPES[shape](path)
    report = run_gc(cache.root, ZERO, NOW, dry_run=False)
    assert report.blocked and report.deleted == []
    assert cache.path(cache.orphan["digest"]).exists()


def test_a_huge_layer_blob_is_a_leaf_and_never_read(tmp_path):
    f = LayoutFactory(tmp_path / "c")
    huge = {"mediaType": LAYER, "digest": "sha256:" + "5" * 64, "size": 8 << 30}
    with open(f.path(huge["digest"]), "wb") as handle:
        handle.write(b"\x1f\x8b")
        handle.truncate(huge["size"])                  # sparse
    root = f.manifest(f.blob(b"{}", "application/vnd.oci.empty.v1+json"), [huge])
    f.tag("big", root)
    orphan = f.blob(b"orphan")
    report = run_gc(f.root, ZERO, NOW, dry_run=False)
    assert report.ok and {d for d, _ in report.deleted} == {orphan["digest"]}
    assert f.path(huge["digest"]).stat().st_size == huge["size"]


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_cli_gc_unreadable_blob_one_line_no_traceback(cache, cli, shape):
    SHAPES[shape](cache.path(cache.victim["digest"]))
    result = cli("gc", f"oci-layout:{cache.root}", "--keep-recent", "0")
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: nothing deleted: "), result.stderr
    assert cache.victim["digest"] in lines[0] and str(cache.path(cache.victim["digest"])) in lines[0]
    assert cache.path(cache.orphan["digest"]).exists()


def test_unreferenced_symlinks_and_fifos_in_blobs_are_left_alone(cache):
    fifo = cache.root / "blobs" / "sha256" / ("f" * 64)
    os.mkfifo(fifo)
    loop = cache.root / "blobs" / "sha256" / ("e" * 64)
    loop.symlink_to(loop.name)
    report = plan_gc(cache.root, ZERO, NOW)
    assert report.ok and {d for d, _ in report.deleted} == {cache.orphan["digest"]}
    assert run_gc(cache.root, ZERO, NOW, dry_run=False).ok
    assert fifo.exists() and loop.is_symlink()


def snapshot_without(root: Path, odd: Path) -> dict:
    """snapshot() of everything but the odd blob (a FIFO or device cannot be hashed)."""
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            p = Path(dirpath) / name
            if p != odd:
                out[str(p.relative_to(root))] = (p.lstat().st_size, p.lstat().st_mtime_ns)
    return out


def test_a_blobs_dir_swapped_for_a_symlink_after_the_check_deletes_nothing_elsewhere(two, monkeypatch):
    """Deletes go through directory descriptors checked when opened: a swap after gc's own check
    (here: between its last check and the deletes) ends in an error, not in B losing a kept blob."""
    from ghcr_janitor.stores.layout import gc as gc_mod

    a, b = two
    mine = a.blob(b"bytes both layouts hold")             # unreachable in A...
    shared = b.blob(b"bytes both layouts hold")           # ...kept in B
    b.tag("shared", b.manifest(b.blob(b"{}", "application/vnd.oci.empty.v1+json"), [shared]))
    calls = []

    def check_then_swap(root):
        calls.append(root)
        if len(calls) == 2:                                # _execute's check, under the exclusive lock
            os.rename(a.root / "blobs", a.root / "old-blobs")
            (a.root / "blobs").symlink_to(b.root / "blobs")
        return None

    monkeypatch.setattr(gc_mod, "escaping_dirs", check_then_swap)
    before = snapshot(b.root, dir_mtimes=False)
    report = run_gc(a.root, ZERO, NOW, dry_run=False)
    assert len(calls) == 2 and report.deleted == [] and not report.ok
    assert any("outside the layout" in e for e in report.errors), report.errors
    assert b.path(mine["digest"]).is_file() and snapshot(b.root, dir_mtimes=False) == before


def test_a_blobs_algorithm_dir_that_is_a_symlink_loop_blocks_gc_in_one_line(cache, cli):
    store = cache.root / "blobs" / "sha256"
    os.rename(store, cache.root / "blobs" / "old")
    store.symlink_to("sha256")                         # ELOOP on every blob path
    report = run_gc(cache.root, ZERO, NOW, dry_run=False)
    assert report.blocked and report.deleted == [] and "\n" not in report.blocked
    result = cli("gc", f"oci-layout:{cache.root}")
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert all(line.startswith("error: ") for line in result.stderr.splitlines()), result.stderr
