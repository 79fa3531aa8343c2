"""Apply a plan: a last look before every delete, then act (retag, untag, delete).

A plan is a request, never an authority. Immediately before every delete (or, where a look is
dear, a small batch sent at once right after it: `last_look.deletes_per_look`) apply takes a last
look at what the tags reach now (`apply.last_look`):
- a tag that moved since planning is skipped (or, parked on the janitor's own placeholder by an
  interrupted untag, finished);
- a digest another tag now points at is untagged (the plan's tag removed), never deleted; a digest
  a tagged index now lists, and an untagged or child digest any tag reaches now, is skipped with
  a reason naming the tag;
- untagged and child deletes on a store that lists untagged versions (GHCR) also check the
  listing, cross-checked against the tag list, and every listed index version.
Actions run in plan order (parents before the children that follow them); a child is deleted
only once its parent is verified gone. Retags verify the digest they produced.

The journal of an earlier run of the same plan is a hint, never proof (`apply.verify`): an action it
says is done is reported done only if the store shows its effect now; otherwise it is carried out
again, through the same last look. An action whose tag the last look does not find is "gone"
(nothing to do; not a delete or untag of ours), and a plan whose pins match nothing in its target is
refused before any target is touched (`ForeignPlan`, exit 2).
"""

from __future__ import annotations

import asyncio
from typing import Callable, Sequence

from ghcr_janitor.core.errors import CannotUntag, JanitorError, NotFoundError, PlanError, TagMovedError, TargetStopped, describe
from ghcr_janitor.core.models import cache_item_id
from ghcr_janitor.apply.journal import Journal, action_key
from ghcr_janitor.apply.last_look import LastLook, Look, deletes_per_look
from ghcr_janitor.apply.results import DONE, FAILED, GONE, SKIPPED, ActionResult, TargetResult
from ghcr_janitor.apply.verify import effects_hold, mismatch
from ghcr_janitor.stores.base import ActsOnEntries, Registry, SpendsRequestBudget, Store
from ghcr_janitor.stores.oci.registry import is_placeholder


def _batch(actions: list, start: int, size: int) -> list:
    """Consecutive actions from `start`, at most `size`; an action that follows a digest acted on
    earlier in the batch (its parent, or the same digest), and any retag, starts the next batch."""
    batch: list = []
    digests: set[str] = set()
    for action in actions[start:start + size]:
        follows = set(action.parents or ([action.parent] if action.parent else []))
        if batch and (follows & digests or action.action == "retag" or batch[-1].action == "retag"):
            break
        batch.append(action)
        digests.add(action.digest)
    return batch


