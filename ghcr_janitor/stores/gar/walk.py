"""What a GAR/GCR glob stands for.

- Artifact Registry: the REST packages of `PROJECT/REPOSITORY` (1,000 a page); for a glob at the
  repository level (`HOST/PROJECT/*`), the project's Docker repositories in that location first.
  (The `/v2` `child[]` of an AR repository stops near 1,000 names: google/go-containerregistry#1643.)
- Container Registry (`gcr.io/PROJECT/*`): `child[]` of `/v2/<prefix>/tags/list`, walked down from
  the glob's fixed part; a name is an image when its list holds a manifest or a tag.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Awaitable, Callable

from ghcr_janitor.core.errors import NotFoundError, RegistryError
from ghcr_janitor.core.reference import Target
from ghcr_janitor.stores.gar.api import ArtifactRegistryApi
from ghcr_janitor.stores.gar.listing import Listing
from ghcr_janitor.stores.gar.names import GarName

MAX_WALK = 10_000       # gcr.io names read in one walk


async def ar_names(api: ArtifactRegistryApi, gname: GarName) -> list[str]:
    """`PROJECT/REPOSITORY/IMAGE` of every package under the glob's fixed repository (or every
    repository of the project in that location)."""
    repositories = [gname.repository] if gname.repository else await api.repositories(gname.project, gname.location or "")
    names: list[str] = []
    for repository in repositories:
        path = replace(gname, repository=repository).repository_path
        names += [f"{gname.project}/{repository}/{package}" for package in await api.packages(path)]
    return sorted(names)


async def gcr_names(glob: Target, gname: GarName, read_list: Callable[[str], Awaitable[Listing]]) -> list[str]:
    """Every image at or below the glob's fixed part, by `child[]` (one GET per name walked)."""
    start = "/".join([gname.project, *([gname.image] if gname.image else [])])
    todo, found, walked = [start], [], 0
    while todo:
        name = todo.pop()
        walked += 1
        if walked > MAX_WALK:
            raise RegistryError(f"{glob}: more than {MAX_WALK} names below {start}; name a narrower prefix")
        try:
            listing = await read_list(name)
        except NotFoundError:
            continue
        if listing.entries or listing.tags:
            found.append(name)
        todo += [f"{name}/{child}" for child in sorted(listing.children)]
    return sorted(found)
