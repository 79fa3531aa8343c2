"""From targets to a Plan: inventory each target, evaluate the policy, apply safety rules."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from ghcr_janitor.models import Inventory
from ghcr_janitor.plan import DELETE, Kept, Plan, TargetPlan, build_target_plan, new_plan
from ghcr_janitor.policy import Policy, evaluate, load_default_policy, load_policy
from ghcr_janitor.session import Session

# Backends whose delete frees storage by itself (GHCR); registries need their own GC and
# layouts need `janitor gc` (prune runs it).
FREES_STORAGE = {"ghcr": True, "oci": False, "layout": False}
LAYOUT_NOTE = ("a local cache dir frees the blobs of deleted tags at `janitor gc` "
               "(`janitor prune` runs it after deleting unless --no-gc)")


def load(policy_path: Path | None) -> tuple[Policy, str]:
    """The policy from --policy, or the packaged default; and its name for the plan file."""
    if policy_path is None:
        return load_default_policy(), "default"
    return load_policy(policy_path), str(policy_path)


def plan_inventory(inventory: Inventory, policy: Policy, now: datetime) -> TargetPlan:
    """Evaluate, then build the safe plan. Unresolved tags block every delete by digest."""
    decisions = evaluate(inventory, policy, now)
    target_plan = build_target_plan(inventory, decisions, FREES_STORAGE.get(inventory.backend, False))
    if inventory.backend == "layout":
        target_plan.notes = [LAYOUT_NOTE]
    if inventory.unresolved:
        blocked = [a for a in target_plan.actions if a.action == DELETE]
        target_plan.actions = [a for a in target_plan.actions if a.action != DELETE]
        why = f"not deleted: the digest of tag(s) {', '.join(inventory.unresolved[:5])} could not be learned"
        target_plan.kept += [Kept(a.tag, a.digest, why) for a in blocked]
        target_plan.reclaim_size = sum(a.reclaim_size for a in target_plan.actions)
        if not any("could not be learned" in e for e in target_plan.errors):
            target_plan.errors.append(why)
    return target_plan


async def make_plan(session: Session, targets: list[str], policy: Policy, policy_name: str) -> Plan:
    """Inventory every target (a failing one gets an error entry and no actions)."""
    now = session.inventory.now
    results = await session.inventories(targets)
    plans = []
    for result in results:
        if result.inventory is None:
            plans.append(TargetPlan(target=result.target.repository, backend=result.target.kind,
                                    errors=[result.error or "unknown error"]))
        else:
            plans.append(plan_inventory(result.inventory, policy, now))
    return new_plan(policy_name, plans, now)
