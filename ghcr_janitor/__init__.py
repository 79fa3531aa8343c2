"""ghcr-janitor: keep container-registry build caches under control."""

__version__ = "0.1.0"
