"""What a cache entry is, from its key, version and ref alone (pure; gha-cache.md §4.2, §7).

BuildKit `type=gha` writes `buildkit-blob-1-sha256:<hex>[-sig]` blobs and
`index-<scope>-1-<h8>[-sig]#<N>` index generations, all with one constant `version`; `h8` is
the first 8 hex of sha256(ref). An index key whose hash does not match its entry's ref was
written by someone else: it is an ordinary `actions-cache` entry, marked `foreign`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ghcr_janitor.core.models import ACTIONS_CACHE, BUILDKIT_BLOB, BUILDKIT_INDEX

BUILDKIT_VERSION = "693bb7016429d80366022f036f84856888c9f13e00145f5f6f4dce303a38d6f2"
BLOB_PREFIX = "buildkit-blob-1-"
_BLOB = re.compile(r"^buildkit-blob-1-sha256:[0-9a-f]{64}(?P<sig>-sig)?$")
_INDEX = re.compile(r"^index-(?P<scope>.+)-1-(?P<h8>[0-9a-f]{8})(?P<sig>-sig)?#(?P<n>[0-9]{1,9})$")
_GENERATION = re.compile(r"#[0-9]+$")
# A per-commit or per-run suffix: a full commit SHA, a sha256 hash, or a run id (6 digits or more)
# after a separator. Short numbers are versions (`Linux-node-18`, `pip-3.12`): part of the family.
_SUFFIX = re.compile(r"(?:[0-9a-f]{64}|[0-9a-f]{40}|(?<=[-_])[0-9]{6,})$")


@dataclass(frozen=True)
class KeyFacts:
    """The kind of an entry and what its key says."""

    kind: str
    family: str
    scope: str | None = None
    ref_hash: str | None = None
    generation: int | None = None
    sig: bool = False
    foreign: bool = False


def ref_hash(ref: str) -> str:
    """BuildKit's index-key hash of a ref: the first 8 hex of sha256(ref)."""
    return hashlib.sha256(ref.encode()).hexdigest()[:8]


def family_of(key: str) -> str:
    """The key without its per-commit or per-generation suffix (`Linux-buildx-<sha>` -> `Linux-buildx-`)."""
    base = _GENERATION.sub("", key)
    stripped = _SUFFIX.sub("", base)
    return stripped if stripped else base


def classify(key: str, version: str, ref: str) -> KeyFacts:
    """BuildKit's entries by key grammar AND constant version; everything else is actions/cache."""
    if version == BUILDKIT_VERSION:
        blob = _BLOB.match(key)
        if blob:
            return KeyFacts(BUILDKIT_BLOB, BLOB_PREFIX, sig=bool(blob["sig"]))
        index = _INDEX.match(key)
        if index:
            facts = dict(scope=index["scope"], ref_hash=index["h8"], generation=int(index["n"]), sig=bool(index["sig"]))
            if index["h8"] == ref_hash(ref):
                return KeyFacts(BUILDKIT_INDEX, key.rsplit("#", 1)[0], **facts)
            return KeyFacts(ACTIONS_CACHE, key.rsplit("#", 1)[0], foreign=True, **facts)
    return KeyFacts(ACTIONS_CACHE, family_of(key))
