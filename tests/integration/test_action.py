"""`action.yml` run the way GitHub runs it for a user: `uses: OWNER/ghcr-janitor@REF` in a job of
ANOTHER repository, the action a copy of this repository's files outside GITHUB_WORKSPACE, its
`uses:` steps modelled by their documented checks (tests/support/runner.py), against the real local
registry. Every input used and documented; outputs true after failures; partial failures; summaries."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from tests.support.runner import ROOT, HarnessError, Runner

ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
WHEN = datetime(2026, 1, 1, tzinfo=timezone.utc)
POLICY = '[[rule]]\nname = "pull requests"\nselect = { tags = ["cache-pr-*"] }\naction = "delete"\n'
USES = "OWNER/ghcr-janitor@REF"


def janitor_step(inputs: dict[str, str], **extra) -> dict:
    return {"id": "janitor", "uses": USES, "with": inputs, **extra}


def run(runner: Runner, *steps: dict, **kwargs):
    """One job of the user's repository; returns it (steps, summary, annotations)."""
    return runner.run_job({"steps": list(steps)}, **kwargs)


def inner(job, step_id: str = "janitor", name: str = "Run ghcr-janitor"):
    return next(s for s in job.step(step_id).inner if s.name == name)


def target_of(repo) -> str:
    return f"{repo.base.split('//', 1)[1]}/{repo.repo}"


def user_policy(runner: Runner) -> str:
    """The user's policy file, in their repository (relative to GITHUB_WORKSPACE)."""
    path = runner.workspace / ".github" / "janitor" / "policy.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(POLICY)
    return ".github/janitor/policy.toml"


def fake_janitor(tmp_path: Path, script: str) -> Path:
    fake = tmp_path / "fake-bin"
    fake.mkdir(exist_ok=True)
    (fake / "janitor").write_text("#!/bin/sh\n" + script)
    (fake / "janitor").chmod(0o755)
    return fake


def test_every_input_is_used_and_documented():
    steps = yaml.safe_dump(ACTION["runs"])
    readme = (ROOT / "README.md").read_text()
    for name in ACTION["inputs"]:
        assert f"inputs.{name}" in steps, f"input {name} is not used"
        assert f"| `{name}` |" in readme, f"input {name} is not in the README's table"
    for name in ACTION["outputs"]:
        assert f"| `{name}` |" in readme, f"output {name} is not in the README's table"
    assert ACTION["inputs"]["dry-run"]["default"] == "true" and ACTION["runs"]["using"] == "composite"


def test_the_action_is_run_from_a_copy_outside_the_users_workspace(tmp_path):
    runner = Runner(tmp_path)
    assert (runner.action_dir / "action.yml").is_file() and (runner.action_dir / "action" / "run.sh").is_file()
    assert not (runner.workspace / "action.yml").exists() and not (runner.workspace / "pyproject.toml").exists()
    assert runner.workspace not in runner.action_dir.parents and runner.action_dir not in runner.workspace.parents


def old_setup_python(text: str) -> str:
    """action.yml as it was before issue 20: setup-python's pip cache keyed by the action's pyproject."""
    new = re.sub(r"(    - uses: actions/setup-python@v5\n      with:\n        python-version: .*\n)",
                 r"\1        cache: pip\n        cache-dependency-path: ${{ github.action_path }}/pyproject.toml\n",
                 text)
    assert new != text
    return new


def test_the_old_pip_cache_fails_from_another_repository(tmp_path):
    """setup-python hashes only files inside GITHUB_WORKSPACE (actions/setup-python#361): keyed by
    the action's own pyproject.toml, the step fails for every user (the harness models that rule)."""
    runner = Runner(tmp_path, action_files={"action.yml": old_setup_python((ROOT / "action.yml").read_text())},
                    path_first=fake_janitor(tmp_path, "echo '{}'\n"), shim_install=True)
    job = run(runner, janitor_step({"targets": "127.0.0.1:5000/x"}))
    assert job.step("janitor").outcome == "failure"
    setup = job.step("janitor").inner[0]
    assert setup.outcome == "failure" and "No file in" in setup.log and str(runner.workspace) in setup.log
    assert [s.outcome for s in job.step("janitor").inner[1:3]] == ["skipped", "skipped"]


