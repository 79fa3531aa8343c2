"""A stateful model of apply while the world moves (issue 19, "Prove it").

Per remote store (an OCI registry; GHCR with its REST listing), hypothesis seeds a repository,
plans it with the real planner (sometimes hand-editing the plan to delete a kept index's child),
then runs the real applier and store one request at a time. Between any two requests a foreign
actor may push, move a tag, build an index over existing digests (tagged or not), or delete a
version (which shifts GHCR's pages). `tests/support/world.py` judges every mutating request:

- nothing a tag reaches at the moment of its delete is deleted (the one excuse being a change
  inside the residual window: after the janitor began its last look, with only reads since);
- a placeholder is never pushed over a tag that moved (same excuse, after the tag's last HEAD);
- apply reports "deleted" only for what it deleted, "untagged" only for what it untagged;
- the apply journal may lie (it claims actions done that never were, as after a restore from
  backup): a claim is checked against the store, and one the store refutes goes through the last
  look like any other action (tests/unit/test_journal_world_model.py proves the journal never
  makes apply report done what the world does not show).

`JANITOR_NIGHTLY=1` runs many more examples. `test_the_model_catches_a_snapshot_applier` shows
the model fails when the last look is replaced by one snapshot taken at the start.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from datetime import datetime, timezone

import httpx
import pytest
from hypothesis import HealthCheck, Phase, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ghcr_janitor.apply import last_look
from ghcr_janitor.apply.applier import JOURNALLED, Applier
from ghcr_janitor.apply.journal import Journal, action_key
from ghcr_janitor.inventory.gather import InventoryOptions, build_inventory
from ghcr_janitor.net.auth.secret import Secret
from ghcr_janitor.net.github import GitHubPackages
from ghcr_janitor.net.http import ThreadedClient
from ghcr_janitor.plan.planner import plan_inventory
from ghcr_janitor.policy.loader import parse_policy
from ghcr_janitor.stores.ghcr.registry import GhcrRegistry
from ghcr_janitor.stores.oci.registry import OciRegistry
from tests.support.world import API, OCI_BASE, OWNER, PACKAGE, REPO, Stepper, World

NOW = datetime(2026, 12, 7, tzinfo=timezone.utc)
POLICY = parse_policy('protect = ["cache-base", "latest", "release*"]\n'
                      '[[rule]]\nname = "old caches"\nselect = { tags = ["cache-*"] }\nolder_than = "30d"\n'
                      'action = "delete"\n'
                      '[[rule]]\nname = "untagged"\nselect = { untagged = true }\naction = "delete"\n', "model.toml")
NIGHTLY = os.environ.get("JANITOR_NIGHTLY") == "1"
FOREIGN_TAGS = ["release", "latest", "cache-b0", "cache-b1", "cache-alias-0", "cache-new"]


async def _noop_sleep(seconds: float) -> None:
    return None


def open_store(world: World, stepper: Stepper | None):
    """The janitor's real store over the world (every request gated by `stepper`, if any)."""
    oci_handler = world.oci if stepper is None else stepper.gate(world.oci)
    client = ThreadedClient(httpx.Client(transport=httpx.MockTransport(oci_handler)), 1)
    oci = OciRegistry(OCI_BASE, REPO, client)
    if not world.ghcr:
        return oci
    rest_handler = world.rest if stepper is None else stepper.gate(world.rest)
    api = GitHubPackages(OWNER, PACKAGE, Secret("ghp_model_token"), api_url=API, owner_type="org",
                         client=httpx.AsyncClient(transport=httpx.MockTransport(rest_handler)),
                         sleep=_noop_sleep, deletes_per_minute=1e9)
    return GhcrRegistry(f"{OWNER}/{PACKAGE}", oci, api, listing_ttl=0)


async def _plan(world: World):
    store = open_store(world, None)
    try:
        inventory = await build_inventory(store, "model", InventoryOptions(now=NOW, all_tags=True))
    finally:
        await store.aclose()
    return plan_inventory(inventory, POLICY, NOW)


