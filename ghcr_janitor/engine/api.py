"""The library API: synchronous functions over the engine (`import ghcr_janitor` re-exports them).

    from ghcr_janitor import take_inventory, make_plan, apply_plan

    plan = make_plan(["oci-layout:./cache"], policy="policy.toml")
    results = apply_plan(plan)

Each call is one engine `Run` (each store opened once, closed at the end), with the settings read
from `env` (default: this process's environment) exactly as the CLI reads them. Errors are
`core.errors` exceptions (`UsageError` for bad targets, policies, plans and environment values).

The names are not `inventory`, `plan` and `apply`: those are the package's own subpackages
(`ghcr_janitor.plan` ...), so the package could not re-export functions under them. The package
`__init__` re-exports these lazily (keeping `janitor --version` import-light); the CLI commands are
shells over the same engine `Run`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Sequence

from ghcr_janitor.apply.journal import Journal
from ghcr_janitor.apply.results import TargetResult
from ghcr_janitor.core.defaults import DEFAULT_CONCURRENCY
from ghcr_janitor.core.errors import TargetsFailed, UsageError
from ghcr_janitor.core.models import Inventory
from ghcr_janitor.core.settings import Settings
from ghcr_janitor.engine.run import Run
from ghcr_janitor.inventory.gather import InventoryOptions
from ghcr_janitor.inventory.session import Session
from ghcr_janitor.plan.model import Plan
from ghcr_janitor.plan.planner import load
from ghcr_janitor.policy import Policy
from ghcr_janitor.stores.connect import ConnectOptions

DEFAULT_TAGS = ("cache-*",)


def _strings(value: object, what: str) -> list[str]:
    """A sequence of strings (one string is one item, never its characters); UsageError otherwise."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{what} must be a string or a list of strings, got {type(value).__name__}")
    return list(value)


def _concurrency(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 256:
        raise UsageError(f"concurrency must be a whole number from 1 to 256, got {value!r}")
    return value


def _run(tags: Sequence[str], all_tags: bool, concurrency: int, env: Mapping[str, str] | None,
         username: str | None, password: str | None, insecure: bool, now: datetime | None) -> Run:
    concurrency = _concurrency(concurrency)
    connect = ConnectOptions(insecure=insecure, username=username, password=password, concurrency=concurrency,
                             settings=Settings.from_env(env))
    options = InventoryOptions(tag_globs=_strings(tags, "tags"), all_tags=all_tags, concurrency=concurrency,
                               **({"now": now} if now is not None else {}))
    return Run(Session(connect, options))


def take_inventory(targets: Sequence[str], *, tags: Sequence[str] = DEFAULT_TAGS, all_tags: bool = False,
                   concurrency: int = DEFAULT_CONCURRENCY, env: Mapping[str, str] | None = None,
                   username: str | None = None, password: str | None = None, insecure: bool = False,
                   now: datetime | None = None) -> list[Inventory]:
    """Every target's inventory (globs expanded). When a target cannot be read, the others are
    still read, then `TargetsFailed` names each failure (its `inventories` hold the others)."""
    async def main() -> list[Inventory]:
        async with _run(tags, all_tags, concurrency, env, username, password, insecure, now) as run:
            results = await run.inventories(_strings(targets, "targets"))
        read = [r.inventory for r in results if r.inventory is not None]
        failed = {str(r.target): str(r.error) for r in results if r.inventory is None}
        if failed:
            raise TargetsFailed(failed, read)
        return read

    return asyncio.run(main())


def make_plan(targets: Sequence[str], policy: Policy | str | Path | None = None, *,
              tags: Sequence[str] = DEFAULT_TAGS, all_tags: bool = False,
              concurrency: int = DEFAULT_CONCURRENCY, env: Mapping[str, str] | None = None,
              username: str | None = None, password: str | None = None, insecure: bool = False,
              now: datetime | None = None) -> Plan:
    """The plan for `targets` under `policy` (a Policy, a policy file, or None: the packaged default).
    A target that could not be read has errors in its `TargetPlan` and no actions."""
    if isinstance(policy, Policy):
        loaded, name = policy, "library"
    elif policy is None or isinstance(policy, (str, Path)):
        loaded, name = load(None if policy is None else Path(policy))
    else:
        raise UsageError(f"policy must be a Policy, a path or None, got {type(policy).__name__}")

    async def main() -> Plan:
        async with _run(tags, all_tags, concurrency, env, username, password, insecure, now) as run:
            made, _ = await run.plan(_strings(targets, "targets"), loaded, name)
        return made

    return asyncio.run(main())


def apply_plan(plan: Plan, *, check_targets: bool = True,
               concurrency: int = DEFAULT_CONCURRENCY, env: Mapping[str, str] | None = None,
               username: str | None = None, password: str | None = None, insecure: bool = False
               ) -> list[TargetResult]:
    """Apply `plan` with every safety check of `janitor apply`: the last look before each delete,
    the pins, the foreign-plan refusal (`check_targets`). No journal is kept (a rerun of the same
    plan re-checks every action through the last look)."""
    if not isinstance(plan, Plan):
        raise UsageError(f"apply_plan takes a Plan (make_plan or read_plan), got {type(plan).__name__}")

    async def main() -> list[TargetResult]:
        async with _run((), False, concurrency, env, username, password, insecure,
                        datetime.now(timezone.utc)) as run:
            run.plan_targets(plan)
            return await run.apply(plan, Journal(None), check_targets=check_targets)

    return asyncio.run(main())
