"""The Actions cache's limits (issue 20, point 13): since 2025-11-20 the size and retention limits
are set per repository, organisation or enterprise (gha-cache.md §1.6, U.1, U.2). `ls` says which
limit applies and where it was read; the plan's "fits" verdict and the report use it. Each step of
the fallback (repository -> organisation -> the usage endpoint's `max_cache_size_gb` -> GHES's
usage-policy -> GitHub's default) is met here against the REST stand-in, and a 403/404 on any of
them never fails the run."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.support.gha_api import NOW

GB = 1024 ** 3
TARGET = "gha:acme/app"


def totals(cli, *flags: str) -> dict:
    result = cli("ls", TARGET, "-O", "json", *flags)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["targets"][0]["totals"]


def limit_paths(gha) -> list[str]:
    return [p for _, p, _ in gha.requests if p.endswith(("-limit", "usage-policy"))]


def test_the_repository_limits_are_read_and_named(gha, cli):
    gha.limit_gb, gha.retention_days = 150, 30
    gha.org_limit_gb, gha.org_retention_days = 400, 90        # the repository's own setting wins
    got = totals(cli)
    assert (got["limit"], got["limit_source"]) == (150 * GB, "repository")
    assert (got["retention_days"], got["retention_source"]) == (30, "repository")
    assert limit_paths(gha) == ["/repos/acme/app/actions/cache/storage-limit",
                                "/repos/acme/app/actions/cache/retention-limit"]      # nothing more asked
    table = cli("ls", TARGET).stdout
    assert "of limit 150.0 GiB (source: repository), retention 30 days (source: repository)" in table


def test_the_organisation_limits_where_the_repository_endpoints_are_denied(gha, cli):
    gha.denied = {"storage-limit": 403, "retention-limit": 403}     # a token without Administration read
    gha.org_limit_gb, gha.org_retention_days = 40, 14
    got = totals(cli)
    assert (got["limit"], got["limit_source"]) == (40 * GB, "organisation")
    assert (got["retention_days"], got["retention_source"]) == (14, "organisation")
    assert "/organizations/acme/actions/cache/storage-limit" in limit_paths(gha)


def test_the_usage_endpoints_max_cache_size_where_no_limit_endpoint_answers(gha, cli):
    gha.denied = {"org storage-limit": 403}                       # the repository's: 404 (not there)
    gha.usage_max_gb = 20
    got = totals(cli)
    assert (got["limit"], got["limit_source"]) == (20 * GB, "usage endpoint")
    assert "/repos/acme/app/actions/cache/usage-policy" not in limit_paths(gha)


def test_ghes_usage_policy_where_the_new_endpoints_do_not_exist(gha, cli):
    gha.policy_gb = 14                                            # an older GHES: storage-limit is 404
    got = totals(cli)
    assert (got["limit"], got["limit_source"]) == (14 * GB, "usage policy")
    assert (got["retention_days"], got["retention_source"]) == (7, "default")


def test_nothing_readable_falls_back_to_the_default_quietly_with_one_log_line_at_v(gha, cli):
    gha.denied = {name: 403 for name in ("storage-limit", "retention-limit", "usage-policy",
                                         "org storage-limit", "org retention-limit")}
    result = cli("ls", TARGET, "-O", "json")
    assert result.exit_code == 0, result.stderr
    got = json.loads(result.stdout)["targets"][0]["totals"]
    assert (got["limit"], got["limit_source"], got["retention_days"], got["retention_source"]) == \
        (10 * GB, "default", 7, "default")
    assert not [line for line in result.stderr.splitlines() if "limit" in line]     # quiet without -v
    loud = cli("ls", TARGET, "-O", "json", "-v")
    assert loud.exit_code == 0, loud.stderr
    lines = [line for line in loud.stderr.splitlines() if "ghcr_janitor.gha:" in line]
    assert lines == ["INFO ghcr_janitor.gha: " + line for line in (
        "acme/app: cache size limit 10 GB from the default (repository storage-limit: 403; organisation "
        "storage-limit: 403; usage endpoint: no max_cache_size_gb; usage policy: 403)",
        "acme/app: cache retention limit 7 days from the default (repository retention-limit: 403; "
        "organisation retention-limit: 403)")]


def test_a_users_repository_is_not_asked_about_an_organisation(gha, cli):
    gha.owner_type = "User"
    got = totals(cli)
    assert got["limit_source"] == "default"
    assert not [p for p in limit_paths(gha) if p.startswith("/organizations/")]


@pytest.mark.parametrize("where", ["repository", "organisation"])
def test_the_plans_fits_verdict_uses_the_real_limit(gha, cli, where):
    """2 GB set: what the plan leaves (2.8 GiB) is still over it, where the 10 GB default says 'fits'."""
    gha.add("Linux-toolchain", "refs/heads/main", 2 * GB, NOW - timedelta(days=1))      # kept: newest of its family
    dry = json.loads(cli("prune", TARGET, "--dry-run", "-O", "json").stdout)["targets"][0]["cache"]
    assert (dry["limit_source"], dry["fits_after"]) == ("default", True) and 2 * GB < dry["usage_after"] < 3 * GB
    if where == "repository":
        gha.limit_gb = 2
    else:
        gha.org_limit_gb, gha.denied = 2, {"storage-limit": 403}
    plan = json.loads(cli("prune", TARGET, "--dry-run", "-O", "json").stdout)["targets"][0]
    cache = plan["cache"]
    assert (cache["limit"], cache["limit_source"], cache["fits_after"]) == (2 * GB, where, False)
    assert any(n.startswith(f"usage 3.5 GiB of limit 2.0 GiB (source: {where}); after the plan 2.8 GiB") and n.endswith("is still over the limit")
               for n in plan["notes"]), plan["notes"]
