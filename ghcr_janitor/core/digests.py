"""Digest validation and computation."""

from __future__ import annotations

import hashlib
import re

from ghcr_janitor.core.errors import ManifestError

_DIGEST = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")


def is_digest(value: object) -> bool:
    return isinstance(value, str) and bool(_DIGEST.match(value))


def check_digest(value: object, where: str = "digest") -> str:
    """Return `value` if it is a well-formed sha256/sha512 digest, else raise."""
    if not is_digest(value):
        raise ManifestError(f"{where}: not a valid digest: {str(value)[:80]!r}")
    return value  # type: ignore[return-value]


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def verify(data: bytes, expected: str, where: str) -> None:
    """Raise if `data` does not hash to `expected` (algorithm taken from it)."""
    algorithm = expected.split(":", 1)[0]
    actual = digest_of(data, algorithm)
    if actual != expected:
        raise ManifestError(f"{where}: content digest {actual} does not match {expected}")


def short(digest: str | None) -> str:
    """`sha256:0123456789ab` — 12 hex characters, for tables ("-" for none)."""
    if not digest:
        return "-"
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:12]}"


def label_of(item) -> str:
    """What a plan action, kept entry or result names: its tag, its cache key, or `<untagged>`."""
    return getattr(item, "tag", None) or getattr(item, "key", None) or "<untagged>"


def pin_of(item) -> str:
    """Its short digest, or `id N` for an Actions-cache entry."""
    cache_id = getattr(item, "cache_id", None)
    return f"id {cache_id}" if cache_id is not None else short(getattr(item, "digest", None))
