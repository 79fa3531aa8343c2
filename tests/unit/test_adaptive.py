"""The adaptive in-flight limit and the worker pool that applies it."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from ghcr_janitor.net.adaptive import AdaptiveLimit
from ghcr_janitor.net.workers import Workers


def feed(limit: AdaptiveLimit, rtt_at, windows: int) -> list[int]:
    """Simulate `windows` windows where the round trip depends on the current limit."""
    seen = []
    for _ in range(windows):
        for _ in range(max(4, limit.limit)):
            limit.sample(rtt_at(limit.limit))
        seen.append(limit.limit)
    return seen


def test_long_round_trip_without_queueing_climbs_to_the_bound():
    limit = AdaptiveLimit(64, initial=8)
    seen = feed(limit, lambda n: 0.100, 6)          # a 100 ms WAN: more in flight costs no latency
    assert seen[:3] == [16, 32, 64] and limit.limit == 64


def test_registry_that_slows_down_gets_fewer_requests_then_more_again():
    limit = AdaptiveLimit(64)
    assert limit.limit == 64                             # starts at the bound
    feed(limit, lambda n: 0.004, 5)                      # fast: stays at the bound
    assert limit.limit == 64
    # The registry slows down (another client, a GC): round trips 20x, worse with more in flight.
    seen = feed(limit, lambda n: 0.08 * n / 64, 25)
    assert limit.limit <= 32, seen
    assert max(seen[-5:]) - min(seen[-5:]) <= 8          # settles, does not swing
    low = limit.limit
    seen = feed(limit, lambda n: 0.004, 40)              # recovered: grows back, in steps
    assert limit.limit > low and seen[0] - low <= max(1, low // 8)


def test_moderate_queueing_is_kept():
    # Served 8 at a time: round trips grow linearly past 8 in flight (loopback: CPU-bound registry).
    limit = AdaptiveLimit(32)
    feed(limit, lambda n: 0.002 * max(1, n / 8), 30)
    assert limit.limit == 32


def test_overload_halves_and_stops_slow_start():
    limit = AdaptiveLimit(64, initial=32)
    limit.overloaded()
    assert limit.limit == 16
    limit.overloaded()
    limit.overloaded()
    limit.overloaded()
    limit.overloaded()
    assert limit.limit == 1
    limit.overloaded()
    assert limit.limit == 1                          # never below one
    feed(limit, lambda n: 0.1, 3)
    assert 1 < limit.limit <= 4                      # additive growth after an overload, not doubling


def test_bounds():
    assert AdaptiveLimit(4, initial=100).limit == 4
    assert AdaptiveLimit(0).maximum == 1
    limit = AdaptiveLimit(3, initial=1)
    feed(limit, lambda n: 0.1, 5)
    assert limit.limit == 3
    assert "limit=3" in repr(limit)


def test_workers_respect_the_limit_and_return_results_and_errors():
    limit = AdaptiveLimit(8, initial=3)
    workers = Workers(8, limit)
    running = 0
    peak = 0
    lock = threading.Lock()

    def job(i: int):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        if i == 5:
            raise ValueError("five")
        return i * 2

    async def main():
        futures = [workers.submit(lambda i=i: job(i)) for i in range(20)]
        return await asyncio.gather(*futures, return_exceptions=True)

    results = asyncio.run(main())
    assert results[:5] == [0, 2, 4, 6, 8]
    assert isinstance(results[5], ValueError)
    assert results[6:] == [i * 2 for i in range(6, 20)]
    assert peak <= 3 and workers.peak <= 3
    workers.close()
    with pytest.raises(RuntimeError):
        asyncio.run(_submit(workers))


async def _submit(workers: Workers):
    return await workers.submit(lambda: 1)


def test_workers_follow_a_raised_limit():
    limit = AdaptiveLimit(16, initial=1)
    workers = Workers(16, limit)
    gate = threading.Event()

    def job():
        gate.wait(2)
        return 1

    async def main():
        futures = [workers.submit(job) for _ in range(8)]
        await asyncio.sleep(0.1)
        first = workers.peak
        limit.limit = 8
        # the waiting workers learn of the new limit when one finishes
        gate.set()
        await asyncio.gather(*futures)
        return first

    first = asyncio.run(main())
    assert first == 1
    workers.close()


def test_workers_used_from_two_event_loops_in_turn():
    workers = Workers(2)

    async def main(x: int):
        return await asyncio.gather(*(workers.submit(lambda i=i: i + x) for i in range(5)))

    assert asyncio.run(main(0)) == [0, 1, 2, 3, 4]
    assert asyncio.run(main(10)) == [10, 11, 12, 13, 14]
    workers.close()


def test_threaded_client_backs_off_on_overload(monkeypatch):
    """A 503 that persists shrinks the client's in-flight limit (the retries stay as they were)."""
    import httpx

    from ghcr_janitor.net.http import make_client

    from ghcr_janitor.core.settings import HttpSettings

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503 if "busy" in request.url.path else 200, content=b"{}")

    client = make_client(32, None, base_url="http://127.0.0.1:9", policy=HttpSettings(attempts=1))
    client.client._transport = httpx.MockTransport(handler)
    before = client.limit.limit

    async def main():
        await client.send("GET", "http://127.0.0.1:9/v2/a/manifests/busy")
        await client.aclose()

    asyncio.run(main())
    assert client.limit.limit == before // 2


def test_closing_the_pool_never_starts_a_call_nobody_waits_for():
    """Ctrl-C during an apply: queued and gate-held calls (DELETEs among them) must not be sent."""
    import asyncio
    import threading
    import time

    started: list[int] = []
    lock = threading.Lock()

    def call(i: int):
        def run():
            with lock:
                started.append(i)
            time.sleep(0.2)
            return i
        return run

    async def main():
        workers = Workers(8, AdaptiveLimit(8, initial=1))
        futures = [workers.submit(call(i)) for i in range(8)]
        await asyncio.sleep(0.05)                 # one runs, the others wait at the gate or in the queue
        for f in futures:
            f.cancel()
        began = time.monotonic()
        workers.close()
        return time.monotonic() - began

    took = asyncio.run(main())
    assert len(started) == 1 and took < 1.0
