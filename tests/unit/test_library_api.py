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
