"""A rule whose tags the listing filter leaves out says so (real registry)."""

from __future__ import annotations

import json
from datetime import datetime, timezone


def test_a_rule_outside_the_listing_filter_is_named_with_its_count(repo, cli, tmp_path):
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    repo.buildkit_cache("cache-base", [b"base"], when)
    repo.image("release-1", [b"r1"], when)
    repo.image("release-2", [b"r2"], when)
    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\nname = "old releases"\nselect = { tags = ["release-*"] }\naction = "delete"\n')
    target = f"{repo.base.split('//')[1]}/{repo.repo}"

    filtered = cli("prune", target, "--policy", policy, "--dry-run", "-O", "json")
    assert filtered.exit_code == 0, filtered.stderr
    plan = json.loads(filtered.stdout)["targets"][0]
    assert plan["actions"] == []
    warning = next(line for line in filtered.stderr.splitlines() if line.startswith("warning:"))
    assert "'old releases'" in warning and "2 tags" in warning and "--tag cache-*" in warning
    assert "release-1, release-2" in warning and "--all-tags" in warning
    assert plan["warnings"] == [warning.split(f"{target}: ", 1)[1]]

    widened = cli("prune", target, "--policy", policy, "--dry-run", "--all-tags", "-O", "json")
    assert widened.exit_code == 0 and "warning:" not in widened.stderr
    assert sorted(a["tag"] for a in json.loads(widened.stdout)["targets"][0]["actions"]) == ["release-1", "release-2"]
    table = cli("plan", target, "--policy", policy, "-O", "table")
    assert "old releases" in table.stderr
