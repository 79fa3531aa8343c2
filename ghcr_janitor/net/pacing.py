"""Adaptive pacing of GitHub REST deletes: as fast as GitHub lets them through, and no faster.

What GitHub documents (docs "Rate limits for the REST API", gha-cache.md §1.8): a DELETE costs 5
of the 900 points a minute allowed per REST endpoint (so at most 180 deletes a minute), at most 100
requests in flight, and a primary hourly budget per token (`x-ratelimit-*`, handled by the client
with the run's `RequestBudget`). What it does not document: package-version deletes are throttled
well below that (users drain 55-60 a minute per package) with 429 and `Retry-After`.

So no fixed rate is right. `DeletePacer` (one per package or repository: what GitHub throttles)
spaces deletes at its current rate, which

- starts at the ceiling: the documented 180 a minute, or the user's cap
  (`JANITOR_GHCR_DELETES_PER_MINUTE` / `JANITOR_GHA_DELETES_PER_MINUTE`) if lower;
- on a 429 waits `Retry-After` (the client does) and drops: to 0.9x the rate GitHub accepted
  between this 429 and the previous one (deletes accepted / seconds: both 429s came at an empty
  allowance, so this is the throttle's own rate, whatever its shape: token bucket or window),
  or, without such an estimate yet, to half (first 429) or 0.7x (later ones);
- grows back by GROWTH (0.4 %) per clean answer, up to the ceiling: about 25 clean deletes from
  0.9x back to the throttle's rate, as many again above it before the next 429, so a 429 comes
  about once per 50 deletes (2 %) and the allowance saved while under the rate is spent above it.

`EndpointWindow` (one per REST endpoint per run, shared by every target's pacer through the
`RequestBudget`) keeps the documented points limit whatever the pacers do: at most 180 deletes
(900 points) in any WINDOW seconds, the window one second longer than GitHub's minute so that
network jitter cannot squeeze 181 into one of GitHub's minutes.

A secondary-limit 403 ("You have exceeded a secondary rate limit") means GitHub thinks we are
abusing it, although we kept to its documented limits; GitHub warns that integrations that continue
may be banned. So the endpoint's window trips: no delete is sent on that endpoint for the rest of
the run (every later `delay()` raises `SecondaryLimitStop` before anything is sent), and the target
stops with one line naming the wait GitHub asked for; a rerun continues where this one stopped.

Clock and sleep are the client's (injectable): nothing here sleeps or reads the time on its own.
"""

from __future__ import annotations

from collections import deque

from ghcr_janitor.core.errors import RegistryError, TargetStopped

DOCUMENTED_POINTS_PER_MINUTE = 900     # per REST endpoint (secondary limit)
DELETE_POINTS = 5                      # a DELETE's cost in those points
DOCUMENTED_DELETES_PER_MINUTE = DOCUMENTED_POINTS_PER_MINUTE / DELETE_POINTS     # 180
MAX_IN_FLIGHT = 100                    # documented; deletes are sent one at a time anyway
WINDOW = 61.0                          # seconds: GitHub's minute plus a second of jitter
MIN_RATE = 1.0                         # deletes a minute: never slower than this
GROWTH = 0.004                         # per clean answer: the rate grows by 0.4 %
UNDER = 0.9                            # after a 429: this share of the rate GitHub accepted
FIRST_DROP = 0.5                       # after a first 429 without an estimate (slow start ends)
LATER_DROP = 0.7                       # after a later 429 without an estimate
MIN_ESTIMATE_SECONDS = 10.0            # an estimate needs this long between two 429s ...
MIN_ESTIMATE_DELETES = 5               # ... and this many deletes accepted between them


class RateLimitError(RegistryError):
    """GitHub kept rate-limiting us, or asked for a longer wait than allowed (net/github.py
    re-exports it)."""


class SecondaryLimitStop(RateLimitError, TargetStopped):
    """GitHub answered a secondary-limit 403 on this endpoint: no more deletes there this run."""


def ceiling(user_cap: float | None) -> float:
    """The pacer's upper bound: the documented 180 a minute, or the user's cap if lower."""
    if user_cap is None or user_cap <= 0:
        return DOCUMENTED_DELETES_PER_MINUTE
    return min(float(user_cap), DOCUMENTED_DELETES_PER_MINUTE)


