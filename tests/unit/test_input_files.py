"""User-given files (plan, --policy, --targets-file, history import, docker config.json) are read only
when regular and bounded: /dev/zero, a FIFO or an oversized file is one line naming the file and why,
a usage exit (2), never a hang, a MemoryError or a traceback.

Each case runs `janitor` in a child process with a wall-clock timeout (a hang fails the test instead
of blocking it) and an address-space limit (an unbounded read fails fast instead of eating the
machine's memory).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30                  # seconds: a normal run of these commands takes about one
MEMORY_LIMIT = 2 << 30        # bytes of address space for the child


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def janitor(*args: str | Path, stdin: bytes = b"", env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m ghcr_janitor ARGS` with a timeout and a memory limit (text output)."""
    proc = subprocess.run([sys.executable, "-m", "ghcr_janitor", *map(str, args)], input=stdin, capture_output=True,
                          timeout=TIMEOUT, cwd=ROOT, env={**os.environ, **(env or {})}, preexec_fn=_limit_memory)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(errors="replace"),
                                       proc.stderr.decode(errors="replace"))


def assert_one_line_usage_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture(params=["dev-zero", "fifo", "oversized"])
def bad_file(request, tmp_path) -> tuple[Path, str]:
    """(path, what the message must say): /dev/zero, a FIFO nobody writes, a 4 GiB sparse file."""
    if request.param == "dev-zero":
        return Path("/dev/zero"), "not a regular file (a character device)"
    if request.param == "fifo":
        path = tmp_path / "input.fifo"
        os.mkfifo(path)
        return path, "not a regular file (a FIFO)"
    path = tmp_path / "huge.txt"
    with open(path, "wb") as handle:
        handle.truncate(4 << 30)          # sparse: no disk used, but 4 GiB to a reader
    return path, "byte limit"


@pytest.fixture
def layout(tmp_path) -> Path:
    """A tiny OCI layout (no network needed) to name as a target."""
    from tests.layout_factory import LayoutFactory

    factory = LayoutFactory(tmp_path / "layout")
    factory.tag("cache-a", factory.image("a"))
    return factory.root


def test_apply_refuses_a_plan_that_is_not_a_bounded_regular_file(bad_file):
    path, why = bad_file
    assert_one_line_usage_error(janitor("apply", path, "--yes"), str(path), why)


def test_policy_check_refuses_a_policy_that_is_not_a_bounded_regular_file(bad_file):
    path, why = bad_file
    assert_one_line_usage_error(janitor("policy", "check", path), str(path), why)


def test_plan_refuses_a_policy_flag_that_is_not_a_bounded_regular_file(bad_file, layout):
    path, why = bad_file
    assert_one_line_usage_error(janitor("plan", f"oci-layout:{layout}", "--policy", path), "policy file", str(path), why)


def test_targets_file_that_is_not_a_bounded_regular_file_is_a_usage_error(bad_file):
    path, why = bad_file
    assert_one_line_usage_error(janitor("ls", "--targets-file", path), "--targets-file", str(path), why)


def test_history_import_refuses_a_file_that_is_not_a_bounded_regular_file(bad_file, tmp_path):
    path, why = bad_file
    assert_one_line_usage_error(janitor("history", "import", path, "--history", tmp_path / "h.sqlite"),
                                str(path), why)


def test_history_import_from_stdin_is_capped(tmp_path, monkeypatch, cli):
    from ghcr_janitor.cli import history

    monkeypatch.setattr(history, "MAX_IMPORT_BYTES", 100)
    result = cli("history", "import", "-", "--history", tmp_path / "h.sqlite", input="x" * 101)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "standard input" in result.stderr and "100 byte limit" in result.stderr


def test_docker_config_that_is_not_a_bounded_regular_file_is_one_line(bad_file, tmp_path):
    path, why = bad_file
    config = tmp_path / "docker"
    config.mkdir()
    (config / "config.json").symlink_to(path)
    proc = janitor("ls", "127.0.0.1:9/acme/app", env={"DOCKER_CONFIG": str(config), "JANITOR_RETRY_ATTEMPTS": "1"})
    assert_one_line_usage_error(proc, "config.json", why)


def test_password_stdin_is_capped(monkeypatch):
    import io

    from ghcr_janitor.cli import common
    from ghcr_janitor.core.errors import UsageError

    monkeypatch.setattr(common, "MAX_PASSWORD_BYTES", 10)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"p" * 11 + b"\n")))
    with pytest.raises(UsageError, match="--password-stdin.*10 byte limit"):
        common.read_password(True)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"secret\n")))
    assert common.read_password(True) == "secret"


def test_regular_files_still_work(tmp_path, layout):
    """The guard refuses only what it must: ordinary files of each kind are read as before."""
    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\nname = "all"\nselect = { tags = ["cache-*"] }\naction = "delete"\n')
    targets = tmp_path / "targets.txt"
    targets.write_text(f"# one\noci-layout:{layout}\n")
    plan = tmp_path / "plan.json"
    proc = janitor("plan", "--targets-file", targets, "--policy", policy, "-o", plan)
    assert proc.returncode == 0, proc.stderr
    applied = janitor("apply", plan, "--yes")
    assert applied.returncode == 0, applied.stderr
    assert janitor("policy", "check", policy).returncode == 0
