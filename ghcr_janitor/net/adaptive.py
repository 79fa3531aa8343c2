"""A limit on in-flight requests that follows what the registry answers (latency, overload).

Delay-based, like TCP Vegas: the controller keeps the lowest round trip it has seen
(`base_rtt`, the window median at its best) and estimates from each window's median round trip
how many of the requests in flight are only queueing: `limit * (1 - base_rtt / median)`. Fewer
than `QUEUE_LOW`: more in flight would add throughput, so the limit grows (doubling until the
first sign of queueing, then in steps of an eighth). Nearly all queueing (round trips 10x the
base and more): the registry slows down under our load, and the limit shrinks by a fifth. A
429/503 (or a timeout) halves it at once, and growth is then additive.

It starts at its upper bound (`--concurrency`): measured here (PERF_NOTES / benchmarks), starting
lower and doubling costs a 100 ms WAN run 0.2-0.4 s of ramp-up, and on loopback moderate queueing
at the registry costs nothing while fewer requests in flight cost the client more CPU per request
(fewer results per worker hand-off). Samples come from reused connections only (set-up is not
queueing) and exclude retried requests (their waits are not latency).
"""

from __future__ import annotations

import math
import threading

QUEUE_LOW = 4          # requests estimated queueing: under this grow ...
QUEUE_HIGH = 8         # ... over this and over QUEUE_SHARE of the limit shrink
QUEUE_SHARE = 0.9      # (round trips 10x the base: the registry slows down under our load)
SHRINK_FACTOR = 0.8
OVERLOAD_FACTOR = 0.5
BASE_DRIFT = 1.005     # the base round trip is forgotten slowly (routes and servers change)
MIN_WINDOW = 4         # samples per decision: half the limit, at least this


class AdaptiveLimit:
    """`limit` in [1, maximum]; call `sample(seconds)` per completed request, `overloaded()` on 429/503."""

    def __init__(self, maximum: int, initial: int | None = None):
        self.maximum = max(1, maximum)
        self.limit = max(1, min(self.maximum, initial if initial is not None else self.maximum))
        self.base_rtt = math.inf
        self._window: list[float] = []
        self._slow_start = True
        self._lock = threading.Lock()
        self.changes = 0

    def __repr__(self) -> str:
        return f"AdaptiveLimit(limit={self.limit}, maximum={self.maximum}, base_rtt={self.base_rtt:.4f})"

    def sample(self, seconds: float) -> None:
        """One request's round trip (on a reused connection: connection set-up is not queueing)."""
        with self._lock:
            window = self._window
            window.append(seconds)
            if len(window) < max(MIN_WINDOW, self.limit // 2):
                return
            window.sort()
            median = window[len(window) // 2]
            self._window = []
            self.base_rtt = min(self.base_rtt * BASE_DRIFT, median)
            queued = self.limit * (1 - self.base_rtt / median) if median > 0 else 0.0
            if queued < QUEUE_LOW:
                step = self.limit if self._slow_start else max(1, self.limit // 8)
                self._set(self.limit + step)
            elif queued > max(QUEUE_HIGH, self.limit * QUEUE_SHARE):
                self._slow_start = False
                self._set(int(self.limit * SHRINK_FACTOR))
            else:
                self._slow_start = False

    def overloaded(self) -> None:
        """The registry said 429 or 503: back off at once."""
        with self._lock:
            self._slow_start = False
            self._window = []
            self._set(int(self.limit * OVERLOAD_FACTOR))

    def _set(self, value: int) -> None:
        value = max(1, min(self.maximum, value))
        if value != self.limit:
            self.limit = value
            self.changes += 1
