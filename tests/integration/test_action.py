"""`action.yml`: every input used and documented; its composite `run:` steps run in order with bash
the way the runner does (expressions substituted, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, GITHUB_PATH,
GITHUB_ACTION_PATH set), against the real local registry."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
WHEN = datetime(2026, 1, 1, tzinfo=timezone.utc)
POLICY = '[[rule]]\nname = "pull requests"\nselect = { tags = ["cache-pr-*"] }\naction = "delete"\n'


def outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def janitor_log() -> str:
    """What the janitor's run step printed in the last run_action."""
    return next(s for s in ACTION["runs"]["steps"] if s.get("id") == "janitor").get("_log", "")


UPLOADED = "https://github.com/acme/app/actions/runs/7/artifacts/9"


def run_action(inputs: dict[str, str], tmp: Path, path_first: Path | None = None,
               skip_install: bool = False) -> tuple[list[int], dict[str, str], str]:
    """(exit code of each run step, the step outputs, the step summary).

    `uses:` steps are not run (setup-python: this machine's Python; cache restore/save: nothing to
    restore; upload-artifact: its `artifact-url` output is UPLOADED); `if:` conditions of the form
    `[always() &&] EXPR ==|!= 'VALUE'` are evaluated with the outputs of the steps before.
    """
    values = {name: str(spec.get("default", "")) for name, spec in ACTION["inputs"].items()}
    values.update(inputs)
    exprs = {f"inputs.{k}": v for k, v in values.items()}
    exprs.update({"github.action_path": str(ROOT), "github.token": "", "runner.temp": str(tmp / "runner"),
                  "github.job": "janitor", "github.run_id": "7", "steps.upload.outputs.artifact-url": UPLOADED})

    def sub(text: str) -> str:
        return re.sub(r"\$\{\{\s*([\w.-]+)\s*\}\}", lambda m: exprs.get(m[1], "") if m[1].startswith("steps.")
                      else exprs[m[1]], text)

    def wanted(step: dict) -> bool:
        if "if" not in step:
            return True
        found = re.fullmatch(r"(?:always\(\) && )?([\w.-]+) (==|!=) '([^']*)'", step["if"].strip())
        assert found, f"the test harness cannot evaluate: {step['if']}"
        value = exprs.get(found[1], "")
        return (value == found[3]) == (found[2] == "==")

    exprs = {k: sub(v) for k, v in exprs.items()}           # defaults may hold expressions themselves
    files = {name: tmp / name for name in ("output", "summary", "path")}
    for f in files.values():
        f.write_text("")
    env = {**os.environ, "GITHUB_OUTPUT": str(files["output"]), "GITHUB_STEP_SUMMARY": str(files["summary"]),
           "GITHUB_PATH": str(files["path"]), "GITHUB_ACTION_PATH": str(ROOT), "RUNNER_TEMP": str(tmp / "runner"),
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    (tmp / "runner").mkdir(exist_ok=True)
    codes = []
    for step in ACTION["runs"]["steps"]:
        if "uses" in step or not wanted(step):
            continue
        if skip_install and step.get("name") == "Install ghcr-janitor":
            continue
        added = [p for p in files["path"].read_text().splitlines() if p]
        step_env = {**env, **{k: sub(str(v)) for k, v in (step.get("env") or {}).items()}}
        step_env["PATH"] = os.pathsep.join([*( [str(path_first)] if path_first else []), *reversed(added),
                                            env["PATH"]])
        proc = subprocess.run([step.get("shell", "bash"), "-c", sub(step["run"])], env=step_env, cwd=tmp,
                              capture_output=True, text=True, timeout=900)
        codes.append(proc.returncode)
        step["_log"] = proc.stdout + proc.stderr
        if step.get("id"):
            exprs.update({f"steps.{step['id']}.outputs.{k}": v for k, v in outputs(files["output"]).items()})
        if proc.returncode != 0:
            break
    return codes, outputs(files["output"]), files["summary"].read_text()


def test_every_input_is_used_and_documented():
    steps = yaml.safe_dump(ACTION["runs"])
    readme = (ROOT / "README.md").read_text()
    for name in ACTION["inputs"]:
        assert f"inputs.{name}" in steps, f"input {name} is not used"
        assert f"| `{name}` |" in readme, f"input {name} is not in the README's table"
    for name in ACTION["outputs"]:
        assert f"| `{name}` |" in readme, f"output {name} is not in the README's table"
    assert ACTION["inputs"]["dry-run"]["default"] == "true" and ACTION["runs"]["using"] == "composite"


def test_the_action_dry_runs_then_applies_against_the_real_registry(repo, tmp_path):
    repo.buildkit_cache("cache-base", [b"base"], WHEN)
    repo.buildkit_cache("cache-pr-1", [b"pr1"], WHEN)
    repo.buildkit_cache("cache-pr-2", [b"pr2"], WHEN)
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    target = f"{repo.base.split('//', 1)[1]}/{repo.repo}"
    before = repo.tags()
    inputs = {"targets": f"# the caches\n{target}\n", "policy": str(policy)}
    codes, out, summary = run_action(inputs, tmp_path)
    assert codes == [0, 0, 0], [s.get("_log") for s in ACTION["runs"]["steps"]]
    assert (out["deleted"], out["untagged"], out["exit-code"]) == ("2", "0", "0")
    assert int(out["reclaimed-bytes"]) > 0 and Path(out["plan"]).is_file()
    assert "ghcr-janitor" in summary and "dry run" in summary.lower()
    assert repo.tags() == before                              # the dry run changed nothing
    # The report: written, named for the artifact, its text version and the link in the summary.
    html = Path(out["report"]).read_text()
    assert f'data-bytes="{out["reclaimed-bytes"]}"' in html and out["report-name"] == "ghcr-janitor-report"
    assert "where the bytes are" in summary and f"]({UPLOADED})" in summary
    state = tmp_path / "runner" / "ghcr-janitor" / "state"
    assert (state / "history.sqlite").is_file()              # what the state cache keeps between runs

    codes, out, summary = run_action({**inputs, "dry-run": "false", "report": "false"}, tmp_path, skip_install=True,
                                     path_first=tmp_path / "runner" / "ghcr-janitor-venv" / "bin")
    assert codes == [0], janitor_log()
    assert (out["deleted"], out["exit-code"], out["report"]) == ("2", "0", "")
    assert sorted(repo.tags()) == ["cache-base"]
    assert "where the bytes are" not in summary and UPLOADED not in summary


@pytest.mark.parametrize("code,step_code", [(4, 0), (1, 1), (2, 2)])
def test_exit_codes_map_to_step_outcomes(tmp_path, code, step_code):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "janitor").write_text(f"#!/bin/sh\necho '{{}}'\nexit {code}\n")
    (fake / "janitor").chmod(0o755)
    codes, out, _ = run_action({"targets": "127.0.0.1:5000/x"}, tmp_path, path_first=fake, skip_install=True)
    assert codes == [step_code] and out["exit-code"] == str(code)
    if code == 4:
        assert "::warning" in janitor_log()


