"""The copyable workflows of cron/ (github-actions*.yml), run AS COPIED into another repository.

Each file is copied into the `.github/workflows/` of a temp "other repository" (none of this
repository's files in its workspace, only the files the workflow's header asks the user to add) and
run by tests/support/runner.py: `uses: OWNER/ghcr-janitor@REF` and `pip install
git+https://github.com/OWNER/ghcr-janitor@REF` resolve to a copy of this repository outside the
workspace, as GitHub resolves them to the janitor's repository; any other install source, a local
action (`uses: ./`) or a path into this repository fails. The janitor runs against the real local
registry and the Actions-cache REST stand-in.
"""

from __future__ import annotations

import itertools
import re
import os
import shutil
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from ghcr_janitor.core.shard import shard_of
from tests.support.push import Pusher
from tests.support.runner import PLACEHOLDER_REPO, PLACEHOLDER_URL, ROOT, HarnessError, Runner

CRON = ROOT / "cron"
NOW = datetime.now(timezone.utc).replace(microsecond=0)
_counter = itertools.count()


def copied(runner: Runner, name: str, text: str | None = None) -> dict:
    """The workflow file as the user copied it into their repository, parsed."""
    dest = runner.workspace / ".github" / "workflows" / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text if text is not None else (CRON / name).read_text())
    assert not any(p.name in ("pyproject.toml", "action.yml", "ghcr_janitor", "policies")
                   for p in runner.workspace.iterdir())
    return yaml.safe_load(dest.read_text())


def seed(pusher: Pusher) -> None:
    """A fresh stage cache, kept, and a branch cache 45 days old, which both shipped policies delete."""
    shared = b"shared-os-layer" * 20
    pusher.buildkit_cache("cache-base", [shared, f"{pusher.repo}-base".encode()], NOW - timedelta(days=1))
    pusher.buildkit_cache("cache-builder-feature-x", [shared, f"{pusher.repo}-fx".encode()], NOW - timedelta(days=45))


def seeded_targets(registry, shards: int) -> list[str]:
    chosen: dict[int, str] = {}
    while len(chosen) < shards:
        name = f"test/copied{next(_counter)}-{os.getpid()}"
        shard = shard_of(f"{registry.host}/{name}", shards)
        if shard not in chosen:
            chosen[shard] = name
    for name in chosen.values():
        seed(Pusher(registry.url, name))
    return [f"{registry.host}/{n}" for n in chosen.values()]


def tags_of(registry, target: str) -> set[str]:
    return set(Pusher(registry.url, target.split("/", 1)[1]).tags())


def janitor_uses(workflow: dict) -> list[dict]:
    return [s for job in workflow["jobs"].values() for s in job["steps"] if s.get("uses", "").endswith("/ghcr-janitor@REF")
            or s.get("uses", "").startswith("./")]


# --- the long form: pip install from the placeholder, targets and policy in the user's repository -----

def test_the_long_form_as_copied_plans_applies_and_reports_every_shard(registry, tmp_path):
    runner = Runner(tmp_path, user_repo="acme/app")
    wf = copied(runner, "ghcr-janitor.yml", (CRON / "github-actions-long.yml").read_text())
    shards = len(wf["jobs"]["prune"]["strategy"]["matrix"]["shard"])
    targets = seeded_targets(registry, shards)
    user = runner.workspace / ".github" / "janitor"                   # what the header asks the user to add
    user.mkdir(parents=True)
    (user / "targets.txt").write_text("# ours\n" + "".join(f"{t}\n" for t in targets))
    shutil.copy(ROOT / "policies" / "seed-stages.toml", user / "policy.toml")

    # A manual run is a dry run: every shard plans, nothing changes.
    jobs = runner.run_workflow(wf, event="workflow_dispatch", inputs={"dry_run": True}, only_jobs={"prune"})
    assert [j.status for j in jobs["prune"]] == ["success"] * shards, [j.log for j in jobs["prune"]]
    assert all(tags_of(registry, t) == {"cache-base", "cache-builder-feature-x"} for t in targets)
    assert all(j.step("Apply").outcome == "skipped" for j in jobs["prune"])
    assert {f"janitor-plan-shard-{i}" for i in range(1, shards + 1)} <= set(runner.artifacts)

    # The schedule applies: each target is in exactly one shard, and each shard cleans its own.
    runner.artifacts.clear()
    jobs = runner.run_workflow(wf, event="schedule")
    assert jobs["local-cache"] == []                                # manual runs only
    assert [j.status for j in jobs["prune"]] == ["success"] * shards, [j.log for j in jobs["prune"]]
    assert all(tags_of(registry, t) == {"cache-base"} for t in targets)
    assert all("ghcr-janitor: applied" in j.summary for j in jobs["prune"])
    assert {f"janitor-report-shard-{i}" for i in range(1, shards + 1)} <= set(runner.artifacts)
    assert (runner.toolcache / "Python" / "x64" / "bin" / "janitor").is_file()   # pip-installed from the copy


# --- the short form and the Actions-cache form: the action, from its repository ---------------------

