"""The plan: pinned actions, what was kept and why, per target (JSON version 1; `plan.file` reads and writes it,
and validates a dict into a Plan: `parse_plan`; this module imports nothing from `plan.file`)."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable

from ghcr_janitor.core.money import Cost
from ghcr_janitor.core.timeparse import format_time

PLAN_VERSION = 1
DELETE, UNTAG, RETAG = "delete", "untag", "retag"
ACTION_ORDER = {RETAG: 0, UNTAG: 1, DELETE: 2}


@dataclass
class Action:
    """One mutating step, pinned to the digest seen at planning time."""

    action: str  # "delete" | "untag" | "retag"
    tag: str | None
    digest: str | None               # None for an Actions-cache entry (pinned by cache_id)
    to: str | None = None
    reclaim_size: int = 0
    rule: str | None = None
    reason: str = ""
    kind: str | None = None
    size: int | None = None
    created: str | None = None
    age_source: str | None = None
    version_id: int | None = None
    # A child deleted with its image: what it follows (the first of `parents`, every deleted
    # artifact that uses it), and the part of the image's reclaim_size that is its own.
    parent: str | None = None
    parents: list[str] | None = None
    reclaim_share: int = 0
    broken: str | None = None
    # An Actions-cache entry: deleted by id only; key and ref pin what the id must still carry.
    cache_id: int | None = None
    key: str | None = None
    ref: str | None = None
    ref_state: str | None = None


@dataclass
class Kept:
    """A tag (or untagged digest, tag None) left alone, and why."""

    tag: str | None
    digest: str | None
    reason: str
    cache_id: int | None = None
    key: str | None = None


@dataclass
class TargetPlan:
    """The plan for one repository."""

    target: str
    backend: str = "oci"
    reclaim_size: int = 0
    actions: list[Action] = field(default_factory=list)
    kept: list[Kept] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # The Actions cache: usage and limit (bytes) when planned, and the usage the plan leaves.
    cache: dict[str, Any] | None = None
    # What reclaim_size means on this store (a sentence from the inventory; "" when not said).
    reclaim_note: str = ""
    # A `REPO:TAG` run: the plan is restricted to this tag (None: the whole repository).
    only_tag: str | None = None
    # What the target costs a month and what this plan saves a month (plan/cost.py); None: no known price.
    cost: Cost | None = None


@dataclass
class Plan:
    """A whole plan file: what to do on every target, and which policy decided it."""

    created: str
    policy: str | None
    targets: list[TargetPlan] = field(default_factory=list)
    plan_version: int = PLAN_VERSION
    # Unique per plan, so two plans made in the same second are still two plans (the apply
    # journal is keyed by the plan file's bytes).
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def reclaim_size(self) -> int:
        return sum(t.reclaim_size for t in self.targets)

    def to_dict(self, rows: Callable[[list], list] | None = None) -> dict[str, Any]:
        """The plan as JSON-ready data; `rows(items)` makes the actions and kept lists (default: a list
        of their dicts; `plan.file` passes lazy lists so a big plan is never held as dicts whole)."""
        rows = rows or (lambda items: [asdict(item) for item in items])
        return {
            "plan_version": self.plan_version,
            "id": self.id,
            "created": self.created,
            "policy": self.policy,
            "targets": [
                {
                    "target": t.target,
                    "only_tag": t.only_tag,
                    "backend": t.backend,
                    "reclaim_size": t.reclaim_size,
                    "reclaim_note": t.reclaim_note,
                    "actions": rows(t.actions),
                    "kept": rows(t.kept),
                    "notes": list(t.notes),
                    "errors": list(t.errors),
                    "warnings": list(t.warnings),
                    **({"cache": dict(t.cache)} if t.cache is not None else {}),
                    "cost": t.cost.to_dict() if t.cost is not None else None,
                }
                for t in self.targets
            ],
        }


def new_plan(policy: str | None, targets: Iterable[TargetPlan], now: datetime) -> Plan:
    """A Plan stamped with `now` (RFC 3339 UTC)."""
    return Plan(created=format_time(now) or "", policy=policy, targets=list(targets))
