"""Issue 20 point 15: the history chart's time axis (report/svg.py) never repeats a label, and a short
span gets fewer ticks, never one date five times."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from ghcr_janitor.report import svg

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


@settings(max_examples=500, deadline=None)
@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(timezone.utc)),
       st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3000)))
def test_ticks_are_few_distinct_in_range_and_in_order(start, span):
    ticks = svg.time_ticks(start, start + span)
    labels = [label for _, label in ticks]
    assert 1 <= len(ticks) <= svg.MAX_TIME_TICKS
    assert len(set(labels)) == len(labels)
    times = [t for t, _ in ticks]
    assert times == sorted(times) and all(start <= t <= start + span for t in times)


def test_a_chart_of_a_few_minutes_reads_times_of_day_not_one_date_five_times():
    chart = svg.lines([("bytes", "blue", [(T0 - timedelta(minutes=3), 1), (T0, 2)])])
    axis = [text for _, y, _, text in chart.texts if y == chart.height - 8]
    assert axis == ["11:57", "11:58", "11:59", "12:00"]
    two_days = svg.lines([("bytes", "blue", [(T0 - timedelta(days=2), 1), (T0, 2)])])
    axis = [text for _, y, _, text in two_days.texts if y == two_days.height - 8]
    assert axis == ["12-05 12:00", "12-06 00:00", "12-06 12:00", "12-07 00:00", "12-07 12:00"]
