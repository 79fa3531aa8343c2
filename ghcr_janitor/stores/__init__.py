"""The Store (backend) protocol and its implementations: OCI registry, GHCR, OCI layout."""
