"""A stateful model of applying a plan to an Actions cache while the world moves (issue 19, "Prove it").

The stand-in (tests/support/gha_api.py, answering in process) holds the entries, branches and pull
requests. A plan is made once by the real planner (the default policy), with hand edits that
claim any ref state; then apply runs batch by batch (`CacheApplier.batch`: a last look, then its
deletes) while, between any two batches, a foreign actor builds (new index generations, blobs,
actions/cache keys), deletes entries (also between our look and our DELETE), closes and reopens
pull requests, deletes and creates branches.

Invariants: no DELETE removes an entry that planning's rules keep on the facts of that moment
(decided by an oracle written here, not by the code under test); apply reports "deleted", with
the entry's bytes, exactly for what its DELETEs removed; "already gone" moves no bytes.
`JANITOR_NIGHTLY=1` runs many more interleavings.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import re
from collections import Counter
from datetime import timedelta

import httpx

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition, rule,
                                 run_state_machine_as_test)

from ghcr_janitor.apply.cache_applier import LOOK_EVERY, CacheApplier
from ghcr_janitor.apply.journal import Journal
from ghcr_janitor.apply.results import DONE
from ghcr_janitor.core.reference import parse_target
from ghcr_janitor.core.timeparse import format_time, parse_time
from ghcr_janitor.net.auth.secret import Secret
from ghcr_janitor.plan.build import build_target_plan
from ghcr_janitor.plan.model import Action
from ghcr_janitor.policy import evaluate
from ghcr_janitor.policy.loader import load_default_policy
from ghcr_janitor.stores.gha.api import ActionsCacheApi
from ghcr_janitor.stores.gha.store import CacheStore
from tests.support.gha_api import NOW, CacheRepo, h8, in_process

NIGHTLY = os.environ.get("JANITOR_NIGHTLY") == "1"
TARGET = "gha:acme/app"
API_URL = "http://127.0.0.1:1"
MAIN = "refs/heads/main"
BRANCHES = ("dev", "topic")
PULLS = (1, 2, 3)
REFS = (MAIN, *(f"refs/heads/{b}" for b in BRANCHES), *(f"refs/pull/{n}/merge" for n in PULLS))
SCOPES = ("buildkit", "web")
LIVE = ("default", "live", "unknown")
_INDEX = re.compile(r"^(?P<family>index-.+-1-(?P<h8>[0-9a-f]{8}))#(?P<n>[0-9]+)$")


# --- the oracle: planning's floor, derived here from the stand-in's own state ----------------------
def oracle_state(repo: CacheRepo, ref: str) -> str:
    if ref == f"refs/heads/{repo.default_branch}":
        return "default"
    if ref.startswith("refs/heads/"):
        return "live" if ref[len("refs/heads/"):] in repo.branches else "deleted"
    return {"open": "live", "closed": "closed"}.get(repo.pulls.get(int(ref.split("/")[2]), ""), "unknown")


def oracle_group(entry: dict) -> tuple | None:
    """None for a blob; else what its newer siblings share."""
    key = entry["key"]
    if key.startswith("buildkit-blob-1-"):
        return None
    index = _INDEX.match(key)
    if index and index["h8"] == h8(entry["ref"]):
        return ("index", index["family"], entry["ref"])
    return ("cache", "Linux-buildx-" if key.startswith("Linux-buildx-") else key, entry["ref"])


def oracle_rank(entry: dict) -> tuple:
    index = _INDEX.match(entry["key"])
    return (int(index["n"]) if index else 0, entry["created_at"], entry["id"])


def oracle_keeps(repo: CacheRepo, entry: dict) -> str | None:
    """Why planning would keep `entry` on the stand-in's facts of this moment (None: it may go)."""
    state = oracle_state(repo, entry["ref"])
    group = oracle_group(entry)
    if group is None:
        return f"a blob of {entry['ref']} ({state})" if state in LIVE else None
    newest = oracle_rank(entry) == max(oracle_rank(e) for e in repo.entries.values() if oracle_group(e) == group)
    if newest and group[0] == "index" and state in LIVE:
        return f"the newest generation {entry['key']} of {entry['ref']} ({state})"
    if newest and state == "default":
        return f"the default branch's newest {entry['key']}"
    return None


