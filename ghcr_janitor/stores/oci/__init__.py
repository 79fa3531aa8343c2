"""An OCI Distribution registry."""
