"""`janitor report`: one self-contained HTML file (inline CSS and SVG, no script, nothing fetched).

`target_report` gathers what a target's page shows (pure: inventory, plan, history rows in);
`render` fills the Jinja2 templates in `report/templates/`. Jinja2 is a dependency of the package;
where it is missing anyway (a hand-made environment), `require_jinja2` says so in one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ghcr_janitor.core.digests import short
from ghcr_janitor.core.errors import JanitorError
from ghcr_janitor.core import words
from ghcr_janitor.core.humanize import human_size
from ghcr_janitor.core.models import Inventory, StoreTraits
from ghcr_janitor.core.timeparse import format_time, parse_time
from ghcr_janitor.core.money import Cost
from ghcr_janitor.plan.cost import stored_size
from ghcr_janitor.plan.model import TargetPlan
from ghcr_janitor.report import projection, storage, svg
from ghcr_janitor.report.budget import Budget, crossing, reasons
from ghcr_janitor.report.cost_view import a_month, saves, totals_line
from ghcr_janitor.report.history import FUTURE_SLACK, Row

MAX_PLAN_ROWS = 300
MAX_FAMILY_ROWS = 20
# A tag or cache key in the action table is cut to this many characters (the whole name in its
# tooltip): with the column's minimum width that keeps every tag cell within three lines.
MAX_LABEL = 96
INSTALL_HINT = "janitor report needs Jinja2, a dependency of ghcr-janitor missing from this Python: pip install 'Jinja2>=3.1'"
PART_COLOURS = {"reclaimable": "vermillion", "kept-only": "blue", "kept-shared": "sky", "other": "grey"}


@dataclass
class TargetReport:
    """Everything one target's section shows."""

    target: str
    backend: str
    plan: TargetPlan
    breakdown: storage.Breakdown
    families: list[storage.Family]
    sharing: tuple[list[str], list[list[int]]]
    kinds: list[tuple[str, str, int, int]]
    history: list[Row]
    trend: projection.Trend
    weekly: list[tuple[datetime, int, int | None]]
    limit: int | None
    charts: dict[str, svg.Chart] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    future_rows: int = 0
    traits: StoreTraits = field(default_factory=StoreTraits)    # the store's, as its inventory says
    cost: Cost | None = None             # a month at today's size, and what the plan saves (None: no price)
    stored: int = 0                      # the bytes budgets and costs are read from (plan/cost.stored_size)
    over: list[str] = field(default_factory=list)       # why it is over its budget today
    budget_sentence: str = ""            # when the trend crosses the budget

    @property
    def what(self) -> str:
        """Where the bytes are, in a sentence: "this repository", "the Actions cache", "this cache dir"."""
        return self.traits.place


def require_jinja2() -> None:
    """JanitorError with the install hint when the `report` extra is missing."""
    try:
        import jinja2  # noqa: F401
    except ImportError:
        raise JanitorError(INSTALL_HINT) from None


def _series(dated: list[tuple[datetime, Row]], name: str) -> list[tuple[datetime, int]]:
    return [(when, getattr(row, name)) for when, row in dated if getattr(row, name) is not None]


