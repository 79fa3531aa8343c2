"""Adaptive delete pacing (net/pacing.py) on an injected clock, alone and through the GitHub REST
clients against the rate-limiting stand-in (tests/support/github_standin.py). Nothing here is
timed: a fake clock advances by the stand-in's round trip and by every sleep."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from ghcr_janitor.net.auth.secret import Secret
from ghcr_janitor.net.budget import RequestBudget
from ghcr_janitor.net.github import GitHubPackages
from ghcr_janitor.net.pacing import (
    DOCUMENTED_DELETES_PER_MINUTE, DeletePacer, EndpointWindow, SecondaryLimitStop, ceiling,
)
from ghcr_janitor.stores.gha.api import ActionsCacheApi, LookExpired
from tests.support.github_standin import GitHubStandin, Limits, in_process

START = 1_800_000_000.0


class FakeTime:
    def __init__(self, now: float = START):
        self.now = now
        self.slept = 0.0

    def clock(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        assert seconds > 0, "never spin"
        self.slept += seconds
        self.now += seconds


# --- the pacer alone ---------------------------------------------------------------------------

def test_the_ceiling_is_the_documented_rate_or_the_users_cap_if_lower():
    assert DOCUMENTED_DELETES_PER_MINUTE == 180           # 900 points a minute, 5 a DELETE
    assert ceiling(None) == 180 and ceiling(60) == 60 and ceiling(1000) == 180
    pacer = DeletePacer(30)
    assert pacer.rate == 30 and pacer.delay(0.0) == 0.0
    pacer.sent(0.0)
    assert pacer.delay(0.5) == pytest.approx(1.5)           # 2 s apart at 30 a minute
    for _ in range(100):
        pacer.clean(1.0)
    assert pacer.rate == 30                                  # grows, but never past the cap


def test_the_endpoint_window_never_allows_more_than_180_in_61_seconds():
    window = EndpointWindow()
    pacers = [DeletePacer(None, window) for _ in range(3)]  # three packages, one endpoint
    now, sent = 0.0, []
    while now < 200:
        for pacer in pacers:
            if pacer.delay(now) == 0:
                pacer.sent(now)
                sent.append(now)
        now += 0.01
    for start in sent:
        assert sum(1 for s in sent if start <= s < start + 61.0) <= 180


def test_a_429_drops_to_the_rate_github_accepted_and_clean_answers_grow_it_back():
    pacer = DeletePacer()
    pacer.throttled(0.0, 1.0)                               # first 429, no estimate yet: half
    assert pacer.rate == 90 and pacer.delay(0.5) == pytest.approx(0.5)     # and nothing before Retry-After
    for i in range(30):                                     # 30 accepted in 30 s: 60 a minute
        pacer.clean(float(i))
    pacer.throttled(30.0, 1.0)
    assert pacer.rate == pytest.approx(60 * 0.9)
    before = pacer.rate
    for _ in range(25):
        pacer.clean(31.0)
    assert 1.09 * before < pacer.rate < 1.11 * before       # 0.4 % a clean answer


def test_a_tripped_endpoint_refuses_every_later_delete_of_the_run():
    window = EndpointWindow()
    a, b = DeletePacer(None, window), DeletePacer(None, window)
    a.trip("secondary limit: stop")
    for pacer in (a, b):
        with pytest.raises(SecondaryLimitStop, match="secondary limit: stop"):
            pacer.delay(0.0)


# --- the clients against the stand-in --------------------------------------------------------

def _packages(standin: GitHubStandin, t: FakeTime, package: str = "app", budget: RequestBudget | None = None,
              **kw) -> GitHubPackages:
    client = httpx.AsyncClient(transport=in_process(standin, t.advance))
    return GitHubPackages("acme", package, Secret("ghs_standin_token"), owner_type="org", api_url="http://127.0.0.1",
                          client=client, sleep=t.sleep, clock=t.clock,
                          budget=budget if budget is not None else RequestBudget(), **kw)


async def _delete_all(api: GitHubPackages, ids: list[int]) -> float:
    start = api.clock()
    try:
        for vid in ids:
            await api.delete_version(vid)
    finally:
        await api.aclose()
    return api.clock() - start


@pytest.mark.parametrize("throttle", ["bucket", "window"])
def test_package_deletes_reach_90_percent_of_the_allowed_rate_with_few_429s_and_no_403(throttle):
    limits = Limits(throttle=throttle)                      # 60 a minute a package, burst 10, 100 ms round trips
    t = FakeTime()
    standin = GitHubStandin(limits, clock=t.clock)
    ids = standin.add_versions("acme", "app", 600)
    elapsed = asyncio.run(_delete_all(_packages(standin, t), ids))
    stats = standin.stats
    assert stats.deletes_ok == 600
    assert stats.secondary == 0 and stats.into_penalty == 0 and stats.primary == 0
    assert stats.throttled < 0.05 * 600, stats
    ratio = limits.minimum_seconds(600, package=True) / elapsed
    assert ratio >= 0.9, (ratio, elapsed, stats.throttled)


def test_the_old_fixed_60_a_minute_is_slower_than_the_documented_limits_allow():
    limits = Limits(package_per_minute=None)                # no package throttle: 180 a minute
    t = FakeTime()
    standin = GitHubStandin(limits, clock=t.clock)
    ids = standin.add_versions("acme", "app", 300)
    elapsed = asyncio.run(_delete_all(_packages(standin, t, deletes_per_minute=60), ids))
    assert limits.minimum_seconds(300, package=False) / elapsed < 0.4         # a third of it
    t = FakeTime()
    standin = GitHubStandin(limits, clock=t.clock)
    ids = standin.add_versions("acme", "app", 300)
    elapsed = asyncio.run(_delete_all(_packages(standin, t), ids))
    assert limits.minimum_seconds(300, package=False) / elapsed >= 0.9
    assert standin.stats.secondary == 0 and standin.stats.throttled == 0


def _caches(standin: GitHubStandin, t: FakeTime, budget: RequestBudget | None = None) -> ActionsCacheApi:
    client = httpx.AsyncClient(transport=in_process(standin, t.advance))
    return ActionsCacheApi("acme", "app", Secret("ghs_standin_token"), api_url="http://127.0.0.1", client=client,
                           sleep=t.sleep, clock=t.clock, budget=budget if budget is not None else RequestBudget())


async def _delete_caches(api: ActionsCacheApi, ids: list[int]) -> float:
    start = api.clock()
    try:
        for cid in ids:
            assert await api.delete(cid)
    finally:
        await api.aclose()
    return api.clock() - start


def test_actions_cache_deletes_reach_90_percent_of_the_documented_rate_without_a_403():
    limits = Limits(package_per_minute=None)
    t = FakeTime()
    standin = GitHubStandin(limits, clock=t.clock)
    ids = standin.add_caches("acme", "app", 540)
    elapsed = asyncio.run(_delete_caches(_caches(standin, t), ids))
    assert standin.stats.deletes_ok == 540 and standin.stats.secondary == 0
    assert limits.minimum_seconds(540, package=False) / elapsed >= 0.9


def test_a_pacing_wait_past_the_last_look_is_not_sent():
    standin = GitHubStandin(Limits(package_per_minute=None), clock=FakeTime().clock)
    t = FakeTime()
    standin.clock = t.clock
    ids = standin.add_caches("acme", "app", 2)
    api = _caches(standin, t)

    async def go():
        try:
            await api.delete(ids[0])
            with pytest.raises(LookExpired):                # the next slot is 1/3 s away; the look ends now
                await api.delete(ids[1], send_by=t.clock())
        finally:
            await api.aclose()
    asyncio.run(go())
    assert standin.stats.deletes_ok == 1


def test_the_primary_budget_is_waited_for_not_run_into_even_by_another_target():
    limits = Limits(hourly=50, package_per_minute=None)
    t = FakeTime()
    standin = GitHubStandin(limits, clock=t.clock)
    first, second = standin.add_versions("acme", "a", 50), standin.add_versions("acme", "b", 10)
    budget = RequestBudget()
    asyncio.run(_delete_all(_packages(standin, t, "a", budget), first))
    assert budget.remaining == 0
    asyncio.run(_delete_all(_packages(standin, t, "b", budget), second))    # waits for the reset first
    assert standin.stats.primary == 0 and standin.stats.deletes_ok == 60
    assert t.now > START + 3600


# --- a secondary-limit 403 stops the deletes ---------------------------------------------------

def _secondary_scenario(monkeypatch=None) -> tuple[GitHubStandin, list[str]]:
    """GitHub's points limit lower than documented (300 a minute: 60 deletes): the pacer, at the
    documented 180 a minute, meets a secondary-limit 403. Two packages, one endpoint."""
    limits = Limits(points_per_minute=300, package_per_minute=None)
    t = FakeTime()
    standin = GitHubStandin(limits, clock=t.clock)
    a, b = standin.add_versions("acme", "a", 200), standin.add_versions("acme", "b", 20)
    budget = RequestBudget()
    errors: list[str] = []

    async def go():
        for package, ids in (("a", a), ("b", b)):
            api = _packages(standin, t, package, budget)
            try:
                for vid in ids:
                    try:
                        await api.delete_version(vid)
                    except Exception as exc:              # the applier records a failed action, goes on
                        errors.append(f"{type(exc).__name__}: {exc}")
            finally:
                await api.aclose()
    asyncio.run(go())
    return standin, errors


def test_a_secondary_limit_403_stops_every_later_delete_on_that_endpoint():
    standin, errors = _secondary_scenario()
    stats = standin.stats
    assert stats.secondary == 1 and stats.into_penalty == 0        # one 403, nothing sent into it
    assert stats.deletes_ok == 60                                   # the minute's 300 points, then stop
    assert len(errors) == 220 - 60
    assert all(e.startswith("SecondaryLimitStop: GitHub API: secondary rate limit on DELETE "
                            "/orgs/acme/packages/container/a/versions/{id} (403: You have exceeded a secondary rate limit")
               for e in errors), errors[:2]
    assert "no more deletes on it this run" in errors[0] and "rerun after" in errors[0]


def test_without_the_guard_the_client_continues_into_the_403(monkeypatch):
    """The guard is what stops it: with `_after_delete` not tripping on a 403 (the old client:
    wait as told, send again), the same scenario keeps deleting and meets 403 after 403."""
    monkeypatch.setattr(GitHubPackages, "_after_delete", lambda self, response, target: None)
    standin, _ = _secondary_scenario()
    assert standin.stats.secondary > 1
