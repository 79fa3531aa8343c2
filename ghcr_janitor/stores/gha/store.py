"""The Actions cache as a store: open it for a target, gather its facts, act on it (delete by id)."""

from __future__ import annotations

from ghcr_janitor.core.models import Inventory, StoreTraits
from ghcr_janitor.core.reference import Target
from ghcr_janitor.net.github import github_token
from ghcr_janitor.stores.gha.api import ActionsCacheApi
from ghcr_janitor.stores.gha.gather import Look, build_cache_inventory, listing_prefixes, look_at

# Waiting out an hourly budget is not worth holding a CI job for: stop and let a rerun continue.
MAX_WAIT_SECONDS = 300.0
# The bound of a last look (apply/cache_applier.py): at most this many deletes follow one look.
LOOK_EVERY = 10


def keys_by_ref(actions: list) -> dict[str, set[str]]:
    """ref -> the keys of the planned entries under it (what a look lists)."""
    keys: dict[str, set[str]] = {}
    for a in actions:
        if a.ref is not None and a.key is not None:
            keys.setdefault(a.ref, set()).add(a.key)
    return keys


def requests_needed(actions: list, default_branch: str | None = None) -> int:
    """The REST requests applying `actions` takes when each listing fits one page and nothing is
    retried: per batch one look (the repository; per ref a listing per family prefix and, but for
    the default branch, its state; a probe when a branch or tag is among them) plus its deletes."""
    total = 0
    for start in range(0, len(actions), LOOK_EVERY):
        chunk = actions[start:start + LOOK_EVERY]
        keys = keys_by_ref(chunk)
        default = f"refs/heads/{default_branch}"
        named = [r for r in keys if r.startswith(("refs/heads/", "refs/tags/")) and r != default]
        total += 1 + sum(len(listing_prefixes(k)) for k in keys.values()) + len(set(keys) - {default})
        total += bool(named) + len(chunk)
    return total


class CacheStore:
    """`gha:OWNER/REPO`: facts from the REST listing (`GathersFacts`), deletes by cache id only after
    a fresh look (`ActsOnEntries`), on GitHub's REST budget (`SpendsRequestBudget`)."""

    kind = "gha"
    traits = StoreTraits(place="the Actions cache", entries=True, shares_blobs=False, price="gha")
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

    def requests_needed(self, todo: list, hinted: list) -> int:
        """`SpendsRequestBudget`: a look per LOOK_EVERY entries and their deletes; a journalled entry
        costs its share of a look only."""
        return requests_needed(todo) + (requests_needed(hinted) - len(hinted) if hinted else 0)

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
