"""The Google extension of `GET /v2/<name>/tags/list`: besides `tags[]`, a `manifest` map of every
manifest the image holds, tagged or not, and `child[]` (the names one level below).

    {"name": "p/r/app", "tags": ["cache"], "child": [],
     "manifest": {"sha256:...": {"imageSizeBytes": "123", "mediaType": "...", "tag": ["cache"],
                                 "timeCreatedMs": "0", "timeUploadedMs": 1767225600000}}}

Artifact Registry sends `timeUploadedMs` as a number, Container Registry as a string; sizes and
creation times are strings on both (google/go-containerregistry `pkg/v1/google/list.go`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from ghcr_janitor.core.digests import is_digest
from ghcr_janitor.core.errors import RegistryError


@dataclass(frozen=True)
class Entry:
    """One manifest of the map."""

    digest: str
    tags: tuple[str, ...]
    media_type: str | None
    size: int | None
    uploaded: datetime | None
    created: datetime | None


@dataclass
class Listing:
    """One read of the tags list (every page merged)."""

    entries: dict[str, Entry] = field(default_factory=dict)
    tags: set[str] = field(default_factory=set)          # `tags[]` as sent
    children: set[str] = field(default_factory=set)      # `child[]` as sent (relative names)
    has_map: bool = False                                # the extension was there at all

    def tag_map(self) -> dict[str, str]:
        """tag -> digest, from the manifest map."""
        return {t: e.digest for e in self.entries.values() for t in e.tags}

    def missing_tags(self) -> list[str]:
        """Tags `tags[]` names that no manifest entry carries (an incomplete map)."""
        carried = self.tag_map()
        return sorted(t for t in self.tags if t not in carried)


def _number(value: object) -> int | None:
    """An int from a JSON number or a decimal string (AR vs GCR); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _millis(value: object) -> datetime | None:
    """A time from milliseconds since the epoch; 0 and absurd values (BuildKit's epoch-0 configs) are None."""
    ms = _number(value)
    if ms is None or ms <= 0 or ms > 253402300799000:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def merge_page(listing: Listing, doc: object, what: str) -> None:
    """Add one page of the tags list to `listing`; RegistryError for a shape that is not the list."""
    if not isinstance(doc, dict):
        raise RegistryError(f"{what}: the registry's answer is not a JSON object")
    tags = doc.get("tags") or []
    children = doc.get("child") or []
    manifests = doc.get("manifest")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise RegistryError(f"{what}: 'tags' is not a list of strings")
    if not isinstance(children, list) or not all(isinstance(c, str) for c in children):
        raise RegistryError(f"{what}: 'child' is not a list of strings")
    listing.tags.update(tags)
    listing.children.update(children)
    if manifests is None:
        return
    if not isinstance(manifests, dict):
        raise RegistryError(f"{what}: 'manifest' is not a map of digests")
    listing.has_map = True
    for digest, info in manifests.items():
        if not is_digest(digest) or not isinstance(info, dict):
            continue
        entry_tags = info.get("tag") or []
        if not isinstance(entry_tags, list):
            entry_tags = []
        listing.entries[digest] = Entry(
            digest=digest,
            tags=tuple(sorted({t for t in entry_tags if isinstance(t, str)})),
            media_type=info.get("mediaType") if isinstance(info.get("mediaType"), str) else None,
            size=_number(info.get("imageSizeBytes")),
            uploaded=_millis(info.get("timeUploadedMs")),
            created=_millis(info.get("timeCreatedMs")),
        )
