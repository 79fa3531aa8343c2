"""SIGKILL `janitor apply` mid-run, rerun it: the rest completes, journaled actions are not
redone, and the end state equals an uninterrupted apply of an identically seeded repository."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from typer.testing import CliRunner

from tests.support.fault_proxy import FaultProxy, Rule
from tests.support.push import OCI_MANIFEST, Pusher, dumps

ROOT = Path(__file__).resolve().parents[2]
OLD = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=45)
STALE = 50          # stale branch caches -> 50 deletes
ALIASES = 10        # stale aliases of the protected cache-base digest -> 10 untags (placeholders)


def seed(pusher: Pusher) -> None:
    """Identical content in every repository it seeds (so digests match across them).
    The stale caches share their blobs and differ by a manifest annotation: few uploads."""
    _, body = pusher.buildkit_cache("cache-base", [b"base" * 64], OLD)
    for i in range(ALIASES):
        pusher.manifest(f"cache-base-a{i:02d}", body, OCI_MANIFEST)
    _, stale = pusher.buildkit_cache("cache-s-b00", [b"stale" * 16], OLD)
    doc = json.loads(stale)
    for i in range(1, STALE):
        doc["annotations"] = {"dev.example.build": str(i)}
        pusher.manifest(f"cache-s-b{i:02d}", dumps(doc), OCI_MANIFEST)
    pusher.buildkit_cache("cache-python-deps", [b"deps" * 32], OLD)


def env_for(tmp: Path, name: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JANITOR_", "GITHUB_", "GH_"))}
    env.update({"JANITOR_CACHE_DIR": str(tmp / f"cache-{name}"), "JANITOR_STATE_DIR": str(tmp / f"state-{name}"),
                "DOCKER_CONFIG": str(tmp / "docker"), "JANITOR_RETRY_WAIT": "0.02",
                "PYTHONPATH": str(ROOT)})
    return env


def plan_for(tmp: Path, target: str, name: str) -> Path:
    from ghcr_janitor.cli.app import app

    path = tmp / name / "plan.json"
    path.parent.mkdir()
    result = CliRunner().invoke(app, ["plan", target, "-o", str(path)], env=env_for(tmp, name))
    assert result.exit_code == 0, result.output
    actions = json.loads(path.read_text())["targets"][0]["actions"]
    assert len(actions) == STALE + ALIASES
    assert sum(a["action"] == "untag" for a in actions) == ALIASES
    return path


def apply_cmd(plan: Path) -> list[str]:
    return [sys.executable, "-m", "ghcr_janitor", "apply", str(plan), "--yes", "-O", "json"]


def journal_done(plan: Path) -> list[dict]:
    path = plan.with_name(plan.name + ".journal")
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("status") == "done":
            out.append(entry)
    return out


def test_sigkill_mid_apply_then_rerun_finishes_without_redoing(registry, tmp_path):
    interrupted = Pusher(registry.url, f"interrupt/a{os.getpid()}")
    reference = Pusher(registry.url, f"interrupt/b{os.getpid()}")
    seed(interrupted)
    seed(reference)
    with FaultProxy(registry.host) as proxy:
        plan_a = plan_for(tmp_path, f"{proxy.host}/{interrupted.repo}", "a")
        plan_b = plan_for(tmp_path, f"{proxy.host}/{reference.repo}", "b")

        # The uninterrupted reference run.
        done = subprocess.run(apply_cmd(plan_b), env=env_for(tmp_path, "b"), capture_output=True, text=True,
                              timeout=120, cwd=ROOT)
        assert done.returncode == 0, done.stdout + done.stderr
        expected = reference.tags()

        # Slow every DELETE so that the run is surely mid-apply when killed.
        proxy.clear()
        proxy.add(Rule("delay", method="DELETE", seconds=0.06, times=None))
        proc = subprocess.Popen(apply_cmd(plan_a), env=env_for(tmp_path, "a"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, cwd=ROOT)
        try:
            deadline = time.monotonic() + 60
            while len(journal_done(plan_a)) < 15:
                assert proc.poll() is None, "apply finished before it could be interrupted"
                assert time.monotonic() < deadline, "apply made no progress"
                time.sleep(0.02)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        journaled = journal_done(plan_a)
        assert 15 <= len(journaled) < STALE + ALIASES, "the kill must land mid-apply"
        seen_before_kill = len(proxy.log())

        # Rerun (no delay): completes the rest.
        proxy.clear()
        rerun = subprocess.run(apply_cmd(plan_a), env=env_for(tmp_path, "a"), capture_output=True, text=True,
                               timeout=120, cwd=ROOT)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        results = json.loads(rerun.stdout)["targets"][0]["results"]
        # A DELETE in flight at the kill may still have been carried out, unjournalled: the rerun
        # finds its tag gone ("gone": nothing to do), never reports it done from the journal.
        statuses = [r["status"] for r in results]
        assert set(statuses) <= {"done", "gone"} and statuses.count("gone") <= 1, results
        # Every journalled action was checked against the registry (its tag is gone) before it
        # was reported done from the journal.
        assert sum(r["reason"] == "already done (apply journal)" for r in results) == len(journaled)

        # Journaled actions were not redone: no DELETE names their tag or digest again.
        rerun_deletes = {e.path.rsplit("/manifests/", 1)[1] for e in proxy.log("DELETE")}
        for entry in journaled:
            _target, action, tag, digest, _to = entry["key"].split("|")
            assert tag not in rerun_deletes, f"{action} {tag} redone"
            if action == "delete":
                assert digest not in rerun_deletes, f"delete {digest} redone"
        assert seen_before_kill > 0

    # Same end state as the uninterrupted run, and exactly what the plan says.
    assert interrupted.tags() == expected
    assert set(expected) == {"cache-base", "cache-python-deps"}
