"""Hypothesis: whatever a policy's Actions-cache rules say, the plan never deletes the newest index
generation of a live ref's scope, a live ref's buildkit-blob, or the default branch's newest entry of
a family. The floor lives in the plan builder, so these policies may ask for anything."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ghcr_janitor.stores.gha.store import CacheStore
from ghcr_janitor.core.models import Inventory
from ghcr_janitor.plan.build import build_target_plan
from ghcr_janitor.policy import Policy, evaluate
from ghcr_janitor.policy.model import Rule, Selector
from ghcr_janitor.stores.gha.api import CacheEntry
from ghcr_janitor.core.models import cache_item_id
from ghcr_janitor.report.storage import breakdown
from ghcr_janitor.stores.gha.gather import newest_of_groups, to_item
from ghcr_janitor.stores.gha.keys import BUILDKIT_VERSION, classify, ref_hash

NOW = datetime(2026, 11, 20, tzinfo=timezone.utc)
REFS = {"refs/heads/main": "default", "refs/heads/dev": "live", "refs/pull/3/merge": "closed",
        "refs/pull/4/merge": "live", "refs/heads/old": "deleted", "refs/tags/v1": "unknown"}
LIVE = ("default", "live", "unknown")


@st.composite
def caches(draw) -> Inventory:
    entries = []
    for i in range(draw(st.integers(1, 40))):
        ref = draw(st.sampled_from(sorted(REFS)))
        shape = draw(st.sampled_from(["blob", "index", "commit", "plain"]))
        if shape == "blob":
            key, version = f"buildkit-blob-1-sha256:{hashlib.sha256(str(i).encode()).hexdigest()}", BUILDKIT_VERSION
        elif shape == "index":
            scope = draw(st.sampled_from(["buildkit", "web-app"]))
            key, version = f"index-{scope}-1-{ref_hash(ref)}#{draw(st.integers(1, 6))}", BUILDKIT_VERSION
        elif shape == "commit":
            key, version = f"Linux-buildx-{hashlib.sha1(str(i).encode()).hexdigest()}", "v" * 64
        else:
            key, version = draw(st.sampled_from(["node-modules", "pip"])), "v" * 64
        created = NOW - timedelta(days=draw(st.integers(0, 60)), hours=draw(st.integers(0, 23)))
        accessed = created + timedelta(hours=draw(st.integers(0, 200)))
        entries.append(CacheEntry(100 + i, key, ref, version, draw(st.integers(0, 10_000)), created, accessed))
    classified = [(e, classify(e.key, e.version, e.ref)) for e in entries]
    newest = newest_of_groups(classified)
    items = {cache_item_id(e.id): to_item(e, f, REFS[e.ref], e.id in newest) for e, f in classified}
    return Inventory(target="gha:acme/app", tags={}, artifacts=items, untagged=sorted(items), backend="gha",
                     traits=CacheStore.traits)


@st.composite
def cache_rules(draw, index: int) -> Rule:
    selector = Selector(
        kind=tuple(draw(st.lists(st.sampled_from(["buildkit-blob", "buildkit-index", "actions-cache"]), max_size=2))),
        ref_state=tuple(draw(st.lists(st.sampled_from(["default", "live", "closed", "deleted", "unknown"]), max_size=3))),
        refs=tuple(draw(st.lists(st.sampled_from(["refs/heads/*", "refs/pull/*", "*"]), max_size=1))),
        keys=tuple(draw(st.lists(st.sampled_from(["*", "index-*", "buildkit-blob-*", "Linux-*"]), max_size=1))))
    if not selector.for_entries:
        selector = Selector(keys=("*",))
    keep = draw(st.one_of(st.none(), st.integers(0, 3)))
    return Rule(name=f"r{index}", selector=selector,
                older_than=draw(st.one_of(st.none(), st.integers(0, 30).map(lambda d: timedelta(days=d)))),
                keep_newest=keep, per=tuple(draw(st.lists(st.sampled_from(["family", "ref", "kind"]), max_size=2,
                                                          unique=True))) if keep is not None else (),
                max_total_size=draw(st.one_of(st.none(), st.integers(0, 50_000))),
                age=draw(st.sampled_from([None, "created"])))


@st.composite
def cache_policies(draw) -> Policy:
    return Policy(source="random.toml", rules=tuple(draw(cache_rules(i)) for i in range(draw(st.integers(1, 4)))))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(caches(), cache_policies())
def test_the_floor_holds_whatever_the_policy_says(inv, policy):
    tp = build_target_plan(inv, evaluate(inv, policy, NOW))
    for action in tp.actions:
        assert action.digest is None and action.tag is None and action.action == "delete"
        art = inv.artifacts[cache_item_id(action.cache_id)]
        state, newest = art.labels["ref_state"], art.labels["newest"]
        assert not (art.kind == "buildkit-index" and newest and state in LIVE), "newest generation of a live ref"
        assert not (art.kind == "buildkit-blob" and state in LIVE), "a live ref's blob"
        assert not (state == "default" and newest), "the default branch's newest of a family"
        assert (action.key, action.ref) == (art.labels["key"], art.labels["ref"])
    assert tp.reclaim_size == sum(inv.artifacts[cache_item_id(a.cache_id)].size for a in tp.actions)
    pinned = {a.cache_id for a in tp.actions} | {k.cache_id for k in tp.kept}
    assert pinned == {a.labels["cache_id"] for a in inv.artifacts.values()}      # every entry decided once
    # The report's breakdown shows this plan's reclaim and partitions the entries' bytes.
    parts = {p.key: p.bytes for p in breakdown(inv, tp).parts}
    assert parts == {"reclaimable": tp.reclaim_size, "kept-only": inv.total_size() - tp.reclaim_size, "kept-shared": 0}
