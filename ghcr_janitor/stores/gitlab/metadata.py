"""The GitLab container registry's own API (`/gitlab/v1/`, container-registry `docs/spec/gitlab/api.md`),
served next to `/v2` where the registry runs with its metadata database (GitLab.com; self-managed
with the database enabled). Same credentials as `/v2` (docker config, the registry's JWT).

`GET /gitlab/v1/` answers 200 where it is available. `GET /gitlab/v1/repositories/<path>/tags/list/`
lists every tag with `digest`, `media_type`, `size_bytes`, `created_at`, `updated_at` and
`published_at` ("the latest timestamp when the tag was published": created or moved), `n` up to
1,000 a page, `Link: rel="next"` (followed on the registry's own scheme and host only). Tags only:
untagged manifests are not listed. Answers are read to at most BODY_CAP bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ghcr_janitor.core.digests import is_digest
from ghcr_janitor.core.errors import NotFoundError, RegistryError
from ghcr_janitor.core.timeparse import parse_time
from ghcr_janitor.net.http import BodyTooLarge
from ghcr_janitor.net.links import next_link, same_origin
from ghcr_janitor.net.status import json_of, raise_for_status
from ghcr_janitor.stores.oci.registry import OciRegistry

PAGE = 1000                     # the API's maximum `n` (default 100)
MAX_PAGES = 10_000
BODY_CAP = 16 << 20             # bytes of one page (1,000 tags are well under 1 MiB)
PROBE_CAP = 64 << 10


@dataclass(frozen=True)
class PublishedTag:
    name: str
    digest: str
    media_type: str | None
    size: int | None
    published: datetime | None


async def available(oci: OciRegistry) -> bool:
    """Does the registry serve its metadata API? (200 on `/gitlab/v1/`; 404: no database; else no API)."""
    try:
        response, _ = await oci.client.send("GET", f"{oci.base_url}/gitlab/v1/", log_to=oci.log, cap=PROBE_CAP)
    except (RegistryError, BodyTooLarge):
        return False
    return response.status_code == 200


async def published_tags(oci: OciRegistry) -> list[PublishedTag]:
    """Every tag of `oci.name` with its digest and publish time (1,000 a page)."""
    url: str | None = f"{oci.base_url}/gitlab/v1/repositories/{oci.name}/tags/list/?n={PAGE}"
    doing = f"listing the tags of {oci.name} (GitLab metadata API)"
    found: dict[str, PublishedTag] = {}
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        assert url is not None
        try:
            response, body = await oci.client.send("GET", url, log_to=oci.log, cap=BODY_CAP)
        except BodyTooLarge as exc:
            size = f" ({exc.size} bytes)" if exc.size is not None else ""
            raise RegistryError(f"{doing}: the answer{size} is over the {BODY_CAP} byte cap; not read") from None
        if response.status_code == 404:
            raise NotFoundError(f"repository {oci.name} not found (GitLab metadata API)", status=404)
        raise_for_status(response, doing)
        page = json_of(body, doing, list, "GitLab's metadata API")
        for item in page:
            tag = _tag(item)
            if tag is not None:
                found[tag.name] = tag
        link = next_link(response.headers.get("link"))
        if not link or not page:
            return [found[n] for n in sorted(found)]
        url = same_origin(url, link, doing)
        if url in seen:
            raise RegistryError(f"{doing}: the Link header loops back to a page already read")
        seen.add(url)
    raise RegistryError(f"{doing}: more than {MAX_PAGES} pages")


def _tag(item: object) -> PublishedTag | None:
    if not isinstance(item, dict):
        return None
    name, digest = item.get("name"), item.get("digest")
    if not isinstance(name, str) or not isinstance(digest, str) or not is_digest(digest):
        return None
    size = item.get("size_bytes")
    published = parse_time(item.get("published_at")) or parse_time(item.get("updated_at")) \
        or parse_time(item.get("created_at"))
    media_type = item.get("media_type")
    return PublishedTag(name, digest, media_type if isinstance(media_type, str) else None,
                        size if isinstance(size, int) and not isinstance(size, bool) else None, published)
