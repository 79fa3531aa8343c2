"""Apply a plan to an Actions cache (`gha:` target): a last look, then a few deletes by id.

The plan is a request, never an authority. Before every batch of at most `LOOK_EVERY` (10)
deletes, and again whenever the look is `LOOK_SECONDS` (10 s) old, apply takes a last look at
the refs the batch touches, deriving the facts as planning does
(stores/gha/gather.py): each ref's entries, which are the newest of their group, and the ref's
state (open / closed pull request, live / deleted branch, the default branch). An entry is
deleted only if its id still carries the key, ref, size and creation time the plan saw and the
planning floor allows its delete on those fresh facts; the plan's `ref_state` is informational.
A 404 is "already gone" (evicted, or deleted by a concurrent job), never deleted bytes; an entry
the look no longer lists is "gone" (nothing sent, not a delete of ours). When GitHub's hourly
budget runs out the run stops cleanly: what is left is reported, the journal keeps what was done,
and a rerun of the same plan continues. A journal line is a hint: before an entry is reported
done from it, a look (per `LOOK_EVERY` journalled entries) shows its id gone; an id still listed
is deleted again through the usual last look.
"""

from __future__ import annotations

from typing import Callable

from ghcr_janitor.apply.journal import Journal, action_key
from ghcr_janitor.apply.results import DONE, FAILED, GONE as GONE_STATUS, SKIPPED, ActionResult, TargetResult
from ghcr_janitor.core.errors import AuthError, JanitorError, describe
from ghcr_janitor.core.models import Artifact, cache_item_id
from ghcr_janitor.core.timeparse import format_time
from ghcr_janitor.net.budget import BudgetSpent
from ghcr_janitor.net.github import RateLimitError
from ghcr_janitor.plan.build import cache_floor
from ghcr_janitor.stores.gha.api import CacheEntry, LookExpired
from ghcr_janitor.stores.gha.gather import Look
from ghcr_janitor.stores.gha.keys import classify
from ghcr_janitor.stores.base import ActsOnEntries
from ghcr_janitor.stores.gha.store import LOOK_EVERY, requests_needed  # noqa: F401 (the tests' measure)
from ghcr_janitor.stores.gha.store import keys_by_ref as _keys_by_ref

# The bound of a last look: at most LOOK_EVERY deletes follow one look, and none is first sent
# more than LOOK_SECONDS after the look began (a rate-limit wait that would pass it sends nothing:
# apply looks again). The net layer's retries of a DELETE answered 5xx (backoff up to 30 s) are
# outside that bound. A look lists only the batch's refs, by family prefix: see requests_needed.
LOOK_SECONDS = 10.0
LOOKS_PER_BATCH = 3     # a batch whose looks keep going stale (rate limits) stops the run
LOOK_FAILED = "not deleted: the last look failed"
STOPS = ("budget:", "permission:", LOOK_FAILED)     # a failure that stops the rest of the run
GONE = "already gone (evicted, or deleted by another job)"


def _floor(entry: CacheEntry, state: str, newest: bool) -> str | None:
    """The plan builder's safety floor on fresh facts."""
    facts = classify(entry.key, entry.version, entry.ref)
    labels = {"cache_id": entry.id, "ref_state": state, "newest": newest}
    return cache_floor(Artifact(cache_item_id(entry.id), "", facts.kind, {}, labels=labels))


def _ref_now(ref: str, state: str, planned: str | None) -> str:
    """What the last look says of a ref, for a reason: 'refs/pull/7/merge is open again'."""
    pull = ref.startswith("refs/pull/")
    was_dead = planned in ("closed", "deleted")
    said = {"default": "is the default branch",
            "live": ("is open again" if was_dead else "is open") if pull else "exists",
            "unknown": "has a state the API did not show (treated as live)"}.get(state, f"is {state}")
    if planned is not None and planned != state and not (pull and state == "live" and was_dead):
        said += f" (the plan said {planned})"
    return f"{ref} {said}"


def _changed(action, entry: CacheEntry) -> str | None:
    """What differs between the pinned entry and what the id carries now (None: the same)."""
    if entry.key != action.key:
        return f"key is now {entry.key!r}"
    if entry.ref != action.ref:
        return f"ref is now {entry.ref!r}"
    if action.size is not None and entry.size != action.size:
        return f"size is now {entry.size}"
    if action.created is not None and format_time(entry.created_at) != action.created:
        return f"created is now {format_time(entry.created_at)}"
    return None