def test_a_hash_of_the_actions_files_is_refused(tmp_path):
    """hashFiles() hashes nothing outside GITHUB_WORKSPACE: a cache key made of it would never change."""
    text = (ROOT / "action.yml").read_text().replace(
        "key: ghcr-janitor-state-${{ github.job }}", "key: ghcr-janitor-state-${{ hashFiles(format('{0}/pyproject.toml', github.action_path)) }}-${{ github.job }}", 1)
    runner = Runner(tmp_path, action_files={"action.yml": text}, path_first=fake_janitor(tmp_path, "echo '{}'\n"),
                    shim_install=True)
    with pytest.raises(HarnessError, match="only files under GITHUB_WORKSPACE"):
        run(runner, janitor_step({"targets": "127.0.0.1:5000/x"}))


def test_the_action_dry_runs_then_applies_against_the_real_registry(repo, tmp_path):
    repo.buildkit_cache("cache-base", [b"base"], WHEN)
    repo.buildkit_cache("cache-pr-1", [b"pr1"], WHEN)
    repo.buildkit_cache("cache-pr-2", [b"pr2"], WHEN)
    runner = Runner(tmp_path)                         # the real install: pip install of the action copy
    inputs = {"targets": f"# the caches\n{target_of(repo)}\n", "policy": user_policy(runner)}
    before = repo.tags()
    job = run(runner, {"uses": "actions/checkout@v4"}, janitor_step(inputs))
    assert job.status == "success", job.log
    out = job.step("janitor").outputs
    assert (out["deleted"], out["untagged"], out["exit-code"], out["failed-targets"]) == ("2", "0", "0", "")
    assert int(out["reclaimed-bytes"]) > 0 and Path(out["plan"]).is_file()
    assert "ghcr-janitor" in job.summary and "dry run" in job.summary.lower()
    assert repo.tags() == before                              # the dry run changed nothing
    assert inner(job, name="Install ghcr-janitor").log.startswith("janitor ")      # its --version
    assert (runner.temp / "ghcr-janitor-venv" / "bin" / "janitor").is_file()
    # The report: written, uploaded under its name, its text version and the link in the summary.
    html = Path(out["report"]).read_text()
    assert f'data-bytes="{out["reclaimed-bytes"]}"' in html and "ghcr-janitor-report" in runner.artifacts
    assert "where the bytes are" in job.summary and f"]({out['report-url']})" in job.summary
    assert out["report-url"].startswith("https://github.com/someone/their-app/actions/runs/")
    state = runner.temp / "ghcr-janitor" / "state"
    assert (state / "history.sqlite").is_file() and runner.caches    # saved by actions/cache/save

    runner.shim_install = True
    job = run(runner, {"uses": "actions/checkout@v4"},
              janitor_step({**inputs, "dry-run": "false", "report": "false"}))
    assert job.status == "success", job.log
    out = job.step("janitor").outputs
    assert (out["deleted"], out["exit-code"], out["report"]) == ("2", "0", "")
    assert sorted(repo.tags()) == ["cache-base"]
    assert "where the bytes are" not in job.summary


def test_a_real_run_summarises_what_was_applied_and_no_dry_run(repo, tmp_path):
    repo.buildkit_cache("cache-base", [b"base"], WHEN)
    repo.buildkit_cache("cache-pr-1", [b"pr1"], WHEN)
    runner = Runner(tmp_path, shim_install=True)
    inputs = {"targets": target_of(repo), "policy": user_policy(runner), "report": "false"}
    job = run(runner, janitor_step(inputs))
    assert job.status == "success", job.log
    assert "### ghcr-janitor: plan (dry run, nothing changed)" in job.summary and "applied" not in job.summary
    job = run(runner, janitor_step({**inputs, "dry-run": "false"}))
    assert job.status == "success", job.log
    summary = job.step("janitor").summary + "".join(s.summary for s in job.step("janitor").inner)
    assert summary == job.summary
    assert summary.lstrip().startswith("### ghcr-janitor: applied"), summary
    assert "dry run" not in summary.lower() and "nothing changed" not in summary


def test_mode_plan_summarises_a_dry_run_even_with_dry_run_false(repo, tmp_path):
    repo.buildkit_cache("cache-pr-1", [b"pr1"], WHEN)
    runner = Runner(tmp_path, shim_install=True)
    job = run(runner, janitor_step({"targets": target_of(repo), "policy": user_policy(runner), "report": "false",
                                    "mode": "plan", "dry-run": "false"}))
    assert job.status == "success", job.log
    assert "dry run" in job.summary and repo.tags() != {}


