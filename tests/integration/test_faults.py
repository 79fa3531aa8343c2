"""Fault injection: the janitor through a misbehaving proxy in front of the real registry.

For each fault class (429 + Retry-After, 503, connection reset, reset mid-body, stall past
the client timeout, truncated body, wrong Docker-Content-Digest):

* `ls -O json` and `plan` return exactly what a clean run returns, or exit non-zero with a
  one-line report on stderr (never a traceback, never a plan that deletes on partial facts);
* `apply` never sends a DELETE outside the plan (proxy log), never changes a tag the plan
  keeps (registry tag map before/after), and a clean rerun completes what was left.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from itertools import count
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ghcr_janitor.stores.oci.registry import DELETE_PROBE_DIGEST
from tests.support.fault_proxy import WRONG_DIGEST, FaultProxy, Rule
from tests.support.push import Pusher

NOW = datetime.now(timezone.utc).replace(microsecond=0)
OLD = NOW - timedelta(days=40)
FRESH = NOW - timedelta(days=3)

# Bounded, fast retries for the whole file (read by ghcr_janitor.net.http at call time).
# The timeout is not tiny: this 2-core machine is shared, and a loaded scheduler can delay
# a loopback connect by a few hundred ms. Transient faults hit at most 2 attempts of 4.
FAST = {"JANITOR_HTTP_TIMEOUT": "1.5", "JANITOR_RETRY_ATTEMPTS": "4", "JANITOR_RETRY_DEADLINE": "15",
        "JANITOR_RETRY_WAIT": "0.02"}
STALL = 2.5
_runs = count()
_repos = count()


def seed(pusher: Pusher) -> None:
    """Protected stage caches, three stale branch caches, one stale alias of a protected
    digest (-> untag), one fresh branch cache and a release image (kept)."""
    _, body = pusher.buildkit_cache("cache-base", [b"base-layer" * 30], OLD)
    pusher.manifest("cache-base-old", body, "application/vnd.oci.image.manifest.v1+json")
    pusher.buildkit_cache("cache-python-deps", [b"deps" * 40], FRESH)
    for i in (1, 2, 3):
        pusher.buildkit_cache(f"cache-x-feat{i}", [b"feat-%d" % i * 25, b"base-layer" * 30], OLD, form="index")
    pusher.buildkit_cache("cache-x-fresh", [b"fresh" * 20], FRESH)
    pusher.image("v1", [b"release-layer" * 10], OLD)


def invoke(tmp: Path, *args: str, extra_env: dict | None = None):
    """Run the CLI in-process with its own empty cache/state dirs and fast retries."""
    from ghcr_janitor.cli.app import app

    n = next(_runs)
    env = {**FAST, "JANITOR_CACHE_DIR": str(tmp / f"cache{n}"), "JANITOR_STATE_DIR": str(tmp / f"state{n}"),
           **(extra_env or {})}
    result = CliRunner().invoke(app, [str(a) for a in args], env=env, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"janitor crashed: {result.exception!r}\n{result.output}") from result.exception
    assert "Traceback" not in result.output, result.output
    return result


def clear_report(result) -> list[str]:
    """A failure is exit 1 and short, readable messages (stderr `error:` lines, or the
    `errors` of the JSON document), not a crash."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    try:
        doc = json.loads(result.stdout)
    except ValueError:
        doc = {}
    if isinstance(doc, dict):
        errors += [str(e) for e in doc.get("errors") or []]
        errors += [e for t in doc.get("targets") or [] for e in t.get("errors") or []]
    assert errors, result.output
    assert all(len(line) < 600 and "\n" not in line for line in errors), errors
    return errors


@pytest.fixture(scope="module")
def proxy(registry):
    with FaultProxy(registry.host) as px:
        yield px


@pytest.fixture
def faults(proxy):
    proxy.clear()
    yield proxy
    proxy.clear()


@pytest.fixture(scope="module")
def seeded(registry, proxy, tmp_path_factory):
    """A seeded repository and the clean `ls` / `plan` results through the proxy."""
    pusher = Pusher(registry.url, f"faults/read{next(_repos)}")
    seed(pusher)
    tmp = tmp_path_factory.mktemp("clean")
    target = f"{proxy.host}/{pusher.repo}"
    ls = invoke(tmp, "ls", target, "-O", "json", "--all-tags")
    assert ls.exit_code == 0, ls.output
    plan = invoke(tmp, "plan", target, "-o", tmp / "plan.json")
    assert plan.exit_code == 0, plan.output
    doc = _plan_doc(tmp / "plan.json")
    assert {(a["action"], a["tag"]) for a in doc["targets"][0]["actions"]} == {
        ("delete", "cache-x-feat1"), ("delete", "cache-x-feat2"), ("delete", "cache-x-feat3"),
        ("untag", "cache-base-old")}
    return {"target": target, "pusher": pusher, "ls": json.loads(ls.stdout), "plan": doc}


