"""Google Artifact Registry (`LOCATION-docker.pkg.dev/PROJECT/REPOSITORY/IMAGE`) and Container Registry
(`[REGION.]gcr.io/PROJECT/IMAGE`): listing from the `/v2` tags-list extension, untag by tag DELETE,
digest deletes once untagged, globs from the Artifact Registry REST API or gcr.io's `child[]`."""
