"""Docker Hub's listings as versions: what its tag and image answers say, and nothing more.

- A tag (`paginated_tags` result): `name`, `digest` (the manifest or index the tag points at; older
  answers have none: then the only `images[]` entry's digest, else the tag is resolved over `/v2`),
  `media_type`, `tag_last_pushed`, `tag_last_pulled`, `tag_status`, and `images[]` (one per
  platform: `digest`, `last_pushed`, `last_pulled`, `status`).
- An image (the images listing, 2021 docs): `digest`, `tags[]` of `{tag, is_current}` (a tag that
  was once on it has `is_current` false), `last_pushed`, `last_pulled`, `status` (active/inactive).

A digest's push time is the latest push Hub shows for it (its tags' and its own); its pull time the
latest pull (None: never). Both go to `extra` (`pushed`, `last_pulled`, `pull_lag`), with `hub_status`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable

from ghcr_janitor.core import mediatypes as mt
from ghcr_janitor.core.digests import is_digest
from ghcr_janitor.core.timeparse import parse_time
from ghcr_janitor.stores.base import Version

AGE_SOURCE = "dockerhub/pushed"
# How late Hub may show a pull is not documented: taken as a day, as on ECR (a longer lag only keeps
# more: `not_pulled_for` counts a pull this recent as possibly unrecorded).
PULL_LAG = timedelta(hours=24)


def _latest(*times: datetime | None) -> datetime | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


@dataclass
class _Facts:
    tags: set[str] = field(default_factory=set)
    pushed: datetime | None = None
    pulled: datetime | None = None
    media_type: str | None = None
    status: str | None = None

    def saw(self, pushed: object, pulled: object, status: object = None) -> None:
        self.pushed = _latest(self.pushed, parse_time(pushed))
        self.pulled = _latest(self.pulled, parse_time(pulled))
        if isinstance(status, str) and status and self.status != "active":
            self.status = status


def tag_digest(tag: dict[str, Any]) -> str | None:
    """The digest a Hub tag result points at (None: it does not say)."""
    digest = tag.get("digest")
    if isinstance(digest, str) and is_digest(digest):
        return digest
    images = tag.get("images")
    if isinstance(images, list) and len(images) == 1 and isinstance(images[0], dict):
        only = images[0].get("digest")
        if isinstance(only, str) and is_digest(only) and not tag.get("media_type", "").endswith(("index.v1+json",
                                                                                                 "list.v2+json")):
            return only
    return None


def current_tags(tags: Iterable[dict[str, Any]]) -> tuple[dict[str, str], list[str]]:
    """(tag -> digest for every tag whose digest the listing says, names of those it does not)."""
    found: dict[str, str] = {}
    unknown: list[str] = []
    for tag in tags:
        name = tag.get("name")
        if not isinstance(name, str) or not name:
            continue
        digest = tag_digest(tag)
        if digest is None:
            unknown.append(name)
        else:
            found[name] = digest
    return found, sorted(set(unknown))


def is_untagged(image: dict[str, Any]) -> bool:
    """An image result with no current tag."""
    tags = image.get("tags") or []
    return not any(isinstance(t, dict) and t.get("is_current") for t in tags)


def versions(tags: list[dict[str, Any]], images: list[dict[str, Any]] | None,
             resolved: dict[str, str] | None = None) -> list[Version]:
    """Versions for every tagged digest and every untagged image; `resolved`: tag -> digest learnt
    over `/v2` for tags the listing gives no digest for."""
    facts: dict[str, _Facts] = {}
    for tag in tags:
        name = tag.get("name")
        digest = tag_digest(tag) or (resolved or {}).get(name)          # type: ignore[arg-type]
        if not isinstance(name, str) or digest is None:
            continue
        fact = facts.setdefault(digest, _Facts())
        fact.tags.add(name)
        fact.saw(tag.get("tag_last_pushed"), tag.get("tag_last_pulled"), tag.get("tag_status"))
        fact.media_type = fact.media_type or mt.normalise(tag.get("media_type"))
        for image in tag.get("images") or []:
            if isinstance(image, dict) and image.get("digest") == digest:
                fact.saw(image.get("last_pushed"), image.get("last_pulled"), image.get("status"))
    for image in images or []:
        digest = image.get("digest")
        if not isinstance(digest, str) or not is_digest(digest):
            continue
        if digest not in facts and not is_untagged(image):
            continue        # a current tag the tag listing did not show: not listed as untagged
        facts.setdefault(digest, _Facts()).saw(image.get("last_pushed"), image.get("last_pulled"), image.get("status"))
    out = []
    for digest, fact in sorted(facts.items()):
        extra: dict[str, Any] = {"pushed": fact.pushed, "last_pulled": fact.pulled, "pull_lag": PULL_LAG}
        if fact.status:
            extra["hub_status"] = fact.status
        out.append(Version(digest=digest, tags=tuple(sorted(fact.tags)), created=fact.pushed,
                           age_source=AGE_SOURCE if fact.pushed else None, media_type=fact.media_type, extra=extra))
    return out
