"""Pure data: errors, digests, media types, the inventory model, manifests, references, times."""
