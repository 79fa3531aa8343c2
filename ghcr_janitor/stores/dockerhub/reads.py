"""The janitor's own manifest reads, remembered so that Hub's `last_pulled` does not count them.

Docker Hub counts a manifest GET as a pull (and against the pull rate limit): the janitor's first
read of a manifest would make it "pulled now" for every later run. ECR has the same problem and
its memory (`stores/ecr/reads.py`: when each read was made and the pull time shown before it; a
later pull time within minutes of a remembered read is that read) fits as is: it is used here with
its own file, `dockerhub-reads.sqlite` in the state dir. (Proposed: move it to a shared
`stores/reads.py`; until then this is the one place that imports it.)
"""

from __future__ import annotations

import logging

from ghcr_janitor.stores.ecr.reads import OwnReads, corrected, now

log = logging.getLogger("ghcr_janitor.dockerhub")

__all__ = ["OwnReads", "corrected", "now", "own_reads"]


def own_reads(env) -> OwnReads:
    """The memory of the janitor's own Hub reads, in the state dir (none if it cannot be named)."""
    from ghcr_janitor.core.paths import state_dir

    try:
        return OwnReads(state_dir(env) / "dockerhub-reads.sqlite")
    except Exception as exc:          # a state dir that cannot be named costs only this memory
        log.info("no Docker Hub read memory: %s", exc)
        return OwnReads(None)
