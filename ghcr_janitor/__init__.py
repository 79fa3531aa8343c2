"""ghcr-janitor: keep container-registry build caches under control."""

import sys

__version__ = "0.2.0.dev0"

# httpx's package __init__ imports its optional command-line client (click, rich, pygments;
# ~60 ms of every run here) when those happen to be installed. The janitor never uses it;
# marking the module absent makes httpx take its documented fallback.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
