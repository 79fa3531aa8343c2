"""Harbor: the artifacts API for listing (push and pull times, immutable tags), untagging and deleting;
`/v2` for manifests (`registry.py`)."""
