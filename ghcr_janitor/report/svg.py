"""Chart geometry for the HTML report: numbers in, rectangles, lines and ticks out.

The templates draw them as inline SVG (no script, no library at view time). Colours are the
Okabe-Ito palette, which stays distinguishable with the common colour-vision deficiencies;
every chart also has a table under it with the same numbers.
"""

from __future__ import annotations

import math

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Sequence

from ghcr_janitor.core.humanize import human_size

PALETTE = {"blue": "#0072B2", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
           "vermillion": "#D55E00", "purple": "#CC79A7", "yellow": "#F0E442", "grey": "#999999", "black": "#000000"}
SERIES = ("blue", "orange", "green", "vermillion", "purple", "sky", "yellow", "grey")
WIDTH = 900


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    colour: str
    title: str                  # the tooltip, and what a screen reader says
    label: str = ""


@dataclass
class Chart:
    width: int
    height: int
    rects: list[Rect] = field(default_factory=list)
    texts: list[tuple[float, float, str, str]] = field(default_factory=list)   # x, y, anchor, text
    lines: list[dict] = field(default_factory=list)        # points, colour, dash, title


def colour(name: str) -> str:
    return PALETTE[name]


def stacked(parts: Sequence[tuple[str, int, str]], width: int = WIDTH, height: int = 34) -> Chart:
    """One bar split into `parts` (label, bytes, colour name), widths by share of the sum."""
    chart = Chart(width, height)
    total = sum(max(v, 0) for _, v, _ in parts)
    x = 0.0
    for label, value, name in parts:
        w = width * value / total if total else 0
        if w > 0:
            chart.rects.append(Rect(round(x, 2), 0, round(max(w, 1), 2), height, colour(name),
                                    f"{label}: {human_size(value)} ({value} bytes)"))
        x += w
    return chart


def bars(items: Sequence[tuple[str, int, int | None]], width: int = WIDTH, label_width: int = 220,
         row: int = 22, outer: str = "sky", inner: str = "blue") -> Chart:
    """Horizontal bars, one per (label, bytes, inner bytes or None): the inner part drawn darker."""
    chart = Chart(width, max(row * len(items), row))
    top = max((v for _, v, _ in items), default=0)
    span = width - label_width - 90
    for i, (label, value, part) in enumerate(items):
        y = i * row + 3
        w = span * value / top if top else 0
        chart.texts.append((label_width - 6, y + row / 2 + 1, "end", clip(label)))
        chart.rects.append(Rect(label_width, y, round(max(w, 1), 2), row - 6, colour(outer),
                                f"{label}: {human_size(value)} ({value} bytes)"))
        if part:
            pw = span * part / top if top else 0
            chart.rects.append(Rect(label_width, y, round(max(pw, 1), 2), row - 6, colour(inner),
                                    f"{label}, only here: {human_size(part)} ({part} bytes)"))
        chart.texts.append((label_width + max(w, 1) + 6, y + row / 2 + 1, "start", human_size(value)))
    return chart


def clip(text: str, n: int = 32) -> str:
    """`text` cut to `n` characters, the cut marked with an ellipsis."""
    return text if len(text) <= n else text[: n - 1] + "…"


def _ticks(top: int, n: int = 4) -> list[int]:
    """Round byte ticks (1, 2 or 5 times a power of ten of a binary unit) from 0 to at least `top`."""
    if top <= 0:
        return [0]
    raw = top / n
    unit = 1024 ** min(int(math.log(max(raw, 1), 1024)), 5)
    step = next((m * unit for m in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1024) if m * unit >= raw), 1024 * unit)
    return [step * i for i in range(n + 2) if step * (i - 1) < top]


# Steps between time ticks, smallest first, each with the label format that tells its ticks apart.
_MINUTE, _HOUR, _DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
TIME_STEPS = ([(_MINUTE * m, "%H:%M") for m in (1, 2, 5, 10, 15, 30)]
              + [(_HOUR * h, "%H:%M") for h in (1, 2, 3, 6, 12)]
              + [(_DAY * d, "%Y-%m-%d") for d in (1, 2, 7, 14, 28, 91, 182, 364)])
