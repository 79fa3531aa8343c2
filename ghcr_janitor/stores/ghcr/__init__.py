"""GHCR: OCI reads plus GitHub Packages REST for listing and deleting versions."""