def test_outputs_after_a_failed_run_are_not_the_previous_runs(repo, tmp_path):
    """Two runs of the action in one job (one RUNNER_TEMP): the second fails, its outputs say 0."""
    repo.buildkit_cache("cache-pr-1", [b"pr1"], WHEN)
    repo.buildkit_cache("cache-pr-2", [b"pr2"], WHEN)
    runner = Runner(tmp_path, shim_install=True)
    inputs = {"targets": target_of(repo), "policy": user_policy(runner)}
    second = janitor_step({**inputs, "mode": "clean"}, id="again", **{"continue-on-error": True})
    third = janitor_step({**inputs, "policy": "missing.toml"}, id="third", **{"continue-on-error": True})
    job = run(runner, janitor_step(inputs), second, third)
    first = job.step("janitor").outputs
    assert (first["deleted"], first["exit-code"]) == ("2", "0") and int(first["reclaimed-bytes"]) > 0
    for step_id in ("again", "third"):
        step = job.step(step_id)
        assert step.outcome == "failure" and step.outputs["exit-code"] == "2", job.log
        assert (step.outputs["deleted"], step.outputs["untagged"], step.outputs["reclaimed-bytes"]) == ("0", "0", "0")
        assert step.outputs["plan"] == "" and step.outputs["report"] == ""
    assert Path(first["plan"]).is_file() and Path(first["report"]).is_file()      # still the first run's
    assert "ghcr-janitor-report" in runner.artifacts and "mode must be prune" in job.log


def test_two_runs_in_one_job_upload_two_reports(repo, tmp_path):
    """upload-artifact v4 refuses a name twice in a workflow run (409): the second report is -2."""
    repo.buildkit_cache("cache-pr-1", [b"pr1"], WHEN)
    runner = Runner(tmp_path, shim_install=True)
    inputs = {"targets": target_of(repo), "policy": user_policy(runner)}
    job = run(runner, janitor_step(inputs), janitor_step(inputs, id="again"))
    assert job.status == "success", job.log
    assert {"ghcr-janitor-report", "ghcr-janitor-report-2"} <= set(runner.artifacts)
    assert job.step("janitor").outputs["report-url"] != job.step("again").outputs["report-url"]


def test_one_failing_target_does_not_block_the_others(repo, registry, tmp_path):
    repo.buildkit_cache("cache-base", [b"base"], WHEN)
    repo.buildkit_cache("cache-pr-1", [b"pr1"], WHEN)
    repo.buildkit_cache("cache-pr-2", [b"pr2"], WHEN)
    missing = f"{registry.host}/test/no-such-repository-{tmp_path.name}"
    runner = Runner(tmp_path, shim_install=True)
    inputs = {"targets": f"{missing}\n{target_of(repo)}\n", "policy": user_policy(runner), "dry-run": "false",
              "report": "false"}
    job = run(runner, janitor_step(inputs))
    assert sorted(repo.tags()) == ["cache-base"], job.log     # the other target's deletes were applied
    step = job.step("janitor")
    assert step.outcome == "failure" and inner(job).code == 1
    out = step.outputs
    assert (out["exit-code"], out["deleted"], out["failed-targets"]) == ("1", "2", missing)
    errors = [a for a in job.annotations if a.startswith("::error")]
    assert len(errors) == 1 and missing in errors[0], job.annotations
    assert "### ghcr-janitor: applied" in job.summary and missing in job.summary
    assert "dry run" not in job.summary.lower()


def test_a_policy_error_applies_nothing_not_even_an_earlier_plan(repo, tmp_path):
    """Exit 2 (usage, policy) applies nothing; the plan of an earlier run in the job is not this run's."""
    repo.buildkit_cache("cache-pr-1", [b"pr1"], WHEN)
    before = repo.tags()
    runner = Runner(tmp_path, shim_install=True)
    (runner.workspace / "bad.toml").write_text("[[rule]]\nname = 1\n")
    inputs = {"targets": target_of(repo), "policy": user_policy(runner), "report": "false"}
    job = run(runner, janitor_step(inputs),
              janitor_step({**inputs, "policy": "bad.toml", "dry-run": "false"}, id="real"))
    assert job.step("janitor").outputs["deleted"] == "1"
    out = job.step("real").outputs
    assert (out["exit-code"], out["deleted"], out["plan"]) == ("2", "0", "") and repo.tags() == before


