"""The README's two set-up commands stay true: CI runs the same test command, the quick start runs; the
published contract (docs/cli.md) names only flags that exist and keeps in step with the team's."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _setup_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section, flags=re.S)


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    commands = _setup_commands()
    assert len(commands) == 2
    test_command = commands[1].split("&&")[-1].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci.splitlines(), f"{test_command!r} is not a line of .ci/run"


def test_quick_start_janitor_commands_run(tmp_path, cli):
    steps = [s.strip() for s in _setup_commands()[0].split("&&")]
    generator = next(s for s in steps if "make_buildx_cache.py" in s)
    cache = shlex.split(generator)[-1]
    dest = tmp_path / "buildx-cache"
    subprocess.run([sys.executable, str(ROOT / "examples" / "make_buildx_cache.py"), str(dest)], check=True,
                   capture_output=True)
    ran = 0
    for step in steps:
        if step.startswith("janitor "):
            args = shlex.split(step.replace(cache, str(dest)))[1:]
            result = cli(*args)
            assert result.exit_code == 0, (step, result.output)
            assert "would" in result.stdout
            ran += 1
    assert ran == 2


SCRIPTS = ("benchmarks/inventory.py", "examples/make_report.py")    # README lines that run these use their flags


def test_every_flag_the_readme_shows_exists(cli):
    helps = {name: cli(name, "--help").stdout for name in ("ls", "inspect", "plan", "prune", "apply", "gc", "report")}
    helps["policy check"] = cli("policy", "check", "--help").stdout
    for sub in ("export", "import"):
        helps[f"history {sub}"] = cli("history", sub, "--help").stdout
    known = "\n".join(helps.values()) + cli("--help").stdout
    foreign = {"--cache-to", "--cache-from",          # docker buildx's, quoted in the intro
               "--delete-untagged",                   # registry garbage-collect's
               "--principal-arn",                     # aws ecr register-pull-time-update-exclusion's
               "--expose-token"}                      # az acr login's
    flag = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]+)")
    script_lines = {script: [line for line in README.splitlines() if script in line] for script in SCRIPTS}
    others = {line for lines in script_lines.values() for line in lines}
    janitor_flags = set(flag.findall("\n".join(l for l in README.splitlines() if l not in others)))
    missing = sorted(f for f in janitor_flags - foreign if f not in known)
    assert missing == []
    for script, lines in script_lines.items():
        assert lines, f"the README no longer mentions {script}"
        shown = {f for line in lines for f in flag.findall(line)}
        script_help = subprocess.run([sys.executable, str(ROOT / script), "--help"],
                                     capture_output=True, text=True, check=True).stdout
        assert sorted(f for f in shown if f not in script_help) == [], script


CONTRACT = ROOT / "docs" / "cli.md"
UPSTREAM = ROOT.parent / "shared" / "cli.md"     # the contract as the team writes it, beside the checkout


def test_every_flag_the_published_contract_shows_exists(cli):
    """docs/cli.md is what users read: every flag it names is one `--help` lists (or a planned one it marks)."""
    text = CONTRACT.read_text()
    known = "\n".join(cli(*name.split(), "--help").stdout
                      for name in ("ls", "inspect", "plan", "prune", "apply", "gc", "report", "policy check",
                                   "history export", "history import")) + cli("--help").stdout
    shown = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)", text))
    assert shown and sorted(f for f in shown if f not in known) == []
    assert "../shared" not in README and "docs/cli.md" in README


def _contract_names(text: str) -> set[str]:
    """Names users script against: flags, environment variables, JSON fields and exit codes of a contract."""
    names = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)", text))
    names |= set(re.findall(r"`((?:JANITOR|GITHUB|GH|DOCKER)_[A-Z_]+)`", text))
    names |= set(re.findall(r'"([a-z_]+)":', text))
    names |= {f"exit {code}" for code in re.findall(r"(?m)^\|? ?(\d{1,3}) ", text)}
    names |= {f"exit {code}" for code in re.findall(r"(?:^|· )(\d{1,3}) (?:success|error|usage|over|applied|interrupted)", text)}
    return names


@pytest.mark.skipif(not UPSTREAM.is_file(), reason="the team's contract (../shared/cli.md) is not beside this checkout")
def test_the_published_contract_keeps_in_step_with_the_teams():
    """Every name of ../shared/cli.md is in docs/cli.md (which may add more, and marks what is not built yet)."""
    upstream, published = _contract_names(UPSTREAM.read_text()), _contract_names(CONTRACT.read_text())
    assert len(upstream) > 30
    assert sorted(upstream - published) == []
