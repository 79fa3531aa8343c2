"""Build a `Session` (and the engine `Run` over it) from the common CLI flags."""

from __future__ import annotations

from ghcr_janitor.cli.common import echo_err, read_password, settings, shard_spec
from ghcr_janitor.stores.connect import ConnectOptions
from ghcr_janitor.core.errors import UsageError
from ghcr_janitor.inventory.gather import InventoryOptions
from ghcr_janitor.engine.run import Run
from ghcr_janitor.inventory.session import Session

DEFAULT_TAG_GLOBS = ["cache-*"]


def build_session(tag: list[str] | None, all_tags: bool, concurrency: int, insecure: bool,
                  username: str | None, password_stdin: bool, owner_type: str | None = None,
                  shard: str | None = None, max_requests: int | None = None) -> Session:
    if owner_type is not None and owner_type not in ("org", "user"):
        raise UsageError(f"--owner-type {owner_type!r}: expected org or user")
    connect = ConnectOptions(insecure=insecure, username=username, password=read_password(password_stdin),
                             concurrency=concurrency, owner_type=owner_type, settings=settings())
    inventory = InventoryOptions(tag_globs=list(tag) if tag else list(DEFAULT_TAG_GLOBS), all_tags=all_tags,
                                 concurrency=concurrency)
    connect.budget.max_requests = max_requests
    session = Session(connect, inventory, shard=shard_spec(shard), announce=echo_err)
    return session


def build_run(*args, **kwargs) -> Run:
    """A run of the engine over a session built from the common flags (`build_session`'s arguments):
    every store it opens stays open until `run.aclose()`."""
    return Run(build_session(*args, **kwargs))


async def plan_with_progress(run: Run, names: list[str], policy, policy_name: str):
    """Inventory and plan every target behind the TTY progress bar: `plan`, `prune` and `report`
    start alike. Returns the plan and its inventories (the stores stay open for applying)."""
    from ghcr_janitor.cli.progress import progress_bar

    with progress_bar() as bar:
        run.session.progress = bar
        try:
            return await run.plan(names, policy, policy_name)
        finally:
            run.session.progress = None
