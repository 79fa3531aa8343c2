"""What the last look costs: requests and wall time of `janitor apply` for 100 deletes, side by side
with the same apply taking one snapshot at the start (the previous applier's cost: the minimum a
safe-on-a-still-world apply needs), on loopback and through a 40 ms round-trip proxy.

    python benchmarks/last_look.py [--deletes 100] [--kept 20] [--repeat 3] [--rtt-ms 40]

Needs Debian's `docker-registry` (the tests' registry). Each run seeds a fresh repository: `--deletes`
old `cache-old-N` tags the policy deletes and `--kept` protected tags that stay, so every look HEADs
`deletes + kept` tags at first and fewer as apply goes. Medians of `--repeat` runs, interleaved.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.push import Pusher  # noqa: E402
from tests.support.registry import RegistryServer  # noqa: E402

OLD = datetime.now(timezone.utc) - timedelta(days=90)
POLICY = ('protect = ["keep-*"]\n[[rule]]\nname = "old"\nselect = { tags = ["cache-old-*"] }\n'
          'older_than = "30d"\naction = "delete"\n')


def seed(base: str, repo: str, deletes: int, kept: int) -> None:
    pusher = Pusher(base, repo)
    layer = pusher.blob(b"shared" * 100)
    config = pusher.blob(b"{}")
    for i in range(deletes + kept):
        tag = f"cache-old-{i:03d}" if i < deletes else f"keep-{i:03d}"
        body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config,
                                      "size": 2},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer,
                                       "size": 600}],
                           "annotations": {"org.opencontainers.image.created": OLD.isoformat(), "n": str(i)}}).encode()
        pusher.manifest(tag, body, "application/vnd.oci.image.manifest.v1+json")


def run_apply(host: str, repo: str, tmp: Path, snapshot: bool) -> tuple[float, int, int]:
    """(wall seconds of apply, requests apply sent, deletes done)."""
    from typer.testing import CliRunner

    from ghcr_janitor.apply import last_look
    from ghcr_janitor.cli.app import app
    from ghcr_janitor.net.http import RequestLog

    policy = tmp / "policy.toml"
    policy.write_text(POLICY)
    plan = tmp / "plan.json"
    env = {"JANITOR_CACHE_DIR": str(tmp / "cache"), "JANITOR_STATE_DIR": str(tmp / "state")}
    made = CliRunner().invoke(app, ["plan", f"{host}/{repo}", "--policy", str(policy), "-o", str(plan)], env=env)
    assert made.exit_code == 0, made.output
    seen: list[str] = []
    original = RequestLog.record
    real_take = last_look.LastLook.take
    once: dict[int, object] = {}

    def record(self, method, url, status):
        seen.append(method)
        original(self, method, url, status)

    async def take_once(self, with_versions=False):
        if id(self) not in once:
            once[id(self)] = await real_take(self, with_versions)
        return once[id(self)]

    patches = [mock.patch.object(RequestLog, "record", record)]
    if snapshot:
        patches.append(mock.patch.object(last_look.LastLook, "take", take_once))
    for p in patches:
        p.start()
    try:
        started = time.perf_counter()
        result = CliRunner().invoke(app, ["apply", str(plan), "--yes", "-O", "json"], env=env)
        wall = time.perf_counter() - started
    finally:
        for p in patches:
            p.stop()
    rows = json.loads(result.stdout)["targets"][0]["results"]
    return wall, len(seen), sum(r["reason"] == "deleted" for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deletes", type=int, default=100)
    parser.add_argument("--kept", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rtt-ms", type=float, default=40.0)
    args = parser.parse_args()
    registry = RegistryServer().start()
    proxy = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "wan_proxy.py"), "--upstream",
                              registry.host, "--rtt-ms", str(args.rtt_ms)], stdout=subprocess.PIPE, text=True)
    wan = proxy.stdout.readline().split()[1]
    rows = []
    try:
        for label, host in (("loopback", registry.host), (f"WAN {args.rtt_ms:g} ms", wan)):
            results: dict[bool, list[tuple[float, int, int]]] = {False: [], True: []}
            for n in range(args.repeat):
                for snapshot in (True, False):
                    repo = f"bench/look-{label[:3].lower()}-{n}-{int(snapshot)}"
                    seed(registry.url, repo, args.deletes, args.kept)
                    with tempfile.TemporaryDirectory() as tmp:
                        results[snapshot].append(run_apply(host, repo, Path(tmp), snapshot))
            for snapshot in (True, False):
                wall = statistics.median(r[0] for r in results[snapshot])
                reqs = statistics.median(r[1] for r in results[snapshot])
                done = statistics.median(r[2] for r in results[snapshot])
                rows.append((label, "one snapshot (previous)" if snapshot else "last look before each delete",
                             done, reqs, f"{wall:.2f}"))
    finally:
        proxy.kill()
        registry.stop()
    from tabulate import tabulate

    print(tabulate(rows, headers=["network", "apply", "deleted", "requests", "wall s (median)"]))


if __name__ == "__main__":
    main()
