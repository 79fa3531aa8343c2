"""HTTP: the client, retries, auth flows, GitHub's REST client."""
