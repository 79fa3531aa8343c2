"""The interface every store implements (OCI registry, GHCR, local OCI layout, Amazon ECR, the
Actions cache), and the small optional powers a store may add (checked with `isinstance`, never by
kind).

Every store is a `Store`: it has a name, says what its reclaim figure means and what its
inventory's readers need to know of it (`traits`), and is closed once at the end of a run. It
either holds manifests (`Registry`: the inventory is gathered from its tags and manifests; apply
retags, untags and deletes by pinned digest after a last look), or gathers its own facts
(`GathersFacts`) and acts on entries by id (`ActsOnEntries`: the Actions cache, a fresh look, then
deletes by cache id). Optional powers: `LooksAtTags`, `LooksAtOnce`, `ListsIndexVersions`,
`RemembersTags`, `ProbesDeletes`, `SpendsRequestBudget` (GitHub's REST budget), `ListsTargets` (glob expansion),
`CollectsGarbage` (a layout's blobs after deletes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

from ghcr_janitor.core.models import Inventory, StoreTraits

# The reclaim sentence of a store that says nothing more precise: what the figure is counted from.
RECLAIM_NOTE = "the bytes no artifact left in this repository references (each blob counted once)"


@dataclass(frozen=True)
class RawManifest:
    """Manifest bytes exactly as stored, verified against `digest`."""

    digest: str
    media_type: str
    body: bytes


@dataclass(frozen=True)
class Version:
    """A backend-listed root object (GHCR package version, layout index entry).

    Backends that can enumerate untagged manifests return these from `list_versions`.
    """

    digest: str
    tags: tuple[str, ...] = ()
    created: datetime | None = None
    age_source: str | None = None
    version_id: int | None = None
    media_type: str | None = None
    extra: dict = field(default_factory=dict)


@runtime_checkable
class Store(Protocol):
    """What every store has, whatever it holds."""

    name: str                   # repository name, layout path or owner/repo, for messages
    kind: str                   # for messages and the plan file's `backend`; never switched on above stores/
    reclaim_note: str           # what this store's reclaim figure means (one sentence)
    traits: StoreTraits         # what an inventory's readers need to know of the store (core.models)

    async def aclose(self) -> None:
        """Release connections and locks (once, at the end of the run)."""


@runtime_checkable
class GathersFacts(Protocol):
    """A store whose inventory is its own listing (the Actions cache: entries, not manifests)."""

    async def inventory(self) -> Inventory:
        """Every fact planning needs, gathered now."""


@runtime_checkable
class ActsOnEntries(Protocol):
    """A store whose items are deleted by id after a fresh look at them (the Actions cache)."""

    async def look(self, keys_by_ref: dict[str, set[str]]) -> Any:
        """The last look before deleting: these entries, their groups and their refs' states, now."""

    async def delete(self, cache_id: int, *, send_by: float | None = None) -> bool:
        """True if deleted now, False if it was already gone."""


@runtime_checkable
class SpendsRequestBudget(Protocol):
    """A store whose requests spend the run's shared GitHub REST budget (--max-requests, rate
    limits): apply asks it what a target's actions cost before it starts them."""

    def requests_needed(self, todo: list, hinted: list) -> int:
        """About how many REST requests applying `todo` (and checking the journalled `hinted`) takes."""


@runtime_checkable
class ListsTargets(Protocol):
    """What a glob (`HOST/*`, `ghcr.io/OWNER/*`, `gha:OWNER/*`) stands for: a registry's catalog,
    an owner's packages, an organisation's repositories (`stores.connect.open_lister`)."""

    fold_case: bool             # names compare case-insensitively (GitHub owners and repositories)

    async def target_names(self) -> list[str]:
        """Every concrete target string the store lists (unfiltered)."""

    async def aclose(self) -> None:
        """Release connections."""


@runtime_checkable
class CollectsGarbage(Protocol):
    """A store whose deletes leave blobs behind until its own gc runs (a local layout): `prune`
    collects them after applying."""

    def collect_garbage(self, grace: timedelta, now: datetime) -> Any:
        """Delete unreachable blobs older than `grace`; the gc report (`bytes_freed`, `ok`, ...)."""


