"""Durations and sizes as policy files write them."""

from datetime import timedelta

import pytest

from ghcr_janitor.policy.units import format_duration, format_size, parse_duration, parse_size


@pytest.mark.parametrize("text, expected", [
    ("30d", timedelta(days=30)),
    ("12w", timedelta(weeks=12)),
    ("6h", timedelta(hours=6)),
    ("90m", timedelta(minutes=90)),
    ("45s", timedelta(seconds=45)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("1w2d3h4m5s", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
    (" 7d ", timedelta(days=7)),
    ("0s", timedelta(0)),
])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "30 days", "d", "30D", "1m1h", "-5d", "1.5d", "3y", "30d ago",
                                  "999999999999w", 30, None])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError) as err:
        parse_duration(text)
    assert "\n" not in str(err.value)


def test_parse_duration_hint():
    with pytest.raises(ValueError, match=r"invalid duration '30 days' \(use e\.g\. 30d"):
        parse_duration("30 days")


@pytest.mark.parametrize("td, text", [
    (timedelta(days=30), "30d"), (timedelta(weeks=12), "84d"), (timedelta(hours=6), "6h"),
    (timedelta(minutes=90), "1h30m"), (timedelta(seconds=45), "45s"), (timedelta(0), "0s"),
])
def test_format_duration(td, text):
    assert format_duration(td) == text
    assert parse_duration(text) == td


@pytest.mark.parametrize("text, expected", [
    ("20GiB", 20 * 1024**3), ("500MB", 500 * 10**6), ("1.5 GiB", 3 * 1024**3 // 2), ("123", 123),
    ("123B", 123), ("1KiB", 1024), ("1KB", 1000), ("2MiB", 2 * 1024**2), ("1TiB", 1024**4),
    ("1TB", 10**12), ("3GB", 3 * 10**9), ("1gib", 1024**3), (0, 0), (42, 42), ("0", 0),
])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "GiB", "20 GB2", "-1", "1,5GiB", "20Gi", "20 gigabytes", "1e9", -1,
                                  1.5, True, None, [], "20 G"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize("n, text", [
    (0, "0 B"), (1023, "1023 B"), (1024, "1 KiB"), (1229, "1.2 KiB"), (20 * 1024**3, "20 GiB"),
    (int(19.8 * 1024**3), "19.8 GiB"), (1024**2 - 1, "1 MiB"), (5 * 1024**4, "5 TiB"),
])
def test_format_size(n, text):
    assert format_size(n) == text