def target_report(inv: Inventory, plan: TargetPlan, rows: list[Row], now: datetime | None = None,
                  unreachable: int | None = None, budget: Budget | None = None) -> TargetReport:
    """One target's figures and charts; `rows`: its history, oldest first (rows dated after
    `now`, from a machine with a wrong clock, are left out and counted in `future_rows`)."""
    parsed = [(parse_time(r.time), r) for r in rows]        # each row's time parsed once
    future = 0
    if now is not None:
        kept = [(when, r) for when, r in parsed if when is None or when <= now + FUTURE_SLACK]
        future, parsed = len(parsed) - len(kept), kept
    rows = [r for _, r in parsed]
    dated = [(when, r) for when, r in parsed if when is not None]
    parts = storage.breakdown(inv, plan)
    if unreachable is not None:           # a local cache dir's blobs no tag reaches: beside the total
        parts.beside.append(storage.Part("unreachable", "blobs no tag reaches (`janitor gc` frees them)", unreachable))
    fams = storage.families(inv)
    traits = inv.traits
    limit = (plan.cache or {}).get("limit", inv.facts.get("limit"))      # a store's storage limit, if it has one
    limit = limit if isinstance(limit, int) and not isinstance(limit, bool) else None
    total = _series(dated, "bytes")
    report = TargetReport(inv.target, inv.backend, plan, parts, fams,
                          storage.sharing(fams) if traits.shares_blobs else ([], []),
                          storage.per_kind_and_state(inv) if traits.entries else [],
                          rows, projection.trend(total, limit), projection.weekly(total), limit,
                          errors=list(inv.errors) + list(plan.errors), future_rows=future, traits=traits,
                          cost=plan.cost if plan.cost is not None else inv.cost, stored=stored_size(inv))
    if budget:
        report.over = reasons(budget, report.cost, report.stored)
        report.budget_sentence = crossing(budget, report.cost, report.trend.latest, report.trend.per_week)
    report.charts["breakdown"] = svg.stacked([(p.label, p.bytes, PART_COLOURS[p.key]) for p in parts.parts])
    top = fams[:MAX_FAMILY_ROWS]
    report.charts["families"] = svg.bars([(f.name, f.bytes, f.only) for f in top])
    if report.kinds:
        report.charts["kinds"] = svg.bars([(f"{k} · {s}", b, None) for k, s, _, b in report.kinds], outer="orange")
    if len(total) >= 2:
        lines = [("bytes", "blue", total)]
        if traits.shares_blobs:
            lines.append(("unique bytes", "orange", _series(dated, "unique_bytes")))
        lines.append(("reclaimable", "vermillion", _series(dated, "reclaimable")))
        report.charts["history"] = svg.lines(lines, limit)
    return report


def summary_chart(reports: list[TargetReport]) -> svg.Chart:
    """Bytes per target, the reclaimable part darker."""
    return svg.bars([(r.target, r.breakdown.total, r.plan.reclaim_size) for r in reports], outer="sky", inner="vermillion")


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("ghcr_janitor.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["human"] = human_size
    env.filters["bytes"] = lambda n: f"{n:,}".replace(",", "\u202f")
    env.filters["member"] = lambda m: short(m) if m.startswith("sha256:") else m
    env.filters["sentence"] = lambda text: text[:1].upper() + text[1:]
    env.filters["clip"] = lambda text, n=48: svg.clip(text, n)
    env.filters["day"] = lambda t: t.strftime("%Y-%m-%d")
    env.filters["code_spans"] = _code_spans
    env.filters["breakable"] = _breakable
    env.globals["colour"] = svg.colour
    env.filters["count"] = lambda n, noun: words.count(n, noun)     # {{ n | count("action") }}
    env.filters["a_month"] = a_month                                # {{ r.cost | a_month }}: 12.34 USD, or -
    env.filters["saves"] = saves
    return env


def _code_spans(text: str) -> Any:
    """Escape, then show `x` (Markdown code, as plan notes write it) as <code>x</code>."""
    from markupsafe import Markup, escape

    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))


def _breakable(text: str) -> Any:
    """Escape, then allow a line break after each `/` and `:` (a long target breaks between its parts)."""
    from markupsafe import Markup, escape

    return Markup(re.sub(r"([/:])", r"\1<wbr>", str(escape(text))))


def render(reports: list[TargetReport], now: datetime, policy: str | None, failures: list[dict]) -> str:
    """The whole HTML document."""
    require_jinja2()
    growers = sorted((r for r in reports if r.trend.per_week is not None), key=lambda r: -(r.trend.per_week or 0))
    template = _environment().get_template("report.html.j2")
    return template.render(reports=reports, now=format_time(now), policy=policy, failures=failures,
                           money_total=totals_line([r.cost for r in reports]),
                           growers=growers, summary=summary_chart(reports) if len(reports) > 1 else None,
                           total=sum(r.breakdown.total for r in reports),
                           reclaimable=sum(r.plan.reclaim_size for r in reports),
                           max_plan_rows=MAX_PLAN_ROWS, max_label=MAX_LABEL, part_colours=PART_COLOURS,
                           version=_version())


def _version() -> str:
    from ghcr_janitor import __version__

    return __version__
