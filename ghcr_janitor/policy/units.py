"""Durations (`30d`, `1h30m`) and sizes (`20GiB`, `500MB`) as policy files write them."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation

_DURATION_UNITS = (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_DURATION = re.compile(r"^(?:(\d{1,12})w)?(?:(\d{1,12})d)?(?:(\d{1,12})h)?(?:(\d{1,12})m)?(?:(\d{1,12})s)?$")
_DURATION_HINT = "use e.g. 30d, 12w, 6h, 90m, 1h30m"

_SIZE_UNITS = {
    "": 1, "b": 1,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
}
_SIZE = re.compile(r"^(\d{1,30}(?:\.\d{1,30})?)\s*([A-Za-z]{0,3})$")
_SIZE_HINT = "use e.g. 20GiB, 500MB, 1.5 GiB or a number of bytes"


def parse_duration(text: str) -> timedelta:
    """`30d`, `12w`, `6h`, `90m`, `45s` or a combination in that order (`1h30m`)."""
    if not isinstance(text, str):
        raise ValueError(f"invalid duration {text!r} ({_DURATION_HINT})")
    match = _DURATION.match(text.strip())
    if not text.strip() or not match:
        raise ValueError(f"invalid duration {text!r} ({_DURATION_HINT})")
    seconds = sum(int(v) * unit for v, (_, unit) in zip(match.groups(), _DURATION_UNITS) if v)
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"duration {text!r} is too large") from None


def format_duration(value: timedelta) -> str:
    """Shortest exact form without weeks: 30d, 6h, 1h30m, 0s."""
    total = int(value.total_seconds())
    if total <= 0:
        return "0s"
    parts = []
    for unit, size in _DURATION_UNITS[1:]:
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_size(text: str | int) -> int:
    """Bytes from `20GiB` (binary), `500MB` (decimal), `1.5 GiB`, `123` or `123B`."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"invalid size {text!r}: must not be negative")
        return text
    if not isinstance(text, str):
        raise ValueError(f"invalid size {text!r} ({_SIZE_HINT})")
    match = _SIZE.match(text.strip())
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"invalid size {text!r} ({_SIZE_HINT})")
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:  # pragma: no cover - the regex admits only digits
        raise ValueError(f"invalid size {text!r} ({_SIZE_HINT})") from None
    return int((number * _SIZE_UNITS[match.group(2).lower()]).to_integral_value())


def format_size(n: int) -> str:
    """Human binary size: `512 B`, `1.2 KiB`, `19.8 GiB`, `20 GiB` (no trailing .0)."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if round(value, 1) < 1024 or unit == "PiB":
            break
    text = f"{value:.1f}"
    if text.endswith(".0"):
        text = text[:-2]
    return f"{text} {unit}"
