"""Gather inventories for many targets: the read half every command shares."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Awaitable, Callable, TypeVar

from ghcr_janitor.inventory.cache import ManifestCache
from ghcr_janitor.stores.connect import ConnectOptions, open_registry, open_store, preflight
from ghcr_janitor.core.errors import JanitorError, UsageError
from ghcr_janitor.inventory.gather import InventoryOptions, Progress, build_inventory
from ghcr_janitor.inventory.ledger import Ledger
from ghcr_janitor.core.models import Inventory
from ghcr_janitor.core.reference import Target, parse_run_target
from ghcr_janitor.stores.base import GathersFacts, Registry, Store

TARGETS_AT_ONCE = 4         # targets inventoried at once (each with its own --concurrency bound)

T = TypeVar("T")


@dataclass
class TargetResult:
    target: Target
    inventory: Inventory | None = None
    error: str | None = None


@dataclass
class Session:
    """Shared cache, ledger and connection options for one CLI run."""

    connect: ConnectOptions
    inventory: InventoryOptions
    use_cache: bool = True
    progress: Progress | None = None
    shard: tuple[int, int] | None = None            # --shard I/N, applied after globs are expanded
    announce: Callable[[str], None] | None = None   # where expansion lines go (stderr in the CLI)
    keep_stores: bool = False                       # the engine keeps each store open from gathering to applying
    cache: ManifestCache | None = field(init=False, default=None)
    ledger: Ledger | None = field(init=False, default=None)
    stores: dict[str, Store] = field(init=False, default_factory=dict)    # target -> store, with keep_stores

    def __post_init__(self) -> None:
        if self.use_cache:
            self.cache = ManifestCache(self.connect.settings.cache_dir)
            self.ledger = Ledger(self.connect.settings.state_dir() / "first-seen.sqlite")

    async def with_registry(self, target: Target, body: Callable[[Registry], Awaitable[T]]) -> T:
        registry = open_registry(target, self.connect)
        try:
            return await body(registry)
        finally:
            await registry.aclose()

    def open_store(self, target: Target) -> Store:
        """The store for `target`; with `keep_stores`, opened once for the run (closed by
        `aclose_stores`), else closed by `release` after use."""
        store = self.stores.get(target.repository) if self.keep_stores else None
        if store is None:
            store = open_store(target, self.connect)
            if self.keep_stores:
                self.stores[target.repository] = store
        return store

    async def release(self, store: Store) -> None:
        if not self.keep_stores:
            await store.aclose()

    async def aclose_stores(self) -> None:
        """Close every store kept open for the run."""
        stores, self.stores = list(self.stores.values()), {}
        for store in stores:
            await store.aclose()

    async def gather(self, store: Store, target: Target) -> Inventory:
        """The store's facts: its own listing (`GathersFacts`), or its tags and manifests."""
        if isinstance(store, GathersFacts):
            return await store.inventory()
        return await build_inventory(store, target.repository, self.inventory, self.cache, self.ledger, self.progress)

    async def inventory_of(self, target: Target) -> TargetResult:
        try:
            store = self.open_store(target)
            try:
                return TargetResult(target, await self.gather(store, target))
            finally:
                await self.release(store)
        except UsageError:
            raise
        except JanitorError as exc:        # network errors after retries (NetworkError), and the like
            return TargetResult(target, error=str(exc))

    async def targets(self, targets: list[str]) -> tuple[list[Target], list[TargetResult]]:
        """Concrete targets (globs expanded, then --shard), and the globs that could not be expanded.

        `REPO:TAG` restricts that target's run to the tag (said through `announce`); `@DIGEST` is
        a usage error (it names one artifact: `inspect`), raised before anything is contacted."""
        parsed = [parse_run_target(t) for t in targets]   # all usage errors before any contact
        preflight(parsed, self.connect)                     # a store's own (a missing extra): before any too
        failed: list[TargetResult] = []
        if any(t.glob for t in parsed):
            from ghcr_janitor.inventory.discover import expand

            expansion = await expand(parsed, self.connect)
            for line in expansion.lines:
                if self.announce is not None:
                    self.announce(line)
            parsed = expansion.targets
            failed = [TargetResult(t, error=why) for t, why in expansion.failures]
        unique: dict[str, Target] = {}
        for target in parsed:                          # a target named twice is inventoried once
            unique.setdefault(str(target), target)
        parsed = list(unique.values())
        if self.shard is not None:
            from ghcr_janitor.core.shard import select_shard

            chosen = set(select_shard(list(unique), *self.shard))
            parsed = [t for t in parsed if str(t) in chosen]
        for target in parsed:
            if target.tag is not None and self.announce is not None:
                self.announce(f"{target}: only tag {target.tag}")
        return parsed, failed

    async def inventories(self, targets: list[str]) -> list[TargetResult]:
        """Every target's inventory, in target order. The first is read alone (what it learns for
        the run, such as a GitHub owner's endpoint, the others reuse), then up to TARGETS_AT_ONCE at
        a time: a matrix shard of hundreds of small packages is round trips, not work."""
        parsed, failed = await self.targets(targets)
        if not parsed:
            return failed
        first = await self.inventory_of(parsed[0])
        limit = asyncio.Semaphore(TARGETS_AT_ONCE)

        async def one(target: Target) -> TargetResult:
            async with limit:
                return await self.inventory_of(target)

        rest = await asyncio.gather(*(one(t) for t in parsed[1:]))
        return [first, *rest] + failed

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
        if self.ledger is not None:
            self.ledger.close()