class Applier:
    """Applies one target's actions against one backend."""

    def __init__(self, registry: Registry, target: str, journal: Journal,
                 progress: Callable[[str, int], None] | None = None):
        self.registry = registry
        self.target = target
        self.journal = journal
        self.progress = progress
        self.looker = LastLook(registry)
        self.deleted: set[str] = set()             # digests deleted by this run (or its journal)
        self.stopped: str | None = None            # the store accepts nothing more this run (TargetStopped)
        self.journalled: dict[str, ActionResult] = {}   # action key -> done, per the journal and the store now
        self.swept: dict[str, str] = {}            # tag -> digest: tags this run's digest deletes removed

    async def _check_journal(self, actions: list) -> None:
        """Which journalled actions the store shows done now (one batched read); the others are
        refuted and carried out again."""
        hinted = {self._key(a): a for a in actions if self._key(a) in self.journal.done}
        if not hinted:
            return
        facts = await effects_hold(self.registry, list(hinted.values()))
        for (key, a), fact in zip(hinted.items(), facts):
            if fact is None:
                self.journal.refute(key)
            else:
                self.journalled[key] = ActionResult(a.action, a.tag, a.digest, DONE, JOURNALLED, a.to, 0)

    async def _gone(self, digest: str) -> bool:
        """Is `digest` really gone? A delete that became an untag, or a tag that was already gone
        while its index stayed, must not release the index's children. Absence from a listing
        proves it only where the store lists every manifest (`lists_untagged`); elsewhere (GitLab's
        tagged-only listing) the store itself must know it is missing."""
        try:
            versions = await self.registry.list_versions()
        except JanitorError:
            return False
        if versions is None:
            return False
        listed = frozenset(v.digest for v in versions)
        return digest not in listed and (self.registry.lists_untagged or self.registry.known_missing(digest, listed))

    async def run(self, actions: list) -> TargetResult:
        """Apply `actions` in order; the last look, not the plan, says what is in use."""
        result = TargetResult(self.target)
        await self._check_journal(actions)
        followed = {p for a in actions if a.parent for p in (a.parents or [a.parent])}
        removing: dict[str, set[str]] = {}
        for a in actions:           # tags whose delete the plan asks for: an untag keeps its digest
            if a.action == "delete" and a.tag:
                removing.setdefault(a.digest, set()).add(a.tag)
        start = 0
        while start < len(actions):
            batch = _batch(actions, start, deletes_per_look(self.registry))
            early = [self._early(a) for a in batch]
            look: Look | None = None
            looked = ""
            todo = [a for a, known in zip(batch, early) if known is None]
            if todo:
                try:
                    look = await self.looker.take(with_versions=any(a.tag is None or a.parent for a in todo))
                except JanitorError as exc:
                    looked = describe(exc)
                    if start == 0:
                        result.error = f"could not read the current tags: {looked}; nothing applied"
                        return result
                batch = batch[:deletes_per_look(self.registry, len(look.tags) if look else None)]
            start += len(batch)
            outcomes = await asyncio.gather(*(self._step(a, known, look, looked, removing)
                                              for a, known in zip(batch, early)))
            for action, outcome in zip(batch, outcomes):
                if action.digest in followed and outcome.status in (DONE, GONE) and await self._gone(action.digest):
                    self.deleted.add(action.digest)     # verified gone: what follows it may go now
                outcome.reclaim_share = getattr(action, "reclaim_share", 0)
                result.results.append(outcome)
                if self.progress:
                    self.progress("apply", 1)
        return result

    def _key(self, action) -> str:
        return action_key(self.target, action.action, action.tag, action.digest, action.to)

    def _early(self, action) -> ActionResult | None:
        """An outcome known without a look: journaled (and checked), the target stopped by its store
        (nothing more is sent), or waiting for a parent not deleted."""
        if self._key(action) in self.journalled:
            return self.journalled[self._key(action)]
        if self.stopped is not None:
            return ActionResult(action.action, action.tag, action.digest, FAILED, f"not sent: {self.stopped}", None, 0)
        if action.parent and (waiting := [p for p in action.parents or [action.parent] if p not in self.deleted]):
            return ActionResult(action.action, action.tag, action.digest, SKIPPED,
                                f"not deleted: {waiting[0]}, which uses it, was not deleted", None, 0)
        return None

    async def _step(self, action, early: ActionResult | None, look: Look | None, looked: str,
                    removing: dict[str, set[str]]) -> ActionResult:
        if early is not None:
            return early
        if look is None:
            outcome = ActionResult(action.action, action.tag, action.digest, FAILED,
                                   f"could not take the last look: {looked}", action.to, 0)
        else:
            outcome = await self._one(action, look, removing)
        self.journal.record(self._key(action), outcome.status)
        return outcome

    async def _one(self, action, look: Look, removing: dict[str, set[str]]) -> ActionResult:
        def res(status: str, reason: str, reclaim: int = 0) -> ActionResult:
            return ActionResult(action.action, action.tag, action.digest, status, reason, action.to, reclaim)

        try:
            if action.action == "retag":
                return await self._retag(action, look, res)
            if action.tag is None or action.parent:
                return await self._delete_untagged(action, look, res)
            current = look.tags.get(action.tag)
            if current is None:
                if self.swept.get(action.tag) == action.digest:     # removed by our delete of its digest
                    return res(DONE, "deleted (with its digest, by this run's delete under another tag)")
                return res(GONE, ALREADY_GONE)
            if current != action.digest:
                if await self._finish_placeholder(action.tag, current, look):
                    return res(DONE, "finished an interrupted untag (removed the janitor's placeholder)")
                return res(SKIPPED, f"moved since planning: now {current}")
            through = look.reached_through(action.digest)
            if action.action == "delete" and through:
                return res(SKIPPED, f"not deleted: {_users(through)}")
            others = [f"tag {t}" for t in look.tags_on(action.digest)
                      if t != action.tag and t not in removing.get(action.digest, set())]
            if action.action == "untag" or others or look.blind:
                await self.registry.delete_tag(action.tag, action.digest)
                why = "untagged; digest kept"
                if action.action != "untag":
                    why = f"untagged instead of deleted: {_users(others) if others else look.blind}"
                return res(DONE, why)
            try:
                await self.registry.delete_manifest(action.digest)
            except NotFoundError:
                return res(DONE, "already gone")
            self.swept.update((t, action.digest) for t in look.tags_on(action.digest))
            return res(DONE, "deleted", action.reclaim_size)
        except CannotUntag as exc:
            return res(SKIPPED, str(exc))
        except TagMovedError as exc:
            return res(SKIPPED, f"moved since planning ({exc})")
        except NotFoundError as exc:
            return res(DONE, f"already gone ({exc})")
        except TargetStopped as exc:
            self.stopped = describe(exc)
            return res(FAILED, self.stopped)
        except JanitorError as exc:
            return res(FAILED, describe(exc))
        except OSError as exc:                          # a local layout that cannot be written
            return res(FAILED, f"{exc.filename or 'file'}: {exc.strerror or exc}")

    async def _finish_placeholder(self, tag: str, current: str, look: Look) -> bool:
        """Delete `current` if it is our own placeholder for `tag` (by content) and nothing else
        uses it now: no other tag, no index."""
        if look.tags_on(current) != [tag] or look.reached_through(current):
            return False
        try:
            raw = await self.registry.get_manifest(current)
        except JanitorError:
            return False
        if not is_placeholder(raw.body, current, tag):
            return False
        await self.registry.delete_manifest(current)
        return True

    async def _delete_untagged(self, action, look: Look, res) -> ActionResult:
        users = look.users.get(action.digest, [])
        if users:
            return res(SKIPPED, f"not deleted: {_users(users)}")
        if look.blind or look.problem:
            return res(SKIPPED, f"not deleted: {look.blind or look.problem}")
        try:                        # the store re-checks before it says "gone" (a listing may have shifted)
            await self.registry.delete_manifest(action.digest)
        except NotFoundError:
            return res(DONE, "already gone")
        return res(DONE, "deleted", action.reclaim_size)

    async def _retag(self, action, look: Look, res) -> ActionResult:
        assert action.to
        if action.tag:
            current = look.tags.get(action.tag)
            if current != action.digest:
                return res(SKIPPED, f"moved since planning: now {current or 'gone'}")
        existing = await self.registry.resolve(action.to)
        if existing == action.digest:
            return res(DONE, f"{action.to} already points at this digest")
        if existing is not None:
            return res(SKIPPED, f"{action.to} already exists with another digest ({existing}); not overwritten")
        raw = await self.registry.get_manifest(action.digest)
        digest = await self.registry.put_manifest(action.to, raw.body, raw.media_type)
        if digest != action.digest:
            return res(FAILED, f"retag produced {digest}, expected {action.digest}")
        return res(DONE, f"tagged {action.to}")