def _plan_doc(path: Path) -> dict:
    doc = json.loads(path.read_text())
    doc.pop("created")
    doc.pop("id")
    return doc


# --- read path: ls and plan ----------------------------------------------------------------

# (name, rules for a transient fault that retries must absorb)
TRANSIENT = {
    "429-retry-after": lambda: [Rule("status", status=429, retry_after="0", times=2, path="/v2/.+/")],
    "503": lambda: [Rule("status", status=503, times=2, path="/manifests/")],
    "reset": lambda: [Rule("reset", times=2, path="/v2/.+/")],
    "reset-mid-body": lambda: [Rule("reset_body", method="GET", times=2, path="/manifests/")],
    "stall": lambda: [Rule("stall", seconds=STALL, times=1, path="/manifests/")],
    "truncated-body": lambda: [Rule("truncate", method="GET", times=2, path="/manifests/")],
    "tags-list-503": lambda: [Rule("status", status=503, times=2, path="/tags/list")],
}

# Persistent faults on one tag (or the listing): must end in a clean non-zero report.
PERSISTENT = {
    "429-retry-after": lambda: [Rule("status", status=429, retry_after="0", times=None, path="/manifests/cache-x-feat2$")],
    "503": lambda: [Rule("status", status=503, times=None, path="/manifests/cache-x-feat2$")],
    "reset": lambda: [Rule("reset", times=None, path="/manifests/cache-x-feat2$")],
    "reset-mid-body": lambda: [Rule("reset_body", method="GET", times=None, path="/manifests/cache-x-feat2$")],
    "stall": lambda: [Rule("stall", seconds=STALL, times=None, path="/manifests/cache-x-feat2$")],
    "truncated-body": lambda: [Rule("truncate", method="GET", times=None, path="/manifests/cache-x-feat2$")],
    "wrong-digest": lambda: [Rule("bad_digest", times=None, path="/manifests/cache-x-feat2$")],
    "tags-list-503": lambda: [Rule("status", status=503, times=None, path="/tags/list")],
    "long-retry-after": lambda: [Rule("status", status=429, retry_after="3600", times=None, path="/tags/list")],
}


@pytest.mark.parametrize("name", sorted(TRANSIENT))
def test_transient_fault_read_results_identical(name, seeded, faults, tmp_path):
    faults.add(*TRANSIENT[name]())
    ls = invoke(tmp_path, "ls", seeded["target"], "-O", "json", "--all-tags")
    assert ls.exit_code == 0, ls.output
    assert json.loads(ls.stdout) == seeded["ls"]
    assert any(e.fault for e in faults.log()), "the fault was never injected"

    faults.clear()
    faults.add(*TRANSIENT[name]())
    plan = invoke(tmp_path, "plan", seeded["target"], "-o", tmp_path / "plan.json")
    assert plan.exit_code == 0, plan.output
    assert _plan_doc(tmp_path / "plan.json") == seeded["plan"]
    assert not faults.log("DELETE") and not faults.log("PUT"), "plan must never mutate"


@pytest.mark.parametrize("name", sorted(PERSISTENT))
def test_persistent_fault_read_exits_nonzero_with_report(name, seeded, faults, tmp_path):
    env = {"JANITOR_RETRY_ATTEMPTS": "2"} if name == "stall" else None     # keep it quick
    faults.add(*PERSISTENT[name]())
    ls = invoke(tmp_path, "ls", seeded["target"], "-O", "json", "--all-tags", extra_env=env)
    errors = clear_report(ls)
    listing_failed = "tags/list" in PERSISTENT[name]()[0].path
    assert listing_failed or any("cache-x-feat2" in e for e in errors), errors

    faults.clear()
    faults.add(*PERSISTENT[name]())
    plan = invoke(tmp_path, "plan", seeded["target"], "-o", tmp_path / "plan.json", extra_env=env)
    clear_report(plan)
    doc = _plan_doc(tmp_path / "plan.json")
    actions = doc["targets"][0]["actions"]
    # Partial knowledge: no digest delete at all (an unknown tag might share the digest).
    assert not [a for a in actions if a["action"] == "delete"], actions
    assert doc["targets"][0]["errors"]
    assert not faults.log("DELETE") and not faults.log("PUT")


