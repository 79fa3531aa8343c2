"""One run of the janitor: gather -> plan -> apply.

A `Run` holds the session (connection options and settings, the manifest cache, the first-seen
ledger) and keeps each target's store open from gathering to applying: `prune --yes` opens every
store once (credentials and token handshake once), and the `Target` objects parsed from the
command line (or, for `apply`, from the plan file, once) travel with the plan instead of being
re-parsed from strings. Planning itself is pure (`plan.planner.plan_results`): it takes the
finished inventories.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from ghcr_janitor.apply.applier import apply_plan
from ghcr_janitor.apply.journal import Journal
from ghcr_janitor.apply.results import TargetResult as AppliedTarget
from ghcr_janitor.core.errors import JanitorError
from ghcr_janitor.core.models import Inventory
from ghcr_janitor.core.money import price_for
from ghcr_janitor.core.reference import Target, parse_target
from ghcr_janitor.inventory.session import Session, TargetResult
from ghcr_janitor.plan.cost import cost_of
from ghcr_janitor.plan.model import Plan
from ghcr_janitor.plan.planner import plan_results
from ghcr_janitor.policy import Policy
from ghcr_janitor.stores.base import CollectsGarbage, Store
from ghcr_janitor.stores.connect import preflight


@dataclass
class Collected:
    """What a store's own gc did after applying (`CollectsGarbage`), or why it failed."""

    target: str                     # the plan's target string
    name: str                       # the store's name (a layout's path)
    report: Any = None
    error: JanitorError | None = None


@dataclass
class Run:
    """Gather, plan and apply over one session; `aclose()` (or `async with`) closes every store."""

    session: Session
    targets: list[Target] = field(default_factory=list)        # the plan's targets, in its order

    def __post_init__(self) -> None:
        self.session.keep_stores = True

    async def __aenter__(self) -> "Run":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def now(self) -> datetime:
        return self.session.inventory.now

    async def inventories(self, names: list[str]) -> list[TargetResult]:
        """Every target's inventory (globs expanded, --shard applied); a failing target carries its
        error. Stores stay open for the rest of the run."""
        results = await self.session.inventories(names)
        self.targets = [r.target for r in results]
        settings = self.session.connect.settings
        for inv in (r.inventory for r in results if r.inventory is not None):     # what each costs a month
            inv.price = price_for(inv.traits.price, settings.prices, settings.settings_file, settings.prices_date)
            inv.cost = cost_of(inv, self.now)
        return results

    async def plan(self, names: list[str], policy: Policy, policy_name: str) -> tuple[Plan, list[Inventory]]:
        """Gather every target, then plan from the finished inventories (with what each plan saves a month)."""
        results = await self.inventories(names)
        plan, inventories = plan_results(results, policy, policy_name, self.now)
        by_target = {inv.target: inv for inv in inventories}
        for target_plan in plan.targets:
            if target_plan.target in by_target:
                target_plan.cost = cost_of(by_target[target_plan.target], self.now, target_plan)
        return plan, inventories

    def plan_targets(self, plan: Plan) -> list[Target]:
        """A saved plan's targets, parsed once (a bad target string: UsageError, before any contact)."""
        self.targets = [parse_target(t.target) for t in plan.targets]
        preflight(self.targets, self.session.connect)      # a store's usage errors, before any contact
        return self.targets

    def store_of(self, target: Target) -> Store | None:
        """The store kept open for `target` since gathering (None if it was never opened)."""
        return self.session.stores.get(target.repository)

    def _stores_for(self, plan: Plan) -> list[Store | None]:
        if len(self.targets) != len(plan.targets):
            self.plan_targets(plan)
        stores: list[Store | None] = []
        for target, target_plan in zip(self.targets, plan.targets):
            store = self.store_of(target)
            if store is None and target_plan.actions:
                store = self.session.open_store(target)
            stores.append(store)
        return stores

    async def apply(self, plan: Plan, journal: Journal, progress: Callable[[str, int], None] | None = None,
                    check_targets: bool = True) -> list[AppliedTarget]:
        """Apply the plan through the stores already open (each opened once for the run)."""
        return await apply_plan(plan, self.session.connect, journal, progress=progress,
                                check_targets=check_targets, stores=self._stores_for(plan))

    def collect_garbage(self, plan: Plan, grace: timedelta, now: datetime) -> list[Collected]:
        """Each store that keeps blobs until its own gc (`CollectsGarbage`) and had actions: its gc now."""
        out = []
        for target, target_plan in zip(self.targets, plan.targets):
            store = self.store_of(target)
            if not target_plan.actions or not isinstance(store, CollectsGarbage):
                continue
            try:
                out.append(Collected(target_plan.target, store.name, store.collect_garbage(grace, now)))
            except JanitorError as exc:      # a lock held too long, a layout gone
                out.append(Collected(target_plan.target, store.name, error=exc))
        return out

    async def aclose(self) -> None:
        """Close every store of the run, then the cache and the ledger."""
        try:
            await self.session.aclose_stores()
        finally:
            self.session.close()