JOURNALLED = "already done (apply journal)"        # reported only once the store confirmed it
ALREADY_GONE = "already gone: no such tag now; nothing to do"


class ForeignPlan(PlanError):
    """A plan whose pins match nothing in one of its targets (planned for another target?): exit 2."""


def _users(users: list[str]) -> str:
    """'now reachable from tag release via sha256:…' (the first two users, and how many more)."""
    shown = ", ".join(users[:2]) + (f" and {len(users) - 2} more" if len(users) > 2 else "")
    return f"now reachable from {shown}"


def _rest_requests_needed(store: SpendsRequestBudget, target_plan, journal: Journal) -> int:
    """About how many GitHub REST requests applying this target takes (the store says: a journalled
    action costs its check only)."""
    def key(a) -> str:
        return action_key(target_plan.target, a.action, a.tag, a.digest or cache_item_id(a.cache_id), a.to)

    todo = [a for a in target_plan.actions if key(a) not in journal.done]
    hinted = [a for a in target_plan.actions if key(a) in journal.done]
    return store.requests_needed(todo, hinted)


def _not_started(target_plan, why: str) -> TargetResult:
    """A target the budget cannot finish: every action reported as skipped, nothing sent."""
    result = TargetResult(target_plan.target)
    for a in target_plan.actions:
        result.results.append(ActionResult(a.action, a.tag, a.digest, SKIPPED, f"not started: {why}", a.to, 0,
                                           cache_id=a.cache_id, key=a.key))
    return result


