"""Plain data shared by the read path, the planner and the reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from ghcr_janitor.core.money import Cost, Price

# Actions-cache entry kinds (cli.md, `gha:` targets).
BUILDKIT_BLOB = "buildkit-blob"
BUILDKIT_INDEX = "buildkit-index"
ACTIONS_CACHE = "actions-cache"
CACHE_KINDS = (BUILDKIT_BLOB, BUILDKIT_INDEX, ACTIONS_CACHE)
REF_STATES = ("default", "live", "closed", "deleted", "unknown")


def cache_item_id(cache_id: int | None) -> str:
    """The inventory key of an Actions-cache entry (it has no digest): `cache:<id>`."""
    return f"cache:{cache_id}"

# Artifact kinds, as they appear in JSON output (cli.md).
BUILDKIT_CACHE = "buildkit-cache"
IMAGE = "image"
IMAGE_INDEX = "image-index"
ARTIFACT = "artifact"
ATTESTATION = "attestation"
UNKNOWN = "unknown"
KINDS = (BUILDKIT_CACHE, IMAGE, IMAGE_INDEX, ARTIFACT, ATTESTATION, UNKNOWN)

# `Artifact.broken`: an index some ("partial") or all ("ghost") of whose children are known
# to be missing (absent from a backend that lists every version or blob).
PARTIAL = "partial"
GHOST = "ghost"


@dataclass(frozen=True, slots=True)
class Descriptor:
    """An OCI content descriptor: what a manifest says about a blob or a child manifest."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Mapping[str, Any] | None = None
    artifact_type: str | None = None


@dataclass(frozen=True, slots=True)
class Manifest:
    """One parsed manifest (image manifest or index) and what it refers to.

    `blobs` are leaf descriptors (config, layers, BuildKit index entries), in document
    order and possibly repeated; `children` are descriptors of manifests that must be
    fetched to know their own blobs (image index entries, `subject` is separate).
    """

    digest: str
    media_type: str
    size: int
    kind: str
    blobs: tuple[Descriptor, ...] = ()
    children: tuple[Descriptor, ...] = ()
    config: Descriptor | None = None
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    created: datetime | None = None
    age_source: str | None = None
    cache_records: int | None = None


@dataclass
class Artifact:
    """A root manifest in a repository, with its full closure and sizes.

    `closure` maps every digest the artifact needs (its own manifest, child manifests,
    blobs) to its size, each counted once. `missing` lists child manifests known to be gone
    (the closure is still known: it is what is left); `broken` says how much is gone.

    `followers` are the listed artifacts that follow this one without being in its closure
    (referrers naming it as `subject`, theirs in turn: they go when it goes), and `follow_size`
    the bytes of their closures that its own closure does not hold, each blob once. `size`
    counts both, as `unique_size` does, so `unique_size <= size` always (cli.md).
    """

    digest: str
    media_type: str
    kind: str
    closure: dict[str, int]
    tags: list[str] = field(default_factory=list)
    created: datetime | None = None
    age_source: str | None = None
    manifest: Manifest | None = None
    children: tuple[str, ...] = ()
    subject: str | None = None
    unique_size: int = 0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    broken: str | None = None
    # Store-neutral facts the policy may select on (a cache entry's key, ref, ref_state,
    # family, ...); registries leave it empty.
    labels: dict[str, Any] = field(default_factory=dict)
    followers: tuple[str, ...] = ()
    follow_size: int = 0
    # An untagged root: how the janitor knows of it, "listed" (the store lists its untagged versions:
    # GHCR, layouts) or "remembered" (a digest once seen under a tag that no tag reaches now); None:
    # not said (reports take the store's `StoreTraits.lists_untagged`).
    untagged_source: str | None = None

    @property
    def size(self) -> int:
        """Its closure and what follows it (`followers`), each blob once."""
        return sum(self.closure.values()) + self.follow_size


