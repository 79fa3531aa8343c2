"""Timestamps as registries and BuildKit write them (RFC 3339, nanoseconds, offsets)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:?\d{2})?$"
)


def parse_time(value: object) -> datetime | None:
    """Parse an RFC 3339 time (any fraction length, any offset) into aware UTC; None if invalid."""
    if not isinstance(value, str):
        return None
    match = _RFC3339.match(value.strip())
    if not match:
        return None
    date, clock, fraction, offset = match.groups()
    micro = (fraction or "0")[:6].ljust(6, "0")
    if not offset or offset in ("Z", "z"):
        offset = "+00:00"
    elif ":" not in offset:
        offset = offset[:3] + ":" + offset[3:]
    try:
        parsed = datetime.fromisoformat(f"{date}T{clock}.{micro}{offset}")
    except ValueError:
        return None
    # Go's zero time (0001-01-01) means "unset".
    if parsed.year <= 1:
        return None
    return parsed.astimezone(timezone.utc)


def format_time(value: datetime | None) -> str | None:
    """UTC RFC 3339 with a Z, second precision: 2026-11-01T10:00:00Z."""
    if value is None:
        return None
    return value.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


STORED_FUTURE_SLACK = timedelta(days=1)     # a stored time ahead of this machine's clock by more is damage


def stored_time(value: object, now: datetime) -> datetime | None:
    """A time the janitor stored itself (ISO 8601 with an offset, in a state file) as an aware
    datetime, or None when it is damaged: not text, no timezone, or in the future."""
    if not isinstance(value, str):
        return None
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None or when.utcoffset() is None or when > now + STORED_FUTURE_SLACK:
        return None
    return when
