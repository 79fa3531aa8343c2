"""LayoutRegistry: the `Registry` interface over a local OCI image layout."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os

import pytest

from ghcr_janitor.core import mediatypes as mt
from ghcr_janitor.core.errors import LayoutError, ManifestError, NotFoundError, TagMovedError
from ghcr_janitor.stores.layout import registry as layout_mod
from ghcr_janitor.stores.base import Registry
from ghcr_janitor.stores.layout.registry import LayoutRegistry
from tests.layout_factory import OCI_INDEX, OCI_MANIFEST, LayoutFactory, dumps, sha256


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def lay(tmp_path):
    f = LayoutFactory(tmp_path / "cache")
    base = f.layer("base")
    f.base = base
    f.m1 = f.cache_manifest([base, f.layer("one")])
    f.m2 = f.cache_index([base, f.layer("two")])
    f.tag("cache-one", f.m1)
    f.tag("cache-two", f.m2)
    f.tag("cache-one-alias", f.m1)
    f.tag(None, f.m2)                       # an untagged entry (same digest as cache-two)
    f.m3 = f.cache_manifest([f.layer("three")])
    f.tag(None, f.m3, platform={"os": "linux"})
    return f


def index_doc(f):
    return json.loads((f.root / "index.json").read_bytes())


def test_implements_registry_protocol(lay):
    reg = LayoutRegistry(lay.root)
    assert isinstance(reg, Registry)
    assert (reg.kind, reg.lists_untagged) == ("layout", True)
    from ghcr_janitor.stores.base import CollectsGarbage, Store
    from ghcr_janitor.stores.layout.store import LayoutStore

    store = LayoutStore(lay.root)
    assert isinstance(store, Registry) and isinstance(store, Store) and isinstance(store, CollectsGarbage)
    assert not isinstance(reg, CollectsGarbage)


def test_tags_versions_and_resolve(lay):
    reg = LayoutRegistry(lay.root)
    assert run(reg.list_tags()) == ["cache-one", "cache-one-alias", "cache-two"]
    versions = run(reg.list_versions())
    by_digest = {v.digest: v for v in versions}
    assert len(versions) == 3
    assert by_digest[lay.m1["digest"]].tags == ("cache-one", "cache-one-alias")
    assert by_digest[lay.m2["digest"]].tags == ("cache-two",)
    assert by_digest[lay.m3["digest"]].tags == ()
    assert by_digest[lay.m2["digest"]].media_type == OCI_INDEX
    assert all(v.created is None and v.age_source is None for v in versions)
    assert "blob_mtime" in by_digest[lay.m1["digest"]].extra
    assert run(reg.resolve("cache-two")) == lay.m2["digest"]
    assert run(reg.resolve("nope")) is None


def test_duplicate_ref_names_first_wins(lay):
    lay.tag("cache-one", lay.m3)  # BuildKit never writes this, the spec allows it
    reg = LayoutRegistry(lay.root)
    assert run(reg.resolve("cache-one")) == lay.m1["digest"]
    assert run(reg.list_tags()).count("cache-one") == 1


def test_get_manifest_by_tag_and_digest(lay):
    reg = LayoutRegistry(lay.root)
    raw = run(reg.get_manifest("cache-one"))
    assert raw.digest == lay.m1["digest"] and raw.media_type == OCI_MANIFEST
    assert raw.body == lay.path(lay.m1["digest"]).read_bytes()
    assert run(reg.get_manifest(lay.m2["digest"])).media_type == OCI_INDEX
    # a child not in index.json: media type from the body
    child = lay.cache_manifest([lay.layer("child")])
    assert run(reg.get_manifest(child["digest"])).media_type == OCI_MANIFEST


def test_get_manifest_errors(lay):
    reg = LayoutRegistry(lay.root)
    with pytest.raises(NotFoundError):
        run(reg.get_manifest("no-such-tag"))
    with pytest.raises(NotFoundError):
        run(reg.get_manifest(sha256(b"never written")))
    lay.path(lay.m1["digest"]).write_bytes(b'{"schemaVersion":2}')
    with pytest.raises(ManifestError) as err:
        run(reg.get_manifest("cache-one"))
    assert lay.m1["digest"].split(":")[1] in str(err.value)
    lay.path(lay.m2["digest"]).unlink()
    with pytest.raises(NotFoundError):
        run(reg.get_manifest("cache-two"))


def test_get_blob(lay):
    reg = LayoutRegistry(lay.root)
    assert run(reg.get_blob(lay.base["digest"], 1 << 20)) == b"layer base\n"
    with pytest.raises(ManifestError):
        run(reg.get_blob(lay.base["digest"], 3))
    with pytest.raises(NotFoundError):
        run(reg.get_blob(sha256(b"x"), 100))
    lay.path(lay.base["digest"]).write_bytes(b"tampered")
    with pytest.raises(ManifestError):
        run(reg.get_blob(lay.base["digest"], 100))


def test_put_manifest_adds_and_replaces_atomically(lay):
    reg = LayoutRegistry(lay.root)
    os.chmod(lay.root / "index.json", 0o640)
    body = dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                  "config": {"mediaType": mt.BUILDKIT_CACHE_CONFIG, "digest": sha256(b"c"), "size": 1}, "layers": []})
    digest = run(reg.put_manifest("cache-one", body, OCI_MANIFEST))
    assert digest == sha256(body) and lay.path(digest).read_bytes() == body
    assert run(reg.resolve("cache-one")) == digest
    assert run(reg.resolve("cache-one-alias")) == lay.m1["digest"]
    doc = index_doc(lay)
    assert doc["manifests"][-1] == {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body),
                                    "annotations": {mt.REF_NAME: "cache-one"}}
    # unknown fields of other entries survive verbatim; mode is kept
    assert {"os": "linux"} in [m.get("platform") for m in doc["manifests"]]
    assert (lay.root / "index.json").stat().st_mode & 0o777 == 0o640
    assert run(reg.put_manifest("archive-2026q4", body, OCI_MANIFEST)) == digest
    assert "archive-2026q4" in run(reg.list_tags())
    leftovers = [p.name for p in lay.root.iterdir() if p.name not in ("blobs", "index.json", "oci-layout")]
    assert leftovers == []  # no temp files, no lock file we created


def test_put_manifest_rejects_bad_ref_name(lay):
    from ghcr_janitor.core.errors import UsageError

    with pytest.raises(UsageError):
        run(LayoutRegistry(lay.root).put_manifest("bad tag!", b"{}", OCI_MANIFEST))


def test_delete_manifest_removes_every_entry(lay):
    reg = LayoutRegistry(lay.root)
    run(reg.delete_manifest(lay.m2["digest"]))
    digests = [m["digest"] for m in index_doc(lay)["manifests"]]
    assert lay.m2["digest"] not in digests and len(digests) == 3
    assert lay.path(lay.m2["digest"]).exists()  # blobs go only at gc
    with pytest.raises(NotFoundError):
        run(reg.delete_manifest(lay.m2["digest"]))


def test_delete_tag_keeps_other_tags(lay):
    reg = LayoutRegistry(lay.root)
    run(reg.delete_tag("cache-one", lay.m1["digest"]))
    assert run(reg.list_tags()) == ["cache-one-alias", "cache-two"]
    assert run(reg.resolve("cache-one-alias")) == lay.m1["digest"]
    with pytest.raises(NotFoundError):
        run(reg.delete_tag("cache-one", lay.m1["digest"]))
    before = (lay.root / "index.json").read_bytes()
    with pytest.raises(TagMovedError):  # moved: nothing changes
        run(reg.delete_tag("cache-two", lay.m1["digest"]))
    assert (lay.root / "index.json").read_bytes() == before


def test_delete_all_tags_leaves_valid_empty_index(tmp_path):
    f = LayoutFactory(tmp_path / "c")
    m = f.cache_manifest([f.layer("a")])
    f.tag("cache-a", m)
    reg = LayoutRegistry(f.root)
    run(reg.delete_manifest(m["digest"]))
    assert index_doc(f)["manifests"] == []
    assert run(reg.list_tags()) == [] and run(reg.list_versions()) == []


def test_missing_or_corrupt_layout_files(tmp_path):
    f = LayoutFactory(tmp_path / "c")
    (f.root / "index.json").write_text('{"schemaVersion": 2, "manifests": [')
    with pytest.raises(LayoutError) as err:
        run(LayoutRegistry(f.root).list_tags())
    assert "index.json" in str(err.value) and "\n" not in str(err.value)
    (f.root / "index.json").write_text('{"schemaVersion": 2, "manifests": [{"digest": "nope"}]}')
    with pytest.raises(LayoutError, match="index.json"):
        run(LayoutRegistry(f.root).list_tags())
    (f.root / "index.json").unlink()
    with pytest.raises(LayoutError, match="index.json"):
        run(LayoutRegistry(f.root).list_versions())
    (f.root / "oci-layout").write_text("[]")
    with pytest.raises(LayoutError, match="oci-layout"):
        LayoutRegistry(f.root)
    (f.root / "oci-layout").unlink()
    with pytest.raises(LayoutError, match="oci-layout"):
        LayoutRegistry(f.root)
    with pytest.raises(LayoutError):
        LayoutRegistry(tmp_path / "nowhere")


def test_existing_lock_file_is_kept_and_respected(lay, monkeypatch):
    lock = lay.root / "index.json.lock"
    lock.touch()
    reg = LayoutRegistry(lay.root)
    run(reg.delete_tag("cache-one", lay.m1["digest"]))
    assert lock.exists()
    monkeypatch.setattr(layout_mod, "LOCK_TIMEOUT", 0.2)
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # a reader (e.g. BuildKit importing) holds it
        assert run(reg.list_tags())      # shared with shared: fine
        with pytest.raises(LayoutError, match="index.json.lock"):
            run(reg.delete_tag("cache-two", lay.m2["digest"]))
    finally:
        os.close(fd)
    run(reg.delete_tag("cache-two", lay.m2["digest"]))


def test_lock_follows_a_recreated_lock_file(lay, monkeypatch):
    """BuildKit unlinks the lock file after unlocking: re-lock if the path changed under us."""
    lock = lay.root / "index.json.lock"
    lock.touch()
    real_flock, calls = fcntl.flock, []

    def racing_flock(fd, op):
        if not calls:  # between our open and our flock, "BuildKit" unlinks and recreates it
            os.unlink(lock)
            lock.touch()
        calls.append(os.fstat(fd).st_ino)
        real_flock(fd, op)

    monkeypatch.setattr(layout_mod.fcntl, "flock", racing_flock)
    with layout_mod.index_lock(lay.root, exclusive=True, timeout=1) as held:
        assert held and len(calls) == 2 and calls[1] == lock.stat().st_ino != calls[0]
    assert lock.exists()  # not ours: left in place


def test_dry_reads_never_create_the_lock_file(lay):
    with layout_mod.index_lock(lay.root, exclusive=False, create=False) as held:
        assert held is False
    assert not (lay.root / "index.json.lock").exists()


def test_example_cache_reads(tmp_path):
    import runpy

    gen = runpy.run_path(str(os.path.join(os.path.dirname(__file__), "..", "..", "examples", "make_buildx_cache.py")))
    gen["build"](tmp_path / "ex")
    reg = LayoutRegistry(tmp_path / "ex")
    tags = run(reg.list_tags())
    assert {"cache-base", "cache-python-deps", "cache-node-deps", "cache-builder",
            "cache-builder-feature-x", "cache-node-deps-pr-12"} == set(tags)
    for tag in tags:
        raw = run(reg.get_manifest(tag))
        assert raw.media_type in (OCI_MANIFEST, OCI_INDEX)


def test_reads_leave_the_directory_untouched(lay):
    from tests.layout_factory import snapshot

    before = snapshot(lay.root)
    reg = LayoutRegistry(lay.root)
    run(reg.list_tags()), run(reg.list_versions()), run(reg.resolve("cache-one"))
    run(reg.get_manifest("cache-two")), run(reg.get_blob(lay.base["digest"], 100))
    assert snapshot(lay.root) == before


def test_torn_unlocked_read_is_retried(lay, monkeypatch):
    good = (lay.root / "index.json").read_bytes()
    reads = iter([good[:10], good])  # BuildKit truncated and is rewriting it
    monkeypatch.setattr(layout_mod, "read_index_bytes", lambda root: next(reads))
    assert run(LayoutRegistry(lay.root).list_tags()) == ["cache-one", "cache-one-alias", "cache-two"]
