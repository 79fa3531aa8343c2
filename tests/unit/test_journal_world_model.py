"""Journal vs. reality in the world model (issue 20, point 12): the journal never makes apply
report "done" for an action whose effect is not in the world.

Hypothesis seeds the in-memory registry of `tests/support/world.py` (OCI, or GHCR with its REST
listing), plans it with the real planner, maybe applies the plan once, then changes the world the
way a restore from backup or a CI job does (tags pushed back onto their digests, deleted
manifests restored, tags moved elsewhere) and hands the second run a journal that may also lie
(it claims actions done that never were). After the second run, with the world still:

- every action reported done (from the journal or not) shows its effect in the world: a tagged
  delete or untag left its tag off the pinned digest, an untagged or child delete left the digest
  gone;
- an action reported "gone" did not find its tag, and is not counted as done;
- the world judged no delete of something a tag reaches.
"""

from __future__ import annotations

import asyncio
import os

from hypothesis import HealthCheck, given, settings, strategies as st

from ghcr_janitor.apply.applier import JOURNALLED, Applier
from ghcr_janitor.apply.journal import Journal, action_key
from ghcr_janitor.apply.results import DONE, GONE
from tests.support.world import World
from tests.unit.test_apply_world_model import _plan, open_store

NIGHTLY = os.environ.get("JANITOR_NIGHTLY") == "1"
TARGET = "model"


def seed(world: World, caches: int, aliases: int, untagged: int) -> None:
    world.seed_caches(caches, aliases, untagged)


def run(world: World, actions: list, journal: Journal):
    async def go():
        store = open_store(world, None)
        try:
            return await Applier(store, TARGET, journal).run(actions)
        finally:
            await store.aclose()
    return asyncio.run(go())


def key(a) -> str:
    return action_key(TARGET, a.action, a.tag, a.digest, a.to)


def effect_in_world(world: World, a) -> bool:
    if a.tag and not a.parent:
        return world.tags.get(a.tag) != a.digest
    return a.digest not in world.manifests


@settings(max_examples=2_000 if NIGHTLY else 150, deadline=None, suppress_health_check=list(HealthCheck))
@given(ghcr=st.booleans(), caches=st.integers(1, 4), aliases=st.integers(0, 2), untagged=st.integers(0, 3),
       first_run=st.booleans(), data=st.data())
def test_the_journal_never_reports_done_what_the_world_does_not_show(ghcr, caches, aliases, untagged, first_run,
                                                                    data):
    world = World(ghcr=ghcr)
    seed(world, caches, aliases, untagged)
    backup_manifests, backup_tags = dict(world.manifests), dict(world.tags)
    actions = asyncio.run(_plan(world)).actions
    for a in actions:
        if a.action in ("delete", "untag") and a.tag:
            world.removing.setdefault(a.digest, set()).add(a.tag)
            world.untag_digest[a.tag] = a.digest
    journal = Journal(None)
    if first_run:
        run(world, actions, journal)
    indexes = st.sets(st.integers(0, max(0, len(actions) - 1)), max_size=len(actions)) if actions else st.just(set())
    lies = data.draw(indexes, label="claimed done, never done")
    restored = data.draw(indexes, label="restored from backup")
    moved = data.draw(indexes, label="tag moved elsewhere")
    with world.lock:
        for i in sorted(restored):                  # a restore: the digest back, its tag on it
            a = actions[i]
            if a.digest in backup_manifests:
                world.add(*backup_manifests[a.digest])
            if a.tag and backup_tags.get(a.tag) == a.digest:
                world.tags[a.tag] = a.digest
        for i in sorted(moved):                     # CI pushed the tag again: another digest
            a = actions[i]
            if a.tag:
                world.image(f"rebuilt-{a.tag}", a.tag, created="2026-12-07T00:00:00Z")
    journal.done |= {key(actions[i]) for i in lies}
    claimed = set(journal.done)

    result = run(world, actions, journal)

    assert not world.violations, world.violations
    assert len(result.results) == len(actions)
    for a, r in zip(actions, result.results):
        if r.reason == JOURNALLED:
            assert key(a) in claimed, r
        if r.status in (DONE, GONE):
            assert effect_in_world(world, a), (r, "the world does not show it")
        if r.status == GONE:
            assert a.tag and r.reclaim_size == 0, r
