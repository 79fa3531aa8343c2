"""GitLab's container registry: the REST registry API for repositories, tags and untagging, the
registry's metadata API (`/gitlab/v1/`) for publish times where it runs, and `/v2` for the rest."""
