"""gc and ls on cache dirs as other tools leave them: referrers of absent subjects, lost layer
blobs, lost manifests, stray files, nested layouts, dangling index.json entries."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from ghcr_janitor.stores.layout.gc import run_gc
from tests.layout_factory import LayoutFactory, snapshot

NOW = datetime.now(timezone.utc)
GRACE = timedelta(hours=1)
SIG = "application/vnd.dev.cosign.simplesigning.v1+json"


def orphans(f: LayoutFactory, n: int = 2) -> list[str]:
    return [f.blob(f"orphan {i}".encode())["digest"] for i in range(n)]


def referrer(f: LayoutFactory, subject: dict, name: str = "sig") -> dict:
    config = f.blob(b"{}", "application/vnd.oci.empty.v1+json")
    layer = f.blob(f"signature {name}".encode(), SIG)
    return f.manifest(config, [layer], subject={k: subject[k] for k in ("mediaType", "digest", "size")})


def test_a_referrer_whose_subject_lives_elsewhere_is_normal(tmp_path):
    f = LayoutFactory(tmp_path / "cache")
    elsewhere = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                 "digest": "sha256:" + "ab" * 32, "size": 1234}
    sig = referrer(f, elsewhere)
    f.tag("sha256-" + "ab" * 32 + ".sig", sig)
    lost = orphans(f)
    report = run_gc(f.root, GRACE, NOW, dry_run=False)
    assert report.ok and report.blocked is None and report.missing == []
    assert sorted(d for d, _ in report.deleted) == sorted(lost)
    assert all(f.path(d).is_file() for d in f.closure(sig["digest"]) if d != elsewhere["digest"])


def test_a_present_subject_is_kept_by_its_own_tag_not_by_its_referrers(tmp_path):
    f = LayoutFactory(tmp_path / "cache")
    image = f.image("signed")
    f.tag(None, referrer(f, image))                 # only the signature is listed
    tagged = f.image("tagged")
    f.tag("app", tagged)
    signed_only = f.closure(image["digest"]) - f.closure(tagged["digest"])
    report = run_gc(f.root, GRACE, NOW, dry_run=False)
    assert report.ok
    assert signed_only <= {d for d, _ in report.deleted}
    assert not any(f.path(d).exists() for d in signed_only)
    assert all(f.path(d).is_file() for d in f.closure(tagged["digest"]))


def test_lost_layer_blobs_are_reported_and_gc_still_collects(tmp_path, cli):
    f = LayoutFactory(tmp_path / "cache")
    layers = [f.layer(f"l{i}") for i in range(3)]
    f.tag("cache-base", f.cache_manifest(layers))
    for lost in layers[:2]:
        f.path(lost["digest"]).unlink()
    unreferenced = orphans(f)
    result = cli("gc", f.root, "-O", "json")
    assert result.exit_code == 1                    # damage is noticed
    doc = json.loads(result.stdout)
    assert sorted(d["digest"] for d in doc["deleted"]) == sorted(unreferenced)
    assert sorted(m["digest"] for m in doc["missing"]) == sorted(l["digest"] for l in layers[:2])
    assert doc["blocked"] is None
    assert all(l["digest"] in result.stderr for l in layers[:2])
    assert not any(f.path(d).exists() for d in unreferenced)
    present = {d for d in f.blob_digests()}
    assert doc["reachable"] == len(present)         # only blobs that exist are counted as kept


def test_a_lost_manifest_makes_gc_refuse_and_delete_nothing(tmp_path, cli):
    f = LayoutFactory(tmp_path / "cache")
    image = f.image("gone")
    f.tag("cache-x", image)
    f.tag("cache-y", f.image("fine"))
    f.path(image["digest"]).unlink()
    orphans(f)
    before = snapshot(f.root, dir_mtimes=False)
    result = cli("gc", f.root)
    assert result.exit_code == 1
    assert "nothing deleted" in result.stderr and image["digest"] in result.stderr
    assert snapshot(f.root, dir_mtimes=False) == before


def test_a_lost_image_config_makes_gc_refuse(tmp_path):
    f = LayoutFactory(tmp_path / "cache")
    image = f.image("no config")
    f.tag("app", image)
    config = next(d for d in f.refs[image["digest"]] if f.refs.get(d) == [] and d != image["digest"])
    f.path(config).unlink()
    lost = orphans(f)
    report = run_gc(f.root, GRACE, NOW, dry_run=False)
    assert report.blocked and report.deleted == []
    assert all(f.path(d).exists() for d in lost)


def test_stray_files_and_nested_layouts_are_left_alone(tmp_path):
    f = LayoutFactory(tmp_path / "cache")
    f.tag("cache-base", f.cache_manifest([f.layer("a")]))
    lost = orphans(f, 1)
    strays = [f.root / "blobs" / ".gitignore", f.root / "blobs" / "sha256" / "README", f.root / ".gitignore"]
    for path in strays:
        path.write_text("*\n")
    nested = LayoutFactory(f.root / "sub" / "other")
    nested.tag("x", nested.image("nested"))
    inside = LayoutFactory(f.root / "blobs" / "sha256" / "dir-layout")
    inside.tag("y", inside.image("inside"))
    keep = {p: p.read_bytes() for p in [*strays, *nested.root.rglob("*"), *inside.root.rglob("*")] if p.is_file()}
    report = run_gc(f.root, GRACE, NOW, dry_run=False)
    assert report.ok and report.blocked is None
    assert [d for d, _ in report.deleted] == lost
    assert all(p.read_bytes() == data for p, data in keep.items())
    assert "blobs/.gitignore" in report.ignored and "blobs/sha256/README" in report.ignored


def test_a_dangling_index_entry_is_listed_alike_in_table_and_json(tmp_path, cli):
    f = LayoutFactory(tmp_path / "cache")
    gone = f.image("dangling")
    f.tag("cache-gone", gone)
    ok = f.cache_manifest([f.layer("ok")])
    f.tag("cache-ok", ok)
    f.path(gone["digest"]).unlink()
    listing = cli("ls", f.root, "-O", "json")
    assert listing.exit_code == 1
    tags = {t["tag"]: t for t in json.loads(listing.stdout)["targets"][0]["tags"]}
    entry = tags["cache-gone"]
    assert (entry["kind"], entry["size"]) == ("unknown", gone["size"]) and "missing" in entry["error"]
    table = cli("ls", f.root)
    row = next(line for line in table.stdout.splitlines() if line.startswith("cache-gone"))
    assert row.split()[2] == "unknown"
    assert tags["cache-ok"]["kind"] == "buildkit-cache"
    report = run_gc(f.root, GRACE, NOW, dry_run=True)
    assert report.blocked and report.reachable == len(f.closure(ok["digest"]))     # the lost one is not counted


def test_an_index_with_a_lost_child_is_broken_in_a_layout(tmp_path, cli):
    f = LayoutFactory(tmp_path / "cache")
    amd, arm = f.image("amd"), f.image("arm")
    f.tag("multi", f.index([amd, arm]))
    f.path(arm["digest"]).unlink()
    listing = cli("ls", f.root, "--all-tags", "-O", "json")
    assert listing.exit_code == 0, listing.stderr
    tag = json.loads(listing.stdout)["targets"][0]["tags"][0]
    assert (tag["kind"], tag["broken"], tag["missing"]) == ("image-index", "partial", [arm["digest"]])


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_prune_says_why_gc_freed_nothing_in_every_format(tmp_path, cli, fmt):
    f = LayoutFactory(tmp_path / "cache")
    amd, arm = f.image("amd"), f.image("arm")
    f.tag("cache-multi", f.index([amd, arm]))
    f.tag("cache-old", f.cache_manifest([f.layer("old")]))
    f.path(arm["digest"]).unlink()
    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\nname = "old"\nselect = { tags = ["cache-old"] }\naction = "delete"\n')
    result = cli("prune", f.root, "--policy", policy, "--yes", "-O", fmt)
    assert result.exit_code == 1
    assert f"error: gc oci-layout:{f.root}: nothing deleted:" in result.stderr
    assert arm["digest"] in result.stderr
    assert ("nothing deleted (" in result.stdout) == (fmt == "table")
    if fmt == "json":                     # what gc freed is what was reclaimed: nothing
        assert json.loads(result.stdout)["targets"][0]["reclaimed_size"] == 0
