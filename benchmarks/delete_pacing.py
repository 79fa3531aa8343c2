"""Delete pacing against a rate-limiting GitHub REST stand-in (issue 23, items 3 and 4).

The janitor's GitHub clients (`GitHubPackages.delete_version`, `ActionsCacheApi.delete`) delete every
version of a package / every entry of an Actions cache served by tests/support/github_standin.py
over real HTTP on 127.0.0.1, with the adaptive pacer (net/pacing.py) and with the old fixed pace
(60 a minute for GHCR, 120 for the Actions cache, a 429 waited out as told), side by side with the
rate the stand-in allows (its binding limit's steady rate) and the theoretical minimum time at it.

Time is scaled (`--scale 20`: a stand-in minute lasts 3 s): client and stand-in share one clock
running K times faster than the wall clock, sleeps are divided by K, and the round trip is 100 ms
of that clock (5 ms real at K=20; the loopback's own latency adds to it). Each row is the median of
`--repeat` runs (3). Results go to benchmarks/results_pacing.md.

    python benchmarks/delete_pacing.py                 # all scenarios, K=20, 3 runs each
    python benchmarks/delete_pacing.py --scale 10 --repeat 1 --deletes 600
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ghcr_janitor.net.auth.secret import Secret  # noqa: E402
from ghcr_janitor.net.budget import RequestBudget  # noqa: E402
from ghcr_janitor.net.github import GitHubPackages  # noqa: E402
from ghcr_janitor.net.pacing import DeletePacer  # noqa: E402
from ghcr_janitor.stores.gha.api import ActionsCacheApi  # noqa: E402
from tests.support.github_standin import GitHubStandin, Limits, StandinServer  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results_pacing.md"


class FixedPacer(DeletePacer):
    """The pacing before issue 23: one delete every 60/N seconds, whatever GitHub answers."""

    def __init__(self, per_minute: float, window):
        super().__init__(per_minute, window)
        self.rate = self.ceiling = per_minute

    def clean(self, now: float) -> None:
        pass

    def throttled(self, now: float, retry_after: float | None) -> None:
        self.throttled_count += 1


class ScaledTime:
    def __init__(self, scale: float):
        self.scale = scale
        self.t0, self.m0 = 1_800_000_000.0, time.monotonic()

    def clock(self) -> float:
        return self.t0 + (time.monotonic() - self.m0) * self.scale

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds / self.scale)


SCENARIOS = {
    # name: (store, limits, old fixed pace a minute)
    "ghcr-bucket": ("ghcr", dict(package_per_minute=60, package_burst=10, throttle="bucket"), 60),
    "ghcr-window": ("ghcr", dict(package_per_minute=60, throttle="window"), 60),
    "ghcr-fast": ("ghcr", dict(package_per_minute=120, package_burst=20), 60),
    "ghcr-slow": ("ghcr", dict(package_per_minute=30, package_burst=5), 60),
    "gha": ("gha", dict(package_per_minute=None), 120),
}
DESCRIBED = {
    "ghcr-bucket": "GHCR, package throttle 60/min (token bucket, burst 10)",
    "ghcr-window": "GHCR, package throttle 60/min (fixed minute window)",
    "ghcr-fast": "GHCR, package throttle 120/min (token bucket, burst 20)",
    "ghcr-slow": "GHCR, package throttle 30/min (token bucket, burst 5)",
    "gha": "Actions cache, documented limits only (900 points/min, DELETE 5)",
}


async def one_run(scenario: str, pacing: str, deletes: int, scale: float) -> dict:
    store, overrides, old = SCENARIOS[scenario]
    t = ScaledTime(scale)
    limits = Limits(round_trip=0.1 / scale, **overrides)
    standin = GitHubStandin(limits, clock=t.clock)
    with StandinServer(standin) as server:
        client = httpx.AsyncClient(timeout=30)
        common = dict(api_url=server.url, client=client, sleep=t.sleep, clock=t.clock, budget=RequestBudget())
        if store == "ghcr":
            ids = standin.add_versions("acme", "app", deletes)
            api = GitHubPackages("acme", "app", Secret("ghs_bench"), owner_type="org", **common)
            delete = api.delete_version
        else:
            ids = standin.add_caches("acme", "app", deletes)
            api = ActionsCacheApi("acme", "app", Secret("ghs_bench"), **common)
            delete = api.delete
        if pacing == "old":
            api.pacer = FixedPacer(old, api.pacer.window)
        start = t.clock()
        try:
            for item in ids:
                await delete(item)
        finally:
            await api.aclose()
        elapsed = t.clock() - start
    stats = standin.stats
    allowed = limits.allowed_per_minute(store == "ghcr")
    return {"seconds": elapsed, "rate": stats.deletes_ok * 60.0 / elapsed, "allowed": allowed,
            "minimum": limits.minimum_seconds(deletes, store == "ghcr"), "throttled": stats.throttled,
            "secondary": stats.secondary, "deleted": stats.deletes_ok, "deletes": deletes}


def median_run(scenario: str, pacing: str, deletes: int, scale: float, repeat: int) -> dict:
    runs = [asyncio.run(one_run(scenario, pacing, deletes, scale)) for _ in range(repeat)]
    middle = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    return {**middle, "runs": [round(r["seconds"], 1) for r in runs],
            "throttled": statistics.median(r["throttled"] for r in runs),
            "secondary": max(r["secondary"] for r in runs)}


def render(rows: list[tuple[str, str, dict]], args) -> str:
    lines = [
        "# Delete pacing against the rate-limiting GitHub REST stand-in",
        "",
        f"`python benchmarks/delete_pacing.py --scale {args.scale:g} --repeat {args.repeat} --deletes {args.deletes}`"
        f" ({time.strftime('%Y-%m-%d')}, load average {os.getloadavg()[0]:.1f}). Times are stand-in seconds "
        f"(the clock runs {args.scale:g}x the wall clock; round trip 100 ms of it), medians of {args.repeat}. "
        "*allowed* is the steady delete rate of the stand-in's binding limit; *min s* the time at that rate "
        "(a first burst, which a short run profits from, is not counted: a ratio above 1 is that burst).",
        "",
        "| scenario | pacing | deletes | time s (runs) | min s | achieved /min | allowed /min | achieved / allowed "
        "| 429s (share) | secondary 403s |",
        "|---|---|---:|---|---:|---:|---:|---:|---|---:|",
    ]
    for scenario, pacing, r in rows:
        label = "adaptive (new)" if pacing == "new" else f"fixed {SCENARIOS[scenario][2]}/min (old)"
        lines.append(
            f"| {DESCRIBED[scenario]} | {label} | {r['deleted']}/{r['deletes']} | {r['seconds']:.0f} "
            f"({', '.join(str(x) for x in r['runs'])}) | {r['minimum']:.0f} | {r['rate']:.1f} | {r['allowed']:.0f} "
            f"| {r['rate'] / r['allowed']:.2f} | {r['throttled']:.0f} ({100 * r['throttled'] / r['deletes']:.1f} %) "
            f"| {r['secondary']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--deletes", type=int, default=200)
    parser.add_argument("--scenarios", nargs="*", default=list(SCENARIOS))
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    rows = []
    for scenario in args.scenarios:
        for pacing in ("new", "old"):
            deletes = args.deletes if SCENARIOS[scenario][0] == "ghcr" else args.deletes + args.deletes // 5
            row = median_run(scenario, pacing, deletes, args.scale, args.repeat)
            rows.append((scenario, pacing, row))
            print(f"{scenario:12} {pacing}: {row['seconds']:.0f} s (min {row['minimum']:.0f}), "
                  f"{row['rate']:.1f}/min of {row['allowed']:.0f}, 429s {row['throttled']:.0f}, "
                  f"403s {row['secondary']}", flush=True)
    text = render(rows, args)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
