"""gc walks every manifest-like blob by its own content, once, whatever the descriptors reaching it
say (issue 19, point 8); what it cannot classify blocks the layout (nothing deleted, one line, exit 1)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from ghcr_janitor.core import mediatypes as mt
from ghcr_janitor.stores.layout import walk as walk_mod
from ghcr_janitor.stores.layout.gc import plan_gc, run_gc
from tests.layout_factory import (
    IMAGE_CONFIG, LAYER, NOW, OCI_INDEX, OCI_MANIFEST, LayoutFactory, dumps, snapshot,
)

HOUR = timedelta(hours=1)
CHARSET_INDEX = "application/vnd.oci.image.index.v1+json; charset=utf-8"


def as_type(desc: dict, media_type: str) -> dict:
    """The same blob, described as something else."""
    return {**desc, "mediaType": media_type}


def bare_manifest(f: LayoutFactory, name: str, descriptor_type: str = OCI_MANIFEST) -> dict:
    """An image manifest whose body has no `mediaType` field (valid: the field is optional)."""
    config = f.blob(dumps({"architecture": "amd64", "os": "linux", "note": name}), IMAGE_CONFIG)
    layer = f.layer(f"{name}-rootfs")
    doc = {"schemaVersion": 2, "config": config, "layers": [layer]}
    return f.blob(dumps(doc), descriptor_type, refs=[config["digest"], layer["digest"]])


def bare_index(f: LayoutFactory, children: list[dict], descriptor_type: str = OCI_INDEX) -> dict:
    """An image index whose body has no `mediaType` field."""
    doc = {"schemaVersion": 2, "manifests": children}
    return f.blob(dumps(doc), descriptor_type, refs=[c["digest"] for c in children])


def gc_keeps_every_closure(f: LayoutFactory, *roots: dict) -> None:
    """A real gc with no grace deletes nothing any root reaches by content, and is not blocked."""
    orphan = f.blob(b"an unreferenced orphan")
    report = run_gc(f.root, timedelta(0), NOW, dry_run=False)
    assert report.ok, (report.blocked, report.corrupt, report.missing)
    kept = set().union(*(f.closure(r["digest"]) for r in roots))
    assert {d for d, _ in report.deleted} == {orphan["digest"]}
    assert kept <= f.blob_digests(), f"lost: {sorted(kept - f.blob_digests())}"


# --- the four ways to lose kept blobs --------------------------------------------------


@pytest.mark.parametrize("layer_first", [True, False])
def test_gc_keeps_manifest_referenced_as_layer_and_as_index_child(tmp_path, layer_first):
    f = LayoutFactory(tmp_path / "c")
    image = f.image("amd64")
    odd = f.manifest(f.blob(b"{}", mt.OCI_EMPTY), [as_type(image, LAYER)])   # the manifest as a layer
    multi = f.index([image])
    for name, desc in (("odd", odd), ("multi", multi)) if layer_first else (("multi", multi), ("odd", odd)):
        f.tag(name, desc)
    gc_keeps_every_closure(f, odd, multi)


def test_gc_walks_manifest_without_media_type_described_as_index(tmp_path):
    f = LayoutFactory(tmp_path / "c")
    manifest = bare_manifest(f, "amd64", descriptor_type=OCI_INDEX)
    f.tag("app", manifest)
    f.tag("multi", f.index([as_type(manifest, OCI_INDEX)]))
    gc_keeps_every_closure(f, manifest)


def test_gc_walks_index_without_media_type_described_as_manifest(tmp_path):
    f = LayoutFactory(tmp_path / "c")
    index = bare_index(f, [f.image("amd64"), f.image("arm64")], descriptor_type=OCI_MANIFEST)
    f.tag("app", index)
    f.tag("outer", f.index([as_type(index, OCI_MANIFEST)]))
    gc_keeps_every_closure(f, index)


def test_gc_walks_child_index_typed_with_charset_parameter(tmp_path):
    f = LayoutFactory(tmp_path / "c")
    inner = f.index([f.image("amd64"), f.image("arm64")])
    outer = f.index([as_type(inner, CHARSET_INDEX)])
    f.tag("app", outer)
    gc_keeps_every_closure(f, outer)


def test_gc_walks_index_json_entry_typed_with_parameters(tmp_path):
    f = LayoutFactory(tmp_path / "c")
    index = f.index([f.image("amd64")])
    f.tag("app", as_type(index, "Application/VND.OCI.Image.Index.v1+JSON ; charset=\"utf-8\""))
    gc_keeps_every_closure(f, index)


def test_gc_walks_a_manifest_referenced_only_as_a_layer(tmp_path):
    """Content decides: a manifest blob that every descriptor calls a layer is still a manifest."""
    f = LayoutFactory(tmp_path / "c")
    hidden = f.image("hidden")
    odd = f.manifest(f.blob(b"{}", mt.OCI_EMPTY), [as_type(hidden, LAYER)])
    f.tag("odd", odd)
    gc_keeps_every_closure(f, odd)


def test_gc_walks_a_cacheconfig_by_its_shape(tmp_path):
    f = LayoutFactory(tmp_path / "c")
    hidden = f.layer("only-in-config")
    config = f.cache_config([hidden])
    root = f.manifest(as_type(config, "application/octet-stream"), [f.layer("listed")])
    f.tag("cache", root)
    gc_keeps_every_closure(f, root)


def test_gc_walks_a_schema1_manifest_by_its_shape(tmp_path):
    f = LayoutFactory(tmp_path / "c")
    layers = [f.layer("s1-a"), f.layer("s1-b")]
    doc = {"schemaVersion": 1, "name": "app", "tag": "v1", "fsLayers": [{"blobSum": l["digest"]} for l in layers]}
    old = f.blob(dumps(doc), LAYER, refs=[l["digest"] for l in layers])
    root = f.index([old])
    f.tag("legacy", root)
    gc_keeps_every_closure(f, root)


def test_gc_content_media_type_wins_over_the_descriptor(tmp_path):
    """The body says index (with a parameter), the descriptor says manifest: walked as an index."""
    f = LayoutFactory(tmp_path / "c")
    children = [f.image("amd64"), f.image("arm64")]
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX + ";charset=utf-8", "manifests": children}
    index = f.blob(dumps(doc), OCI_MANIFEST, refs=[c["digest"] for c in children])
    f.tag("app", index)
    gc_keeps_every_closure(f, index)


def test_gc_reads_each_manifest_blob_once(tmp_path, monkeypatch):
    f = LayoutFactory(tmp_path / "c")
    image = f.image("amd64")
    f.tag("a", f.index([image, as_type(image, OCI_INDEX)]))
    f.tag("b", f.manifest(f.blob(b"{}", mt.OCI_EMPTY), [as_type(image, LAYER), image]))
    f.tag("c", image)
    reads: list[str] = []
    real = walk_mod.read_blob

    def counting(store, digest, cap):
        reads.append(digest)
        return real(store, digest, cap)

    monkeypatch.setattr(walk_mod, "read_blob", counting)
    report = plan_gc(f.root, HOUR, NOW)
    assert report.ok and reads.count(image["digest"]) == 1
    assert len(reads) == len(set(reads))


# --- what gc cannot classify blocks the layout ---------------------------------------


def blocked_and_untouched(f: LayoutFactory, *needles: str) -> None:
    f.blob(b"an unreferenced orphan")
    before = snapshot(f.root, dir_mtimes=False)
    report = run_gc(f.root, timedelta(0), NOW, dry_run=False)
    assert report.blocked and not report.ok and report.deleted == []
    assert "\n" not in report.blocked
    for needle in needles:
        assert needle in report.blocked
    assert snapshot(f.root, dir_mtimes=False) == before


LOST = "sha256:" + "a" * 64


@pytest.mark.parametrize("body", [
    {"schemaVersion": 2},                                                        # neither shape
    {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v9+json", "layers": []},
    {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": {"not": "a list"}},
    {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": "sha256:nothex"}, "layers": []},
    {"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": [{"blobSum": "sha256:nothex"}]},
    {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": LOST}, "layers": []},
], ids=["no-shape", "unknown-manifest-type", "manifests-not-list", "bad-digest", "bad-schema1", "lost-untyped-config"])
def test_gc_refuses_a_manifest_blob_it_cannot_classify(tmp_path, body):
    f = LayoutFactory(tmp_path / "c")
    blob = f.blob(dumps(body), OCI_MANIFEST)
    f.tag("good", f.image("good"))
    f.tag("odd", blob)
    blocked_and_untouched(f, LOST if LOST in json.dumps(body) else blob["digest"])


def test_gc_refuses_when_a_descriptor_says_manifest_and_the_blob_is_not_json(tmp_path):
    f = LayoutFactory(tmp_path / "c")
    layer = f.layer("plain")
    f.tag("odd", f.index([as_type(layer, OCI_MANIFEST)]))
    blocked_and_untouched(f, layer["digest"])


def test_cli_gc_unclassifiable_blob_one_line_exit_1(tmp_path, cli):
    f = LayoutFactory(tmp_path / "c")
    blob = f.blob(dumps({"schemaVersion": 2}), CHARSET_INDEX)
    f.tag("odd", blob)
    f.blob(b"orphan")
    before = snapshot(f.root, dir_mtimes=False)
    result = cli("gc", f"oci-layout:{f.root}", "--keep-recent", "0")
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert any("nothing deleted" in line and blob["digest"] in line for line in lines), result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(f.root, dir_mtimes=False) == before


def test_json_layers_that_are_not_manifests_stay_leaves(tmp_path):
    """An in-toto statement or an image config as a layer is JSON, not a manifest: no block."""
    f = LayoutFactory(tmp_path / "c")
    statement = f.blob(dumps({"_type": "https://in-toto.io/Statement/v1", "subject": [], "predicate": {}}),
                       "application/vnd.in-toto+json")
    config = f.blob(dumps({"architecture": "amd64", "os": "linux", "rootfs": {"layers": []}}), IMAGE_CONFIG)
    root = f.manifest(config, [statement, f.blob(b"  {not json at all", LAYER)])
    f.tag("att", root)
    gc_keeps_every_closure(f, root)


def test_gc_refuses_when_a_lost_child_is_typed_index_with_a_charset_parameter(tmp_path):
    """`...index.v1+json; charset=utf-8` is an index: losing it loses what it referenced."""
    f = LayoutFactory(tmp_path / "c")
    inner = f.index([f.image("amd64")])
    f.tag("app", f.index([as_type(inner, CHARSET_INDEX)]))
    f.path(inner["digest"]).unlink()
    blocked_and_untouched(f, inner["digest"])


def test_gc_refuses_when_a_charset_typed_index_descriptor_names_a_plain_blob(tmp_path):
    f = LayoutFactory(tmp_path / "c")
    layer = f.layer("plain")
    f.tag("odd", f.index([as_type(layer, CHARSET_INDEX)]))
    blocked_and_untouched(f, layer["digest"])
