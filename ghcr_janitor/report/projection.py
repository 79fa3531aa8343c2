"""Growth per week and a projection to a limit, from a target's history of byte counts.

A trend needs history: at least `MIN_RUNS` runs spanning at least `MIN_SPAN` (3 runs over 3 days)
in the stretch it is read from; below that every verdict (growing, flat, shrinking, a projection)
is "not enough history yet (N runs over H hours)". Two runs a minute apart say nothing about a week.

The stretch is the trailing *segment*: the points since the last cleanup (a drop of more than
`CLEANUP_DROP` of the previous value), limited to the last `WINDOW` when that still leaves enough
history. Right after a cleanup (too little since) the segment before it stands in, when it has
enough: that is how fast the cache grew back last time.

The rate is robust, not least squares: the series is thinned to runs at least `MIN_STEP` apart
(the newest run kept), and the rate is the **median of the slopes between consecutive thinned
runs**. A restore from backup, a one-off push of a huge cache or a cleanup missed by the segment
cut is one step among many and moves the median little, where a least-squares line through two
runs seconds apart across a restore made "365.9 GiB a week". A rate within `FLAT_SHARE` of the
latest value per week is flat.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median
from typing import Sequence

from ghcr_janitor.core.humanize import human_size

MIN_RUNS = 3                       # a trend needs at least this many runs ...
MIN_SPAN = timedelta(days=3)       # ... spread over at least this long
MIN_STEP = timedelta(hours=12)     # slopes are taken between runs at least this far apart
CLEANUP_DROP = 0.05
WINDOW = timedelta(days=28)
FLAT_SHARE = 0.002
WEEK = 7 * 86400.0

UNKNOWN, FLAT, GROWING, SHRINKING, OVER = "unknown", "flat", "growing", "shrinking", "over-limit"


def not_enough(runs: int, span: timedelta, since_cleanup: bool = False) -> str:
    """"not enough history yet (2 runs over 1 minute; ...)", with what a trend needs."""
    counted = "no run recorded" if runs == 0 else f"{runs} run" if runs == 1 else f"{runs} runs over {_span(span)}"
    return (f"not enough history yet ({counted}{' since the last cleanup' if since_cleanup else ''}; "
            f"a trend needs {MIN_RUNS} runs over {MIN_SPAN.days} days)")


def _span(span: timedelta) -> str:
    seconds = max(span.total_seconds(), 0.0)
    if seconds < 3600:
        minutes = round(seconds / 60)
        return "1 minute" if minutes == 1 else f"{minutes} minutes"
    hours = seconds / 3600
    return f"{hours:.1f} hours" if hours < 10 else f"{round(hours)} hours"


@dataclass(frozen=True)
class Trend:
    """What the history says: the latest value, bytes per week, and when a limit is reached."""

    status: str
    latest: int | None = None
    per_week: float | None = None
    points: int = 0                      # points the rate was fitted to
    since: datetime | None = None        # the first of them
    before_cleanup: bool = False         # the rate is the one before the last cleanup
    limit: int | None = None
    days_to_limit: float | None = None
    runs: int = 0                        # runs in the history the verdict was read from
    span: timedelta = timedelta(0)       # from the first of them to the last
    after_cleanup: bool = False          # ... which are the runs since the last cleanup

    @property
    def enough(self) -> bool:
        """Whether there is a rate at all (MIN_RUNS over MIN_SPAN)."""
        return self.per_week is not None

    def sentence(self, what: str = "it") -> str:
        """One line for people: 'at this rate the Actions cache reaches its 10.0 GiB limit in about 12 days'."""
        if self.status == OVER:
            return f"{what} is already over its {human_size(self.limit or 0)} limit"
        if self.status == UNKNOWN or self.per_week is None:
            return not_enough(self.runs, self.span, self.after_cleanup)
        rate = human_size(round(abs(self.per_week or 0)))
        basis = " (the rate before the last cleanup)" if self.before_cleanup else ""
        if self.status == FLAT:
            return f"{what} is flat (changes less than {FLAT_SHARE:.1%} a week){basis}"
        if self.status == SHRINKING:
            return f"{what} shrinks by {rate} a week{basis}"
        if self.limit is not None and self.days_to_limit is not None:
            return (f"{what} grows {rate} a week{basis}: at this rate it reaches its "
                    f"{human_size(self.limit)} limit in about {_days(self.days_to_limit)}")
        ahead = round((self.latest or 0) + (self.per_week or 0) * 90 / 7)
        return f"{what} grows {rate} a week{basis}: at this rate {human_size(ahead)} in 90 days"


def _days(days: float) -> str:
    if days < 1:
        return "less than a day"
    whole = round(days)
    return "1 day" if whole == 1 else f"{whole} days"


def _thin(points: Sequence[tuple[datetime, int]]) -> list[tuple[datetime, int]]:
    """The newest run, then walking back every run at least MIN_STEP before the last one kept."""
    kept = [points[-1]]
    for point in reversed(points[:-1]):
        if kept[-1][0] - point[0] >= MIN_STEP:
            kept.append(point)
    return kept[::-1]


def _slope(points: Sequence[tuple[datetime, int]]) -> float:
    """Bytes per second: the median slope between consecutive runs at least MIN_STEP apart."""
    thin = _thin(points)
    slopes = [(b[1] - a[1]) / (b[0] - a[0]).total_seconds() for a, b in zip(thin, thin[1:])]
    return median(slopes) if slopes else 0.0


def _enough(points: Sequence[tuple[datetime, int]]) -> bool:
    return len(points) >= MIN_RUNS and points[-1][0] - points[0][0] >= MIN_SPAN


def segments(points: Sequence[tuple[datetime, int]]) -> list[list[tuple[datetime, int]]]:
    """The series cut at every cleanup (a drop of more than CLEANUP_DROP)."""
    cut: list[list[tuple[datetime, int]]] = []
    for point in points:
        if cut and cut[-1] and point[1] < cut[-1][-1][1] * (1 - CLEANUP_DROP):
            cut.append([])
        if not cut:
            cut.append([])
        cut[-1].append(point)
    return cut


def _fit(segment: list[tuple[datetime, int]]) -> list[tuple[datetime, int]]:
    """The segment's last WINDOW when that is enough history, else the whole segment."""
    recent = [p for p in segment if p[0] >= segment[-1][0] - WINDOW]
    return recent if _enough(recent) else segment


