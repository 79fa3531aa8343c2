"""RFC 8288 `Link` header parsing: the `rel="next"` target, relative or absolute."""

from __future__ import annotations

import re

_LINK = re.compile(r'<([^>]*)>\s*((?:;\s*[^;,]+)*)')
_REL = re.compile(r'rel\s*=\s*"?([^";]+)"?', re.IGNORECASE)


def next_link(header: str | None) -> str | None:
    """The URL of the `rel="next"` link in a Link header, as written (may be relative)."""
    if not header:
        return None
    for match in _LINK.finditer(header):
        url, params = match.group(1), match.group(2)
        rel = _REL.search(params or "")
        if rel and "next" in rel.group(1).lower().split():
            return url.strip()
    return None


def same_origin(base: str, link: str, doing: str) -> str:
    """The absolute URL of `link` (relative to `base`, the request it came with), if it stays on
    `base`'s scheme and host; a `RegistryError` otherwise: a pagination link must never carry the
    run's credentials to another host, or from HTTPS to plain HTTP."""
    from urllib.parse import urljoin, urlsplit

    from ghcr_janitor.core.errors import RegistryError

    url = urljoin(base, link)
    ours, theirs = urlsplit(base), urlsplit(url)
    if (theirs.scheme, theirs.netloc) != (ours.scheme, ours.netloc):
        shown = f"{theirs.scheme}://{theirs.hostname or '?'}"
        raise RegistryError(f"{doing}: the next page is on another host ({shown}); not followed")
    return url
