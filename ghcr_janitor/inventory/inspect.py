"""`janitor inspect`: one artifact in detail (media types, blobs, BuildKit cache facts)."""

from __future__ import annotations

from typing import Any

from ghcr_janitor.core import mediatypes as mt
from ghcr_janitor.core.errors import NotFoundError, UsageError
from ghcr_janitor.inventory.gather import InventoryOptions, _artifact, _Fetcher
from ghcr_janitor.core.manifests import parse_cache_config
from ghcr_janitor.core.reference import Target
from ghcr_janitor.stores.base import Registry
from ghcr_janitor.core.timeparse import format_time

MAX_CACHE_CONFIG = 1 << 20  # BuildKit itself refuses larger cache configs


async def inspect_artifact(registry: Registry, target: Target, options: InventoryOptions) -> dict[str, Any]:
    reference = target.reference
    if reference is None:
        raise UsageError(f"inspect needs TARGET:TAG or TARGET@DIGEST, got {target}")
    if target.digest:
        digest = target.digest
    else:
        digest = await registry.resolve(reference)
        if digest is None:
            raise NotFoundError(f"tag {target.repository}:{reference} not found", status=404)
    fetcher = _Fetcher(registry, None, options.concurrency, None)
    listed: frozenset[str] = frozenset()
    if registry.lists_untagged:         # so that a child known to be gone is a fact, not an error
        listed = frozenset(v.digest for v in await registry.list_versions() or [])
    art = await _artifact(fetcher, digest, None, options, lambda d: registry.known_missing(d, listed))
    if art.error:
        raise NotFoundError(f"{target}: {art.error}") if "not found" in art.error else _error(art.error)
    manifest = art.manifest
    assert manifest is not None
    doc: dict[str, Any] = {
        "version": 1,
        "target": str(target),
        "digest": digest,
        "kind": art.kind,
        "media_type": art.media_type,
        "manifest_size": manifest.size,
        "size": art.size,
        "created": format_time(art.created),
        "age_source": art.age_source,
        "artifact_type": manifest.artifact_type,
        "annotations": dict(manifest.annotations),
        "config": _desc(manifest.config) if manifest.config else None,
        "blobs": [_desc(b) for b in manifest.blobs],
        "unique_blobs": len({b.digest for b in manifest.blobs}),
        "children": _named([_desc(c) for c in manifest.children]),
        "subject": _desc(manifest.subject) if manifest.subject else None,
        "broken": art.broken,
        "missing": list(art.missing),
    }
    if art.kind == "buildkit-cache" and manifest.config is not None:
        doc["cache"] = await _cache_facts(registry, manifest)
    return doc


def _error(message: str) -> Exception:
    from ghcr_janitor.core.errors import JanitorError

    return JanitorError(message)


async def _cache_facts(registry: Registry, manifest) -> dict[str, Any]:
    assert manifest.config is not None
    layers = [b for b in manifest.blobs if b.media_type != mt.BUILDKIT_CACHE_CONFIG]
    facts: dict[str, Any] = {"layers": len({b.digest for b in layers}), "layer_entries": len(layers),
                             "newest_createdat": format_time(manifest.created)}
    try:
        body = await registry.get_blob(manifest.config.digest, MAX_CACHE_CONFIG)
        summary = parse_cache_config(body, f"cache config {manifest.config.digest}")
        facts["records"] = summary["records"]
        facts["config_layers"] = summary["layers"]
        facts["newest_record_created"] = format_time(summary["newest_created"])
    except Exception as exc:  # the manifest facts stand on their own
        facts["config_error"] = str(exc)
    return facts


def _desc(d) -> dict[str, Any]:
    out: dict[str, Any] = {"media_type": d.media_type, "digest": d.digest, "size": d.size}
    if d.annotations:
        out["annotations"] = dict(d.annotations)
    if d.platform:
        out["platform"] = dict(d.platform)
    if d.artifact_type:
        out["artifact_type"] = d.artifact_type
    return out


REFERENCE_TYPE = "vnd.docker.reference.type"          # BuildKit's attestation descriptors in an index
REFERENCE_DIGEST = "vnd.docker.reference.digest"


def platform_text(platform: Any) -> str | None:
    """A descriptor's platform as docker writes it: OS/ARCH[/VARIANT] ("linux/amd64", "linux/arm/v7")."""
    if not isinstance(platform, dict) or not platform:
        return None

    def part(key: str) -> str:
        value = platform.get(key)
        return value if isinstance(value, str) and value else "unknown"

    variant = platform.get("variant")
    return "/".join([part("os"), part("architecture")] + ([variant] if isinstance(variant, str) and variant else []))


def _named(children: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each child gets `describes`: its platform (`linux/amd64`), or for an attestation manifest
    (platform unknown/unknown) whose image it attests: `attestation-manifest for linux/amd64 (sha256:…)`."""
    from ghcr_janitor.core.digests import short

    platforms = {c["digest"]: platform_text(c.get("platform")) for c in children}
    for child in children:
        notes = child.get("annotations") or {}
        kind = notes.get(REFERENCE_TYPE)
        if kind:
            subject = notes.get(REFERENCE_DIGEST)
            whose = platforms.get(subject) if subject else None
            if subject and whose:
                child["describes"] = f"{kind} for {whose} ({short(subject)})"
            else:
                child["describes"] = f"{kind} for {short(subject)}" if subject else kind
        else:
            child["describes"] = platforms[child["digest"]]
    return children
