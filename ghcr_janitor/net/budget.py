"""One GitHub REST request budget for a whole run, shared by every target's client.

GitHub's primary limit belongs to the token (1,000 requests an hour for a workflow's
GITHUB_TOKEN), not to a target, so every `GitHubRest` of a run notes `x-ratelimit-remaining`
and `-reset` here, and `--max-requests N` caps the run explicitly. Apply asks `affordable()`
before it starts a target and stops between targets instead of running out half-way.

It also holds the run's delete windows (`endpoint()`): GitHub's secondary limit of 900 points a
minute is per REST endpoint, not per target, and a secondary-limit 403 stops deletes on that
endpoint for every later target of the run (net/pacing.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ghcr_janitor.core.errors import RegistryError
from ghcr_janitor.net.pacing import EndpointWindow


class BudgetSpent(RegistryError):
    """--max-requests is used up."""


@dataclass
class RequestBudget:
    max_requests: int | None = None     # --max-requests
    used: int = 0
    remaining: int | None = None        # x-ratelimit-remaining, as last seen
    reset: float | None = None          # x-ratelimit-reset (epoch seconds)
    windows: dict[str, EndpointWindow] = field(default_factory=dict, repr=False)

    def endpoint(self, key: str) -> EndpointWindow:
        """The run's delete window of one REST endpoint (created on first use)."""
        window = self.windows.get(key)
        if window is None:
            window = self.windows[key] = EndpointWindow()
        return window

    def exhausted_until(self, now: float) -> float | None:
        """The reset time if the primary budget is spent (x-ratelimit-remaining 0, reset ahead)."""
        if self.remaining == 0 and self.reset is not None and self.reset > now:
            return self.reset
        return None

    def spend(self) -> None:
        """Before a request: refuse once --max-requests is reached."""
        if self.max_requests is not None and self.used >= self.max_requests:
            raise BudgetSpent(f"budget: --max-requests {self.max_requests} used up")
        self.used += 1

    def note(self, remaining: int | None, reset: float | None) -> None:
        if remaining is not None:
            self.remaining, self.reset = remaining, reset

    def left(self) -> int | None:
        """Requests this run may still send (None: no limit known)."""
        caps = [c for c in (self.remaining, None if self.max_requests is None else self.max_requests - self.used)
                if c is not None]
        return min(caps) if caps else None

    def affordable(self, needed: int, now: float | None = None) -> str | None:
        """None if `needed` more requests fit, else why not (for the user)."""
        left = self.left()
        if left is None or left >= needed:
            return None
        when = ""
        if self.reset is not None and left == self.remaining and self.reset > (now or time.time()):
            when = f", resets at {datetime.fromtimestamp(self.reset, timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}"
        return f"budget: {left} requests left{when}; this target needs about {needed}: rerun to continue"
