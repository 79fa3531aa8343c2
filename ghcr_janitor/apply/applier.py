"""Apply a plan: re-check every pin against the registry, then act (retag, untag, delete).

Safety, in order: a fresh tag -> digest snapshot is taken first; a tag that moved since
planning is skipped; a digest that now carries a tag the plan does not remove is untagged,
never deleted; retags verify the digest they produced. Actions run in plan order (parents
before the children that follow them); a child is deleted only once its parent is gone, and
never while an index tagged since planning uses it.
"""

from __future__ import annotations

import asyncio
from typing import Callable

import httpx

from ghcr_janitor.core.defaults import DEFAULT_CONCURRENCY
from ghcr_janitor.core.errors import JanitorError, NotFoundError, TagMovedError
from ghcr_janitor.core.models import cache_item_id
from ghcr_janitor.net.http import describe_error
from ghcr_janitor.apply.journal import Journal, action_key
from ghcr_janitor.apply.results import DONE, FAILED, SKIPPED, ActionResult, TargetResult
from ghcr_janitor.stores.base import Registry
from ghcr_janitor.stores.oci.registry import is_placeholder

async def snapshot_tags(registry: Registry, concurrency: int = DEFAULT_CONCURRENCY) -> dict[str, str]:
    """Every tag's current digest, fresh from the backend."""
    invalidate = getattr(registry, "invalidate", None)
    if callable(invalidate):            # GHCR caches its version listing briefly
        invalidate()
    versions = await registry.list_versions()
    if versions is not None:
        return {t: v.digest for v in versions for t in v.tags}
    tags = await registry.list_tags()
    sem = asyncio.Semaphore(concurrency)
    found: dict[str, str] = {}

    async def one(tag: str) -> None:
        async with sem:
            digest = await registry.resolve(tag)
        if digest is not None:
            found[tag] = digest

    await asyncio.gather(*(one(t) for t in tags))
    return found


class Applier:
    """Applies one target's actions against one backend."""

    def __init__(self, registry: Registry, target: str, journal: Journal,
                 progress: Callable[[str, int], None] | None = None):
        self.registry = registry
        self.target = target
        self.journal = journal
        self.progress = progress
        self.tags: dict[str, str] = {}
        self.deleted: set[str] = set()             # digests deleted by this run (or its journal)
        self.new_users: dict[str, str] = {}        # child digest -> a tag pushed since planning that uses it

    async def _gone(self, digest: str) -> bool:
        """Is `digest` really gone? A delete that became an untag, or a tag that was already gone
        while its index stayed, must not release the index's children."""
        try:
            versions = await self.registry.list_versions()
        except (JanitorError, httpx.HTTPError):
            return False
        return versions is not None and digest not in {v.digest for v in versions}

    async def _children_of_new_tags(self, known: set[str]) -> dict[str, str]:
        """Children of indexes tagged since planning (a rebuild may reuse platform manifests)."""
        from ghcr_janitor.core.manifests import parse_manifest

        users: dict[str, str] = {}
        for tag, digest in sorted(self.tags.items()):
            if digest in known:
                continue
            try:
                raw = await self.registry.get_manifest(digest)
            except NotFoundError:           # gone again already
                continue
            for child in parse_manifest(raw.body, digest, raw.media_type).children:
                users.setdefault(child.digest, f"{tag} ({digest})")
        return users

    async def run(self, actions: list, known: set[str] | None = None) -> TargetResult:
        """Apply `actions` in order; `known`: every digest the plan saw (actions and kept)."""
        result = TargetResult(self.target)
        try:
            self.tags = await snapshot_tags(self.registry)
            if any(a.parent for a in actions):
                self.new_users = await self._children_of_new_tags(known or {a.digest for a in actions})
        except (JanitorError, httpx.HTTPError) as exc:
            result.error = f"could not read the current tags: {describe_error(exc)}; nothing applied"
            return result
        followed = {p for a in actions if a.parent for p in (a.parents or [a.parent])}
        removing: dict[str, set[str]] = {}
        for a in actions:
            if a.action in ("delete", "untag") and a.tag:
                removing.setdefault(a.digest, set()).add(a.tag)
        for action in actions:
            key = action_key(self.target, action.action, action.tag, action.digest, action.to)
            if key in self.journal.done:
                outcome = ActionResult(action.action, action.tag, action.digest, DONE,
                                       "already done (apply journal)", action.to, 0)
            elif action.parent and (waiting := [p for p in action.parents or [action.parent] if p not in self.deleted]):
                outcome = ActionResult(action.action, action.tag, action.digest, SKIPPED,
                                       f"not deleted: {waiting[0]}, which uses it, was not deleted", None, 0)
            elif action.parent and action.digest in self.new_users:
                outcome = ActionResult(action.action, action.tag, action.digest, SKIPPED,
                                       f"not deleted: now used by {self.new_users[action.digest]}", None, 0)
            else:
                outcome = await self._one(action, removing)
                self.journal.record(key, outcome.status)
            if action.digest in followed and outcome.status == DONE and await self._gone(action.digest):
                self.deleted.add(action.digest)     # verified gone: what follows it may go now
            outcome.reclaim_share = getattr(action, "reclaim_share", 0)
            result.results.append(outcome)
            if self.progress:
                self.progress("apply", 1)
        return result

    async def _one(self, action, removing: dict[str, set[str]]) -> ActionResult:
        def res(status: str, reason: str, reclaim: int = 0) -> ActionResult:
            return ActionResult(action.action, action.tag, action.digest, status, reason, action.to, reclaim)

        try:
            if action.action == "retag":
                return await self._retag(action, res)
            if action.tag is None:
                return await self._delete_untagged(action, res)
            current = await self.registry.resolve(action.tag)    # fresh: a build may have re-pushed it
            if current is None:
                return res(DONE, "tag already gone")
            if current != action.digest:
                if await self._finish_placeholder(action.tag, current):
                    return res(DONE, "finished an interrupted untag (removed the janitor's placeholder)")
                return res(SKIPPED, f"moved since planning: now {current}")
            others = sorted(t for t, d in self.tags.items() if d == action.digest and t not in removing.get(action.digest, set()))
            if action.action == "untag" or others:
                await self.registry.delete_tag(action.tag, action.digest)
                self.tags.pop(action.tag, None)
                why = "untagged; digest kept"
                if others and action.action != "untag":
                    verb = "points" if len(others) == 1 else "point"
                    why = f"untagged instead of deleted: {', '.join(others)} now also {verb} at this digest"
                return res(DONE, why)
            try:
                await self.registry.delete_manifest(action.digest)
            except NotFoundError:
                pass                                        # deleted by an earlier action or a retry
            for tag in [t for t, d in self.tags.items() if d == action.digest]:
                del self.tags[tag]
            return res(DONE, "deleted", action.reclaim_size)
        except TagMovedError as exc:
            return res(SKIPPED, f"moved since planning ({exc})")
        except NotFoundError as exc:
            return res(DONE, f"already gone ({exc})")
        except (JanitorError, httpx.HTTPError) as exc:
            return res(FAILED, describe_error(exc))
        except OSError as exc:                          # a local layout that cannot be written
            return res(FAILED, f"{exc.filename or 'file'}: {exc.strerror or exc}")

    async def _finish_placeholder(self, tag: str, current: str) -> bool:
        try:
            raw = await self.registry.get_manifest(current)
        except (JanitorError, httpx.HTTPError):
            return False
        if not is_placeholder(raw.body, tag):
            return False
        await self.registry.delete_manifest(current)
        self.tags.pop(tag, None)
        return True

    async def _delete_untagged(self, action, res) -> ActionResult:
        carrying = sorted(t for t, d in self.tags.items() if d == action.digest)
        if carrying:
            return res(SKIPPED, f"now tagged {', '.join(carrying)}: not deleted")
        versions = await self.registry.list_versions()
        if versions is not None and action.digest not in {v.digest for v in versions}:
            return res(DONE, "already gone")
        try:
            await self.registry.delete_manifest(action.digest)
        except NotFoundError:
            return res(DONE, "already gone")
        return res(DONE, "deleted", action.reclaim_size)

    async def _retag(self, action, res) -> ActionResult:
        assert action.to
        current = self.tags.get(action.tag) if action.tag else None
        if action.tag and current is None:
            current = await self.registry.resolve(action.tag)
        if action.tag and current != action.digest:
            return res(SKIPPED, f"moved since planning: now {current or 'gone'}")
        existing = self.tags.get(action.to) or await self.registry.resolve(action.to)
        if existing == action.digest:
            return res(DONE, f"{action.to} already points at this digest")
        if existing is not None:
            return res(SKIPPED, f"{action.to} already exists with another digest ({existing}); not overwritten")
        raw = await self.registry.get_manifest(action.digest)
        digest = await self.registry.put_manifest(action.to, raw.body, raw.media_type)
        if digest != action.digest:
            return res(FAILED, f"retag produced {digest}, expected {action.digest}")
        self.tags[action.to] = digest
        return res(DONE, f"tagged {action.to}")


