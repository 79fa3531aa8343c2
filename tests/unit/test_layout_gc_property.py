"""Property: on random layouts whose descriptors carry random (often wrong) media types, gc never
deletes a blob reachable *by content* from an index.json entry; it refuses exactly when a descriptor
calls a plain blob a manifest (or lists it in index.json); otherwise it deletes exactly the rest."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from ghcr_janitor.core import mediatypes as mt
from ghcr_janitor.stores.layout.gc import run_gc
from tests.layout_factory import CACHE_CONFIG, DOCKER_LIST, IMAGE_CONFIG, LAYER, NOW, OCI_INDEX, OCI_MANIFEST, \
    LayoutFactory, dumps

DESCRIPTOR_TYPES = [LAYER, OCI_MANIFEST, OCI_INDEX, DOCKER_LIST, IMAGE_CONFIG, CACHE_CONFIG, None,
                    "application/octet-stream", OCI_INDEX + "; charset=utf-8", "Application/VND.OCI.Image.Manifest.v1+JSON"]
BODY_STYLES = ["typed", "bare", "charset"]            # mediaType field, none, with a parameter
KINDS = ["leaf", "json-leaf", "manifest", "index", "cacheconfig"]


@st.composite
def layouts(draw):
    """Nodes built bottom-up (each references earlier ones), then index.json roots."""
    count = draw(st.integers(2, 12))
    nodes = []
    for i in range(count):
        kind = draw(st.sampled_from(KINDS if i else KINDS[:2]))
        refs = [] if kind.endswith("leaf") else draw(st.lists(st.integers(0, i - 1), min_size=1, max_size=4))
        types = [draw(st.sampled_from(DESCRIPTOR_TYPES)) for _ in refs]
        nodes.append((kind, refs, types, draw(st.sampled_from(BODY_STYLES))))
    roots = draw(st.lists(st.tuples(st.integers(0, count - 1), st.sampled_from(DESCRIPTOR_TYPES)), max_size=4))
    return nodes, roots


def descriptor(desc: dict, media_type: str | None) -> dict:
    out = {"digest": desc["digest"], "size": desc["size"]}
    if media_type is not None:
        out["mediaType"] = media_type
    return out


def body(i: int, kind: str, children: list[dict], style: str) -> bytes:
    if kind == "leaf":
        return f"layer bytes {i}".encode()
    if kind == "json-leaf":
        return dumps({"architecture": "amd64", "os": "linux", "config": {"Env": [str(i)]}})
    if kind == "cacheconfig":
        return dumps({"layers": [{"blob": c["digest"]} for c in children], "records": [{"digest": str(i)}]})
    media = {"manifest": OCI_MANIFEST, "index": OCI_INDEX}[kind]
    doc: dict = {"schemaVersion": 2, "annotations": {"n": str(i)}}
    if style != "bare":
        doc["mediaType"] = media + ("; charset=utf-8" if style == "charset" else "")
    if kind == "index":
        doc["manifests"] = children
    else:
        doc["config"], doc["layers"] = children[0], children[1:]
    return dumps(doc)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layouts())
def test_gc_never_deletes_a_blob_reachable_by_content(layout):
    nodes, roots = layout
    with tempfile.TemporaryDirectory() as tmp:
        f = LayoutFactory(Path(tmp) / "c")
        descs: list[dict] = []
        plain: set[int] = set()                   # content no walk can follow
        for i, (kind, refs, types, style) in enumerate(nodes):
            children = [descriptor(descs[r], t) for r, t in zip(refs, types)]
            descs.append(f.blob(body(i, kind, children, style), refs=[descs[r]["digest"] for r in refs]))
            if kind.endswith("leaf"):
                plain.add(i)
        for index, media_type in roots:
            f.tag(None, {**descs[index], "mediaType": media_type or OCI_MANIFEST})
        reachable = set().union(*(f.closure(descs[i]["digest"]) for i, _ in roots)) if roots else set()

        # gc must refuse when a root, or a descriptor in a reachable blob's content, calls plain content
        # walkable (cache configs name blobs without descriptors, so they claim nothing).
        must_block = any(i in plain for i, _ in roots) or any(
            descs[p]["digest"] in reachable and i in plain and mt.looks_like_manifest(mt.normalise(t))
            for p, (kind, refs, types, _) in enumerate(nodes) if kind in ("manifest", "index")
            for i, t in zip(refs, types))
        before = f.blob_digests()
        report = run_gc(f.root, timedelta(0), NOW, dry_run=False)
        after = f.blob_digests()

        assert reachable <= after, f"lost {sorted(reachable - after)}"
        assert bool(report.blocked) == must_block, (report.blocked, report.corrupt)
        if report.blocked:
            assert after == before
        else:
            assert after == reachable and report.ok
