"""Retag `to` templates: `archive-{tag}-{created:%Y}q{quarter}`.

Fields: `{tag}`, `{created}` / `{created:STRFTIME}` (default `%Y%m%d`), `{quarter}` (1-4 of the
created month), `{digest}` (first 12 hex characters), `{date}` (the run's date, YYYYMMDD).
Only `{created}` takes a format spec; conversions (`!r`) and attribute/index access are refused.
"""

from __future__ import annotations

import string
from datetime import datetime, timezone

from ghcr_janitor.core.reference import TAG_PATTERN

FIELDS = ("tag", "created", "quarter", "digest", "date")
_AGE_FIELDS = frozenset({"created", "quarter"})
_SAMPLE_TIME = datetime(2000, 1, 1, tzinfo=timezone.utc)


def _parts(template: str) -> list[tuple[str, str | None, str]]:
    """(literal, field or None, spec) triples; ValueError on anything not allowed."""
    out = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"invalid template {template!r}: {exc}") from None
    for literal, field, spec, conversion in parsed:
        if field is None:
            out.append((literal, None, ""))
            continue
        if field not in FIELDS:
            raise ValueError(f"unknown field {{{field}}} in {template!r} (known: {', '.join('{' + f + '}' for f in FIELDS)})")
        if conversion:
            raise ValueError(f"conversion !{conversion} not allowed in {template!r}")
        if spec and field != "created":
            raise ValueError(f"format spec ':{spec}' allowed only on {{created}} in {template!r}")
        if "{" in (spec or ""):
            raise ValueError(f"nested fields not allowed in {template!r}")
        out.append((literal, field, spec or ""))
    return out


def fields_of(template: str) -> set[str]:
    """The field names a (valid) template uses."""
    return {f for _, f, _ in _parts(template) if f}


def needs_age(template: str) -> bool:
    return bool(fields_of(template) & _AGE_FIELDS)


def render(template: str, tag: str, created: datetime | None, digest: str, now: datetime) -> str:
    """Fill the template; ValueError if a needed value is missing or strftime fails."""
    out = []
    for literal, field, spec in _parts(template):
        out.append(literal)
        if field == "tag":
            out.append(tag)
        elif field == "digest":
            out.append(digest.partition(":")[2][:12] or digest[:12])
        elif field == "date":
            out.append(now.strftime("%Y%m%d"))
        elif field in _AGE_FIELDS:
            if created is None:
                raise ValueError("age unknown, cannot fill {" + field + "}")
            if field == "quarter":
                out.append(str((created.month - 1) // 3 + 1))
            else:
                try:
                    out.append(created.strftime(spec or "%Y%m%d"))
                except (ValueError, OverflowError) as exc:
                    raise ValueError(f"cannot format created time with {spec!r}: {exc}") from None
    return "".join(out)


def validate(template: str) -> None:
    """Raise ValueError unless the template has only known fields and renders a valid tag."""
    _parts(template)
    sample = render(template, "cache-x", _SAMPLE_TIME, "sha256:" + "0" * 64, _SAMPLE_TIME)
    if not TAG_PATTERN.match(sample):
        raise ValueError(f"{template!r} renders {sample!r}, which is not a valid tag ([A-Za-z0-9_][A-Za-z0-9._-]{{0,127}})")
