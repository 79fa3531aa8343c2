"""Cosign-style referrer tags (`sha256-<hex>`, `.sig`, `.att`, `.sbom`): which subject each belongs to.

Registries without a referrers API (GHCR) hold signatures, attestations and SBOMs under tags
named after the subject digest (cosign; the OCI 1.1 referrers tag schema uses the bare form).
Such a tag is kept with a kept subject and is orphaned (deletable) once the subject is gone.
"""

from __future__ import annotations

import re

from ghcr_janitor.core.models import Inventory

SUFFIXES = ("sig", "att", "sbom")
_TAG = re.compile(r"^(sha256-[a-f0-9]{64}|sha512-[a-f0-9]{128})(?:\.(?:sig|att|sbom))?$")


def subject_of_tag(tag: str) -> str | None:
    """`sha256-<hex>[.sig|.att|.sbom]` -> `sha256:<hex>`; None for any other tag."""
    match = _TAG.match(tag)
    if not match:
        return None
    algorithm, _, hexpart = match.group(1).partition("-")
    return f"{algorithm}:{hexpart}"


def referrer_tags(inventory: Inventory) -> dict[str, list[str]]:
    """Subject digest -> its referrer tags (sorted), over every tag of the repository."""
    found: dict[str, list[str]] = {}
    for tag in sorted(inventory.tags):
        subject = subject_of_tag(tag)
        if subject is not None:
            found.setdefault(subject, []).append(tag)
    return found


def known_digests(inventory: Inventory) -> set[str]:
    """Every manifest digest the inventory saw: roots and everything in their closures."""
    seen = set(inventory.artifacts)
    for art in inventory.artifacts.values():
        seen.update(art.closure)
    return seen


def orphaned_referrer_tags(inventory: Inventory, complete: bool | None = None) -> dict[str, list[str]]:
    """Referrer tags whose subject is not in the repository any more (subject -> tags).

    Only meaningful when the store lists its untagged manifests (`complete`, default: the store's
    `traits.lists_untagged`): on a plain OCI registry an untagged subject exists without being
    listed (what it remembers of earlier runs is no complete listing either).
    """
    if complete is None:
        complete = inventory.traits.lists_untagged
    if not complete:
        return {}
    known = known_digests(inventory)
    return {s: tags for s, tags in referrer_tags(inventory).items() if s not in known}
