"""The README's two set-up commands stay true: CI runs the same test command, the quick start runs."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

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
               "--delete-untagged"}                   # registry garbage-collect's
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
