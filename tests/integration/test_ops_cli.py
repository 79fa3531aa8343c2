"""Operations: step summary, --metrics-file, --shard, clean stdout with -v, the progress bar on a TTY only."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pty
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
SEED_POLICY = ROOT / "policies" / "seed-stages.toml"
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def seed(repo) -> None:
    shared = b"shared-os-layer" * 30
    repo.buildkit_cache("cache-base", [shared, b"base" * 10], NOW - timedelta(days=1))
    repo.buildkit_cache("cache-builder", [shared, b"builder" * 10], NOW - timedelta(days=2))
    repo.buildkit_cache("cache-builder-feature-x", [shared, b"feature-x" * 20], NOW - timedelta(days=45))
    repo.buildkit_cache("cache-node-deps-pr-7", [shared, b"pr-7" * 20], NOW - timedelta(days=90))


def metrics(path: Path) -> dict[tuple, float]:
    families = text_string_to_metric_families(path.read_text())
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


@pytest.fixture
def seeded(registry, repo):
    seed(repo)
    return f"{registry.host}/{repo.repo}"


def test_dry_run_prune_appends_a_readable_step_summary(cli, seeded, repo, tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    before = repo.tags()
    result = cli("prune", seeded, "--policy", SEED_POLICY, "--dry-run")
    assert result.exit_code == 0, result.output
    assert repo.tags() == before
    text = summary.read_text()
    assert text.startswith("# earlier step\n### ghcr-janitor: plan (dry run, nothing changed)")  # appended
    row = next(line for line in text.splitlines() if line.startswith(f"| `{seeded}`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "4"                                   # tags
    assert cells[4:] == ["2 delete", "0"]                   # actions by kind, errors
    assert "`cache-builder-feature-x`" in text and "`cache-node-deps-pr-7`" in text
    # A second step appends again, never overwrites.
    result = cli("ls", seeded)
    assert result.exit_code == 0
    text = summary.read_text()
    assert text.count("### ghcr-janitor:") == 2 and "### ghcr-janitor: inventory" in text


def test_metrics_file_for_ls_dry_run_and_prune(cli, seeded, repo, tmp_path):
    path = tmp_path / "textfile" / "ghcr_janitor.prom"
    r = {"repository": seeded}

    assert cli("ls", seeded, "--metrics-file", path).exit_code == 0
    found = metrics(path)
    assert found[("ghcr_janitor_tags", tuple(sorted({**r, "stage": "builder"}.items())))] == 2
    assert found[("ghcr_janitor_tags", tuple(sorted({**r, "stage": "node-deps"}.items())))] == 1
    assert not any(k[0] == "ghcr_janitor_actions" for k in found)

    assert cli("prune", seeded, "--policy", SEED_POLICY, "--dry-run", "--metrics-file", path).exit_code == 0
    found = metrics(path)
    planned = tuple(sorted({**r, "action": "delete", "status": "planned"}.items()))
    assert found[("ghcr_janitor_actions", planned)] == 2
    reclaimable = found[("ghcr_janitor_reclaimable_bytes", tuple(r.items()))]
    assert reclaimable > len(b"feature-x" * 20) + len(b"pr-7" * 20)     # their own layers, and more
    assert found[("ghcr_janitor_bytes", tuple(sorted({**r, "stage": "base"}.items())))] > 0

    result = cli("prune", seeded, "--policy", SEED_POLICY, "--yes", "--metrics-file", path, "-O", "json")
    assert result.exit_code == 0, result.output
    found = metrics(path)
    done = tuple(sorted({**r, "action": "delete", "status": "done"}.items()))
    assert found[("ghcr_janitor_actions", done)] == 2
    assert found[("ghcr_janitor_reclaimed_bytes", tuple(r.items()))] == reclaimable
    assert found[("ghcr_janitor_errors", ())] == 0 and found[("ghcr_janitor_last_run_success", ())] == 1
    assert set(repo.tags()) == {"cache-base", "cache-builder"}


def test_metrics_file_for_plan_and_apply(cli, seeded, tmp_path):
    path = tmp_path / "m.prom"
    plan = tmp_path / "plan.json"
    assert cli("plan", seeded, "--policy", SEED_POLICY, "-o", plan, "--metrics-file", path).exit_code == 0
    assert metrics(path)[("ghcr_janitor_repositories", ())] == 1
    assert cli("apply", plan, "--yes", "--metrics-file", path).exit_code == 0
    found = metrics(path)
    done = tuple(sorted({"repository": seeded, "action": "delete", "status": "done"}.items()))
    assert found[("ghcr_janitor_actions", done)] == 2


def expected_shard(target: str, count: int) -> int:
    """Independently of the code: sha256 of the target string, first 8 bytes big-endian, mod N, 1-based."""
    return int.from_bytes(hashlib.sha256(target.encode()).digest()[:8], "big") % count + 1


def test_shards_partition_a_targets_file_deterministically_and_completely(cli, tmp_path):
    from tests.layout_factory import LayoutFactory

    targets = []
    for i in range(9):
        LayoutFactory(tmp_path / f"cache{i}")
        targets.append(f"oci-layout:{tmp_path / f'cache{i}'}")
    listing = tmp_path / "targets.txt"
    listing.write_text("# all the caches\n" + "\n".join(targets[:6]) + "\n\n" + targets[0] + "  # again\n")

    def shard(spec: str, *extra: str) -> list[str]:
        result = cli("ls", "--targets-file", listing, *extra, "--shard", spec, "-O", "json")
        assert result.exit_code == 0, result.output
        return [t["target"] for t in json.loads(result.stdout)["targets"]]

    one, two = shard("1/2", *targets[6:]), shard("2/2", *targets[6:])
    assert sorted(one + two) == sorted(targets)             # complete, and each target once
    assert not set(one) & set(two)
    assert one == shard("1/2", *targets[6:])                # deterministic
    for name in one:
        assert expected_shard(name, 2) == 1
    for name in two:
        assert expected_shard(name, 2) == 2
    result = cli("ls", "--targets-file", listing, "--shard", "3/2")
    assert result.exit_code == 2 and "--shard" in result.output


def run_janitor(*args: str, stderr=subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ghcr_janitor", *map(str, args)], stdout=subprocess.PIPE,
                          stderr=stderr, env=dict(os.environ), timeout=120)


def test_json_stdout_stays_clean_with_verbose_logging(seeded):
    for args in (("-v", "ls", seeded, "-O", "json"), ("ls", seeded, "-O", "json", "-vv"),
                 ("prune", seeded, "--policy", SEED_POLICY, "--dry-run", "-O", "json", "-v"),
                 ("-vv", "plan", seeded, "--policy", SEED_POLICY)):
        done = run_janitor(*args)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(b"{")
        json.loads(done.stdout)                                  # nothing but the document
    debug = run_janitor("ls", seeded, "-O", "json", "-vv")
    assert b"DEBUG" in debug.stderr and b"DEBUG" not in debug.stdout


def read_pty(master: int) -> bytes:
    data = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            return data
        if not chunk:
            return data
        data += chunk


def test_progress_bar_only_on_a_tty_stderr_and_never_on_stdout(seeded):
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "ghcr_janitor", "ls", seeded, "-O", "json"],
                                stdout=subprocess.PIPE, stderr=slave, env=dict(os.environ))
        os.close(slave)
        out, _ = proc.communicate(timeout=120)
        drawn = read_pty(master)
    finally:
        os.close(master)
    assert proc.returncode == 0
    json.loads(out)
    assert b"\x1b[" in drawn                                   # rich drew (and cleared) the bar on the TTY
    assert b"\x1b[" not in out
    piped = run_janitor("ls", seeded, "-O", "json")
    assert b"\x1b[" not in piped.stderr                         # not a TTY: no bar

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "ghcr_janitor", "-q", "ls", seeded, "-O", "json"],
                                stdout=subprocess.PIPE, stderr=slave, env=dict(os.environ))
        os.close(slave)
        proc.communicate(timeout=120)
        drawn = read_pty(master)
    finally:
        os.close(master)
    assert b"\x1b[" not in drawn                               # -q: no bar either


def test_progress_callback_counts_and_stays_off_stdout(monkeypatch, capsys):
    from ghcr_janitor.cli import common
    from ghcr_janitor.cli.progress import progress_bar, should_show

    class FakeTTY(io.StringIO):
        def isatty(self) -> bool:
            return True

    fake = FakeTTY()
    monkeypatch.setattr(sys, "stderr", fake)
    monkeypatch.setitem(common._state, "verbosity", 0)
    assert should_show() is True
    monkeypatch.setitem(common._state, "verbosity", -1)
    assert should_show() is False
    assert should_show(True) is True
    with progress_bar(False) as bar:
        assert bar is None
    with progress_bar(True) as bar:
        bar.set_total("apply", 3)
        for _ in range(3):
            bar("apply", 1)
        bar("resolve", 5)
        tasks = {t.description: (t.completed, t.total) for t in bar._progress.tasks}
    assert tasks == {"applying actions": (3, 3), "resolving tags": (5, None)}
    assert capsys.readouterr().out == ""


def test_exit_codes_documented_match_the_cli(cli, tmp_path):
    ops = ROOT / "docs" / "operations.md"                        # may be merged into the README
    doc = ops.read_text() if ops.exists() else (ROOT / "README.md").read_text()
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 4 |"):
        assert code in doc
    assert cli("ls").exit_code == 2                              # no target: usage
    for name in ("GITHUB_TOKEN", "GH_TOKEN", "GITHUB_API_URL", "JANITOR_GHCR_REGISTRY", "JANITOR_USERNAME",
                 "JANITOR_PASSWORD", "DOCKER_CONFIG", "GITHUB_STEP_SUMMARY", "JANITOR_CACHE_DIR", "JANITOR_STATE_DIR"):
        assert f"`{name}`" in doc, name
