"""Growth per week and a projection to a limit, from a target's history of byte counts.

The rate is a least-squares slope over the trailing *segment*: the points since the last cleanup
(a drop of more than `CLEANUP_DROP` of the previous value), limited to the last `WINDOW` when
that still leaves two points. Right after a cleanup (one point since) the rate of the segment
before it stands in: that is how fast the cache grew back last time. A rate within `FLAT_SHARE`
of the latest value per week is flat.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Sequence

from ghcr_janitor.core.humanize import human_size

CLEANUP_DROP = 0.05
WINDOW = timedelta(days=28)
FLAT_SHARE = 0.002
WEEK = 7 * 86400.0

UNKNOWN, FLAT, GROWING, SHRINKING, OVER = "unknown", "flat", "growing", "shrinking", "over-limit"


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

    def sentence(self, what: str = "it") -> str:
        """One line for people: 'at this rate the Actions cache reaches its 10.0 GiB limit in about 12 days'."""
        if self.status == UNKNOWN:
            return f"not enough history to tell how fast {what} grows (two runs at least)"
        rate = human_size(round(abs(self.per_week or 0)))
        basis = " (the rate before the last cleanup)" if self.before_cleanup else ""
        if self.status == OVER:
            return f"{what} is already over its {human_size(self.limit or 0)} limit"
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


def _slope(points: Sequence[tuple[datetime, int]]) -> float:
    """Least-squares bytes per second."""
    t0 = points[0][0]
    xs = [(t - t0).total_seconds() for t, _ in points]
    ys = [float(v) for _, v in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var


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
    recent = [p for p in segment if p[0] >= segment[-1][0] - WINDOW]
    return recent if len(recent) >= 2 else segment[-2:]


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
    before = False
    fit = _fit(parts[-1]) if len(parts[-1]) >= 2 else []
    if not fit and len(parts) >= 2 and len(parts[-2]) >= 2:
        fit, before = _fit(parts[-2]), True
    if limit is not None and latest >= limit:
        return Trend(OVER, latest, _slope(fit) * WEEK if fit else None, len(fit), fit[0][0] if fit else None,
                     before, limit, 0.0)
    if not fit:
        return Trend(UNKNOWN, latest, limit=limit)
    per_week = _slope(fit) * WEEK
    common = dict(latest=latest, per_week=per_week, points=len(fit), since=fit[0][0], before_cleanup=before, limit=limit)
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
