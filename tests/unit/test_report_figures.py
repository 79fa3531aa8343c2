"""The report's arithmetic: growth and projection on synthetic series, and the storage breakdown
against the plan it is drawn from (property-based, on random repositories and policies)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings

from ghcr_janitor.core.models import Artifact, Inventory
from ghcr_janitor.plan.planner import plan_inventory
from ghcr_janitor.report import projection as pj
from ghcr_janitor.report.storage import breakdown, families, family_names, sharing
from tests.unit.test_safety_properties import NOW, policies, repositories

GIB = 1024 ** 3
T0 = datetime(2026, 9, 1, tzinfo=timezone.utc)


def daily(values: list[int], start: datetime = T0) -> list[tuple[datetime, int]]:
    return [(start + timedelta(days=i), v) for i, v in enumerate(values)]


def test_a_flat_series_is_flat_and_reaches_no_limit():
    trend = pj.trend(daily([5 * GIB] * 30), limit=10 * GIB)
    assert trend.status == pj.FLAT and trend.days_to_limit is None
    assert "flat" in trend.sentence("the Actions cache")


def test_small_noise_around_a_level_is_still_flat():
    trend = pj.trend(daily([5 * GIB + (i % 3) * 1024 for i in range(30)]))
    assert trend.status == pj.FLAT


def test_a_linear_series_gives_its_rate_and_the_days_to_the_limit():
    rate = 100 * 1024 ** 2           # 100 MiB a day
    start = 4 * GIB
    trend = pj.trend(daily([start + rate * i for i in range(60)]), limit=10 * GIB)
    assert trend.status == pj.GROWING
    assert trend.per_week == pytest.approx(7 * rate)
    latest = start + rate * 59
    assert trend.latest == latest
    assert trend.days_to_limit == pytest.approx((10 * GIB - latest) / rate)
    # The window: the last 28 days of the 60.
    assert trend.points == 29 and trend.since == T0 + timedelta(days=31)
    days = round((10 * GIB - latest) / rate)
    assert trend.sentence("the Actions cache") == (
        f"the Actions cache grows 700.0 MiB a week: at this rate it reaches its 10.0 GiB limit in about {days} days")


def test_without_a_limit_the_projection_says_where_90_days_lead():
    trend = pj.trend(daily([GIB + 1024 ** 2 * i for i in range(10)]))
    assert trend.status == pj.GROWING and trend.days_to_limit is None
    assert trend.sentence().endswith(f"{(GIB + 1024 ** 2 * 9 + 1024 ** 2 * 90) / GIB:.1f} GiB in 90 days")


def test_after_a_cleanup_the_rate_is_the_one_since_the_cleanup():
    before = [2 * GIB + 50 * 1024 ** 2 * i for i in range(30)]            # 50 MiB a day
    after = [GIB + 10 * 1024 ** 2 * i for i in range(10)]                   # cleaned up, then 10 MiB a day
    trend = pj.trend(daily(before + after), limit=10 * GIB)
    assert trend.status == pj.GROWING and not trend.before_cleanup
    assert trend.per_week == pytest.approx(70 * 1024 ** 2)
    assert trend.points == 10 and trend.since == T0 + timedelta(days=30)


def test_right_after_a_cleanup_the_rate_before_it_stands_in():
    before = [2 * GIB + 50 * 1024 ** 2 * i for i in range(30)]
    trend = pj.trend(daily(before + [GIB]), limit=10 * GIB)
    assert trend.status == pj.GROWING and trend.before_cleanup
    assert trend.per_week == pytest.approx(350 * 1024 ** 2)
    assert trend.days_to_limit == pytest.approx((10 * GIB - GIB) / (50 * 1024 ** 2))
    assert "before the last cleanup" in trend.sentence()


def test_a_shrinking_series_reaches_no_limit():
    trend = pj.trend(daily([8 * GIB - 10 * 1024 ** 2 * i for i in range(20)]), limit=10 * GIB)
    assert trend.status == pj.SHRINKING and trend.per_week == pytest.approx(-70 * 1024 ** 2)
    assert trend.days_to_limit is None and "shrinks by 70.0 MiB a week" in trend.sentence()


def test_over_the_limit_and_too_little_history():
    assert pj.trend(daily([11 * GIB, 12 * GIB]), limit=10 * GIB).status == pj.OVER
    assert pj.trend(daily([GIB])).status == pj.UNKNOWN
    assert pj.trend([]).status == pj.UNKNOWN
    assert pj.trend([(T0, None), (T0 + timedelta(days=1), GIB)]).status == pj.UNKNOWN
    # A repeated time counts once (the last value recorded then).
    assert pj.trend([(T0, GIB), (T0, 2 * GIB)]).status == pj.UNKNOWN


def test_weekly_rows_keep_each_weeks_last_value_and_the_change():
    rows = pj.weekly(daily(list(range(0, 210, 10))))           # 21 days: 0, 10, ... 200
    assert [(v, d) for _, v, d in rows] == [(60, None), (130, 70), (200, 70)]


def test_family_names_group_branch_variants_under_their_stage():
    tags = ["cache-base", "cache-base-main", "cache-python-deps", "cache-python-deps-pr-12", "cache-builder-x",
            "cache", "cache-node-deps-pr-7"]
    names = family_names(tags)
    assert names["cache-base-main"] == "cache-base"
    assert names["cache-python-deps-pr-12"] == "cache-python-deps"
    assert names["cache-builder-x"] == "cache-builder-x"          # no cache-builder tag: its own family
    assert names["cache-node-deps-pr-7"] == "cache-node-deps-pr-7"
    assert names["cache"] == "cache"                             # a stem needs a "-"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(repositories(), policies())
def test_the_breakdown_partitions_the_bytes_and_shows_the_plans_reclaim(inv, policy):
    plan = plan_inventory(inv, policy, NOW)
    parts = breakdown(inv, plan)
    by_key = {p.key: p.bytes for p in parts.parts}
    assert by_key["reclaimable"] == plan.reclaim_size
    assert "other" not in by_key, by_key
    assert sum(by_key.values()) == parts.total == inv.total_size()
    assert all(v >= 0 for v in by_key.values())
    fams = families(inv)
    for fam in fams:
        assert 0 <= fam.only <= fam.bytes
    assert sum(f.only for f in fams) <= parts.total
    names, matrix = sharing(fams)
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            assert value == (fams[i].only if i == j else matrix[j][i])


def art(digest: str, closure: dict[str, int]) -> Artifact:
    return Artifact(digest=digest, media_type="application/vnd.oci.image.manifest.v1+json", kind="buildkit-cache",
                    closure={digest: 10, **closure})


def test_families_count_shared_layers_once_and_what_only_each_holds():
    base = {"os": 1000, "tools": 100}
    arts = {"m1": art("m1", base), "m2": art("m2", {**base, "py": 500}), "m3": art("m3", {"os": 1000, "py2": 300})}
    inv = Inventory("r", tags={"cache-base": "m1", "cache-python-deps": "m2", "cache-python-deps-pr-1": "m3"},
                    artifacts=arts, listed=["cache-base", "cache-python-deps", "cache-python-deps-pr-1"])
    fams = {f.name: f for f in families(inv)}
    assert set(fams) == {"cache-base", "cache-python-deps"}
    assert fams["cache-python-deps"].members == ["cache-python-deps", "cache-python-deps-pr-1"]
    assert fams["cache-python-deps"].bytes == 10 + 10 + 1000 + 100 + 500 + 300
    assert fams["cache-python-deps"].only == 10 + 10 + 500 + 300
    assert fams["cache-base"].only == 10
    names, matrix = sharing(list(fams.values()))
    assert matrix[names.index("cache-base")][names.index("cache-python-deps")] == 1100


def test_a_tag_outside_the_listing_on_a_family_digest_means_nothing_is_only_there():
    arts = {"m1": art("m1", {"a": 100}), "m2": art("m2", {"b": 200}), "img": art("img", {"c": 50})}
    inv = Inventory("r", tags={"cache-b": "m1", "cache-b-pr-2": "m2", "keepme": "m2", "v1": "img"},
                    artifacts=arts, listed=["cache-b", "cache-b-pr-2"])
    fams = {f.name: f for f in families(inv)}
    assert fams["(other tags)"].members == ["keepme", "v1"]
    assert fams["cache-b"].only == 10 + 100                 # m2 stays while keepme holds it
    assert fams["(other tags)"].only == 10 + 50
