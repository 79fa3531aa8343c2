"""Issue 20 point 11: a trend needs history (MIN_RUNS runs over MIN_SPAN), and a restore does not
make an absurd rate. Below the minimum every verdict reads "not enough history yet (N runs over H)"."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ghcr_janitor.report import projection as pj

GIB, MIB = 1024 ** 3, 1024 ** 2
T0 = datetime(2026, 9, 1, tzinfo=timezone.utc)


def at(*offsets_and_values) -> list[tuple[datetime, int]]:
    return [(T0 + offset, value) for offset, value in offsets_and_values]


def daily(values: list[int], start: datetime = T0) -> list[tuple[datetime, int]]:
    return [(start + timedelta(days=i), v) for i, v in enumerate(values)]


def test_the_minimum_is_three_runs_over_three_days_and_at_it_there_is_a_rate():
    assert (pj.MIN_RUNS, pj.MIN_SPAN) == (3, timedelta(days=3))
    trend = pj.trend(daily([GIB, GIB + 100 * MIB, GIB + 200 * MIB, GIB + 300 * MIB]))
    assert trend.status == pj.GROWING and trend.per_week == pytest.approx(700 * MIB)
    assert trend.sentence().startswith("it grows 700.0 MiB a week")


def test_two_runs_a_minute_apart_make_no_headline():
    """The issue: 'grows 19.4 GiB a week: 249 GiB in 90 days' from two runs 60 s apart."""
    trend = pj.trend(at((timedelta(0), 10 * GIB), (timedelta(seconds=60), 10 * GIB + 2 * MIB)))
    assert trend.status == pj.UNKNOWN and trend.per_week is None and trend.days_to_limit is None
    text = trend.sentence("this repository")
    assert text.startswith("not enough history yet (2 runs over 1 minute")
    assert "3 runs over 3 days" in text
    for verdict in ("grows", "flat", "shrinks", "90 days", "limit"):
        assert verdict not in text


def test_two_runs_seconds_apart_are_not_flat():
    """The Action summary called a target 'flat' on two runs seconds apart."""
    trend = pj.trend(at((timedelta(0), GIB), (timedelta(seconds=5), GIB)))
    assert trend.status == pj.UNKNOWN and "flat" not in trend.sentence()


def test_many_runs_within_a_day_or_three_runs_in_two_days_are_still_too_little():
    burst = pj.trend([(T0 + timedelta(minutes=10 * i), GIB + i * MIB) for i in range(50)])
    assert burst.status == pj.UNKNOWN and "50 runs over 8.2 hours" in burst.sentence()
    short = pj.trend(daily([GIB, GIB + MIB, GIB + 2 * MIB][:2]) + [(T0 + timedelta(hours=47), GIB + 2 * MIB)])
    assert short.status == pj.UNKNOWN and "3 runs over 47 hours" in short.sentence()


def test_a_restore_up_between_two_runs_a_minute_apart_does_not_make_an_absurd_rate():
    """Daily runs growing 100 MiB a day; a restore from backup adds 300 GiB between two runs a
    minute apart, then the daily growth goes on. Least squares said hundreds of GiB a week."""
    points = daily([20 * GIB + 100 * MIB * i for i in range(10)])
    jump = points[-1][0] + timedelta(seconds=60)
    points.append((jump, points[-1][1] + 300 * GIB))
    points += [(jump + timedelta(days=d), points[-1][1] + 100 * MIB * d) for d in range(1, 6)]
    trend = pj.trend(points)
    assert trend.status == pj.GROWING
    assert trend.per_week == pytest.approx(700 * MIB)
    # A restore down reads as a cleanup: the rate before it stands in.
    before = daily([5 * GIB + 50 * MIB * i for i in range(20)])
    restored = pj.trend(before + [(before[-1][0] + timedelta(seconds=30), 2 * GIB)])
    assert restored.status == pj.GROWING and restored.before_cleanup
    assert restored.per_week == pytest.approx(350 * MIB)


def test_right_after_a_cleanup_with_too_little_history_before_it_says_so():
    points = at((timedelta(0), 5 * GIB), (timedelta(hours=2), 5 * GIB + MIB), (timedelta(hours=3), GIB))
    trend = pj.trend(points)
    assert trend.status == pj.UNKNOWN and trend.sentence().startswith("not enough history yet (1 run since the last cleanup;")


def test_over_the_limit_needs_no_trend_but_gives_no_rate_without_history():
    trend = pj.trend(at((timedelta(0), 11 * GIB), (timedelta(seconds=60), 12 * GIB)), limit=10 * GIB)
    assert trend.status == pj.OVER and trend.per_week is None
    assert trend.sentence("the Actions cache") == "the Actions cache is already over its 10.0 GiB limit"


def test_every_report_output_says_not_enough_history_for_two_runs_a_minute_apart(tmp_path):
    """The HTML (target section and the multi-target summary) and the step summary's text version."""
    from ghcr_janitor.core.models import Artifact, Inventory
    from ghcr_janitor.plan.model import TargetPlan
    from ghcr_janitor.report import html
    from ghcr_janitor.report.history import Row
    from ghcr_janitor.report.markdown import report_markdown

    now = T0 + timedelta(minutes=5)
    reports = []
    for name in ("a", "b"):
        inv = Inventory(target=name, tags={"cache-x": "d"}, artifacts={
            "d": Artifact("d", "application/vnd.oci.image.manifest.v1+json", "image", closure={"d": 10 * MIB},
                          tags=["cache-x"])}, listed=["cache-x"], backend="oci")
        rows = [Row("2026-09-01T00:00:00Z", "ls", name, "oci", 1, 10 * GIB, 0, 0, None),
                Row("2026-09-01T00:01:00Z", "ls", name, "oci", 1, 10 * GIB + 2 * MIB, 0, 0, None)]
        reports.append(html.target_report(inv, TargetPlan(name), rows, now))
    page = " ".join(html.render(reports, now, None, []).split()).lower()
    assert page.count("not enough history yet (2 runs over 1 minute;") == 2 + 2 * 2   # summary row, headline, history
    for verdict in ("grows", " is flat", "shrinks", "in 90 days"):
        assert verdict not in page
    text = report_markdown(reports)
    assert text.count("not enough history yet (2 runs over 1 minute;") == 2 and "flat" not in text