@dataclass(frozen=True, slots=True)
class StoreTraits:
    """What an inventory's readers need to know about the kind of store it comes from.

    Each store class says it once (a class attribute `traits`) and the inventory carries it
    (`Inventory.traits`): the reports, the history and the metrics ask these facts, never the store's
    kind, so a new store shows correctly everywhere by saying its traits. The defaults describe a
    plain OCI registry.
    """

    # The words for where the bytes are, in sentences people read ("this repository grows 1 GiB a
    # week"): "the Actions cache", "this cache dir".
    place: str = "this repository"
    # The items are cache entries (an id, a key, a ref and its state, a family in `labels`), not tags
    # on manifests: `ls` lists entries, plans show keys and ids.
    entries: bool = False
    # Items can share content (layers): unique bytes, and the bytes families share, mean something.
    shares_blobs: bool = True
    # The store lists its untagged manifests itself (GHCR versions, a layout's index): an untagged
    # root that does not say otherwise is "listed" (`Artifact.untagged_source`).
    lists_untagged: bool = False
    # Blobs can stay on disk that no tag reaches any more (a local layout): `janitor gc` frees them,
    # and the report shows them beside the total.
    unreachable_blobs: bool = False
    # Which storage price applies (a key of `core.money.DEFAULT_PRICES` / `[prices.STORE]`): None for
    # none at all; a key without a default shows bytes only unless the settings file sets one.
    price: str | None = None


@dataclass
class Inventory:
    """Everything the janitor knows about one repository at one moment.

    `tags` holds every tag of the repository (not only the listed ones): safety decisions
    need the full digest -> tags map. `listed` is the subset the user asked about.
    """

    target: str
    tags: dict[str, str]
    artifacts: dict[str, Artifact]
    listed: list[str] = field(default_factory=list)
    untagged: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    backend: str = "oci"
    # Tags whose digest could not be learned: while any exist, nothing in this
    # repository may be deleted by digest (that digest might be theirs).
    unresolved: list[str] = field(default_factory=list)
    # Facts worth a line that are not errors (broken indexes, every missing child).
    warnings: list[str] = field(default_factory=list)
    # The listing filter the user asked for (--tag globs); None means --all-tags.
    tag_filter: tuple[str, ...] | None = None
    # Store-level facts (the Actions cache: usage, limit and where the limit came from).
    facts: dict[str, Any] = field(default_factory=dict)
    # What a reclaim figure means on this store, in one sentence (the store's `reclaim_note`):
    # every output that prints a reclaim figure prints this beside it ("" when the store says nothing).
    reclaim_note: str = ""
    # What kind of store this is, as facts (the store's `traits`): what the reports ask instead of `backend`.
    traits: StoreTraits = field(default_factory=StoreTraits)
    # The store's price (defaults and settings resolved) and what the repository costs a month at
    # today's size: None where no price is known (the engine sets both after gathering).
    price: Price | None = None
    cost: Cost | None = None

    def tags_of(self, digest: str) -> list[str]:
        return sorted(t for t, d in self.tags.items() if d == digest)

    def dependents(self) -> dict[str, set[str]]:
        """Listed artifact -> the other listed artifacts that follow it (closure or `subject`).

        On backends that store each platform manifest, attestation and referrer as its own
        version (GHCR), these are what "deleting an image" must take with it.
        """
        found: dict[str, set[str]] = {}
        for digest, art in self.artifacts.items():
            for ref in art.closure:
                if ref != digest and ref in self.artifacts:
                    found.setdefault(digest, set()).add(ref)
            if art.subject and art.subject != digest and art.subject in self.artifacts:
                found.setdefault(art.subject, set()).add(digest)
        return found

    def roots(self, dependents: dict[str, set[str]] | None = None) -> set[str]:
        """Listed artifacts that no other listed artifact references or refers to
        (`dependents`: `self.dependents()` if the caller has it already)."""
        deps = self.dependents() if dependents is None else dependents
        followers = {d for found in deps.values() for d in found}
        return set(self.artifacts) - followers

    def total_size(self, digests: list[str] | None = None) -> int:
        """Bytes of the union of the closures of `digests` and of what follows them (default: all
        artifacts), each blob once."""
        if digests is None:
            chosen = list(self.artifacts)
        else:
            chosen = list(digests)
            chosen += [f for d in digests if d in self.artifacts for f in self.artifacts[d].followers]
        union: dict[str, int] = {}
        for digest in chosen:
            art = self.artifacts.get(digest)
            if art is not None:
                union.update(art.closure)
        return sum(union.values())