def test_long_retry_after_is_not_slept_past_the_deadline(seeded, faults, tmp_path):
    """Retry-After: 3600 with a 15 s deadline: give up at once, do not sleep an hour."""
    import time

    faults.add(Rule("status", status=429, retry_after="3600", times=None, path="/tags/list"))
    started = time.monotonic()
    result = invoke(tmp_path, "ls", seeded["target"])
    clear_report(result)
    assert time.monotonic() - started < 5
    assert "429" in result.stderr


def test_wrong_digest_on_head_never_leads_to_a_wrong_delete(registry, faults, tmp_path):
    """Apply re-resolves tags with HEAD; a lying Docker-Content-Digest makes tags look moved,
    so everything is skipped (exit 4) and nothing is deleted."""
    pusher, target, plan_path, before = _fresh_planned_repo(registry, faults, tmp_path)
    faults.add(Rule("bad_digest", method="HEAD", times=None, path="/manifests/"))
    result = invoke(tmp_path, "apply", plan_path, "--yes", "-O", "json")
    assert result.exit_code == 4, result.output
    assert all(r["status"] == "skipped" for r in json.loads(result.stdout)["targets"][0]["results"])
    assert pusher.tags() == before
    assert not faults.log("DELETE")
    # ...and when the HEAD lies by naming a digest the plan deletes, the applier untags at most.
    faults.clear()
    doc = json.loads(plan_path.read_text())
    victim = next(a for a in doc["targets"][0]["actions"] if a["tag"] == "cache-x-feat1")
    faults.add(Rule("bad_digest", method="HEAD", times=None, path="/manifests/cache-base$", digest=victim["digest"]))
    result = invoke(tmp_path, "apply", plan_path, "--yes", "-O", "json")
    after = pusher.tags()
    assert after["cache-base"] == before["cache-base"] and after["v1"] == before["v1"]
    _assert_deletes_within_plan(faults, doc, before)
    _rerun_completes(tmp_path, pusher, plan_path, before, doc)


# --- apply ----------------------------------------------------------------------------------

def _fresh_planned_repo(registry, proxy, tmp_path):
    pusher = Pusher(registry.url, f"faults/apply{next(_repos)}")
    seed(pusher)
    target = f"{proxy.host}/{pusher.repo}"
    plan_path = tmp_path / "plan.json"
    result = invoke(tmp_path, "plan", target, "-o", plan_path)
    assert result.exit_code == 0, result.output
    proxy.clear()
    return pusher, target, plan_path, pusher.tags()


def _expected_after(before: dict, doc: dict) -> dict:
    removed = {a["tag"] for t in doc["targets"] for a in t["actions"] if a["action"] in ("delete", "untag")}
    deleted = {a["digest"] for t in doc["targets"] for a in t["actions"] if a["action"] == "delete"}
    return {t: d for t, d in before.items() if t not in removed and d not in deleted}


def _assert_deletes_within_plan(proxy: FaultProxy, doc: dict, before: dict) -> None:
    """Every DELETE the registry saw names a planned tag, a planned digest, or a digest
    that did not exist before the apply (the janitor's own placeholder)."""
    actions = [a for t in doc["targets"] for a in t["actions"]]
    planned_digests = {a["digest"] for a in actions if a["action"] == "delete"}
    planned_tags = {a["tag"] for a in actions if a["action"] in ("delete", "untag")}
    existing = set(before.values())
    for entry in proxy.log("DELETE", forwarded=True):
        ref = entry.path.rsplit("/manifests/", 1)[1]
        if ref.startswith("sha256:"):
            assert ref in planned_digests or ref not in existing, f"DELETE outside the plan: {entry}"
        else:
            assert ref in planned_tags, f"DELETE outside the plan: {entry}"


def _assert_kept_untouched(pusher: Pusher, doc: dict, before: dict) -> dict:
    after = pusher.tags()
    expected = _expected_after(before, doc)
    for tag, digest in expected.items():
        assert after.get(tag) == digest, f"kept tag {tag} changed: {before.get(tag)} -> {after.get(tag)}"
    planned = {a["tag"] for t in doc["targets"] for a in t["actions"]}
    assert set(after) <= set(before) | planned
    return after


def _rerun_completes(tmp_path, pusher, plan_path, before, doc) -> None:
    result = invoke(tmp_path, "apply", plan_path, "--yes", "-O", "json")
    assert result.exit_code == 0, result.output
    assert pusher.tags() == _expected_after(before, doc)


