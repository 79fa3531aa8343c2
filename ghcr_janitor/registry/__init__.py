"""Backends: one `Registry` interface, implemented for OCI Distribution, GHCR and OCI layouts."""