class EndpointWindow:
    """At most `per_window` sends in any `window` seconds on one REST endpoint; trips for good on a
    secondary-limit 403."""

    def __init__(self, per_window: int = int(DOCUMENTED_DELETES_PER_MINUTE), window: float = WINDOW):
        self.per_window = max(1, int(per_window))
        self.window = window
        self._sent: deque[float] = deque()
        self.tripped: str | None = None        # the one line a refused delete raises

    def delay(self, now: float) -> float:
        """Seconds until one more send fits (0: now); SecondaryLimitStop once tripped."""
        if self.tripped is not None:
            raise SecondaryLimitStop(self.tripped, status=403)
        while self._sent and self._sent[0] <= now - self.window:
            self._sent.popleft()
        if len(self._sent) < self.per_window:
            return 0.0
        return self._sent[0] + self.window - now

    def sent(self, now: float) -> None:
        self._sent.append(now)

    def trip(self, line: str) -> None:
        if self.tripped is None:
            self.tripped = line


class DeletePacer:
    """The current delete rate of one package / repository (deletes a minute), and when the next
    delete may go. Call `delay(now)` before a delete (sleep that long, ask again), `sent(now)` as it
    goes, then `clean(now)` (2xx/404), `throttled(now, retry_after)` (429) or `trip(line)` (a
    secondary-limit 403)."""

    def __init__(self, user_cap: float | None = None, window: EndpointWindow | None = None):
        self.ceiling = ceiling(user_cap)
        self.rate = self.ceiling
        self.window = window if window is not None else EndpointWindow()
        self._last_sent: float | None = None
        self._not_before = 0.0
        self._accepted = 0                      # deletes answered 2xx/404, ever
        self._last_429: tuple[float, int] | None = None     # (when, accepted then)
        self.sent_count = self.throttled_count = 0

    def __repr__(self) -> str:
        return f"DeletePacer(rate={self.rate:.1f}/min, ceiling={self.ceiling:.0f}, 429s={self.throttled_count})"

    @property
    def interval(self) -> float:
        return 60.0 / self.rate

    def delay(self, now: float) -> float:
        """Seconds to wait before the next delete (0: send now); SecondaryLimitStop if tripped."""
        wait = self.window.delay(now)
        if self._last_sent is not None:
            wait = max(wait, self._last_sent + self.interval - now)
        return max(wait, self._not_before - now, 0.0)

    def sent(self, now: float) -> None:
        self._last_sent = now
        self.sent_count += 1
        self.window.sent(now)

    def clean(self, now: float) -> None:
        """A delete answered without a rate limit: grow."""
        self._accepted += 1
        self.rate = min(self.ceiling, self.rate * (1.0 + GROWTH))

    def throttled(self, now: float, retry_after: float | None) -> None:
        """A 429: drop the rate (see the module's doc) and send nothing before `Retry-After`."""
        self.throttled_count += 1
        estimate = None
        if self._last_429 is not None:
            when, accepted = self._last_429
            seconds, deletes = now - when, self._accepted - accepted
            if seconds >= MIN_ESTIMATE_SECONDS and deletes >= MIN_ESTIMATE_DELETES:
                estimate = deletes * 60.0 / seconds
        if estimate is not None:
            rate = min(self.rate, estimate) * UNDER
        else:
            rate = self.rate * (FIRST_DROP if self._last_429 is None else LATER_DROP)
        self.rate = max(MIN_RATE, min(self.ceiling, rate))
        self._last_429 = (now, self._accepted)
        if retry_after is not None:
            self._not_before = max(self._not_before, now + retry_after)

    def wait_handed_over(self) -> None:
        """The caller takes the `Retry-After` wait over (the Actions cache: a wait longer than its last
        look is good for sends nothing, and apply looks again before the next DELETE, which GitHub
        answers again); the slower rate stays."""
        self._not_before = 0.0

    def trip(self, line: str) -> None:
        """A secondary-limit 403: no delete on this endpoint for the rest of the run."""
        self.window.trip(line)