APPLY_FAULTS = {
    # DELETE by digest rate-limited past every retry: actions fail, nothing else happens.
    "429-on-delete": (lambda: [Rule("status", method="DELETE", status=429, retry_after="0", times=None)], 1),
    # The registry deletes, but the answer is lost: the retry's 404 counts as done.
    "reset-after-delete": (lambda: [Rule("reset", method="DELETE", path="/manifests/sha256:", forward=True, times=2)], 0),
    # Placeholder PUT keeps failing: the untag fails, the tag is left as it was.
    "503-on-put": (lambda: [Rule("status", method="PUT", path="/manifests/", status=503, times=None)], 1),
    # Deletes by digest fail persistently: the untag checks first and leaves the tag alone.
    "503-on-delete-digest": (lambda: [Rule("status", method="DELETE", path="/manifests/sha256:", status=503, times=None)], 1),
    "stall-on-delete": (lambda: [Rule("stall", method="DELETE", seconds=STALL, times=1)], 0),
    "resets-everywhere": (lambda: [Rule("reset", times=None, skip=3), ], 1),
    "snapshot-listing-fails": (lambda: [Rule("status", path="/tags/list", status=503, times=None)], 1),
    "head-stalls-then-recovers": (lambda: [Rule("stall", method="HEAD", seconds=STALL, times=1)], 0),
}


@pytest.mark.parametrize("name", sorted(APPLY_FAULTS))
def test_apply_under_fault_stays_within_plan_and_rerun_completes(name, registry, faults, tmp_path):
    pusher, target, plan_path, before = _fresh_planned_repo(registry, faults, tmp_path)
    doc = json.loads(plan_path.read_text())
    rules, want = APPLY_FAULTS[name]
    faults.add(*rules())
    result = invoke(tmp_path, "apply", plan_path, "--yes", "-O", "json")
    assert result.exit_code == want, result.output
    assert "Traceback" not in result.output
    _assert_deletes_within_plan(faults, doc, before)
    after = _assert_kept_untouched(pusher, doc, before)
    if want == 0:
        assert after == _expected_after(before, doc)
    else:
        report = json.loads(result.stdout)["targets"][0]
        assert report["error"] or any(r["status"] == "failed" for r in report["results"]), report
    if name == "reset-after-delete":
        # The DELETE reached the registry, the answer was lost, the retry got 404: done.
        deletes = faults.log("DELETE", forwarded=True)
        assert any(e.fault == "reset" for e in deletes) and any(e.status == 404 for e in deletes)
    if name == "503-on-delete-digest":
        # Deletes fail, so the untag stops before moving the tag: cache-base-old is as it was.
        assert after["cache-base-old"] == before["cache-base-old"]
    faults.clear()
    _rerun_completes(tmp_path, pusher, plan_path, before, doc)
    _assert_deletes_within_plan(faults, doc, before)


def test_delete_answered_404_on_retry_counts_as_done(registry, faults, tmp_path):
    """A DELETE whose 202 is lost is retried; the registry then says 404: the action is done."""
    pusher, target, plan_path, before = _fresh_planned_repo(registry, faults, tmp_path)
    doc = json.loads(plan_path.read_text())
    for digest in {a["digest"] for a in doc["targets"][0]["actions"] if a["action"] == "delete"}:
        faults.add(Rule("reset", method="DELETE", path=f"/manifests/{digest}$", forward=True, times=1))
    result = invoke(tmp_path, "apply", plan_path, "--yes", "-O", "json")
    assert result.exit_code == 0, result.output
    statuses = {r["tag"]: r["status"] for r in json.loads(result.stdout)["targets"][0]["results"]}
    assert set(statuses.values()) == {"done"}
    deletes = faults.log("DELETE", forwarded=True)
    lost = [e for e in deletes if e.fault == "reset"]
    assert len(lost) == 3 and all(e.upstream_status == 202 for e in lost)
    # each was retried and answered 404, and no digest was deleted twice for real
    retried = [e.path for e in deletes if e.status == 404 and not e.path.endswith(DELETE_PROBE_DIGEST)]
    assert sorted(retried) == sorted(e.path for e in lost)
    assert pusher.tags() == _expected_after(before, doc)


def test_dry_run_under_faults_sends_no_mutation(seeded, faults, tmp_path):
    faults.add(Rule("reset", times=1, path="/v2/.+/"), Rule("status", status=503, times=1, skip=2))
    result = invoke(tmp_path, "prune", seeded["target"], "--dry-run", "-O", "json")
    assert result.exit_code == 0, result.output
    assert not [e for e in faults.log() if e.method not in ("GET", "HEAD")]


def test_wrong_digest_constant_is_not_a_real_digest(seeded):
    assert WRONG_DIGEST not in json.dumps(seeded["ls"])
