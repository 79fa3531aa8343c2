"""Issue 20 point 10: `size` and `unique_size` (cli.md) agree on what follows an artifact.

`unique_size` is the part of `size` no other artifact uses, so `unique_size <= size` always; an
image's referrers (attestations, signatures: artifacts naming it as `subject`) go with it, so they
count in both. Random graphs of manifests, index children, referrers (chains and cycles too) and
shared blobs, then a real layout with an attestation, as `janitor ls` shows it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from ghcr_janitor.core.models import Artifact, Inventory
from ghcr_janitor.inventory.gather import InventoryOptions, build_inventory, compute_unique_sizes
from ghcr_janitor.report.inventory_view import inventory_dict
from ghcr_janitor.stores.layout.registry import LayoutRegistry
from tests.layout_factory import LayoutFactory, dumps

NOW = datetime(2026, 12, 7, tzinfo=timezone.utc)


@st.composite
def graphs(draw):
    """(blob sizes, artifacts): each artifact has its own manifest, some blobs, children among the
    earlier artifacts (an index: their closures are in its closure) and perhaps a subject."""
    blob_sizes = draw(st.lists(st.integers(0, 1000), min_size=1, max_size=12))
    count = draw(st.integers(1, 9))
    arts: list[dict] = []
    for k in range(count):
        arts.append({
            "size": draw(st.integers(1, 500)),
            "blobs": draw(st.sets(st.integers(0, len(blob_sizes) - 1), max_size=5)),
            "children": draw(st.sets(st.integers(0, k - 1), max_size=3)) if k else set(),
            "subject": draw(st.none() | st.integers(0, count - 1)),
        })
    return blob_sizes, arts


def _inventory(blob_sizes: list[int], arts: list[dict]) -> Inventory:
    closures: list[dict[str, int]] = []
    for k, a in enumerate(arts):
        closure = {f"m{k}": a["size"], **{f"b{i}": blob_sizes[i] for i in a["blobs"]}}
        for child in a["children"]:
            closure.update(closures[child])
        closures.append(closure)
    artifacts = {}
    for k, a in enumerate(arts):
        subject = a["subject"]
        artifacts[f"m{k}"] = Artifact(f"m{k}", "application/vnd.oci.image.manifest.v1+json", "image",
                                      closure=dict(closures[k]),
                                      children=tuple(f"m{c}" for c in sorted(a["children"])),
                                      subject=f"m{subject}" if subject is not None and subject != k else None)
    return Inventory(target="t", tags={}, artifacts=artifacts, backend="layout")


def _follow(inv: Inventory, digest: str) -> set[str]:
    """Everything that goes with `digest`, found independently: what its closure holds and what
    names any of those as subject, transitively."""
    found, stack = {digest}, [digest]
    while stack:
        current = stack.pop()
        nxt = {d for d in inv.artifacts[current].closure if d in inv.artifacts}
        nxt |= {d for d, a in inv.artifacts.items() if a.subject == current}
        for d in nxt - found:
            found.add(d)
            stack.append(d)
    return found


@settings(max_examples=400, deadline=None)
@given(graphs())
def test_unique_size_never_exceeds_size_and_sizes_count_each_blob_once(graph):
    blob_sizes, arts = graph
    inv = _inventory(blob_sizes, arts)
    compute_unique_sizes(inv)
    roots = inv.roots()
    for digest, art in inv.artifacts.items():
        assert 0 <= art.unique_size <= art.size, (digest, art.unique_size, art.size)
        if digest in roots:          # its closure and its followers' closures, each blob once
            union: dict[str, int] = {}
            for d in _follow(inv, digest):
                union.update(inv.artifacts[d].closure)
            assert art.size == sum(union.values())
        else:                        # it follows another: its own closure, and it frees nothing alone
            assert art.size == sum(art.closure.values()) and art.unique_size == 0
    # The listing's totals obey the same rule, each blob once.
    everything = list(inv.artifacts)
    assert sum(inv.artifacts[d].unique_size for d in roots) <= inv.total_size(everything) == inv.total_size()
    if set().union(*(_follow(inv, r) for r in roots)) == set(inv.artifacts):   # no cycle without a root
        assert inv.total_size(sorted(roots)) == inv.total_size()


def test_an_image_with_an_attestation_counts_it_in_size_as_in_unique_size(tmp_path):
    """The regclient-style layout of the issue: an image and an attestation naming it as subject,
    both in index.json (the image tagged). Before: unique_size 14,879 > size 13,941."""
    f = LayoutFactory(tmp_path / "layout")
    image = f.image("app")
    statement = f.blob(b'{"predicateType": "https://slsa.dev/provenance/v1"}' * 40, "application/vnd.in-toto+json")
    attestation = f.manifest(f.blob(dumps({}), "application/vnd.oci.empty.v1+json"), [statement],
                             subject={k: image[k] for k in ("mediaType", "digest", "size")})
    f.tag("v1", image)
    f.tag(None, attestation)
    inv = asyncio.run(build_inventory(LayoutRegistry(f.root), "oci-layout:x", InventoryOptions(now=NOW, all_tags=True)))
    doc = inventory_dict(inv)
    (tag,) = doc["tags"]
    own = sum(inv.artifacts[image["digest"]].closure.values())
    follows = sum(inv.artifacts[attestation["digest"]].closure.values())     # nothing shared with the image
    assert tag["unique_size"] <= tag["size"] == own + follows == inv.total_size([image["digest"]])
    assert tag["unique_size"] == tag["size"]      # nothing else uses any of it
    assert doc["untagged"] == []        # the attestation follows its image
    assert doc["totals"]["unique_size"] <= doc["totals"]["size"] == doc["totals"]["repository_size"]
    # The report's families count what follows an image as its size does.
    from ghcr_janitor.report.storage import families

    (family,) = families(inv)
    assert family.members == ["v1"] and family.bytes == family.only == tag["size"]
