"""The library API sketch (engine/api.py): inventory, plan and apply a local cache dir from Python."""

from __future__ import annotations

import pytest

from ghcr_janitor.core.errors import UsageError
from ghcr_janitor.engine.api import apply_plan, make_plan, take_inventory


@pytest.fixture
def env(tmp_path):
    return {"JANITOR_STATE_DIR": str(tmp_path / "state"), "JANITOR_CACHE_DIR": str(tmp_path / "cache")}


def test_inventory_plan_and_apply_from_python(layout, env):
    target = f"oci-layout:{layout}"
    [inventory] = take_inventory([target], env=env)
    assert inventory.target == target and inventory.tags
    plan = make_plan([target], env=env)
    doomed = {a.tag for a in plan.targets[0].actions if a.action == "delete"}
    assert doomed, "the example has stale branch caches"
    results = apply_plan(plan, env=env)
    assert {r.status for r in results[0].results} == {"done"}
    [after] = take_inventory([target], env=env, all_tags=True)
    assert not doomed & set(after.tags)


def test_library_errors_are_the_janitors(env):
    with pytest.raises(UsageError, match="JANITOR_RETRY_ATTEMPTS"):
        make_plan(["oci-layout:/nonexistent"], env={**env, "JANITOR_RETRY_ATTEMPTS": "x"})


# The library's names are a contract like the CLI's (docs/cli.md, "Library"): a change here is a
# change to the contract, written in the changelog.
PINNED_ALL = [
    "__version__",
    "take_inventory", "make_plan", "apply_plan",
    "load_policy", "load_default_policy", "Policy", "Rule", "Selector",
    "Inventory", "Artifact",
    "Plan", "TargetPlan", "Action", "Kept", "read_plan", "write_plan",
    "TargetResult", "ActionResult",
    "JanitorError", "UsageError", "PolicyError", "PlanError", "TargetsFailed", "RegistryError", "NetworkError",
    "NotFoundError", "AuthError", "TagMovedError", "CannotUntag", "ManifestError", "LayoutError",
]


def test_the_package_exports_exactly_the_pinned_names_and_each_resolves():
    import ghcr_janitor

    assert ghcr_janitor.__all__ == PINNED_ALL
    for name in ghcr_janitor.__all__:
        assert getattr(ghcr_janitor, name) is not None, name
    assert issubclass(ghcr_janitor.TargetsFailed, ghcr_janitor.JanitorError)
    assert issubclass(ghcr_janitor.PolicyError, ghcr_janitor.UsageError)
    with pytest.raises(AttributeError):
        ghcr_janitor.no_such_name  # noqa: B018
    from ghcr_janitor.engine.api import make_plan as defined
    assert ghcr_janitor.make_plan is defined


def test_importing_the_package_stays_light():
    """`import ghcr_janitor` (what `janitor --version` does) imports no engine, httpx or typer."""
    import subprocess
    import sys

    code = ("import sys, ghcr_janitor; heavy = [m for m in ('httpx', 'typer', 'ghcr_janitor.engine', 'jinja2') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_target_that_cannot_be_read_is_named_and_the_others_are_still_read(layout, env, tmp_path):
    from ghcr_janitor.core.errors import TargetsFailed

    missing = f"oci-layout:{tmp_path / 'nothing-here'}"
    with pytest.raises(TargetsFailed) as caught:
        take_inventory([f"oci-layout:{layout}", missing], env=env)
    assert list(caught.value.failures) == [missing] and str(caught.value).startswith(f"{missing}: ")
    assert [i.target for i in caught.value.inventories] == [f"oci-layout:{layout}"]


def test_the_readmes_use_from_python_example_runs(layout, env, monkeypatch, capsys):
    """README.md's "Use from Python" block, run as written against the example cache dir."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Use from Python", 1)[1].split("\n### ", 1)[0]
    code = re.search(r"```python\n(.+?)\n```", section, flags=re.S)[1]
    assert "/tmp/buildx-cache" in code
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    exec(compile(code.replace("/tmp/buildx-cache", str(layout)), "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "would delete" in printed and "done" in printed


def test_a_string_is_one_target_or_one_tag_glob_never_its_characters(layout, env):
    """tags="release-*" read character by character would include "*": every tag."""
    plan = make_plan(f"oci-layout:{layout}", tags="release-*", env=env)
    assert plan.targets[0].actions == []
    [inventory] = take_inventory(f"oci-layout:{layout}", tags="cache-base", env=env)
    assert inventory.listed == ["cache-base"]


@pytest.mark.parametrize("call", [
    lambda env: make_plan(None, env=env),
    lambda env: make_plan([5], env=env),
    lambda env: make_plan(["oci-layout:/x"], policy=123, env=env),
    lambda env: make_plan(["oci-layout:/x"], concurrency=0, env=env),
    lambda env: apply_plan(None, env=env),
    lambda env: apply_plan({"plan_version": 1}, env=env),
])
def test_bad_arguments_are_usage_errors(call, env):
    with pytest.raises(UsageError):
        call(env)
