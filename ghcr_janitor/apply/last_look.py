"""The last look: what the tags (and, where listed, index versions) reach right now.

Apply takes one immediately before every delete. Only where a look is dear (more than
`TAGS_PER_LOOK` = 64 tags to HEAD) does one look cover a small batch: one delete per 64 tags, at
most 16 on an OCI registry (`deletes_per_look`) and 1 on GHCR (its REST deletes are paced), all
sent at once right after the look. A plan is a request, never an authority: a delete is skipped
when its digest is reachable in the look that precedes it, whatever the plan says.

What a look reads:
- every tag's digest now (OCI: the tag list and one HEAD per tag; GHCR: the same over its OCI
  side, which costs no REST budget; layouts: index.json);
- the children of every tagged index (manifests are immutable: each digest is fetched once per
  run and remembered);
- for an untagged or child delete on a store that lists untagged manifests (GHCR), the version
  listing (at most `VERSIONS_MAX_AGE` s old, minus our own deletes) cross-checked against the tag
  list, and the children of every listed index version.

No registry offers a conditional delete, so a window remains. For a new tag, it is from the last
tag-list read (the look ends by reading the tag list again and walking any tag that appeared) to
the DELETE: about two round trips. For a tag that already existed and is moved, it is from that
tag's HEAD (the HEADs run concurrently, early in the look) to the DELETE: the look's duration.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ghcr_janitor.core.errors import JanitorError, NotFoundError
from ghcr_janitor.core.manifests import parse_manifest
from ghcr_janitor.stores.base import ListsIndexVersions, LooksAtOnce, LooksAtTags, Registry

VERSIONS_MAX_AGE = 10.0     # seconds a GHCR version listing may serve untagged/child deletes
MAX_INDEX_DEPTH = 8         # nested indexes followed this deep (deeper: treated as unreadable)
CATCH_UP_ROUNDS = 3         # tag-list re-reads at the end of a look (new tags are HEADed and walked)


@dataclass
class Look:
    """One last look. `users[d]`: who reaches digest d now (tags first, then index versions)."""

    tags: dict[str, str]
    users: dict[str, list[str]] = field(default_factory=dict)
    problem: str | None = None               # untagged/child deletes are unsafe on this look
    blind: str | None = None                 # no delete by digest is safe on this look

    def tags_on(self, digest: str) -> list[str]:
        return sorted(t for t, d in self.tags.items() if d == digest)

    def reached_through(self, digest: str) -> list[str]:
        """Who reaches `digest` through an index (not by a tag on the digest itself)."""
        return [u for u in self.users.get(digest, []) if " via " in u or u.startswith("index version")]


TAGS_PER_LOOK = 64          # a look covers one delete per this many tags it had to read (rounded up)


def deletes_per_look(registry: Registry, tags: int | None = None) -> int:
    """How many deletes one look covers: one, unless the look is dear (more than `TAGS_PER_LOOK`
    tags to HEAD), then one per `TAGS_PER_LOOK` tags, never more than the store allows."""
    cap = max(1, int(registry.deletes_per_look)) if isinstance(registry, LooksAtTags) else 1
    if tags is None or isinstance(registry, LooksAtOnce):     # a look that costs the same for any number of tags
        return cap
    return max(1, min(cap, -(-tags // TAGS_PER_LOOK)))


class LastLook:
    """Takes looks at one store, remembering the children of every manifest it has read."""

    def __init__(self, registry: Registry):
        self.registry = registry
        # digest -> (child manifests to walk, every digest it lists: children, entries of any type, blobs)
        self._children: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}

    async def take(self, with_versions: bool = False) -> Look:
        """A fresh look; `with_versions` adds the listing (for untagged and child deletes)."""
        problem = None
        versions = None
        if with_versions and isinstance(self.registry, ListsIndexVersions):
            versions, problem = await self.registry.consistent_listing(VERSIONS_MAX_AGE)
        elif with_versions:
            versions = await self.registry.list_versions()
        if isinstance(self.registry, LooksAtTags):
            tags = await self.registry.current_tags()
        else:
            tags = await _listed_tags(self.registry)
        look = Look(tags, problem=problem)
        roots = [(f"tag {t}", d) for t, d in sorted(tags.items())]
        if versions is not None:
            roots += [(f"index version {v.digest}", v.digest) for v in versions]
        look.blind = await self._reach(look, roots)
        if isinstance(self.registry, LooksAtTags):
            await self._catch_up(look)
        return look

    async def _catch_up(self, look: Look) -> None:
        """Read the tag list once more after the HEADs: a tag created meanwhile (`imagetools create
        -t release …` while we looked) is HEADed and walked too, so the window for a new tag is the
        last tag-list read, not the whole look. Bounded: `CATCH_UP_ROUNDS` rounds."""
        assert isinstance(self.registry, LooksAtTags)
        for _ in range(CATCH_UP_ROUNDS):
            new = sorted(set(await self.registry.tag_names()) - set(look.tags))
            if not new:
                return
            found = await self.registry.current_tags(new)
            look.tags.update(found)
            trouble = await self._reach(look, [(f"tag {t}", d) for t, d in sorted(found.items())])
            look.blind = look.blind or trouble
        look.blind = look.blind or "tags kept appearing while the janitor looked"

    async def _reach(self, look: Look, roots: list[tuple[str, str]]) -> str | None:
        """Fill `look.users` from `roots`; a manifest that cannot be read is a problem."""
        problem: str | None = None
        for who, digest in roots:
            if who.startswith("tag "):
                look.users.setdefault(digest, []).append(who)
        frontier = [(who, digest, 0) for who, digest in roots]
        while frontier:
            gone = await self._fetch({d for _, d, _ in frontier})
            nxt = []
            for who, digest, depth in frontier:
                known = self._children.get(digest)
                if known is None:
                    # Gone is fine for a listed version (deleted meanwhile) and for a child (a broken
                    # index: nothing there to protect); a tag's own manifest must be readable.
                    if not (digest in gone and (depth or who.startswith("index version"))):
                        problem = problem or f"the manifest of {who} ({digest}) could not be read"
                    continue
                children, listed = known
                if depth >= MAX_INDEX_DEPTH and children:
                    problem = problem or f"{who}: indexes nested deeper than {MAX_INDEX_DEPTH}"
                    continue
                base = who.split(" via ")[0]
                label = f"{base} via {digest}" if base.startswith("tag ") else base
                for child in listed:            # whatever its descriptor says it is
                    users = look.users.setdefault(child, [])
                    if label not in users:
                        users.append(label)
                        if child in children:
                            nxt.append((base, child, depth + 1))
            frontier = nxt
        return problem

    async def _fetch(self, digests: set[str]) -> set[str]:
        """Read (once per run) the children of every digest not yet known; returns those not found."""
        todo = sorted(d for d in digests if d not in self._children)
        gone: set[str] = set()

        async def one(digest: str) -> None:
            try:
                raw = await self.registry.get_manifest(digest)
                parsed = parse_manifest(raw.body, digest, raw.media_type)
                children = tuple(c.digest for c in parsed.children)
                self._children[digest] = (children, children + tuple(b.digest for b in parsed.blobs))
            except NotFoundError:
                gone.add(digest)
            except JanitorError:
                pass                    # unreadable: not remembered (`_reach` says so)

        await asyncio.gather(*(one(d) for d in todo))
        return gone


async def _listed_tags(registry: Registry) -> dict[str, str]:
    """Tags now, for a store without `current_tags`: its (fresh) listing, else a HEAD per tag."""
    versions = await registry.list_versions()
    if versions is not None:
        return {t: v.digest for v in versions for t in v.tags}
    found: dict[str, str] = {}
    for tag in await registry.list_tags():
        digest = await registry.resolve(tag)
        if digest is not None:
            found[tag] = digest
    return found