def test_the_short_form_as_copied_dry_runs_until_told_then_prunes(registry, tmp_path):
    runner = Runner(tmp_path, user_repo="acme/app", shim_install=True)
    wf = copied(runner, "ghcr-janitor.yml", (CRON / "github-actions.yml").read_text())
    (step,) = janitor_uses(wf)
    assert step["uses"] == f"{PLACEHOLDER_REPO}@REF"
    assert step["with"]["targets"].strip() == "ghcr.io/${{ github.repository }}"
    # ghcr.io needs GitHub's Packages API; the test points the one target at the local registry.
    (target,) = seeded_targets(registry, 1)
    step["with"]["targets"] = target

    jobs = runner.run_workflow(wf, event="schedule")
    (job,) = jobs["prune"]
    assert job.status == "success", job.log
    assert tags_of(registry, target) == {"cache-base", "cache-builder-feature-x"}       # dry run by default
    assert "dry run" in job.summary and "janitor-plan" in runner.artifacts and job.step("janitor").outputs["deleted"] == "1"

    runner.artifacts.clear()
    (job,) = runner.run_workflow(wf, event="schedule", vars={"JANITOR_DRY_RUN": "false"})["prune"]
    assert job.status == "success", job.log
    assert tags_of(registry, target) == {"cache-base"}
    assert "ghcr-janitor: applied" in job.summary and "dry run" not in job.summary.lower()


def test_the_actions_cache_form_as_copied_trims_the_cache_of_the_repository_it_runs_in(gha, tmp_path):
    runner = Runner(tmp_path, user_repo=f"{gha.owner}/{gha.repo}", shim_install=True)
    wf = copied(runner, "actions-cache-janitor.yml", (CRON / "github-actions-cache.yml").read_text())
    before = set(gha.entries)

    (job,) = runner.run_workflow(wf, event="workflow_dispatch", inputs={"dry_run": True}, token=gha.token)["cleanup"]
    assert job.status == "success", job.log
    assert set(gha.entries) == before and {m for m, _, _ in gha.requests} == {"GET"}
    planned = int(job.step("janitor").outputs["deleted"])
    assert planned > 0 and "dry run" in job.summary

    for event in ("pull_request_target", "schedule"):
        (job,) = runner.run_workflow(wf, event=event, token=gha.token)["cleanup"]
        assert job.status == "success", job.log
    assert len(before - set(gha.entries)) == planned
    assert "DELETE" in {m for m, _, _ in gha.requests}
    assert not runner.caches                                         # state-cache off: nothing added to the cache


# --- what the harness catches: a workflow that only works inside the janitor's own repository --------

def test_installing_from_the_users_repository_fails(tmp_path):
    runner = Runner(tmp_path)
    text = (CRON / "github-actions-long.yml").read_text().replace(
        PLACEHOLDER_URL, "git+https://github.com/${{ github.repository }}@${{ github.sha }}")
    wf = copied(runner, "ghcr-janitor.yml", text)
    with pytest.raises(HarnessError, match="not the janitor's repository"):
        runner.run_workflow(wf, event="schedule")


def test_a_local_action_fails(tmp_path):
    runner = Runner(tmp_path, shim_install=True)
    text = (CRON / "github-actions.yml").read_text().replace(f"uses: {PLACEHOLDER_REPO}@REF", "uses: ./")
    wf = copied(runner, "ghcr-janitor.yml", text)
    with pytest.raises(HarnessError, match="no action.yml in GITHUB_WORKSPACE"):
        runner.run_workflow(wf, event="schedule")


def test_a_policy_path_into_the_janitors_repository_fails(registry, tmp_path):
    runner = Runner(tmp_path, shim_install=True)
    text = (CRON / "github-actions.yml").read_text().replace(
        "          dry-run:", "          policy: policies/seed-stages.toml\n          dry-run:", 1)
    wf = copied(runner, "ghcr-janitor.yml", text)
    (step,) = janitor_uses(wf)
    (step["with"]["targets"],) = seeded_targets(registry, 1)
    (job,) = runner.run_workflow(wf, event="schedule")["prune"]
    assert job.status == "failure" and job.step("janitor").outputs["exit-code"] == "2"
    assert "policies/seed-stages.toml" in job.log


# --- the README's first Action example, as pasted -----------------------------------------------------

README = ROOT / "README.md"


def first_action_example(readme: str) -> dict:
    """The first YAML block of the README's "As a GitHub Action" section: a whole workflow."""
    section = readme.split("### As a GitHub Action", 1)[1]
    return yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S)[1])


def test_the_readmes_first_action_example_works_as_pasted(gha, tmp_path):
    """A new user pastes it into .github/workflows/ of any repository, fills in OWNER and REF, runs it:
    a dry run of that repository's Actions cache, with the one permission it needs."""
    wf = first_action_example(README.read_text())
    assert isinstance(wf, dict) and "jobs" in wf, "the first example is a whole workflow, ready to paste"
    assert wf["permissions"] == {"actions": "write"}
    (step,) = janitor_uses(wf)
    assert step["uses"] == f"{PLACEHOLDER_REPO}@REF" and step["with"]["dry-run"] == "true"
    runner = Runner(tmp_path, user_repo=f"{gha.owner}/{gha.repo}", shim_install=True)
    wf = copied(runner, "actions-cache-janitor.yml", yaml.safe_dump(wf))
    on = wf.get("on", wf.get(True))
    event = "workflow_dispatch" if "workflow_dispatch" in (on if isinstance(on, (list, dict)) else [on]) else "schedule"
    before = set(gha.entries)
    ((job,),) = [jobs for jobs in runner.run_workflow(wf, event=event, token=gha.token).values()]
    assert job.status == "success", job.log
    assert int(job.step(step.get("id") or step["uses"]).outputs["deleted"]) > 0 and "dry run" in job.summary
    assert set(gha.entries) == before and {m for m, _, _ in gha.requests} == {"GET"}