# --- the model -------------------------------------------------------------------------------------
class ActionsCacheApply(RuleBasedStateMachine):
    """Plan once, then apply batch by batch against a foreign actor."""

    def __init__(self) -> None:
        super().__init__()
        self.repo = CacheRepo()
        self.repo.on_delete = self._on_delete
        self.clock = NOW - timedelta(days=40)
        self.loop = asyncio.new_event_loop()
        client = httpx.AsyncClient(transport=in_process(self.repo, API_URL))     # no socket: thousands of steps
        api = ActionsCacheApi("acme", "app", Secret(self.repo.token), api_url=API_URL, client=client,
                              deletes_per_minute=1e9, sleep=_no_wait)
        self.store = CacheStore(parse_target(TARGET), api)
        self.applier = CacheApplier(self.store, Journal(None))
        self.pending: list[Action] = []
        self.removed: list[int] = []            # what our DELETEs removed, as the stand-in saw it
        self.violations: list[str] = []

    def _on_delete(self, entry: dict) -> None:
        self.removed.append(entry["id"])
        why = oracle_keeps(self.repo, entry)
        if why is not None:
            self.violations.append(f"deleted {entry['id']} {entry['key']} on {entry['ref']}: {why}")

    def _run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    def _tick(self):
        self.clock += timedelta(hours=1)
        return self.clock

    def _build(self, ref: str, scope: str, blobs: int) -> None:
        """What a BuildKit export writes: its blobs and the next index generation of its scope."""
        for _ in range(blobs):
            self.repo.blob(ref, next(_SALT), self._tick())
        family = f"index-{scope}-1-{h8(ref)}"
        done = [int(m["n"]) for e in self.repo.entries.values() if (m := _INDEX.match(e["key"]))
                and m["family"] == family and e["ref"] == ref]
        self.repo.index(scope, ref, max(done, default=0) + 1, self._tick())

    def _save(self, ref: str) -> None:
        """An actions/cache save of a per-commit key."""
        self.repo.add(f"Linux-buildx-{hashlib.sha1(str(next(_SALT)).encode()).hexdigest()}", ref, 1000, self._tick())

    @initialize(data=st.data())
    def plan(self, data) -> None:
        """A world, then one plan by the real planner, then hand edits claiming any ref state."""
        for n in PULLS:
            self.repo.pulls[n] = data.draw(st.sampled_from(["open", "closed"]), label=f"pull {n}")
        self.repo.branches |= {b for b in BRANCHES if data.draw(st.booleans(), label=f"branch {b}")}
        for ref in REFS:
            for scope in SCOPES[:data.draw(st.integers(0, 2), label=f"scopes of {ref}")]:
                for _ in range(data.draw(st.integers(1, 3), label="builds")):
                    self._build(ref, scope, data.draw(st.integers(0, 2), label="blobs"))
            for _ in range(data.draw(st.integers(0, 3), label=f"saves on {ref}")):
                self._save(ref)
        inventory = self._run(self.store.inventory())
        plan = build_target_plan(inventory, evaluate(inventory, load_default_policy(), NOW))
        ids = sorted(self.repo.entries)
        edits = data.draw(st.lists(st.sampled_from(ids), max_size=6, unique=True), label="edited") if ids else []
        claims = st.sampled_from(["closed", "deleted", "live", "default", None])
        self.pending = [*(self._edited(i, data.draw(claims, label="claimed ref_state")) for i in edits), *plan.actions]
        self.pending = data.draw(st.permutations(self.pending), label="order") if self.pending else []
        self.repo.requests.clear()

    def _edited(self, cache_id: int, claim: str | None) -> Action:
        entry = self.repo.entries[cache_id]
        return Action("delete", None, None, reclaim_size=entry["size_in_bytes"], rule="by hand", cache_id=cache_id,
                      key=entry["key"], ref=entry["ref"], ref_state=claim, size=entry["size_in_bytes"],
                      created=format_time(parse_time(entry["created_at"])))

    # --- apply's steps ---
    @precondition(lambda self: self.pending)
    @rule(size=st.integers(1, LOOK_EVERY))
    def apply_a_batch(self, size: int) -> None:
        batch, self.pending = self.pending[:size], self.pending[size:]
        self.removed.clear()
        results = self._run(self.applier.batch(TARGET, batch))
        assert not self.violations, self.violations
        assert [r.cache_id for r in results] == [a.cache_id for a in batch]
        reported = [r.cache_id for r in results if r.reason == "deleted"]
        assert sorted(reported) == sorted(self.removed), "apply's 'deleted' differs from what its DELETEs removed"
        for action, result in zip(batch, results):
            SEEN[_outcome(result.reason)] += 1
            if result.reason == "deleted":
                assert result.status == DONE and result.reclaim_size == action.reclaim_size
            else:
                assert result.reclaim_size == 0, result

    # --- the foreign actor ---
    @rule(ref=st.sampled_from(REFS), scope=st.sampled_from(SCOPES), blobs=st.integers(0, 2))
    def another_job_builds(self, ref: str, scope: str, blobs: int) -> None:
        self._build(ref, scope, blobs)

    @rule(ref=st.sampled_from(REFS))
    def another_job_saves_a_key(self, ref: str) -> None:
        self._save(ref)

    @precondition(lambda self: self.repo.entries)
    @rule(data=st.data())
    def another_job_deletes_an_entry(self, data) -> None:
        del self.repo.entries[data.draw(st.sampled_from(sorted(self.repo.entries)))]

    @precondition(lambda self: self.repo.entries)
    @rule(data=st.data())
    def another_job_deletes_it_between_our_look_and_our_delete(self, data) -> None:
        self.repo.vanish_on_delete.add(data.draw(st.sampled_from(sorted(self.repo.entries))))

    @rule(number=st.sampled_from(PULLS), state=st.sampled_from(["open", "closed", None]))
    def a_pull_request_is_reopened_closed_or_hidden(self, number: int, state: str | None) -> None:
        if state is None:
            self.repo.pulls.pop(number, None)
        else:
            self.repo.pulls[number] = state

    @rule(branch=st.sampled_from(BRANCHES), exists=st.booleans())
    def a_branch_is_deleted_or_pushed(self, branch: str, exists: bool) -> None:
        if exists:
            self.repo.branches.add(branch)
        else:
            self.repo.branches.discard(branch)

    @invariant()
    def nothing_kept_was_deleted(self) -> None:
        assert not self.violations, self.violations

    def teardown(self) -> None:
        self._run(self.store.aclose())
        self.loop.close()


_SALT = itertools.count(1)        # distinct blob digests and commit keys
SEEN: Counter = Counter()         # apply's outcomes over a run: the model must reach each kind


def _outcome(reason: str) -> str:
    for kind in ("deleted", "already gone", "kept", "other data"):
        if reason == kind or (kind != "deleted" and kind in reason):
            return kind
    return reason


async def _no_wait(seconds: float) -> None:
    return None


# 1,000 interleavings (plans with up to 25 steps of apply and the foreign actor) take about 30 s;
# the nightly 10,000 of up to 50 steps about 10 minutes.
SETTINGS = settings(max_examples=10_000 if NIGHTLY else 1_000, stateful_step_count=50 if NIGHTLY else 25,
                    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def test_apply_never_deletes_what_fresh_facts_keep_while_the_world_moves():
    SEEN.clear()
    run_state_machine_as_test(ActionsCacheApply, settings=SETTINGS)
    print(dict(SEEN))
    assert {"deleted", "already gone", "kept"} <= set(SEEN), SEEN       # not vacuous
