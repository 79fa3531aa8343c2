"""Media types the janitor recognises (see formats.md)."""

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

BUILDKIT_CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"
OCI_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_IMAGE_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
ALL_MANIFEST_TYPES = INDEX_TYPES | MANIFEST_TYPES
IMAGE_CONFIG_TYPES = frozenset({OCI_IMAGE_CONFIG, DOCKER_IMAGE_CONFIG})

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