def trend(points: Sequence[tuple[datetime, int | None]], limit: int | None = None) -> Trend:
    """The trend of a series of (time, bytes) points (None values and repeated times dropped)."""
    clean: dict[datetime, int] = {}
    for when, value in sorted((p for p in points if p[1] is not None), key=lambda p: p[0]):
        clean[when] = int(value)        # the last value recorded at a time wins
    series = sorted(clean.items())
    if not series:
        return Trend(UNKNOWN, limit=limit)
    latest = series[-1][1]
    parts = segments(series)
    fit, before = _fit(parts[-1]), False
    if not _enough(fit) and len(parts) >= 2 and _enough(_fit(parts[-2])):
        fit, before = _fit(parts[-2]), True
    # What "not enough history" counts: the stretch a rate would be read from (since the last cleanup).
    runs, span = len(parts[-1]), parts[-1][-1][0] - parts[-1][0][0]
    if not _enough(fit):
        if limit is not None and latest >= limit:
            return Trend(OVER, latest, limit=limit, days_to_limit=0.0, runs=runs, span=span)
        return Trend(UNKNOWN, latest, limit=limit, runs=runs, span=span, after_cleanup=len(parts) > 1)
    per_week = _slope(fit) * WEEK
    runs, span = len(fit), fit[-1][0] - fit[0][0]
    common = dict(latest=latest, per_week=per_week, points=len(fit), since=fit[0][0], before_cleanup=before,
                  limit=limit, runs=runs, span=span)
    if limit is not None and latest >= limit:
        return Trend(OVER, days_to_limit=0.0, **common)
    if abs(per_week) < FLAT_SHARE * max(latest, 1):
        return Trend(FLAT, **common)
    if per_week < 0:
        return Trend(SHRINKING, **common)
    days = (limit - latest) / per_week * 7 if limit is not None else None
    return Trend(GROWING, days_to_limit=days, **common)


def weekly(points: Sequence[tuple[datetime, int | None]], weeks: int = 12) -> list[tuple[datetime, int, int | None]]:
    """The last value of each of the last `weeks` weeks that have one: (week end, bytes, change)."""
    series = sorted((t, int(v)) for t, v in points if v is not None)
    if not series:
        return []
    end = series[-1][0]
    rows: list[tuple[datetime, int, int | None]] = []
    for k in range(weeks - 1, -1, -1):
        stop = end - timedelta(days=7 * k)
        inside = [p for p in series if stop - timedelta(days=7) < p[0] <= stop]
        if inside:
            rows.append((stop, inside[-1][1], None))
    return [(t, v, (v - rows[i - 1][1]) if i else None) for i, (t, v, _) in enumerate(rows)]