def _rest_requests_needed(target_plan, journal: Journal) -> int:
    """About how many GitHub REST requests applying this target takes (what is journaled: none)."""
    todo = [a for a in target_plan.actions
            if action_key(target_plan.target, a.action, a.tag, a.digest or cache_item_id(a.cache_id), a.to)
            not in journal.done]
    per_action = {"delete": 1, "untag": 4, "retag": 0}
    return sum(per_action.get(a.action, 1) for a in todo) + 3 + len(todo) // 100


def _not_started(target_plan, why: str) -> TargetResult:
    """A target the budget cannot finish: every action reported as skipped, nothing sent."""
    result = TargetResult(target_plan.target)
    for a in target_plan.actions:
        result.results.append(ActionResult(a.action, a.tag, a.digest, SKIPPED, f"not started: {why}", a.to, 0,
                                           cache_id=a.cache_id, key=a.key))
    return result


async def apply_plan(plan, connect, journal: Journal, progress: Callable[[str, int], None] | None = None) -> list[TargetResult]:
    """Apply every target of a plan; one target's failure does not stop the others."""
    from ghcr_janitor.stores.connect import open_registry
    from ghcr_janitor.core.reference import GHA, GHCR, parse_target

    results = []
    stopped: str | None = None
    for target_plan in plan.targets:
        if not target_plan.actions:
            results.append(TargetResult(target_plan.target))
            continue
        target = parse_target(target_plan.target)
        if target.kind in (GHA, GHCR):          # GitHub REST: one budget for the whole run
            stopped = stopped or connect.budget.affordable(_rest_requests_needed(target_plan, journal))
            if stopped:
                results.append(_not_started(target_plan, stopped))
                continue
        if target.kind == GHA:
            from ghcr_janitor.apply.cache_applier import apply_cache_plan

            results.append(await apply_cache_plan(target, target_plan, connect, journal, progress))
            continue
        registry = open_registry(target, connect)
        known = {a.digest for a in target_plan.actions} | {k.digest for k in target_plan.kept}
        try:
            results.append(await Applier(registry, target_plan.target, journal, progress).run(target_plan.actions, known))
        finally:
            await registry.aclose()
    return results
