"""Budgets: a cost a month and a size per target that the user sets (`--budget-cost`, `--budget-size`
on `report` and `plan`), which targets are over one today, and when the history says one will be.

A target is over its budget when, at today's size, what it costs a month (core/money.py, the
target's own currency) or what it stores exceeds the budget. A cost budget is not checked on a target
without a known price, nor on one priced in another currency than the budget names: a warning says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, InvalidOperation

from ghcr_janitor.core.errors import UsageError
from ghcr_janitor.core.humanize import human_size
from ghcr_janitor.core.money import GIB, Cost, money

_AMOUNT = re.compile(r"^\s*(\d{1,12}(?:\.\d{1,6})?)\s*([A-Za-z]{3})?\s*$")


@dataclass(frozen=True)
class Budget:
    """A cost a month (in `currency`, or each target's own when None) and a size, each optional."""

    cost: Decimal | None = None
    currency: str | None = None
    size: int | None = None

    def __bool__(self) -> bool:
        return self.cost is not None or self.size is not None

    def cost_text(self, currency: str) -> str:
        return f"{money(self.cost or Decimal(0), self.currency or currency)} a month"


def parse_budget(cost: str | None, size: str | None) -> Budget:
    """The flags' budget; a malformed one is a usage error (exit 2) naming the flag."""
    from ghcr_janitor.policy.units import parse_size

    amount = currency = None
    if cost is not None:
        match = _AMOUNT.match(cost)
        try:
            amount = Decimal(match.group(1)) if match else None
        except InvalidOperation:      # pragma: no cover - the pattern admits digits only
            amount = None
        if amount is None:
            raise UsageError(f"--budget-cost {cost[:40]!r}: expected an amount a month, e.g. 50 or 50USD")
        currency = match.group(2).upper() if match and match.group(2) else None
    size_bytes = None
    if size is not None:
        try:
            size_bytes = parse_size(size)
        except ValueError as exc:
            raise UsageError(f"--budget-size: {exc}") from None
    return Budget(amount, currency, size_bytes)


def _checked(budget: Budget, cost: Cost | None) -> bool:
    return (budget.cost is not None and cost is not None
            and (budget.currency is None or budget.currency == cost.price.currency))


def reasons(budget: Budget, cost: Cost | None, stored: int) -> list[str]:
    """Why one target is over its budget today (empty: it is not)."""
    out = []
    if _checked(budget, cost) and cost.per_month > budget.cost:             # type: ignore[operator,union-attr]
        out.append(f"costs {money(cost.per_month, cost.price.currency)} a month at today's size "   # type: ignore[union-attr]
                   f"(prices of {cost.price.price_date}), over its {budget.cost_text(cost.price.currency)} budget")  # type: ignore[union-attr]
    if budget.size is not None and stored > budget.size:
        out.append(f"stores {human_size(stored)} ({stored} bytes), over its {human_size(budget.size)} budget")
    return out


def unchecked(budget: Budget, target: str, cost: Cost | None) -> str | None:
    """A warning where a cost budget cannot be checked on this target, else None."""
    if budget.cost is None or _checked(budget, cost):
        return None
    if cost is None:
        return f"{target}: no known price for this store: its cost budget is not checked (bytes only)"
    return f"{target}: priced in {cost.price.currency}, not {budget.currency}: its cost budget is not checked"


def cost_threshold(budget: Budget, cost: Cost | None) -> int | None:
    """The stored bytes at which the target would cost more than its budget (None: not checked, or
    free at its price). The archive price and a store's limit are left out of this projection."""
    if not _checked(budget, cost) or cost.price.per_gib_month <= 0:       # type: ignore[union-attr]
        return None
    price = cost.price                                                    # type: ignore[union-attr]
    over = (budget.cost * GIB / price.per_gib_month).to_integral_value(ROUND_CEILING)   # type: ignore[operator]
    return price.included + int(over)


def crossing(budget: Budget, cost: Cost | None, latest: int | None, per_week: float | None) -> str:
    """When the trend crosses each budget: 'at this rate it crosses its 50.00 USD a month budget in
    about 12 days'; '' without a budget or a trend (the outlook says why there is none)."""
    thresholds = []
    if budget.size is not None:
        thresholds.append((budget.size, f"{human_size(budget.size)} budget"))
    limit = cost_threshold(budget, cost)
    if limit is not None:
        thresholds.append((limit, f"{budget.cost_text(cost.price.currency)} budget"))    # type: ignore[union-attr]
    out = []
    for threshold, what in thresholds:
        if latest is not None and latest > threshold:
            out.append(f"already over its {what}")
        elif latest is None or per_week is None:
            continue
        elif per_week > 0:
            days = (threshold - latest) / per_week * 7
            out.append(f"at this rate it crosses its {what} in about {max(1, round(days))} "
                       f"{'day' if max(1, round(days)) == 1 else 'days'}")
        else:
            out.append(f"not growing: it stays under its {what}")
    return "; ".join(out)