MAX_TIME_TICKS = 5
_EPOCH = datetime(1970, 1, 5, tzinfo=timezone.utc)         # a Monday: week ticks fall on Mondays


def time_ticks(t0: datetime, t1: datetime, most: int = MAX_TIME_TICKS) -> list[tuple[datetime, str]]:
    """At most `most` ticks at round times within [t0, t1], labelled so that no two read the same:
    the smallest step that needs no more ticks than that (fewer ticks for a short span). Times of day
    carry the date when the span crosses midnight; a span too short for any round time gets one tick."""
    if t0.tzinfo is None or t1.tzinfo is None:      # times without a zone are UTC (as history rows are)
        utc = timezone.utc
        found = time_ticks(t0.replace(tzinfo=t0.tzinfo or utc), t1.replace(tzinfo=t1.tzinfo or utc), most)
        return [(t.astimezone(utc).replace(tzinfo=None), label) for t, label in found]
    if t1 <= t0:
        return [(t0, t0.strftime("%Y-%m-%d %H:%M"))]
    zone = t0.tzinfo

    def steps():
        yield from TIME_STEPS
        step, fmt = TIME_STEPS[-1]
        while True:                      # longer than years: keep doubling
            step *= 2
            yield step, fmt

    for step, fmt in steps():
        first = _EPOCH + -(-(t0 - _EPOCH) // step) * step              # the first multiple of step >= t0
        count = 0 if first > t1 else (t1 - first) // step + 1
        if count <= most:
            break
    ticks = [(first + step * k).astimezone(zone) for k in range(count)]
    if step < _DAY and t0.astimezone(zone).date() != t1.astimezone(zone).date():
        fmt = "%m-%d %H:%M"
    if not ticks:
        return [(t0, t0.strftime("%Y-%m-%d %H:%M"))]
    labels, out = set(), []
    for t in ticks:
        label = t.strftime(fmt)
        if label not in labels:                                       # distinct by construction; kept so
            labels.add(label)
            out.append((t, label))
    return out


def lines(series: Sequence[tuple[str, str, Sequence[tuple[datetime, int]]]], limit: int | None = None,
          width: int = WIDTH, height: int = 240) -> Chart:
    """A time chart of (label, colour name, points) series, with a dashed limit line when given."""
    chart = Chart(width, height)
    left, right, top, bottom = 92, 10, 10, 28
    points = [p for _, _, pts in series for p in pts]
    if not points:
        return chart
    t0 = min(t for t, _ in points)
    t1 = max(t for t, _ in points)
    span = (t1 - t0).total_seconds() or 1.0
    ymax = max([v for _, v in points] + ([limit] if limit else []))
    ticks = _ticks(ymax)
    ymax = max(ticks[-1], 1)
    plot_w, plot_h = width - left - right, height - top - bottom

    def xy(t: datetime, v: int) -> tuple[float, float]:
        return (round(left + plot_w * (t - t0).total_seconds() / span, 1), round(top + plot_h * (1 - v / ymax), 1))

    for tick in ticks:
        _, y = xy(t0, tick)
        chart.lines.append({"points": f"{left},{y} {width - right},{y}", "colour": "#dddddd", "dash": "", "title": ""})
        chart.texts.append((left - 6, y + 4, "end", human_size(tick)))
    for t, label in time_ticks(t0, t1):
        x, _ = xy(t, 0)
        anchor = "start" if x < left + 40 else "end" if x > width - right - 40 else "middle"
        chart.texts.append((x, height - 8, anchor, label))
    if limit:
        _, y = xy(t0, limit)
        chart.lines.append({"points": f"{left},{y} {width - right},{y}", "colour": colour("black"), "dash": "6 4",
                            "title": f"limit {human_size(limit)} ({limit} bytes)"})
    for label, name, pts in series:
        if pts:
            chart.lines.append({"points": " ".join("%s,%s" % xy(t, v) for t, v in pts), "colour": colour(name),
                                "dash": "", "title": label})
    return chart
