"""Shared fixtures: a real registry on 127.0.0.1, isolated cache/state dirs, a CLI runner."""

from __future__ import annotations

import itertools
import os

import pytest
import respx.mocks

# The registry client's transport (ghcr_janitor/net/transport.py) is not httpcore, so respx mocks at
# httpx's Client level (every transport), not its default httpcore level.
respx.mocks.DEFAULT_MOCKER = "httpx"

from tests.support.push import Pusher
from tests.support.registry import INSTALL_HINT, RegistryServer, find_binary

_repo_counter = itertools.count()


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """Every test gets its own manifest cache and state dir, and no ambient credentials."""
    monkeypatch.setenv("JANITOR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("JANITOR_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))     # no settings file unless a test writes one
    from ghcr_janitor.core.settings import VENDOR_VARIABLES
    for name in ("GITHUB_TOKEN", "GH_TOKEN", "JANITOR_USERNAME", "JANITOR_PASSWORD", "GITHUB_STEP_SUMMARY",
                 "JANITOR_SETTINGS", *VENDOR_VARIABLES):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def registry():
    """The CNCF distribution registry, started once per test session; fails (not skips) if missing."""
    if find_binary() is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    server = RegistryServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def repo(registry) -> Pusher:
    """A fresh, empty repository on the session registry."""
    name = f"test/repo{next(_repo_counter)}-{os.getpid()}"
    return Pusher(registry.url, name)


@pytest.fixture
def layout(tmp_path):
    """The example BuildKit cache dir (examples/make_buildx_cache.py), freshly generated."""
    import subprocess
    import sys
    from pathlib import Path

    dest = tmp_path / "buildx-cache"
    script = Path(__file__).resolve().parents[1] / "examples" / "make_buildx_cache.py"
    subprocess.run([sys.executable, str(script), str(dest)], check=True, capture_output=True)
    return dest


@pytest.fixture
def gha(monkeypatch, fast_sleep):
    """The Actions-cache REST stand-in (tests/support/gha_api.py), seeded: GITHUB_API_URL and
    GITHUB_TOKEN point at it; `ids_by_role` names the seeded entries."""
    from tests.support.gha_api import CacheRepo, GhaServer, seed

    state = CacheRepo()
    state.ids_by_role = seed(state)
    with GhaServer(state) as server:
        monkeypatch.setenv("GITHUB_API_URL", server.url)
        monkeypatch.setenv("GITHUB_TOKEN", state.token)
        yield state


@pytest.fixture
def fast_sleep(monkeypatch):
    """Every GitHub REST wait (rate limits, pacing, lookups) returns at once; the waits are recorded."""
    from ghcr_janitor.net import github

    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        assert seconds > 0, "never spin"
        waits.append(round(seconds, 1))

    monkeypatch.setattr(github, "_sleep", sleep)
    return waits


@pytest.fixture
def cli():
    """Invoke the CLI in-process; returns typer's Result (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from ghcr_janitor.cli.app import app

    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)

    return invoke
