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