@pytest.mark.parametrize("code,step_outcome", [(4, "success"), (1, "failure"), (2, "failure")])
def test_exit_codes_map_to_step_outcomes(tmp_path, code, step_outcome):
    fake = fake_janitor(tmp_path, f"echo '{{}}'\nexit {code}\n")
    runner = Runner(tmp_path, path_first=fake, shim_install=True)
    job = run(runner, janitor_step({"targets": "127.0.0.1:5000/x"}))
    assert job.step("janitor").outcome == step_outcome and job.step("janitor").outputs["exit-code"] == str(code)
    assert inner(job).code == (0 if code == 4 else code)
    if code == 4:
        assert any(a.startswith("::warning") for a in job.annotations)


@pytest.mark.parametrize("name,value", [("dry-run", "yes"), ("dry-run", "TRUEISH"), ("dry-run", "0"), ("report", "1")])
def test_a_boolean_input_that_is_neither_true_nor_false_does_nothing(repo, tmp_path, name, value):
    repo.buildkit_cache("cache-pr-1", [b"pr1"], WHEN)
    before = repo.tags()
    fake = fake_janitor(tmp_path, "echo called >&2\nexit 0\n")        # janitor must not even be called
    runner = Runner(tmp_path, path_first=fake, shim_install=True)
    job = run(runner, janitor_step({"targets": target_of(repo), name: value}))
    out = job.step("janitor").outputs
    assert inner(job).code == 2 and out["exit-code"] == "2" and out["deleted"] == "0"
    assert "called" not in job.log and repo.tags() == before


def test_no_plan_output_when_planning_failed(tmp_path):
    runner = Runner(tmp_path, shim_install=True)
    job = run(runner, janitor_step({"targets": "127.0.0.1:5000/x", "policy": "missing.toml"}))
    out = job.step("janitor").outputs
    assert inner(job).code == 2 and out["plan"] == "" and out["exit-code"] == "2"


# --- action/outputs.py -----------------------------------------------------------------------------

def outputs_of(tmp_path: Path, result: dict | None, plan: dict | None = None) -> dict[str, str]:
    files = []
    for name, doc in (("result.json", result), ("plan.json", plan)):
        path = tmp_path / name
        if doc is not None:
            path.write_text(json.dumps(doc))
        files.append(str(path))
    out = subprocess.run(["python", str(ROOT / "action" / "outputs.py"), *files], capture_output=True, text=True,
                         check=True).stdout
    from tests.support.runner import read_file_commands

    (tmp_path / "out").write_text(out)
    return read_file_commands(tmp_path / "out")


def test_deleted_counts_only_actions_the_janitor_did(tmp_path):
    results = {"version": 1, "exit_code": 4, "targets": [{"target": "r", "error": None, "reclaimed_size": 10, "results": [
        {"action": "delete", "status": "done"}, {"action": "delete", "status": "gone"},
        {"action": "delete", "status": "skipped"}, {"action": "delete", "status": "failed"},
        {"action": "untag", "status": "done"}, {"action": "untag", "status": "gone"}]}]}
    out = outputs_of(tmp_path, results)
    assert (out["deleted"], out["untagged"], out["reclaimed-bytes"], out["failed-targets"]) == ("1", "1", "10", "")


def test_outputs_of_a_missing_result_are_zero_and_failed_targets_come_from_the_plan(tmp_path):
    plan = {"plan_version": 1, "targets": [
        {"target": "a/x", "reclaim_size": 5, "actions": [{"action": "delete"}], "errors": []},
        {"target": "a/gone", "reclaim_size": 0, "actions": [], "errors": ["repository not found"]},
        {"target": "a/y", "reclaim_size": 0, "actions": [], "errors": ["one\nmore 100%"]}]}
    out = outputs_of(tmp_path, None, plan)
    assert (out["deleted"], out["untagged"], out["reclaimed-bytes"]) == ("0", "0", "0")
    assert out["failed-targets"] == "a/gone\na/y"
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    notes = subprocess.run(["python", str(ROOT / "action" / "outputs.py"), "--annotate", str(tmp_path / "plan.json")],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    assert notes == ["::error title=ghcr-janitor::a/gone: repository not found",
                     "::error title=ghcr-janitor::a/y: one%0Amore 100%25"]


@pytest.mark.skipif(shutil.which("shellcheck") is None and not os.environ.get("CI"),
                    reason="shellcheck not installed (.ci/run installs it; in CI this test never skips)")
def test_the_action_scripts_pass_shellcheck():
    subprocess.run(["shellcheck", *sorted(str(p) for p in (ROOT / "action").glob("*.sh"))], check=True)