class CacheApplier:
    """Deletes one target's planned cache entries, in plan order, a last look before each batch."""

    def __init__(self, store: ActsOnEntries, journal: Journal, progress: Callable[[str, int], None] | None = None):
        self.store, self.journal, self.progress = store, journal, progress

    def _result(self, action, status: str, reason: str, reclaim: int = 0) -> ActionResult:
        return ActionResult(action.action, None, None, status, reason, None, reclaim,
                            cache_id=action.cache_id, key=action.key)

    def _finish(self, target: str, action, outcome: ActionResult) -> ActionResult:
        if not outcome.reason.startswith("already done"):
            self.journal.record(_key(target, action), outcome.status)
        if self.progress:
            self.progress("apply", 1)
        return outcome

    async def _journalled(self, target: str, actions: list) -> set[int]:
        """Which journalled actions a look shows done now (their id no longer listed under their
        ref, on a listing that did not come back short); the others are refuted, to be redone."""
        confirmed: set[int] = set()
        hinted = [i for i, a in enumerate(actions) if _key(target, a) in self.journal.done]
        for start in range(0, len(hinted), LOOK_EVERY):
            chunk = hinted[start:start + LOOK_EVERY]
            try:
                look = await self.store.look(_keys_by_ref([actions[i] for i in chunk]))
            except JanitorError:
                look = None
            for i in chunk:
                a = actions[i]
                if look is not None and a.cache_id not in look.entries and a.ref not in look.short:
                    confirmed.add(i)
                else:
                    self.journal.refute(_key(target, a))
        return confirmed

    async def run(self, target: str, actions: list) -> TargetResult:
        """Every action in batches of LOOK_EVERY (journaled ones a look confirms are done); results
        in plan order. A spent budget, a missing permission or a failed look stops the rest (not
        attempted)."""
        outcomes: dict[int, ActionResult] = {}
        todo = []
        confirmed = await self._journalled(target, actions)
        for i, action in enumerate(actions):
            if i in confirmed:
                outcomes[i] = self._finish(target, action, self._result(action, DONE, "already done (apply journal)"))
            else:
                todo.append(i)
        stop: str | None = None
        for start in range(0, len(todo), LOOK_EVERY):
            chunk = todo[start:start + LOOK_EVERY]
            if stop is not None:
                outcomes.update((i, self._finish(target, actions[i], self._result(actions[i], SKIPPED, stop)))
                                for i in chunk)
                continue
            done = await self.batch(target, [actions[i] for i in chunk])
            outcomes.update(zip(chunk, done))
            stop = next((f"not attempted: {o.reason}" for o in done if o.status == FAILED
                         and o.reason.startswith(STOPS)), None)
        return TargetResult(target, [outcomes[i] for i in range(len(actions))])

    async def batch(self, target: str, actions: list) -> list[ActionResult]:
        """A last look at the refs of `actions` (at most LOOK_EVERY), then each delete the fresh
        facts allow, in order; one result per action, journaled as it is known."""
        if len(actions) > LOOK_EVERY:
            raise ValueError(f"a batch is at most {LOOK_EVERY} deletes")
        outcomes: list[ActionResult] = []
        looks = 0
        look: Look | None = None
        while len(outcomes) < len(actions):
            action = actions[len(outcomes)]
            if look is None or self.store.api.clock() - look.at > LOOK_SECONDS:
                rest = actions[len(outcomes):]
                looks += 1
                if looks > LOOKS_PER_BATCH:
                    why = f"budget: GitHub kept rate-limiting deletes past the {LOOK_SECONDS:.0f}s a look is good for"
                    return outcomes + [self._finish(target, a, self._result(a, FAILED, why)) for a in rest]
                try:
                    look = await self.store.look(_keys_by_ref(rest))
                except JanitorError as exc:
                    why = _look_failed(exc)
                    return outcomes + [self._finish(target, a, self._result(a, FAILED, why)) for a in rest]
            outcome = await self._one(action, look)
            if outcome is None:             # LookExpired: not sent; look again
                look = None
                continue
            outcomes.append(self._finish(target, action, outcome))
        return outcomes

    def _check(self, action, look: Look) -> ActionResult | None:
        """Why `action` must not be sent on this look (None: delete it)."""
        if action.cache_id is None or action.ref is None:
            return self._result(action, FAILED, "not an Actions-cache action (no cache_id and ref)")
        entry = look.entries.get(action.cache_id)
        if entry is None and action.ref in look.short:
            return self._result(action, SKIPPED, f"not in the listing of {action.ref}, which came back short: "
                                "left alone; rerun")
        if entry is None:
            return self._result(action, GONE_STATUS, f"{GONE}: no longer listed under {action.ref}; nothing sent")
        changed = _changed(action, entry)
        if changed is not None:
            return self._result(action, SKIPPED, f"id {action.cache_id} now carries other data ({changed}): left alone")
        state = look.states.get(entry.ref, "unknown")
        floor = _floor(entry, state, entry.id in look.newest)
        if floor is not None:
            return self._result(action, SKIPPED, f"{_ref_now(entry.ref, state, action.ref_state)}; kept: {floor}")
        return None

    async def _one(self, action, look: Look) -> ActionResult | None:
        """The outcome of one action on `look`; None if the look went stale before it was sent."""
        refused = self._check(action, look)
        if refused is not None:
            return refused
        try:
            deleted = await self.store.delete(action.cache_id, send_by=look.at + LOOK_SECONDS)
        except LookExpired:
            return None
        except (RateLimitError, BudgetSpent) as exc:
            return self._result(action, FAILED, f"budget: {exc}")
        except AuthError as exc:
            return self._result(action, FAILED, f"permission: {exc}")
        except JanitorError as exc:
            return self._result(action, FAILED, describe(exc))
        if not deleted:
            return self._result(action, DONE, f"{GONE}: the DELETE found nothing (404)")
        return self._result(action, DONE, "deleted", action.reclaim_size)


def _key(target: str, action) -> str:
    return action_key(target, "delete", None, cache_item_id(action.cache_id), None)


def _look_failed(exc: Exception) -> str:
    """The reason for a batch whose last look failed (budget and permission stop the run)."""
    if isinstance(exc, (RateLimitError, BudgetSpent)):
        return f"budget: {exc}"
    if isinstance(exc, AuthError):
        return f"permission: {exc}"
    return f"{LOOK_FAILED}: {describe(exc)}"