@runtime_checkable
class Registry(Protocol):
    """What the inventory, planner and applier need from a backend.

    All methods are async. Errors are `ghcr_janitor.core.errors` exceptions; `NotFoundError`
    for anything missing.
    """

    name: str                   # repository name or layout path, for messages
    kind: str                   # "oci" | "ghcr" | "layout"
    lists_untagged: bool        # True if list_versions() includes untagged roots
    # What this store's reclaim figure is, in one sentence people read beside it (plan, apply,
    # step summary, metrics HELP, HTML report): "freed at once", "freed by the registry's GC, less
    # what ... still shares". The inventory carries it (`Inventory.reclaim_note`); nothing above
    # stores/ writes its own version of it.
    reclaim_note: str = RECLAIM_NOTE

    async def list_tags(self) -> list[str]:
        """Every tag of the repository, deduplicated and sorted."""

    async def list_versions(self) -> list[Version] | None:
        """Root objects with metadata, or None if the backend has no such listing."""

    async def resolve(self, tag: str) -> str | None:
        """The digest a tag points at now, or None if the tag does not exist."""

    async def get_manifest(self, reference: str) -> RawManifest:
        """Fetch a manifest by tag or digest, verified."""

    async def get_blob(self, digest: str, max_size: int) -> bytes:
        """Fetch a small blob (config), verified, refusing more than max_size bytes."""

    async def put_manifest(self, tag: str, body: bytes, media_type: str) -> str:
        """Store manifest bytes under a tag; returns the digest the backend reports."""

    async def delete_manifest(self, digest: str) -> None:
        """Delete a manifest by digest (removes every tag on it). NotFoundError if gone."""

    async def delete_tag(self, tag: str, digest: str) -> None:
        """Remove one tag, keeping the digest (native tag delete or placeholder technique)."""

    def known_missing(self, digest: str, listed: frozenset[str]) -> bool:
        """After a NotFoundError for `digest`: is it known to be gone, not merely unreadable?

        True only where the backend lists everything it holds and `digest` is not there
        (`listed`: the digests of `list_versions`). Plain OCI registries can never say so.
        """

    async def aclose(self) -> None:
        """Release connections and locks."""


@runtime_checkable
class LooksAtTags(Protocol):
    """A backend that can read every tag's digest fresh, bypassing any listing cache.

    Apply's last look (`apply.last_look`) calls this immediately before mutating requests;
    backends without it are looked at through `list_versions` (fresh) or `list_tags` + `resolve`.
    `deletes_per_look`: how many deletes one look may cover (all sent at once right after it).
    """

    deletes_per_look: int

    async def tag_names(self) -> list[str]:
        """Every tag name now (never cached)."""

    async def current_tags(self, names: list[str] | None = None) -> dict[str, str]:
        """Every tag (or each of `names`) -> the digest it points at now; one that vanished is left out."""


@runtime_checkable
class LooksAtOnce(Protocol):
    """A `LooksAtTags` store whose look costs a listing or two whatever the number of tags (ECR's
    ListImages gives every tag's digest, 1,000 a page): one look covers `deletes_per_look` deletes
    however few tags it read, all sent at once right after it (ECR: one BatchDeleteImage call)."""

    look_at_once: bool


@runtime_checkable
class ListsIndexVersions(Protocol):
    """A backend that lists untagged manifests too (GHCR versions): apply checks untagged and
    child deletes against a fresh listing, and against its consistency with the tag list."""

    async def consistent_listing(self, max_age: float = 0.0) -> tuple[list[Version], str | None]:
        """Versions (a listing at most `max_age` s old) and why it disagrees with the tag list
        even after a relist (None when every listed tag is on a listed version)."""


@runtime_checkable
class ListsInPages(Protocol):
    """A `ListsIndexVersions` store that hands each page of its version listing on as it arrives
    (`on_page(digests)`): the inventory starts reading those manifests while the rest is listed,
    instead of after the last page (a GHCR package of 100,000 versions is 1,000 sequential pages)."""

    async def consistent_listing_paged(self, on_page: Callable[[list[str]], None],
                                       max_age: float = 0.0) -> tuple[list[Version], str | None]:
        """`consistent_listing`, calling `on_page` with the digests of every page read."""


@runtime_checkable
class ProbesDeletes(Protocol):
    """A store whose delete endpoints may be refused whatever the policy (Docker Hub's are thinly
    documented): the inventory asks once, and on refusal the plan for that target holds nothing
    destructive, with the store's one-line reason."""

    async def deletes_refused(self) -> str | None:
        """None when deletes can be sent; else why not, in one line (no request that changes anything)."""


@dataclass(frozen=True)
class Remembered:
    """What a store's memory of earlier runs' tags finds now (`RemembersTags.remembered`)."""

    versions: list[Version]         # remembered digests no tag reaches now, still present: untagged roots
    since: datetime | None          # since when this target's tags are remembered (None: this run is the first)
    unchecked: int = 0              # remembered digests whose presence could not be learned (not listed)


@runtime_checkable
class RemembersTags(Protocol):
    """A store that cannot list its untagged manifests (a plain OCI registry) but remembers, per
    target in the state directory, the digest each tag had when last seen, so that what an
    overwritten tag left behind is found on later runs. Its listing stays partial: absence from it
    proves nothing (`known_missing` stays False)."""

    async def remembered(self, tagged: frozenset[str], now: datetime) -> Remembered | None:
        """The remembered digests not in `tagged` (every digest a tag points at now), probed now:
        those still present as untagged `Version`s (`created`: when last seen tagged), those gone
        forgotten. None when the store keeps no memory (none configured, or unusable: warned)."""

    def remember(self, tags: Mapping[str, str], now: datetime) -> None:
        """Record tag -> digest of a finished inventory: only digests read whole and verified."""
