"""`select.not_pulled_for`: images not pulled for a while, on stores that record pull times (ECR).

Never pulled counts from the push time; ECR records a pull up to 24 h late, so that much is added;
a store that records no pull times selects nothing by it, and the plan says so."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest

from ghcr_janitor.core.errors import PolicyError
from ghcr_janitor.core.models import Artifact, Inventory
from ghcr_janitor.policy import evaluate
from ghcr_janitor.policy.describe import describe
from ghcr_janitor.policy.evaluate import pull_time_warnings
from ghcr_janitor.policy.loader import parse_policy

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
LAG = timedelta(hours=24)

POLICY = """
[[rule]]
name = "unpulled caches"
select = { tags = ["cache-*"], not_pulled_for = "30d" }
action = "delete"
[[rule]]
name = "old caches"
select = { tags = ["cache-*"] }
older_than = "90d"
action = "delete"
"""


def dg(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def art(name: str, pushed_days: float, pulled_days: float | None, records: bool = True) -> Artifact:
    pushed = NOW - timedelta(days=pushed_days)
    extra = {"pushed": pushed, "last_pulled": None if pulled_days is None else NOW - timedelta(days=pulled_days),
             "pull_lag": LAG} if records else {}
    return Artifact(digest=dg(name), media_type="application/vnd.oci.image.manifest.v1+json", kind="buildkit-cache",
                    closure={dg(name): 10}, created=pushed, age_source="ecr/pushed" if records else "x", extra=extra)


def inventory(arts: dict[str, Artifact], backend: str = "ecr") -> Inventory:
    return Inventory(target="t", tags={tag: a.digest for tag, a in arts.items()},
                     artifacts={a.digest: a for a in arts.values()}, listed=sorted(arts), backend=backend)


def decide(inv: Inventory, text: str = POLICY) -> dict[str, tuple[str, str | None, str]]:
    return {d.tag: (d.action, d.rule, d.reason) for d in evaluate(inv, parse_policy(text, "p.toml"), NOW)}


def test_selected_when_not_pulled_for_longer_than_the_limit_plus_the_recording_delay():
    got = decide(inventory({
        "cache-cold": art("cold", 100, 40),              # pulled 40 days ago
        "cache-warm": art("warm", 100, 10),              # pulled 10 days ago: not selected, falls through
        "cache-edge": art("edge", 40, 30.5),             # 30.5 days + 24 h of possible delay: not yet
        "cache-never-old": art("never-old", 45, None),   # never pulled: counts from its push, 45 days ago
        "cache-never-new": art("never-new", 5, None),
    }))
    assert got["cache-cold"][:2] == ("delete", "unpulled caches")
    assert "last pulled 2026-10-22" in got["cache-cold"][2] and "recorded up to 1d late" in got["cache-cold"][2]
    assert got["cache-warm"][:2] == ("delete", "old caches")       # the next rule decides it: older than 90d
    assert got["cache-edge"][:2] == ("keep", "old caches")
    assert got["cache-never-old"][:2] == ("delete", "unpulled caches")
    assert "never pulled, pushed 2026-10-17" in got["cache-never-old"][2]
    assert got["cache-never-new"][:2] == ("keep", "old caches")


def test_with_criteria_both_must_hold_and_the_floor_still_keeps():
    text = """
[[rule]]
name = "old and unpulled"
select = { tags = ["cache-*"], not_pulled_for = "30d" }
older_than = "60d"
keep_newest = 1
action = "delete"
"""
    got = decide(inventory({
        "cache-a": art("a", 100, 40), "cache-b": art("b", 80, 40), "cache-c": art("c", 50, 40),
        "cache-d": art("d", 100, 5),
    }), text)
    assert got["cache-c"][0] == "keep" and "keep_newest" in got["cache-c"][2]       # the newest unpulled one
    assert got["cache-b"][0] == "delete" and got["cache-b"][2].startswith("not pulled for 30d")
    assert got["cache-a"][0] == "delete"
    assert got["cache-d"] == ("keep", None, "no rule matched")                       # pulled 5 days ago


def test_a_store_without_pull_times_selects_nothing_and_the_plan_says_so():
    inv = inventory({"cache-x": art("x", 200, None, records=False)}, backend="oci")
    got = decide(inv)
    assert got["cache-x"][:2] == ("delete", "old caches")           # the pull rule selected nothing
    warnings = pull_time_warnings(inv, parse_policy(POLICY, "p.toml"))
    assert warnings == ["rule 'unpulled caches' selects by not_pulled_for, but oci records no pull times: it "
                        "selects nothing here (ECR records them)"]
    ecr = inventory({"cache-x": art("x", 200, None)})
    assert pull_time_warnings(ecr, parse_policy(POLICY, "p.toml")) == []


@pytest.mark.parametrize("select, message", [
    ('{ not_pulled_for = "30d" }', "narrows a selection"),
    ('{ tags = ["cache-*"], not_pulled_for = "soon" }', r"rule\[1\]\.select\.not_pulled_for: invalid duration"),
    ('{ keys = ["Linux-*"], not_pulled_for = "30d" }', "Actions-cache entries have no pull times"),
])
def test_invalid_uses_are_one_line_errors(select, message):
    with pytest.raises(PolicyError, match=message) as caught:
        parse_policy(f'[[rule]]\nselect = {select}\naction = "delete"\n', "p.toml")
    assert "\n" not in str(caught.value) and str(caught.value).startswith("p.toml: ")


def test_policy_check_says_what_it_selects():
    lines = describe(parse_policy(POLICY, "p.toml"))
    assert "tags matching 'cache-*' not pulled for 30d (never pulled: since pushed; pull times as ECR records " \
           "them, up to 24 h late; on a store that records none the rule selects nothing)" in lines[2]


def test_the_plan_carries_the_warning():
    from ghcr_janitor.plan.planner import plan_inventory

    inv = inventory({"cache-x": art("x", 200, None, records=False)}, backend="oci")
    plan = plan_inventory(inv, parse_policy(POLICY, "p.toml"), NOW)
    assert any("selects by not_pulled_for, but oci records no pull times" in w for w in plan.warnings)
