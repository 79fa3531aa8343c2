"""A store that says it accepts nothing more this run (GitHub's secondary limit: `TargetStopped`)
ends the target: every later action fails with that line and nothing more is sent."""

from __future__ import annotations

import asyncio

from ghcr_janitor.apply.applier import Applier
from ghcr_janitor.apply.journal import Journal
from ghcr_janitor.apply.results import FAILED
from ghcr_janitor.core.errors import TargetStopped
from ghcr_janitor.net.pacing import SecondaryLimitStop
from tests.support.world import World
from tests.unit.test_apply_world_model import _plan, open_store


def test_a_stopped_target_sends_nothing_after_the_stop():
    world = World(ghcr=False)
    world.seed_caches(6, 0, 0)
    plan = asyncio.run(_plan(world))
    deletes = [a for a in plan.actions if a.action == "delete"]
    assert len(deletes) >= 3, plan.actions
    before = dict(world.manifests)

    async def go():
        store = open_store(world, None)
        calls = []

        async def refuse(digest):
            calls.append(digest)
            raise SecondaryLimitStop("secondary rate limit on DELETE: no more deletes on it this run")

        store.delete_manifest = refuse
        store.deletes_per_look = 1               # one delete per look: the stop comes between looks
        try:
            return await Applier(store, "model", Journal(None)).run(plan.actions), calls
        finally:
            await store.aclose()

    result, calls = asyncio.run(go())
    assert issubclass(SecondaryLimitStop, TargetStopped)
    assert len(calls) == 1                        # the first refusal; nothing sent after it
    failed = [r for r in result.results if r.status == FAILED]
    assert len(failed) == len(plan.actions)
    assert all("secondary rate limit" in r.reason for r in failed)
    assert sum(r.reason.startswith("not sent: ") for r in failed) == len(plan.actions) - 1
    assert world.manifests == before
