"""Money in the outputs: what a target costs a month and what its plan saves, always with the
currency and the price date; a target without a known price shows nothing but its bytes."""

from __future__ import annotations

from decimal import Decimal

from ghcr_janitor.core.humanize import human_size
from ghcr_janitor.core.money import Cost, money

NONE = "-"


def cost_dict(cost: Cost | None) -> dict | None:
    """The JSON `cost` object, or None (JSON null) where no price is known."""
    return cost.to_dict() if cost is not None else None


def a_month(cost: Cost | None) -> str:
    """'12.34 USD' (a month), or '-'."""
    return money(cost.per_month, cost.price.currency) if cost is not None else NONE


def saves(cost: Cost | None) -> str:
    """'3.21 USD' (a month the plan saves), or '-'."""
    if cost is None or cost.saves_per_month is None:
        return NONE
    return money(cost.saves_per_month, cost.price.currency)


def cost_line(cost: Cost | None) -> str:
    """'cost: 12.34 USD a month at today's size (billed 176 GiB; 0.07 USD per GiB-month beyond 10 GiB
    (prices of 2026-12-07)); the plan saves 3.21 USD a month'; '' without a known price."""
    if cost is None:
        return ""
    price = cost.price
    line = (f"cost: {a_month(cost)} a month at today's size (billed {human_size(cost.billed_size)}; "
            f"{price.describe()})")
    if cost.saves_per_month is not None:
        line += f"; the plan saves {saves(cost)} a month"
        if cost.minimum_size:
            line += (f" (and {human_size(cost.minimum_size)} of archived images once their "
                     f"{price.archive_minimum_days}-day minimum is over)")
    return line


def totals_line(costs: list[Cost | None]) -> str:
    """'12.34 USD a month, the plans save 3.21 USD a month (2 priced targets)' over targets of one
    currency; '' when none is priced or currencies differ."""
    known = [c for c in costs if c is not None]
    if not known or len({c.price.currency for c in known}) != 1:
        return ""
    currency = known[0].price.currency
    total = sum((c.per_month for c in known), Decimal(0))
    line = f"{money(total, currency)} a month"
    saved = [c.saves_per_month for c in known if c.saves_per_month is not None]
    if saved:
        line += f", the plan saves {money(sum(saved, Decimal(0)), currency)} a month"
    dates = sorted({c.price.price_date for c in known})
    return line + f" ({len(known)} priced of {len(costs)}; prices of {', '.join(dates)})"