class ApplyWhileTheWorldMoves(RuleBasedStateMachine):
    ghcr = False

    def __init__(self):
        super().__init__()
        self.world = World(ghcr=self.ghcr)
        self.stepper = Stepper()
        self.done = threading.Event()
        self.results = None
        self.crash: BaseException | None = None
        self.thread: threading.Thread | None = None
        self.fresh = 0

    @initialize(caches=st.integers(1, 4), aliases=st.integers(0, 2), untagged=st.integers(0, 3),
                hand_edit=st.booleans(), claims=st.sets(st.integers(0, 12), max_size=3))
    def seed(self, caches, aliases, untagged, hand_edit, claims):
        w = self.world
        amd, _ = w.seed_caches(caches, aliases, untagged)
        plan = asyncio.run(_plan(w))
        actions = plan.actions
        if hand_edit and actions:
            from dataclasses import replace
            actions = actions + [replace(actions[0], tag=None, digest=amd, parent=None, parents=None)]
        for a in actions:
            if a.action in ("delete", "untag") and a.tag:
                w.removing.setdefault(a.digest, set()).add(a.tag)
            if a.action in ("delete", "untag") and a.tag:
                w.untag_digest[a.tag] = a.digest        # any of them may become an untag
        self.actions = actions
        # A journal claiming some actions done that never were: each claim is checked, not trusted.
        self.claimed = {action_key("model", a.action, a.tag, a.digest, a.to)
                        for i, a in enumerate(actions) if i in claims}
        self.thread = threading.Thread(target=self._apply, daemon=True)
        self.thread.start()

    def _apply(self):
        async def go():
            store = open_store(self.world, self.stepper)
            try:
                journal = Journal(None)
                journal.done |= self.claimed
                return await Applier(store, "model", journal).run(self.actions)
            finally:
                await store.aclose()
        try:
            self.results = asyncio.run(go())
        except BaseException as exc:        # reported by the teardown
            self.crash = exc
        finally:
            self.done.set()

    # --- the janitor moves one request ------------------------------------------------------
    @rule()
    def janitor_sends_one_request(self):
        self.stepper.step(self.done)

    # --- the foreign actor ------------------------------------------------------------------
    def _digests(self) -> list[str]:
        with self.world.lock:
            return sorted(self.world.manifests)

    @rule(tag=st.sampled_from(FOREIGN_TAGS), pick=st.integers(0, 50))
    def foreign_tags_an_existing_digest(self, tag, pick):
        digests = self._digests()
        if digests:
            with self.world.lock:
                self.world.tags[tag] = digests[pick % len(digests)]
                self.world.foreign(f"tag {tag}", tag)

    @rule(tag=st.sampled_from(FOREIGN_TAGS + [None]), picks=st.lists(st.integers(0, 50), min_size=1, max_size=3))
    def foreign_builds_an_index_over_existing_digests(self, tag, picks):
        digests = self._digests()
        if digests:
            with self.world.lock:
                children = sorted({digests[p % len(digests)] for p in picks})
                self.world.index(children, tag)
                self.world.foreign(f"index over {len(children)} as {tag}", tag)

    @rule(tag=st.sampled_from(FOREIGN_TAGS))
    def foreign_pushes_a_new_build(self, tag):
        with self.world.lock:
            self.fresh += 1
            self.world.image(f"fresh-{self.fresh}", tag, created="2026-12-07T00:00:00Z")
            self.world.foreign(f"push {tag}", tag)

    @rule(pick=st.integers(0, 50))
    def foreign_deletes_a_version(self, pick):
        digests = self._digests()
        if digests:
            with self.world.lock:
                victim = digests[pick % len(digests)]
                for tag in [t for t, d in self.world.tags.items() if d == victim]:
                    self.world.foreign_touch[tag] = self.world.seq + 1
                self.world.drop(victim)
                self.world.foreign(f"delete {victim[:15]}")

    @invariant()
    def nothing_reachable_was_deleted_and_no_moved_tag_was_overwritten(self):
        assert not self.world.violations, self.world.violations

    def teardown(self):
        if self.thread is None:
            return
        self.stepper.release()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "apply did not finish"
        assert self.crash is None, repr(self.crash)
        assert not self.world.violations, self.world.violations
        for a, r in zip(self.actions, self.results.results):
            if r.reason == JOURNALLED:                  # only a claim the store confirmed
                assert action_key("model", a.action, a.tag, a.digest, a.to) in self.claimed, r
            if r.reason == "deleted":
                assert r.digest in self.world.deleted_by_janitor, r
            if r.reason.startswith("untagged"):         # the tag was moved off the digest by us
                assert r.tag in self.world.placeholders_pushed, r


class GhcrApplyWhileTheWorldMoves(ApplyWhileTheWorldMoves):
    ghcr = True


EXAMPLES = 10_000 if NIGHTLY else 1_000
SETTINGS = settings(max_examples=EXAMPLES, stateful_step_count=40, deadline=None,
                    suppress_health_check=list(HealthCheck))


def test_oci_apply_is_safe_while_the_world_moves():
    ApplyWhileTheWorldMoves.TestCase.settings = SETTINGS
    ApplyWhileTheWorldMoves.TestCase().runTest()


def test_ghcr_apply_is_safe_while_the_world_moves():
    GhcrApplyWhileTheWorldMoves.TestCase.settings = SETTINGS
    GhcrApplyWhileTheWorldMoves.TestCase().runTest()


@pytest.mark.parametrize("model", [ApplyWhileTheWorldMoves, GhcrApplyWhileTheWorldMoves], ids=["oci", "ghcr"])
def test_the_model_catches_a_snapshot_applier(monkeypatch, model):
    """With the last look replaced by one snapshot taken at the start, the model finds a delete
    of something a tag reaches (so the invariant can fail, and the last look is what holds it)."""
    real_take = last_look.LastLook.take
    snapshots: dict[int, object] = {}

    async def snapshot_once(self, with_versions=False):
        if id(self) not in snapshots:
            snapshots[id(self)] = await real_take(self, with_versions=True)
        return snapshots[id(self)]

    monkeypatch.setattr(last_look.LastLook, "take", snapshot_once)
    model.TestCase.settings = settings(SETTINGS, max_examples=1000, database=None, derandomize=True,
                                       phases=[Phase.generate], report_multiple_bugs=False)
    with pytest.raises(Exception) as caught:     # AssertionError, or hypothesis' FlakyFailure around it
        model.TestCase().runTest()              # (threads make a replay's timing differ)
    found = [caught.value, *getattr(caught.value, "exceptions", ())]
    assert any(re.search("while tag|placeholder pushed over", str(e)) for e in found), caught.value
