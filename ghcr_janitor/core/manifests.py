"""Pure functions: manifest bytes -> `Manifest` (kind, blobs, children, created time).

Dispatch is always on media types; BuildKit cache index entries are blobs and are
never treated as manifests (registry 2.8 answers 500 when asked for them as such).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from types import MappingProxyType
from typing import Any, Mapping

from ghcr_janitor.core import mediatypes as mt
from ghcr_janitor.core import models
from ghcr_janitor.core.digests import check_digest
from ghcr_janitor.core.errors import ManifestError
from ghcr_janitor.core.models import Descriptor, Manifest
from ghcr_janitor.core.timeparse import parse_time

_ATTESTATION_LAYER_TYPES = ("application/vnd.in-toto+json", "application/vnd.dev.cosign")
_ATTESTATION_ARTIFACT_PREFIXES = (
    "application/vnd.dev.sigstore",
    "application/vnd.dev.cosign",
    "application/vnd.in-toto",
    "application/spdx",
    "application/vnd.cyclonedx",
    "application/vnd.syft",
)
DOCKER_REFERENCE_TYPE = "vnd.docker.reference.type"


def _fail(where: str, message: str) -> ManifestError:
    return ManifestError(f"{where}: {message}")


def load_json(body: bytes, where: str) -> dict[str, Any]:
    """Decode a JSON object; any other shape is a ManifestError naming `where`."""
    if len(body) > mt.MAX_MANIFEST_BYTES:
        raise _fail(where, f"manifest is {len(body)} bytes, over the {mt.MAX_MANIFEST_BYTES} byte cap")
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise _fail(where, f"not valid JSON ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise _fail(where, "manifest is not a JSON object")
    return doc


_EMPTY: Mapping[str, str] = MappingProxyType({})


def _str_map(value: object, where: str) -> Mapping[str, str]:
    """Annotations, interned: thousands of descriptors repeat the same keys, and layers shared
    between caches repeat the same values."""
    if value is None or value == {}:
        return _EMPTY
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _fail(where, "annotations must be an object of strings")
    return {sys.intern(k): sys.intern(v) for k, v in value.items()}


def parse_descriptor(value: object, where: str) -> Descriptor:
    """Validate one descriptor object."""
    if not isinstance(value, dict):
        raise _fail(where, "descriptor is not an object")
    media_type = value.get("mediaType")
    if not isinstance(media_type, str):
        raise _fail(where, "descriptor has no mediaType")
    digest = check_digest(value.get("digest"), f"{where}: descriptor digest")
    size = value.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0 or size > 2**53:
        raise _fail(where, f"descriptor {digest} has an invalid size")
    platform = value.get("platform")
    if platform is not None and not isinstance(platform, dict):
        raise _fail(where, "descriptor platform is not an object")
    artifact_type = value.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _fail(where, "descriptor artifactType is not a string")
    return Descriptor(
        media_type=sys.intern(mt.normalise(media_type) or media_type),   # `; charset=…` changes nothing
        digest=sys.intern(digest),
        size=size,
        annotations=_str_map(value.get("annotations"), where),
        platform=platform,
        artifact_type=artifact_type,
    )


def _descriptor_list(doc: Mapping[str, Any], key: str, where: str) -> tuple[Descriptor, ...]:
    value = doc.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _fail(where, f"{key} is not a list")
    return tuple(parse_descriptor(item, f"{where} {key}[{i}]") for i, item in enumerate(value))


def newest_buildkit_time(descriptors: tuple[Descriptor, ...]) -> datetime | None:
    times = [parse_time(d.annotations.get(mt.BUILDKIT_CREATED)) for d in descriptors]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def _created(annotations: Mapping[str, str], blobs: tuple[Descriptor, ...]) -> tuple[datetime | None, str | None]:
    created = parse_time(annotations.get(mt.CREATED))
    if created is not None:
        return created, mt.CREATED
    newest = newest_buildkit_time(blobs)
    if newest is not None:
        return newest, mt.BUILDKIT_CREATED
    return None, None


def _is_attestation(annotations: Mapping[str, str], artifact_type: str | None, layers: tuple[Descriptor, ...], subject: Descriptor | None) -> bool:
    if annotations.get(DOCKER_REFERENCE_TYPE) == "attestation-manifest":
        return True
    if artifact_type and artifact_type.startswith(_ATTESTATION_ARTIFACT_PREFIXES):
        return True
    if layers and all(d.media_type.startswith(_ATTESTATION_LAYER_TYPES) for d in layers):
        return True
    return subject is not None


def _index_kind(entries: tuple[Descriptor, ...]) -> str:
    if any(d.media_type == mt.BUILDKIT_CACHE_CONFIG for d in entries):
        return models.BUILDKIT_CACHE
    return models.IMAGE_INDEX


def _manifest_kind(config: Descriptor | None, layers, annotations, artifact_type, subject) -> str:
    if config is not None and config.media_type == mt.BUILDKIT_CACHE_CONFIG:
        return models.BUILDKIT_CACHE
    if _is_attestation(annotations, artifact_type, layers, subject):
        return models.ATTESTATION
    if artifact_type:
        return models.ARTIFACT
    if config is not None and config.media_type in mt.IMAGE_CONFIG_TYPES:
        return models.IMAGE
    if config is not None:
        return models.ARTIFACT
    return models.UNKNOWN


def parse_manifest(body: bytes, digest: str, media_type: str | None = None, where: str | None = None) -> Manifest:
    """Parse manifest bytes already verified against `digest`.

    `media_type` is the Content-Type or descriptor type; the body's own `mediaType` wins.
    """
    where = where or digest
    doc = load_json(body, where)
    declared = doc.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise _fail(where, "mediaType is not a string")
    kind_type = mt.normalise(declared or media_type) or ""
    if kind_type not in mt.ALL_MANIFEST_TYPES:
        # No mediaType in the body: infer from the shape.
        if "manifests" in doc:
            kind_type = mt.OCI_INDEX
        elif "layers" in doc or "config" in doc:
            kind_type = mt.OCI_MANIFEST
    annotations = _str_map(doc.get("annotations"), where)
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _fail(where, "artifactType is not a string")
    subject = parse_descriptor(doc["subject"], f"{where} subject") if doc.get("subject") is not None else None

    if kind_type in mt.INDEX_TYPES:
        entries = _descriptor_list(doc, "manifests", where)
        kind = _index_kind(entries)
        if kind == models.BUILDKIT_CACHE:
            blobs, children = entries, ()
            config = next(d for d in entries if d.media_type == mt.BUILDKIT_CACHE_CONFIG)
        else:
            children = tuple(d for d in entries if d.media_type in mt.ALL_MANIFEST_TYPES)
            blobs = tuple(d for d in entries if d.media_type not in mt.ALL_MANIFEST_TYPES)
            config = None
            if artifact_type and not children:
                kind = models.ARTIFACT
        created, source = _created(annotations, blobs)
        return Manifest(digest, kind_type, len(body), kind, blobs, children, config, subject,
                        artifact_type, annotations, created, source)

    if kind_type in mt.MANIFEST_TYPES:
        config = parse_descriptor(doc["config"], f"{where} config") if doc.get("config") is not None else None
        layers = _descriptor_list(doc, "layers", where)
        kind = _manifest_kind(config, layers, annotations, artifact_type, subject)
        blobs = ((config,) if config else ()) + layers
        created, source = _created(annotations, layers)
        return Manifest(digest, kind_type, len(body), kind, blobs, (), config, subject,
                        artifact_type, annotations, created, source)

    return Manifest(digest, kind_type or "unknown", len(body), models.UNKNOWN, annotations=annotations)


def image_config_created(body: bytes, where: str) -> datetime | None:
    """The `created` field of an image config blob, if any."""
    try:
        doc = load_json(body, where)
    except ManifestError:
        return None
    return parse_time(doc.get("created"))


def parse_cache_config(body: bytes, where: str) -> dict[str, Any]:
    """Summarise a BuildKit cacheconfig blob: layer and record counts, newest createdAt."""
    doc = load_json(body, where)
    layers = doc.get("layers") or []
    records = doc.get("records") or []
    if not isinstance(layers, list) or not isinstance(records, list):
        raise _fail(where, "cache config layers/records are not lists")
    times: list[datetime] = []
    for record in records:
        if not isinstance(record, dict):
            continue
        for key in ("layers", "chains"):
            for result in record.get(key) or []:
                if isinstance(result, dict):
                    stamp = parse_time(result.get("createdAt"))
                    if stamp is not None:
                        times.append(stamp)
    blobs = [l.get("blob") for l in layers if isinstance(l, dict)]
    return {
        "layers": len(layers),
        "records": len(records),
        "blobs": [b for b in blobs if isinstance(b, str)],
        "newest_created": max(times) if times else None,
    }


def placeholder_owner(manifest: Manifest) -> str | None:
    """The tag the janitor's own untag placeholder was pushed for, or None for anything else.

    Recognised by its whole content, never by its annotations alone (anyone can copy those): the
    placeholder annotations, an empty config of at most 2 bytes and nothing else — no layers, no
    children, no subject.
    """
    notes = manifest.annotations or {}
    tag = notes.get(mt.PLACEHOLDER_TAG)
    if notes.get(mt.PLACEHOLDER) != "true" or not isinstance(tag, str) or not tag:
        return None
    config = manifest.config
    if manifest.kind == models.BUILDKIT_CACHE or manifest.children or manifest.subject is not None \
            or config is None or config.media_type != mt.OCI_EMPTY or config.size > 2 \
            or tuple(manifest.blobs) != (config,):
        return None
    return tag
