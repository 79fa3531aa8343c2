"""Property tests over random GHCR-like package states: every platform manifest, attestation and
referrer is its own listed version, indexes share children, some children are already gone.

Whatever the policy says, the plan never deletes a child of a kept index or a referrer of a kept
image, deletes parents before children (so any prefix of an apply leaves no kept or listed index
with a lost child), and takes with a deleted image everything only it used.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ghcr_janitor.core import models
from ghcr_janitor.core.models import Artifact, Inventory, StoreTraits
from ghcr_janitor.plan.model import DELETE
from ghcr_janitor.plan.build import build_target_plan
from ghcr_janitor.policy import evaluate
from tests.unit.test_safety_properties import policies

NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)
TAGS = ["latest", "cache-base", "cache-pr-1", "cache-pr-2", "v1", "cache-builder-x"]


def dg(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def when(draw) -> datetime:
    return NOW - timedelta(days=draw(st.integers(0, 90)), hours=draw(st.integers(0, 23)))


@st.composite
def packages(draw) -> Inventory:
    arts: dict[str, Artifact] = {}
    layers = {dg(f"layer{i}"): draw(st.integers(1, 500)) for i in range(8)}
    platforms = []
    for i in range(draw(st.integers(1, 6))):
        digest = dg(f"platform{i}")
        closure = {digest: 100 + i}
        for layer in draw(st.lists(st.sampled_from(sorted(layers)), min_size=1, max_size=3)):
            closure[layer] = layers[layer]
        kind = draw(st.sampled_from([models.IMAGE, models.IMAGE, models.ATTESTATION]))
        arts[digest] = Artifact(digest, "application/vnd.oci.image.manifest.v1+json", kind, closure,
                                created=when(draw), age_source="ghcr/updated_at")
        platforms.append(digest)
    for i in range(draw(st.integers(0, 3))):         # referrers (signatures) of platform manifests
        digest = dg(f"sig{i}")
        subject = draw(st.sampled_from(platforms))
        arts[digest] = Artifact(digest, "application/vnd.oci.image.manifest.v1+json", models.ARTIFACT,
                                {digest: 50, dg("empty-config"): 2}, subject=subject, created=when(draw),
                                age_source="ghcr/updated_at")
    indexes = []
    for i in range(draw(st.integers(1, 5))):
        digest = dg(f"index{i}")
        children = draw(st.lists(st.sampled_from(platforms), min_size=1, max_size=3, unique=True))
        closure = {digest: 300}
        for child in children:
            closure.update(arts[child].closure)
        arts[digest] = Artifact(digest, "application/vnd.oci.image.index.v1+json", models.IMAGE_INDEX, closure,
                                children=tuple(children), created=when(draw), age_source="ghcr/updated_at")
        indexes.append(digest)
    # Some platform manifests were deleted out-of-band: their parents are broken, the closure is what is left.
    for lost in draw(st.lists(st.sampled_from(platforms), max_size=2, unique=True)):
        if all(lost not in arts[i].closure or len(arts[i].children) > 1 for i in indexes):
            del arts[lost]
            for i in indexes:
                art = arts[i]
                if lost in art.closure:
                    art.closure.pop(lost)
                    art.children = tuple(c for c in art.children if c != lost)
                    art.missing += (lost,)
                    art.broken = models.PARTIAL
            for sig in [d for d, a in arts.items() if a.subject == lost]:
                arts[sig].subject = lost            # a referrer whose subject lives nowhere now
    taggable = indexes + [p for p in platforms if p in arts]
    tags = draw(st.dictionaries(st.sampled_from(TAGS), st.sampled_from(taggable), max_size=5))
    for tag, digest in tags.items():
        arts[digest].tags.append(tag)
    inv = Inventory(target="ghcr.io/acme/app", tags=tags, artifacts=arts, backend="ghcr",
                    traits=StoreTraits(lists_untagged=True),
                    listed=draw(st.lists(st.sampled_from(sorted(tags)), unique=True)) if tags else [])
    roots = inv.roots()
    inv.untagged = sorted(d for d in arts if d not in set(tags.values()) and d in roots)
    return inv


def plan_for(inv, policy):
    return build_target_plan(inv, evaluate(inv, policy, NOW))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packages(), policies())
def test_kept_images_keep_their_children_and_deletes_run_parents_first(inv, policy):
    tp = plan_for(inv, policy)
    order = [a.digest for a in tp.actions if a.action == DELETE]
    deleted = set(order)
    kept = set(inv.artifacts) - deleted
    for digest in kept:
        art = inv.artifacts[digest]
        assert not (set(art.closure) & deleted), f"kept {digest} loses part of its closure"
    for digest in deleted:                          # a referrer of a kept image stays
        subject = inv.artifacts[digest].subject
        assert subject not in kept or subject not in inv.artifacts
    # Any prefix of the apply: nothing still present has lost a child that was there before.
    gone: set[str] = set()
    for digest in order:
        gone.add(digest)
        for other in set(inv.artifacts) - gone:
            assert not (set(inv.artifacts[other].closure) - {other}) & gone, \
                f"after deleting {digest}, {other} is missing a child"
    position = {a.digest: i for i, a in reversed(list(enumerate(tp.actions)))}
    for i, a in enumerate(tp.actions):              # a child names every deleted parent, all before it
        if a.parent is not None:
            assert a.parents and a.parent == a.parents[0] == min(a.parents, key=position.get)
            assert all(position[p] < i for p in a.parents)
            users = {d for d in deleted if d != a.digest and (a.digest in inv.artifacts[d].closure
                                                              or inv.artifacts[a.digest].subject == d)}
            assert set(a.parents) == users
    for digest in deleted:                          # never a tagged digest whose tag is not deleted
        for tag in inv.tags_of(digest):
            assert any(a.tag == tag and a.action == DELETE for a in tp.actions)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packages(), policies())
def test_a_deleted_image_takes_what_only_it_used_and_reclaim_is_exact(inv, policy):
    tp = plan_for(inv, policy)
    deleted = {a.digest for a in tp.actions if a.action == DELETE}
    kept = set(inv.artifacts) - deleted
    tagged = set(inv.tags.values())
    kept_closure: dict[str, int] = {}
    for digest in kept:
        kept_closure.update(inv.artifacts[digest].closure)

    def used_by_another_kept(x: str) -> bool:
        return any(x in inv.artifacts[k].closure for k in kept if k != x)

    for digest in deleted:
        art = inv.artifacts[digest]
        for child in set(art.closure) & set(inv.artifacts) - {digest}:
            if not used_by_another_kept(child) and child not in tagged:
                assert child in deleted, f"{child} is used only by deleted {digest} but stays"
        for sig, other in inv.artifacts.items():
            if other.subject == digest and sig not in tagged and not used_by_another_kept(sig):
                assert sig in deleted, f"referrer {sig} of deleted {digest} stays"
    freed: dict[str, int] = {}
    for digest in deleted:
        freed.update({b: s for b, s in inv.artifacts[digest].closure.items() if b not in kept_closure})
    assert tp.reclaim_size == sum(freed.values())
    followers = [a for a in tp.actions if a.parent is not None]
    assert all(a.tag is None and a.reclaim_size == 0 for a in followers)
