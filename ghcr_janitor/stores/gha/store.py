"""The Actions cache as a store: open it for a target, gather its facts, act on it (delete by id)."""

from __future__ import annotations

from ghcr_janitor.core.models import Inventory, StoreTraits
from ghcr_janitor.core.reference import Target
from ghcr_janitor.net.github import github_token
from ghcr_janitor.stores.gha.api import ActionsCacheApi
from ghcr_janitor.stores.gha.gather import Look, build_cache_inventory, look_at

# Waiting out an hourly budget is not worth holding a CI job for: stop and let a rerun continue.
MAX_WAIT_SECONDS = 300.0


class CacheStore:
    """`gha:OWNER/REPO`: facts from the REST listing, deletes by cache id only."""

    kind = "gha"
    traits = StoreTraits(place="the Actions cache", entries=True, shares_blobs=False)
    reclaim_note = ("freed as soon as the entries are deleted (their sizes as GitHub lists them; the "
                    "repository's usage figure catches up within minutes)")

    def __init__(self, target: Target, api: ActionsCacheApi):
        self.target, self.api = target, api
        self.name = target.repository

    def __repr__(self) -> str:
        return f"CacheStore({self.name}, api={self.api.api_url})"

    async def inventory(self) -> Inventory:
        inventory = await build_cache_inventory(self.api, self.name)
        inventory.reclaim_note, inventory.traits = self.reclaim_note, self.traits
        return inventory

    async def look(self, keys_by_ref: dict[str, set[str]]) -> Look:
        """A last look before deleting: these entries with their groups, their refs' states, now."""
        return await look_at(self.api, keys_by_ref)

    async def delete(self, cache_id: int, *, send_by: float | None = None) -> bool:
        """True if deleted now, False if it was already gone; LookExpired if a rate-limit wait
        would send it after `send_by` (not sent)."""
        return await self.api.delete(cache_id, send_by=send_by)

    async def aclose(self) -> None:
        await self.api.aclose()


def open_cache(target: Target, options, *, sleep=None, clock=None) -> CacheStore:
    """A CacheStore for `gha:OWNER/REPO`; the token comes from the same places as for ghcr.io."""
    settings = options.settings
    owner, _, repo = target.name.partition("/")
    api = ActionsCacheApi(owner, repo, github_token(options), settings=settings, api_url=settings.github_api_url,
                          sleep=sleep, clock=clock, deletes_per_minute=settings.gha_deletes_per_minute,
                          max_wait=MAX_WAIT_SECONDS, log_to=options.log, budget=options.budget,
                          timeout=settings.http.timeout)
    return CacheStore(target, api)
