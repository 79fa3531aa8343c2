"""What a target costs a month at today's size, and what its plan saves a month.

Store-neutral: the price comes with the inventory (`Inventory.price`, which each store class names);
the bytes are the store's own usage figure where it reports one (`facts["usage"]`, at most its
`facts["limit"]`, beyond which the store evicts), else every blob and manifest the janitor sees, once.
Artifacts marked `extra["archived"]` are billed at the archive price where the price has one; an
archived artifact the plan deletes within its minimum billed days (`extra["archived_at"]`) saves
nothing until that minimum is over. What the plan saves is the billed bytes it frees x the price,
rounded once: for a store without an included amount, exactly `reclaim_size` x the price.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ghcr_janitor.core.models import Inventory
from ghcr_janitor.core.money import Cost, amount, billed
from ghcr_janitor.core.timeparse import parse_time
from ghcr_janitor.plan.model import DELETE, TargetPlan


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def stored_size(inv: Inventory) -> int:
    """The bytes the store holds for this target: its usage figure where it has one, else every
    blob and manifest the janitor sees, each once."""
    usage = _int(inv.facts.get("usage"))
    return usage if usage is not None else inv.total_size()


def _blobs(inv: Inventory, digests) -> dict[str, int]:
    out: dict[str, int] = {}
    for digest in digests:
        out.update(inv.artifacts[digest].closure)
    return out


def _archived_at(value: object) -> datetime | None:
    return value if isinstance(value, datetime) else parse_time(value) if isinstance(value, str) else None


def cost_of(inv: Inventory, now: datetime, plan: TargetPlan | None = None) -> Cost | None:
    """The target's cost (and, with its plan, what the plan saves); None without a known price."""
    price = inv.price
    if price is None:
        return None
    stored, limit = stored_size(inv), _int(inv.facts.get("limit"))
    archive_price = price.archive_per_gib_month
    archived = {d for d, a in inv.artifacts.items() if a.extra.get("archived")} if archive_price is not None else set()
    held_active = _blobs(inv, set(inv.artifacts) - archived)
    archive_only = {b: s for b, s in _blobs(inv, archived).items() if b not in held_active}
    archive_size = sum(archive_only.values())
    standard = max(0, stored - archive_size)
    billed_now = billed(standard, price, limit)
    per_month = amount((billed_now, price.per_gib_month), (archive_size, archive_price))
    if plan is None:
        return Cost(price, stored, billed_now + archive_size, per_month)
    deleted = {a.digest for a in plan.actions if a.action == DELETE and a.digest in inv.artifacts}
    kept = _blobs(inv, set(inv.artifacts) - deleted)
    freed_archive = {b: s for b, s in archive_only.items() if b not in kept
                     and any(b in inv.artifacts[d].closure for d in deleted & archived)}
    minimum = timedelta(days=price.archive_minimum_days)
    young = {d for d in deleted & archived
             if (when := _archived_at(inv.artifacts[d].extra.get("archived_at"))) is not None and now - when < minimum}
    minimum_size = sum(s for b, s in freed_archive.items() if any(b in inv.artifacts[d].closure for d in young))
    freed_standard = max(0, plan.reclaim_size - sum(freed_archive.values()))
    saved_standard = billed_now - billed(max(0, standard - freed_standard), price, limit)
    saved_archive = sum(freed_archive.values()) - minimum_size
    saves = amount((saved_standard, price.per_gib_month), (saved_archive, archive_price))
    return Cost(price, stored, billed_now + archive_size, per_month, saves, saved_standard + saved_archive,
                minimum_size)
