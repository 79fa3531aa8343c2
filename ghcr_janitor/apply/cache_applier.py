"""Apply a plan to an Actions cache (`gha:` target): re-list, re-check each pin, delete by id.

An entry is deleted only if its id still carries the key, ref, size and creation time the plan
saw (an id that now carries other data is skipped). A 404 is done (evicted, or deleted by a
concurrent job). When GitHub's hourly budget runs out the run stops cleanly: what is left is
reported, the journal keeps what was done, and a rerun of the same plan continues.
"""

from __future__ import annotations

from typing import Callable

import httpx

from ghcr_janitor.apply.journal import Journal, action_key
from ghcr_janitor.apply.results import DONE, FAILED, SKIPPED, ActionResult, TargetResult
from ghcr_janitor.core.errors import AuthError, JanitorError
from ghcr_janitor.core.models import Artifact, cache_item_id
from ghcr_janitor.core.reference import Target
from ghcr_janitor.core.timeparse import format_time
from ghcr_janitor.net.budget import BudgetSpent
from ghcr_janitor.net.github import RateLimitError
from ghcr_janitor.net.http import describe_error
from ghcr_janitor.plan.build import cache_floor
from ghcr_janitor.stores.gha.api import CacheEntry
from ghcr_janitor.stores.gha.gather import newest_of_groups
from ghcr_janitor.stores.gha.keys import classify
from ghcr_janitor.stores.gha.store import CacheStore, open_cache


def _floor(action, entry: CacheEntry, newest: set[int]) -> str | None:
    """The plan builder's safety floor, checked again on the fresh listing (a plan edited by
    hand, or a newer generation deleted meanwhile, must not take a live ref's newest)."""
    facts = classify(entry.key, entry.version, entry.ref)
    labels = {"cache_id": entry.id, "ref_state": action.ref_state or "unknown", "newest": entry.id in newest}
    return cache_floor(Artifact(cache_item_id(entry.id), "", facts.kind, {}, labels=labels))


def _changed(action, entry: CacheEntry) -> str | None:
    """What differs between the pinned entry and what the id carries now (None: the same)."""
    if entry.key != action.key:
        return f"key is now {entry.key!r}"
    if action.ref is not None and entry.ref != action.ref:
        return f"ref is now {entry.ref!r}"
    if action.size is not None and entry.size != action.size:
        return f"size is now {entry.size}"
    if action.created is not None and format_time(entry.created_at) != action.created:
        return f"created is now {format_time(entry.created_at)}"
    return None


class CacheApplier:
    """Deletes one target's planned cache entries, in plan order."""

    def __init__(self, store: CacheStore, journal: Journal, progress: Callable[[str, int], None] | None = None):
        self.store, self.journal, self.progress = store, journal, progress
        self.short = False              # the fresh listing came back short: "not listed" is not "gone"

    def _result(self, action, status: str, reason: str, reclaim: int = 0) -> ActionResult:
        return ActionResult(action.action, None, None, status, reason, None, reclaim,
                            cache_id=action.cache_id, key=action.key)

    async def run(self, target: str, actions: list) -> TargetResult:
        result = TargetResult(target)
        try:
            entries = await self.store.entries()
        except (JanitorError, httpx.HTTPError) as exc:
            result.error = f"could not list the cache entries: {describe_error(exc)}; nothing applied"
            return result
        newest = newest_of_groups([(e, classify(e.key, e.version, e.ref)) for e in entries.values()])
        self.short = self.store.api.short_listing is not None
        stop: str | None = None
        for action in actions:
            key = action_key(target, "delete", None, cache_item_id(action.cache_id), None)
            if key in self.journal.done:
                outcome = self._result(action, DONE, "already done (apply journal)")
            elif stop is not None:
                outcome = self._result(action, SKIPPED, stop)
            else:
                outcome = await self._one(action, entries.get(action.cache_id), newest)
                if outcome.status == FAILED and outcome.reason.startswith(("budget:", "permission:")):
                    stop = f"not attempted: {outcome.reason}"
                self.journal.record(key, outcome.status)
            result.results.append(outcome)
            if self.progress:
                self.progress("apply", 1)
        return result

    async def _one(self, action, entry: CacheEntry | None, newest: set[int] = frozenset()) -> ActionResult:
        if action.cache_id is None:
            return self._result(action, FAILED, "not an Actions-cache action (no cache_id)")
        if entry is None and self.short:
            return self._result(action, SKIPPED, "not in the listing, which came back short: left alone; rerun")
        if entry is None:
            return self._result(action, DONE, "already gone (evicted, or deleted by another job)")
        changed = _changed(action, entry)
        if changed is not None:
            return self._result(action, SKIPPED, f"id {action.cache_id} now carries other data ({changed}): left alone")
        floor = _floor(action, entry, newest)
        if floor is not None:
            return self._result(action, SKIPPED, f"kept: {floor}")
        try:
            deleted = await self.store.delete(action.cache_id)
        except (RateLimitError, BudgetSpent) as exc:
            return self._result(action, FAILED, f"budget: {exc}")
        except AuthError as exc:
            return self._result(action, FAILED, f"permission: {exc}")
        except (JanitorError, httpx.HTTPError) as exc:
            return self._result(action, FAILED, describe_error(exc))
        if not deleted:
            return self._result(action, DONE, "already gone (evicted, or deleted by another job)")
        return self._result(action, DONE, "deleted", action.reclaim_size)


async def apply_cache_plan(target: Target, target_plan, connect, journal: Journal,
                           progress: Callable[[str, int], None] | None = None) -> TargetResult:
    store = open_cache(target, connect)
    try:
        return await CacheApplier(store, journal, progress).run(target_plan.target, target_plan.actions)
    finally:
        await store.aclose()
