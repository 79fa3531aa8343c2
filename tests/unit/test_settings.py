"""One settings object, built once from the environment (core/settings.py; issue 21)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ghcr_janitor.core import settings as settings_module
from ghcr_janitor.core.errors import UsageError
from ghcr_janitor.core.settings import HttpSettings, Settings

PACKAGE = Path(__file__).resolve().parents[2] / "ghcr_janitor"
READS_ENVIRONMENT = re.compile(r"\bos\.environ\b|\bgetenv\b|\benviron\.get\b|\bputenv\b")
# core/settings.py reads the environment; nothing else does (proxies are read by httpx and urllib,
# HOME by os.path.expanduser: the standard library's own reads, not the janitor's).
# Amazon ECR's store hands the AWS names (credentials chain, endpoints, retry mode) to boto3, which
# reads the process environment itself: the store compares the run's snapshot with it.
ALLOWED = {"core/settings.py", "stores/ecr/api.py"}


def test_only_the_settings_module_reads_the_environment():
    found = [f"{path.relative_to(PACKAGE)}:{n}: {line.strip()}"
             for path in sorted(PACKAGE.rglob("*.py")) if path.relative_to(PACKAGE).as_posix() not in ALLOWED
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if READS_ENVIRONMENT.search(line.split("#")[0])]
    assert found == []


@pytest.mark.parametrize("name", ["JANITOR_HTTP_TIMEOUT", "JANITOR_RETRY_ATTEMPTS", "JANITOR_RETRY_DEADLINE",
                                  "JANITOR_RETRY_WAIT", "JANITOR_GHCR_DELETES_PER_MINUTE",
                                  "JANITOR_GHA_DELETES_PER_MINUTE"])
@pytest.mark.parametrize("value", ["soon", "-1", "inf", "nan"])
def test_a_malformed_number_is_a_usage_error_naming_the_variable(name, value):
    with pytest.raises(UsageError, match=rf"^{name} must be "):
        Settings.from_env({name: value})


def test_numbers_and_defaults_are_parsed_once():
    s = Settings.from_env({"JANITOR_HTTP_TIMEOUT": "2.5", "JANITOR_RETRY_ATTEMPTS": "3", "JANITOR_RETRY_WAIT": "0",
                           "JANITOR_GHA_DELETES_PER_MINUTE": "30", "GH_TOKEN": "b", "GITHUB_TOKEN": "a",
                           "JANITOR_GHCR_REGISTRY": "http://127.0.0.1:5000/", "JANITOR_STATE_DIR": "/tmp/x"})
    assert s.http == HttpSettings(timeout=2.5, attempts=3, deadline=120.0, wait=0.0)
    assert s.gha_deletes_per_minute == 30 and s.ghcr_deletes_per_minute == 180     # the documented ceiling
    assert [name for name, _ in s.github_tokens] == ["GITHUB_TOKEN", "GH_TOKEN"]
    assert s.ghcr_registry == "http://127.0.0.1:5000" and s.github_api_url == "https://api.github.com"
    assert s.state_dir_chosen == (Path("/tmp/x"), "JANITOR_STATE_DIR")
    assert Settings.from_env({}).http == HttpSettings()


def test_the_secrets_stay_out_of_its_repr():
    s = Settings.from_env({"JANITOR_PASSWORD": "canary-1", "GITHUB_TOKEN": "canary-2", "GH_TOKEN": "canary-3"})
    assert "canary" not in repr(s) and "canary" not in str(s)


def test_a_command_builds_its_settings_once_and_a_bad_value_is_exit_2(monkeypatch, tmp_path):
    """`janitor ls` reads the environment once, however many stores and outputs use it; a malformed
    number is one line naming the variable, exit 2, before anything is contacted."""
    from ghcr_janitor.cli.app import app

    built = []
    real = Settings.from_env.__func__

    def counting(cls, env=None):
        built.append(1)
        return real(cls, env)

    monkeypatch.setattr(settings_module.Settings, "from_env", classmethod(counting))
    layout = tmp_path / "cache"
    layout.mkdir()
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text('{"schemaVersion": 2, "manifests": []}')
    env = {"JANITOR_STATE_DIR": str(tmp_path / "state"), "JANITOR_CACHE_DIR": str(tmp_path / "c"),
           "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")}
    result = CliRunner().invoke(app, ["ls", f"oci-layout:{layout}"], env=env)
    assert result.exit_code == 0, result.output
    assert len(built) == 1
    bad = CliRunner().invoke(app, ["ls", f"oci-layout:{layout}"], env={**env, "JANITOR_RETRY_ATTEMPTS": "many"})
    assert bad.exit_code == 2 and "JANITOR_RETRY_ATTEMPTS must be a number >= 1, got 'many'" in bad.output
    assert "Traceback" not in bad.output
