"""GitHub's REST API unreachable: `gha:` and `ghcr.io` targets fail fast, in one line naming the host
and the reason, exit 1, as a registry target does (issue 20, point 14).

Run as a real process (the shipped retry waits, no fast-sleep fixture): the subprocess timeout is
the guard against the old 30 s of silence, the request summary counts the connection attempts.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest

# Far below the 2+4+8+16 s the REST client used to wait before giving up; far above the ~1.5 s
# of short retries it now takes, on a loaded 2-core machine.
GUARD_SECONDS = 20


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def janitor(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ghcr_janitor", *args], capture_output=True, text=True,
                          timeout=GUARD_SECONDS, env={**os.environ, **env})


def attempts(stderr: str, host: str) -> int:
    """Requests sent to `host`, from the run's `requests:` summary line."""
    found = re.search(rf"{re.escape(host)} \(GitHub REST\): (\d+) ", stderr)
    assert found, stderr
    return int(found[1])


def assert_one_line_failure(result: subprocess.CompletedProcess, target: str, host: str) -> None:
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {target}: connection failed ({host}: connection refused)"], result.stderr
    assert "Traceback" not in result.stderr
    assert attempts(result.stderr, host) == 3          # a short, bounded retry; then the answer


def test_an_unreachable_api_fails_a_gha_target_in_one_line_naming_the_host():
    host = f"127.0.0.1:{closed_port()}"
    result = janitor("ls", "gha:acme/app", GITHUB_API_URL=f"http://{host}", GITHUB_TOKEN="ghs_unreachable")
    assert_one_line_failure(result, "gha:acme/app", host)
    assert "ghs_unreachable" not in result.stderr and result.stdout == ""


def test_an_unreachable_api_fails_a_ghcr_target_the_same_way(registry):
    """GHCR's REST side (owner lookup, versions) uses the same client: same bound, same words."""
    host = f"127.0.0.1:{closed_port()}"
    result = janitor("ls", "ghcr.io/acme/app", GITHUB_API_URL=f"http://{host}", GITHUB_TOKEN="ghp_unreachable",
                     JANITOR_GHCR_REGISTRY=registry.url)
    assert_one_line_failure(result, "ghcr.io/acme/app", host)


@pytest.mark.parametrize("command", ["plan", "prune"])
def test_plan_and_prune_of_a_gha_target_fail_the_same_way(command, tmp_path):
    host = f"127.0.0.1:{closed_port()}"
    args = ["plan", "gha:acme/app", "-o", str(tmp_path / "plan.json")] if command == "plan" else \
        ["prune", "gha:acme/app", "--dry-run"]
    result = janitor(*args, GITHUB_API_URL=f"http://{host}", GITHUB_TOKEN="ghs_unreachable")
    assert_one_line_failure(result, "gha:acme/app", host)


def test_a_registry_target_says_it_in_the_same_words():
    """The shape both follow: "connection failed (HOST: REASON)" (before: the exception's class and errno)."""
    host = f"127.0.0.1:{closed_port()}"
    result = janitor("ls", f"{host}/acme/app", JANITOR_RETRY_ATTEMPTS="2", JANITOR_RETRY_WAIT="0.05")
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [f"error: {host}/acme/app: connection failed ({host}: connection refused)"]
