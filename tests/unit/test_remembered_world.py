"""Remembered untagged manifests on a plain OCI registry (issue 21 point 5), as properties over the
in-memory registry of tests/support/world.py driven through the real `OciRegistry`.

Hypothesis seeds `cache-*` tags, runs an inventory (the store remembers each tag's digest), lets a
foreign actor overwrite tags, tag old digests again, build indexes over them (tagged or not) and
delete them, runs more inventories, then plans `untagged = true` deletes and applies them while the
actor may tag or index a listed digest between plan and apply. Whatever happens:

- a remembered digest is listed as untagged only if it exists and no tag reaches it (directly or
  through any index a tag reaches), and it is listed as `untagged_source = "remembered"`, aged from
  when it was last seen tagged;
- every remembered digest that exists, no tag reaches and no other listed manifest lists, is listed;
- a digest that is gone is forgotten; a deleted one too;
- apply deletes nothing a tag reaches at the moment of the delete (the world's judge), so a digest
  tagged or indexed after planning is skipped by the last look.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ghcr_janitor.apply.applier import Applier
from ghcr_janitor.apply.journal import Journal
from ghcr_janitor.core.models import Inventory
from ghcr_janitor.inventory.gather import InventoryOptions, build_inventory
from ghcr_janitor.net.http import ThreadedClient
from ghcr_janitor.plan.planner import plan_inventory
from ghcr_janitor.policy.loader import parse_policy
from ghcr_janitor.stores.base import RemembersTags
from ghcr_janitor.stores.oci import memory as m
from ghcr_janitor.stores.oci.memory import DigestMemory
from ghcr_janitor.stores.oci.registry import OciRegistry
from tests.support.world import OCI_BASE, REPO, World

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
UNTAGGED = parse_policy('[[rule]]\nname = "overwritten"\nselect = { untagged = true }\naction = "delete"\n',
                        "untagged.toml")
TAGS = ["cache-a", "cache-b", "cache-c", "release"]


def open_store(world: World, memory: DigestMemory | None) -> OciRegistry:
    client = ThreadedClient(httpx.Client(transport=httpx.MockTransport(world.oci)), 4)
    return OciRegistry(OCI_BASE, REPO, client, memory=memory)


async def _inventory(world: World, memory: DigestMemory | None, now: datetime) -> Inventory:
    store = open_store(world, memory)
    try:
        return await build_inventory(store, "model", InventoryOptions(now=now, all_tags=True))
    finally:
        await store.aclose()


def inventory(world: World, memory: DigestMemory | None, now: datetime) -> Inventory:
    return asyncio.run(_inventory(world, memory, now))


def remembered_rows(memory: DigestMemory) -> dict[str, str]:
    db = sqlite3.connect(memory.path)
    try:
        return dict(db.execute("SELECT digest, last_tagged FROM tag_digests"))
    finally:
        db.close()


def inventory_through(handler, memory, now) -> Inventory:
    """An inventory of the model repository through `handler` (an httpx MockTransport handler)."""
    async def run() -> Inventory:
        client = ThreadedClient(httpx.Client(transport=httpx.MockTransport(handler)), 2)
        store = OciRegistry(OCI_BASE, REPO, client, memory=memory)
        try:
            return await build_inventory(store, "model", InventoryOptions(now=now, all_tags=True))
        finally:
            await store.aclose()

    return asyncio.run(run())


def test_the_oci_store_has_the_power_and_the_stores_that_list_untagged_do_not():
    from ghcr_janitor.stores.ghcr.registry import GhcrRegistry
    from ghcr_janitor.stores.layout.registry import LayoutRegistry

    assert issubclass(OciRegistry, RemembersTags)
    assert not issubclass(GhcrRegistry, RemembersTags) and not issubclass(LayoutRegistry, RemembersTags)


def test_an_overwritten_tag_leaves_a_remembered_untagged_manifest(tmp_path):
    world = World()
    memory = DigestMemory(tmp_path / m.FILE_NAME)
    old = world.image("a-v1", "cache-a")
    world.image("base", "cache-base")
    first = inventory(world, memory, T0)
    assert first.untagged == [] and first.facts["remembered"] == {"count": 0, "since": None}
    new = world.image("a-v2", "cache-a")                # a second build overwrites cache-a
    later = T0 + timedelta(days=2)
    second = inventory(world, memory, later)
    assert second.untagged == [old] and new not in second.untagged
    art = second.artifacts[old]
    assert art.untagged_source == "remembered" and art.tags == []
    assert (art.created, art.age_source) == (T0, "remembered/last-tagged")
    assert art.extra["last_tag"] == "cache-a"
    assert art.size > 0 and art.unique_size == art.size     # its layer is its own: unique bytes count it
    assert second.facts["remembered"] == {"count": 1, "since": "2026-12-01T00:00:00Z"}
    # Without the memory the same registry shows nothing untagged (the Distribution API cannot list it).
    assert inventory(world, None, later).untagged == []
    # What remembering costs a run: one HEAD by digest per remembered digest no tag has.
    heads = [r for r in world.requests if r.startswith(f"HEAD /v2/{REPO}/manifests/sha256:")]
    assert heads == [f"HEAD /v2/{REPO}/manifests/{old}"]


def test_a_digest_tagged_again_or_listed_by_a_tagged_index_is_not_untagged_and_a_gone_one_is_forgotten(tmp_path):
    world = World()
    memory = DigestMemory(tmp_path / m.FILE_NAME)
    a1, b1, c1 = world.image("a1", "cache-a"), world.image("b1", "cache-b"), world.image("c1", "cache-c")
    inventory(world, memory, T0)
    for name, tag in (("a2", "cache-a"), ("b2", "cache-b"), ("c2", "cache-c")):
        world.image(name, tag)
    world.tags["release"] = a1                          # a1 tagged again
    world.index([b1], "multi")                          # b1 listed by a tagged index
    world.drop(c1)                                      # c1 deleted by someone else
    found = inventory(world, memory, T0 + timedelta(days=1))
    assert found.untagged == []
    assert found.facts["remembered"]["count"] == 0
    assert c1 not in remembered_rows(memory)            # 404: forgotten
    assert a1 in remembered_rows(memory) and b1 in remembered_rows(memory)


def test_placeholders_and_unreadable_manifests_are_never_remembered(tmp_path):
    from ghcr_janitor.stores.oci.registry import placeholder_manifest

    world = World()
    memory = DigestMemory(tmp_path / m.FILE_NAME)
    good = world.image("good", "cache-a")
    placeholder = world.add(placeholder_manifest("cache-p"), "application/vnd.oci.image.manifest.v1+json", "cache-p")
    broken = world.add(b"{not json", "application/vnd.oci.image.manifest.v1+json", "cache-broken")
    inventory(world, memory, T0)
    assert set(remembered_rows(memory)) == {good}
    assert placeholder and broken


def test_deleting_a_remembered_digest_forgets_it(tmp_path):
    world = World()
    memory = DigestMemory(tmp_path / m.FILE_NAME)
    old = world.image("a-v1", "cache-a")
    inventory(world, memory, T0)
    world.image("a-v2", "cache-a")
    found = inventory(world, memory, T0 + timedelta(days=1))
    plan = plan_inventory(found, UNTAGGED, T0 + timedelta(days=1))
    assert [(a.action, a.tag, a.digest) for a in plan.actions] == [("delete", None, old)]
    assert plan.actions[0].reclaim_size == found.artifacts[old].unique_size > 0
    result = asyncio.run(_apply(world, memory, plan.actions))
    assert [r.reason for r in result.results] == ["deleted"]
    assert old not in world.manifests and old not in remembered_rows(memory)


def _refusing(world: World, refuse):
    """The store over `world`, except that requests `refuse(method, path)` names get a 403."""
    def handler(request: httpx.Request) -> httpx.Response:
        if refuse(request.method, request.url.path):
            return httpx.Response(403, json={"errors": [{"code": "DENIED"}]})
        return world.oci(request)
    return handler


def test_a_remembered_digest_that_cannot_be_checked_is_neither_listed_nor_forgotten(tmp_path):
    world = World()
    memory = DigestMemory(tmp_path / m.FILE_NAME)
    old = world.image("a1", "cache-a")
    inventory(world, memory, T0)
    world.image("a2", "cache-a")
    handler = _refusing(world, lambda method, path: method == "HEAD" and path.endswith(old))

    found = inventory_through(handler, memory, T0 + timedelta(days=1))
    assert found.untagged == [] and found.errors == []
    assert any("1 remembered digest could not be checked" in w for w in found.warnings), found.warnings
    assert old in remembered_rows(memory)
    assert inventory(world, memory, T0 + timedelta(days=2)).untagged == [old]      # and next time it is


def test_a_tag_whose_digest_cannot_be_learned_stops_the_remembered_listing_not_the_run(tmp_path):
    world = World()
    memory = DigestMemory(tmp_path / m.FILE_NAME)
    old = world.image("a1", "cache-a")
    inventory(world, memory, T0)
    world.image("a2", "cache-a")
    world.image("other", "cache-bad")
    handler = _refusing(world, lambda method, path: path.endswith("/manifests/cache-bad"))

    found = inventory_through(handler, memory, T0 + timedelta(days=1))
    assert found.unresolved == ["cache-bad"]
    # `cache-bad` might point at the remembered digest: nothing is listed as untagged this run.
    assert found.untagged == [] and "remembered" not in found.facts
    assert any("remembered digests not checked" in w for w in found.warnings)
    assert not any(r.startswith(f"HEAD /v2/{REPO}/manifests/sha256:") for r in world.requests)
    # What was read whole is still remembered (cache-a's new digest).
    assert world.tags["cache-a"] in remembered_rows(memory) and old in remembered_rows(memory)


async def _apply(world: World, memory: DigestMemory, actions: list):
    store = open_store(world, memory)
    try:
        return await Applier(store, "model", Journal(None)).run(actions)
    finally:
        await store.aclose()


# --- the properties ---------------------------------------------------------------------------

def _reached(world: World) -> set[str]:
    """Every digest a tag reaches now (directly or through indexes)."""
    seen: set[str] = set()
    todo = list(world.tags.values())
    while todo:
        d = todo.pop()
        if d not in seen:
            seen.add(d)
            todo += world.children(d)
    return seen


ops = st.lists(st.one_of(
    st.tuples(st.just("overwrite"), st.sampled_from(TAGS)),
    st.tuples(st.just("tag-old"), st.sampled_from(TAGS), st.integers(0, 99)),
    st.tuples(st.just("index"), st.sampled_from(TAGS + [None]), st.lists(st.integers(0, 99), min_size=1, max_size=3)),
    st.tuples(st.just("drop"), st.integers(0, 99)),
    st.tuples(st.just("untag"), st.sampled_from(TAGS)),
    st.tuples(st.just("inventory"),),
), max_size=10)


after_plan = st.lists(st.one_of(
    ops.flatmap(lambda o: st.just(o[0]) if o else st.nothing()),
    st.tuples(st.just("tag-planned"), st.sampled_from(TAGS), st.integers(0, 99)),
    st.tuples(st.just("index-planned"), st.sampled_from(TAGS), st.integers(0, 99)),
), max_size=4).map(lambda o: [x for x in o if x[0] != "inventory"])


def _act(world: World, op: tuple, fresh: list[int], planned: list[str] = ()) -> None:
    digests = sorted(world.manifests)
    planned = [d for d in planned if d in world.manifests]     # an earlier foreign op may have deleted one
    kind = op[0]
    if kind == "tag-planned" and planned:
        world.tags[op[1]] = planned[op[2] % len(planned)]
    elif kind == "index-planned" and planned:
        world.index([planned[op[2] % len(planned)]], op[1])
    if kind == "overwrite":
        fresh[0] += 1
        world.image(f"build-{fresh[0]}", op[1])
    elif kind == "tag-old" and digests:
        world.tags[op[1]] = digests[op[2] % len(digests)]
    elif kind == "index" and digests:
        world.index(sorted({digests[p % len(digests)] for p in op[2]}), op[1])
    elif kind == "drop" and digests:
        victim = digests[op[1] % len(digests)]
        if victim != world.tags.get("keep"):     # a repository with no tag left is "not found" on Distribution
            world.drop(victim)
    elif kind == "untag":
        world.tags.pop(op[1], None)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(before=ops, between=after_plan, builds=st.integers(1, 3))
def test_remembered_untagged_is_exactly_what_no_tag_reaches_and_apply_never_deletes_a_reached_one(
        tmp_path_factory, before, between, builds):
    world = World()
    memory = DigestMemory(tmp_path_factory.mktemp("mem") / m.FILE_NAME)
    world.image("kept", "keep")
    for i in range(builds):
        world.image(f"seed-{i}", TAGS[i])
    now = T0
    seen_tagged: set[str] = set()            # what an inventory saw under a tag and could read whole

    def look(when: datetime) -> Inventory:
        inv = inventory(world, memory, when)
        seen_tagged.update(d for d in inv.tags.values() if not inv.artifacts[d].error)
        return inv

    look(now)
    fresh = [0]
    for op in before:
        if op[0] == "inventory":
            now += timedelta(hours=1)
            look(now)
        else:
            _act(world, op, fresh)
    now += timedelta(days=1)
    found = inventory(world, memory, now)
    reached = _reached(world)

    listed = set(found.untagged)
    for digest in listed:                                       # never wrong in the dangerous direction
        assert digest in world.manifests and digest not in reached, digest
        art = found.artifacts[digest]
        assert art.untagged_source == "remembered" and art.age_source == "remembered/last-tagged"
    candidates = {d for d in seen_tagged if d in world.manifests and d not in reached}
    assert listed <= candidates
    listed_by_another: set[str] = set()                          # what a candidate lists, at any depth
    todo = [c for d in candidates for c in world.children(d)]
    while todo:
        c = todo.pop()
        if c not in listed_by_another:
            listed_by_another.add(c)
            todo += world.children(c)
    assert candidates - listed_by_another <= listed              # and complete
    assert not {d for d in seen_tagged if d not in world.manifests} & set(remembered_rows(memory))
    assert found.facts["remembered"]["count"] == len(listed)

    plan = plan_inventory(found, UNTAGGED, now)
    assert {a.digest for a in plan.actions} <= listed
    for op in between:                                          # the world moves after planning
        _act(world, op, fresh, sorted({a.digest for a in plan.actions}))
    result = asyncio.run(_apply(world, memory, plan.actions))
    assert world.violations == []
    reached_now = _reached(world)
    for action, outcome in zip(plan.actions, result.results):
        if outcome.reason == "deleted":
            assert action.digest in world.deleted_by_janitor
            assert action.digest not in remembered_rows(memory)
        if action.digest in reached_now and action.digest in world.manifests:
            assert outcome.status != "done" or outcome.reason == "already gone", outcome