async def apply_plan(plan, connect, journal: Journal, progress: Callable[[str, int], None] | None = None,
                     check_targets: bool = True, stores: Sequence[Store | None] | None = None) -> list[TargetResult]:
    """Apply every target of a plan; one target's failure does not stop the others.

    `stores`: the run's open store for each of the plan's targets (the engine's, opened once for
    gathering and applying; closed by the caller); without it each target with actions is opened
    here from its target string and closed at the end. With `check_targets` (a saved plan), every
    manifest store is first checked against the plan's pins (`apply.verify.mismatch`): if any
    target matches none of them, `ForeignPlan` is raised and nothing is applied anywhere.
    `prune`, which plans and applies in one run, may skip it. What a store can do decides how it
    is applied (`stores.base`): entries by id after a fresh look, or manifests after a last look;
    a store on GitHub's REST budget is started only if the budget can finish it."""
    from ghcr_janitor.stores.connect import open_store
    from ghcr_janitor.core.reference import parse_target

    opened: dict[int, Store] = {}
    try:
        for i, target_plan in enumerate(plan.targets):
            given = stores[i] if stores is not None and i < len(stores) else None
            if given is not None:
                opened[i] = given
            elif target_plan.actions:
                opened[i] = open_store(parse_target(target_plan.target), connect)
        if check_targets:
            await _refuse_foreign(plan, opened, journal)
        results = []
        stopped: str | None = None
        for i, target_plan in enumerate(plan.targets):
            store = opened.get(i)
            # What the figure means: the store opened now says it (a plan file can be edited).
            note = (store.reclaim_note if store is not None else "") or target_plan.reclaim_note
            if not target_plan.actions or store is None:
                results.append(TargetResult(target_plan.target, reclaim_note=note))
                continue
            if isinstance(store, SpendsRequestBudget):      # GitHub REST: one budget for the whole run
                stopped = stopped or connect.budget.affordable(_rest_requests_needed(store, target_plan, journal))
                if stopped:
                    results.append(_not_started(target_plan, stopped))
                    results[-1].reclaim_note = note
                    continue
            if isinstance(store, ActsOnEntries):
                from ghcr_janitor.apply.cache_applier import CacheApplier

                result = await CacheApplier(store, journal, progress).run(target_plan.target, target_plan.actions)
            else:
                result = await Applier(store, target_plan.target, journal, progress).run(target_plan.actions)
            result.reclaim_note = note
            results.append(result)
        return results
    finally:
        for i, store in opened.items():
            if stores is None or i >= len(stores) or stores[i] is not store:
                await store.aclose()


async def _refuse_foreign(plan, stores: dict[int, Store], journal: Journal) -> None:
    """ForeignPlan if any manifest store's pins match nothing there now (checked for all before any
    is touched; entries acted on by id are pinned per delete, see apply.verify). A target this plan's
    journal says was acted on is not refused: its actions may all be done; each is checked against
    the store before it is reported done."""
    for i, registry in stores.items():
        target_plan = plan.targets[i]
        if isinstance(registry, ActsOnEntries) or not target_plan.actions:
            continue
        if any(action_key(target_plan.target, a.action, a.tag, a.digest, a.to) in journal.done
               for a in target_plan.actions if a.digest):
            continue
        why = await mismatch(registry, target_plan)
        if why is not None:
            raise ForeignPlan(f"{why} (nothing was changed)")
