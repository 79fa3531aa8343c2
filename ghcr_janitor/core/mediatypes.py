"""Media types the janitor recognises (see formats.md), and what a JSON document is by its own content."""

from __future__ import annotations

from typing import Any, Mapping

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
OCI_ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json"   # image-spec 1.1 RC, withdrawn

BUILDKIT_CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"
OCI_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_IMAGE_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
ALL_MANIFEST_TYPES = INDEX_TYPES | MANIFEST_TYPES
IMAGE_CONFIG_TYPES = frozenset({OCI_IMAGE_CONFIG, DOCKER_IMAGE_CONFIG})
SCHEMA1_TYPES = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})
# Everything whose references gc can follow: manifests, indexes and what else lists blobs.
REFERENCING_TYPES = ALL_MANIFEST_TYPES | SCHEMA1_TYPES | {OCI_ARTIFACT_MANIFEST, BUILDKIT_CACHE_CONFIG}

# Always sent together: registry 2.8 answers 404 for an index otherwise and
# rewrites Docker schema2 manifests to schema1 (changing the digest).
ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])

# Manifest bodies above this are refused (the OCI spec's 4 MiB compatibility bound).
MAX_MANIFEST_BYTES = 4 * 1024 * 1024

# Annotations.
REF_NAME = "org.opencontainers.image.ref.name"
CREATED = "org.opencontainers.image.created"
BUILDKIT_CREATED = "buildkit/createdat"
PLACEHOLDER = "dev.ghcr-janitor.placeholder"
PLACEHOLDER_TAG = "dev.ghcr-janitor.tag"


def normalise(media_type: object) -> str | None:
    """`type/subtype` of a media type, lower-cased, without parameters (`; charset=utf-8`) or blanks.

    Media types compare case-insensitively and their parameters do not change what a document is
    (RFC 6838), so every comparison of a media type goes through this. None for a non-string.
    """
    if not isinstance(media_type, str):
        return None
    return media_type.split(";", 1)[0].strip().lower() or None


def looks_like_manifest(media_type: str | None) -> bool:
    """A (normalised) type that names some manifest or index, known or not: what it references is
    unknown unless it is one of REFERENCING_TYPES."""
    if media_type is None:
        return False
    return media_type in REFERENCING_TYPES or "manifest" in media_type or media_type.endswith(".index.v1+json")


def content_type(doc: Mapping[str, Any]) -> str | None:
    """What a JSON document is by its own content: its `mediaType` when that names something in
    REFERENCING_TYPES, else its shape (a `manifests` list: an OCI index; `config` and `layers`: an
    OCI manifest; `layers` and `records`: a BuildKit cache config; `fsLayers`: Docker schema 1),
    else its declared `mediaType` (normalised; None without one). A descriptor never decides."""
    declared = normalise(doc.get("mediaType"))
    if declared in REFERENCING_TYPES:
        return declared
    if isinstance(doc.get("manifests"), list):
        return OCI_INDEX
    if "config" in doc and "layers" in doc:
        return OCI_MANIFEST
    if isinstance(doc.get("layers"), list) and "records" in doc:
        return BUILDKIT_CACHE_CONFIG
    if "fsLayers" in doc and doc.get("schemaVersion") == 1:
        return DOCKER_SCHEMA1
    return declared