@pytest.mark.parametrize("name,value", [("dry-run", "yes"), ("dry-run", "TRUEISH"), ("dry-run", "0"), ("report", "1")])
def test_a_boolean_input_that_is_neither_true_nor_false_does_nothing(repo, tmp_path, name, value):
    repo.buildkit_cache("cache-pr-1", [b"pr1"], WHEN)
    before = repo.tags()
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    fake_path = tmp_path / "no-janitor"          # janitor must not even be called
    fake_path.mkdir()
    (fake_path / "janitor").write_text("#!/bin/sh\necho called >&2\nexit 0\n")
    (fake_path / "janitor").chmod(0o755)
    codes, out, _ = run_action({"targets": f"{repo.base.split('//', 1)[1]}/{repo.repo}", "policy": str(policy),
                                name: value}, tmp_path, path_first=fake_path, skip_install=True)
    assert codes == [2] and out["exit-code"] == "2"
    assert "called" not in janitor_log() and repo.tags() == before


def test_no_plan_output_when_planning_failed(tmp_path):
    codes, out, _ = run_action({"targets": "127.0.0.1:5000/x", "policy": str(tmp_path / "missing.toml")}, tmp_path,
                               skip_install=True)
    assert codes == [2] and out["plan"] == "" and out["exit-code"] == "2"
