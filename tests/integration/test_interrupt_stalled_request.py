"""Ctrl-C while the registry stalls a request (issue 19, point 15).

`janitor apply PLAN` / `prune --yes` run as subprocesses against a real registry behind the fault
proxy, which never answers a DELETE (or, for `ls`, a GET). SIGINT once that request is in flight must
end the process within seconds (not after the ~120 s of read timeouts and retries), with exit 130, a
message saying what was done, that the in-flight delete's outcome is unknown and that a rerun
continues; no traceback; no request sent after the signal; the journal holding exactly the finished
actions as whole JSON lines. A rerun then finishes the plan.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support.fault_proxy import FaultProxy, Rule
from tests.support.push import OCI_MANIFEST, Pusher, dumps

ROOT = Path(__file__).resolve().parents[2]
OLD = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=45)
STALE = 20          # stale branch caches -> 20 deletes
PASS = 3            # DELETEs let through before the one that stalls
STALL = 600.0       # longer than any test: the stalled request is never answered
# The issue asks for 2 s; CI machines shared by several jobs get a margin.
BOUND = float(os.environ.get("JANITOR_TEST_INTERRUPT_BOUND", "5"))


def seed(pusher: Pusher) -> None:
    _, body = pusher.buildkit_cache("cache-base", [b"base" * 64], OLD)
    _, stale = pusher.buildkit_cache("cache-s-b00", [b"stale" * 16], OLD)
    doc = json.loads(stale)
    for i in range(1, STALE):
        doc["annotations"] = {"dev.example.build": str(i)}
        pusher.manifest(f"cache-s-b{i:02d}", dumps(doc), OCI_MANIFEST)


def env_for(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JANITOR_", "GITHUB_", "GH_"))}
    env.update({"JANITOR_CACHE_DIR": str(tmp / "cache"), "JANITOR_STATE_DIR": str(tmp / "state"),
                "DOCKER_CONFIG": str(tmp / "docker"), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"})
    return env


def make_plan(tmp: Path, target: str) -> Path:
    from ghcr_janitor.cli.app import app

    path = tmp / "plan.json"
    result = CliRunner().invoke(app, ["plan", target, "-o", str(path)], env=env_for(tmp))
    assert result.exit_code == 0, result.output
    actions = json.loads(path.read_text())["targets"][0]["actions"]
    assert len(actions) == STALE and all(a["action"] == "delete" for a in actions), actions
    return path


def janitor(*args: str) -> list[str]:
    return [sys.executable, "-m", "ghcr_janitor", *args]


def wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"exited ({proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {what} within {timeout} s")
        time.sleep(0.01)


def interrupt(proc: subprocess.Popen, twice: bool = False) -> tuple[float, str, str]:
    """SIGINT (twice: a second one right after, while the first is being handled); seconds from the
    first signal to exit, stdout, stderr."""
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    if twice:
        proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=BOUND + 120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return time.monotonic() - sent, out, err


def journal_lines(plan: Path) -> list[dict]:
    """Every line of the journal, each of which must be one whole JSON object."""
    path = plan.with_name(plan.name + ".journal")
    if not path.exists():
        return []
    raw = path.read_bytes()
    assert raw == b"" or raw.endswith(b"\n"), "the journal ends in a torn line"
    return [json.loads(line) for line in raw.decode().splitlines()]


def deletes_forwarded(proxy: FaultProxy) -> set[str]:
    return {e.path.rsplit("/manifests/", 1)[1] for e in proxy.log("DELETE", forwarded=True)}


@pytest.fixture
def stalled(registry, tmp_path):
    """A seeded repository behind a proxy whose DELETE number PASS+1 (and every later one) never answers."""
    pusher = Pusher(registry.url, f"interrupt/stall{os.getpid()}-{time.monotonic_ns()}")
    seed(pusher)
    with FaultProxy(registry.host) as proxy:
        yield pusher, proxy


def _assert_interrupted(elapsed: float, code: int, err: str) -> None:
    assert "Traceback" not in err, err
    assert code == 130, err
    assert elapsed < BOUND, f"exit took {elapsed:.1f} s after SIGINT\n{err}"


@pytest.mark.parametrize("twice", [False, True], ids=["one-sigint", "two-sigints"])
def test_ctrl_c_during_a_stalled_delete_exits_at_once_and_journals_exactly_what_was_done(stalled, tmp_path, twice):
    pusher, proxy = stalled
    plan = make_plan(tmp_path, f"{proxy.host}/{pusher.repo}")
    proxy.clear()
    proxy.add(Rule("stall", method="DELETE", seconds=STALL, skip=PASS, times=None))
    proc = subprocess.Popen(janitor("apply", str(plan), "--yes"), env=env_for(tmp_path), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: any(e.fault == "stall" for e in proxy.log("DELETE")), proc, "stalled DELETE")
    time.sleep(0.2)                    # the DELETE is surely blocking its worker thread now
    requests_before = len(proxy.log())
    elapsed, _out, err = interrupt(proc, twice)
    print(f"apply: SIGINT to exit {elapsed:.2f} s\n{err}")
    _assert_interrupted(elapsed, proc.returncode, err)

    # What was done, the abandoned delete's unknown outcome, how to continue.
    assert re.search(rf"interrupted: {PASS} of {STALE} actions done", err), err
    assert "1 in flight abandoned" in err and "outcome is unknown" in err, err
    assert f"rerun `janitor apply {plan}` to continue" in err, err
    # Nothing was sent after the signal (the stalled DELETE is never retried).
    time.sleep(0.3)
    assert len(proxy.log()) == requests_before, proxy.log()[requests_before:]

    # The journal: whole JSON lines, exactly the PASS finished deletes, all "done".
    entries = journal_lines(plan)
    assert [e["status"] for e in entries] == ["done"] * PASS, entries
    done_digests = {e["key"].split("|")[3] for e in entries}
    assert done_digests == deletes_forwarded(proxy)

    # A rerun (the registry answering again) continues and finishes.
    proxy.clear()
    rerun = subprocess.run(janitor("apply", str(plan), "--yes", "-O", "json"), env=env_for(tmp_path), cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    results = json.loads(rerun.stdout)["targets"][0]["results"]
    assert sum(r["reason"] == "already done (apply journal)" for r in results) == PASS
    assert all(r["status"] == "done" for r in results), results
    assert set(pusher.tags()) == {"cache-base"}


def test_ctrl_c_during_a_stalled_delete_in_prune_says_to_rerun_prune(stalled, tmp_path):
    pusher, proxy = stalled
    proxy.add(Rule("stall", method="DELETE", seconds=STALL, skip=PASS, times=None))
    proc = subprocess.Popen(janitor("prune", f"{proxy.host}/{pusher.repo}", "--yes"), env=env_for(tmp_path),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: any(e.fault == "stall" for e in proxy.log("DELETE")), proc, "stalled DELETE")
    time.sleep(0.2)
    requests_before = len(proxy.log())
    elapsed, _out, err = interrupt(proc)
    print(f"prune: SIGINT to exit {elapsed:.2f} s\n{err}")
    _assert_interrupted(elapsed, proc.returncode, err)
    assert re.search(rf"interrupted: {PASS} of {STALE} actions done", err), err
    assert "1 in flight abandoned" in err and "outcome is unknown" in err, err
    assert "rerun the same `janitor prune` command to continue" in err, err
    time.sleep(0.3)
    assert len(proxy.log()) == requests_before, proxy.log()[requests_before:]
    assert len(deletes_forwarded(proxy)) == PASS


def test_ctrl_c_during_a_stalled_listing_get_exits_at_once(stalled, tmp_path):
    pusher, proxy = stalled
    proxy.add(Rule("stall", method="GET", seconds=STALL, path="/manifests/", times=None))
    proc = subprocess.Popen(janitor("ls", f"{proxy.host}/{pusher.repo}"), env=env_for(tmp_path), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: any(e.fault == "stall" for e in proxy.log("GET")), proc, "stalled GET")
    time.sleep(0.2)
    requests_before = len(proxy.log())
    elapsed, _out, err = interrupt(proc)
    print(f"ls: SIGINT to exit {elapsed:.2f} s")
    _assert_interrupted(elapsed, proc.returncode, err)
    assert "interrupted" in err, err
    time.sleep(0.3)
    assert len(proxy.log()) == requests_before, proxy.log()[requests_before:]
