"""What applying a plan did, per action and per target, and the exit code it means."""

from __future__ import annotations

from dataclasses import dataclass, field

DONE, SKIPPED, FAILED = "done", "skipped", "failed"
# Nothing to do: what the action removes was already not there (a tag already gone, a 404 on the
# delete, a cache entry evicted) and no verified journal line says this plan removed it. Not a
# delete or untag the janitor did (never counted as one, never reclaimed bytes), and no reason for
# a non-zero exit either: the repository is as the plan wants it.
GONE = "gone"
STATUSES = (DONE, GONE, SKIPPED, FAILED)


@dataclass
class ActionResult:
    action: str
    tag: str | None
    digest: str | None
    status: str
    reason: str
    to: str | None = None
    reclaim_size: int = 0
    reclaim_share: int = 0          # a child's part of its image's reclaim_size
    cache_id: int | None = None     # an Actions-cache entry (digest None)
    key: str | None = None

    def to_dict(self) -> dict:
        out = {"action": self.action, "tag": self.tag, "digest": self.digest, "to": self.to,
               "status": self.status, "reason": self.reason, "reclaim_size": self.reclaim_size}
        if self.cache_id is not None:
            out.update(cache_id=self.cache_id, key=self.key)
        return out

    @property
    def label(self) -> str:
        """What it acted on, for messages: the tag, the cache key, or the digest."""
        return self.tag or self.key or self.digest or "?"


@dataclass
class TargetResult:
    target: str
    results: list[ActionResult] = field(default_factory=list)
    error: str | None = None
    # What `reclaimed` means on this store, copied from the plan's target (`TargetPlan.reclaim_note`).
    reclaim_note: str = ""

    # Where the bytes go only later (a layout's gc), what that step really freed.
    freed: int | None = None

    @property
    def reclaimed(self) -> int:
        """Bytes freed: what done actions reclaim, less the shares of children left behind."""
        if self.freed is not None:
            return self.freed
        done = sum(r.reclaim_size for r in self.results if r.status == DONE)
        return max(0, done - sum(r.reclaim_share for r in self.results if r.status != DONE))


def exit_code(results: list[TargetResult]) -> int:
    """0 all done (or already gone), 1 any failure, 4 some actions skipped."""
    if any(r.error for r in results) or any(a.status == FAILED for r in results for a in r.results):
        return 1
    if any(a.status == SKIPPED for r in results for a in r.results):
        return 4
    return 0


def interrupted_message(total: int, journal, rerun: str) -> str:
    """What an interrupted apply did, in one line: actions done (journalled; earlier runs of the same
    plan included), skipped or failed, the mutating registry requests abandoned in flight (their
    outcome is unknown: the server may still carry them out) or answered but not journalled, and how
    to continue."""
    from ghcr_janitor.net.http import mutations

    counts = journal.counts
    parts = [f"{min(len(journal.done - journal.refuted), total)} of {total} actions done"]
    parts += [f"{counts[s]} {'already gone' if s == GONE else s}" for s in (GONE, SKIPPED, FAILED) if counts.get(s)]
    in_flight = mutations.in_flight()
    if in_flight:
        parts.append(f"{len(in_flight)} in flight abandoned ({', '.join(in_flight)}: "
                     f"{'its outcome is' if len(in_flight) == 1 else 'their outcomes are'} unknown; "
                     f"a rerun re-checks {'it' if len(in_flight) == 1 else 'them'})")
    elif mutations.last_sent_ns > journal.last_at:
        parts.append("1 answered but interrupted before it was journalled (a rerun re-checks it)")
    # Otherwise no claim: a GitHub REST request (not tracked here) may have been under way; the rerun
    # re-checks whatever the journal does not hold either way.
    return f"interrupted: {', '.join(parts)}; {rerun}"
