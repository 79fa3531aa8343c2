"""Docker Hub (`docker.io/NS/REPO`, `NS/REPO`): the Hub API (hub.docker.com) lists tags and images
with their push and pull times and untags; the registry's `/v2` (registry-1.docker.io) reads
manifests and deletes untagged ones by digest. `api` is the Hub API client, `listing` turns its
answers into versions, `registry` is the store."""
