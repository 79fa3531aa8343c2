"""From finished inventories to a Plan: evaluate the policy, apply the safety rules (pure: the
engine gathers the inventories; nothing here contacts a store)."""

from __future__ import annotations

from datetime import datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Callable

from ghcr_janitor.core.models import Inventory, cache_item_id
from ghcr_janitor.core.words import count, noun
from ghcr_janitor.plan.model import DELETE, Action, Kept, Plan, TargetPlan, new_plan
from ghcr_janitor.plan import only_tag as restrict
from ghcr_janitor.plan.build import build_target_plan
from ghcr_janitor.policy import Decision, Policy, evaluate, load_default_policy, load_policy
from ghcr_janitor.policy.evaluate import pull_time_warnings, tag_selected
from ghcr_janitor.plan.referrers import orphaned_referrer_tags, referrer_tags, subject_of_tag

CACHE_BLOB_NOTE = ("buildkit-blob entries of a live ref are never deleted: the REST API cannot see which index "
                   "generation still uses them; they go with their ref once it is closed or deleted")


PLACEHOLDER_RULE = "interrupted untag"
LOCK_RULE = "locked by the registry"


def keep_locked(inventory: Inventory, decisions: list[Decision]) -> list[Decision]:
    """What the registry locks is kept, whatever a rule said: a tag its store lists as locked
    (`Artifact.extra["locked_tags"]`: tag -> the lock, e.g. ACR `deleteEnabled = false`, GitLab's
    protected tags) and a locked artifact (`extra["locked"]`), each with the lock as its reason."""
    out = []
    for d in decisions:
        art = inventory.artifacts.get(d.digest)
        extra = art.extra if art is not None else {}
        lock = (extra.get("locked_tags") or {}).get(d.tag) if d.tag is not None else None
        lock = lock or extra.get("locked")
        if lock and d.action != "keep":
            d = Decision(d.tag, d.digest, "keep", f"locked: {lock}", LOCK_RULE)
        out.append(d)
    return out


def load(policy_path: Path | None) -> tuple[Policy, str]:
    """The policy from --policy, or the packaged default; and its name for the plan file."""
    if policy_path is None:
        return load_default_policy(), "default"
    return load_policy(policy_path), str(policy_path)


def _protected(tag: str, policy: Policy) -> str | None:
    return next((p for p in policy.protect if fnmatchcase(tag, p)), None)


def _referrer_decisions(inventory: Inventory, policy: Policy, decisions: list[Decision],
                        deleted: set[str]) -> list[Decision]:
    """Cosign-style `sha256-<subject>[.sig|.att|.sbom]` tags follow their subject.

    Only listed tags are decided, and protect patterns still win. A listed referrer tag is kept
    with a kept subject (whatever a rule said) and deleted with a deleted subject, or when the
    subject is gone from a backend that lists every manifest (orphaned) and nothing in the
    repository failed to load (else "gone" cannot be known).
    """
    complete = not any(a.error for a in inventory.artifacts.values())
    orphaned = {t for tags in orphaned_referrer_tags(inventory).values() for t in tags} if complete else set()
    listed = set(inventory.listed)
    by_tag = {d.tag: d for d in decisions if d.tag is not None}
    adjusted = [d for d in decisions if d.tag is None or subject_of_tag(d.tag) is None or d.tag not in listed]
    for subject, tags in referrer_tags(inventory).items():
        for tag in tags:
            if tag not in listed:
                continue
            digest = inventory.tags[tag]
            pattern = _protected(tag, policy)
            if pattern is not None:
                adjusted.append(Decision(tag, digest, "keep", f"protected by {pattern!r}"))
            elif tag in orphaned:
                adjusted.append(Decision(tag, digest, "delete", f"orphaned: its subject {subject} is gone",
                                         "referrer tags"))
            elif subject in deleted:
                adjusted.append(Decision(tag, digest, "delete", f"belongs to {subject}, which is deleted",
                                         "referrer tags"))
            elif tag in by_tag and by_tag[tag].action != "keep":
                adjusted.append(Decision(tag, digest, "keep", f"belongs to kept subject {subject}", "referrer tags"))
            elif tag in by_tag:
                adjusted.append(by_tag[tag])
    return adjusted


def _block_deletes(target_plan: TargetPlan, why: str, which: Callable[[Action], bool] = lambda a: True,
                   untags: bool = False) -> None:
    """Partial knowledge: keep every digest delete `which` selects (untags and retags are safe,
    unless `untags`: the store can change nothing, so every action is kept)."""
    def blocks(a: Action) -> bool:
        return (untags or a.action == DELETE) and which(a)

    blocked = [a for a in target_plan.actions if blocks(a)]
    target_plan.actions = [a for a in target_plan.actions if not blocks(a)]
    target_plan.kept += [Kept(a.tag, a.digest, why) for a in blocked]
    target_plan.reclaim_size = sum(a.reclaim_size for a in target_plan.actions)
    if blocked and why not in target_plan.errors:
        target_plan.errors.append(why)


def filtered_out_warnings(inventory: Inventory, policy: Policy) -> list[str]:
    """Rules whose tag selectors match tags the listing filter (--tag) leaves out.

    The listing filter decides which tags are considered at all; a policy never widens it
    (a policy written for one repository must not reach tags the run was not pointed at). So
    such a rule silently selects less than its author meant: say so, with the count.
    """
    if inventory.tag_filter is None:
        return []
    listed = set(inventory.listed)
    hidden_tags = sorted(t for t in inventory.tags if t not in listed)
    shown = " ".join(f"--tag {g}" for g in inventory.tag_filter)
    lines = []
    for rule in policy.rules:
        if not rule.selector.by_tag:
            continue
        hidden = [t for t in hidden_tags if tag_selected(rule, t)
                  and (not rule.selector.broken or inventory.artifacts[inventory.tags[t]].broken)]
        if hidden:
            example = ", ".join(hidden[:3]) + (", ..." if len(hidden) > 3 else "")
            lines.append(f"rule {rule.name!r} matches {count(len(hidden), 'tag')} here that the listing filter ({shown}) "
                         f"leaves out ({example}): they are not considered; add --tag GLOB for them or --all-tags")
    return lines


def _cache_facts(target_plan: TargetPlan, inventory: Inventory) -> None:
    """The Actions cache: usage against the limit, before and after the plan."""
    from ghcr_janitor.core.humanize import human_size

    facts = inventory.facts
    listed = inventory.total_size()
    usage = facts.get("usage")
    usage = usage if isinstance(usage, int) else listed
    limit = facts.get("limit")
    after = max(0, usage - target_plan.reclaim_size)
    target_plan.cache = {"usage": usage, "limit": limit, "limit_source": facts.get("limit_source"),
                         "entries_size": listed, "usage_after": after,
                         "fits_after": after <= limit if isinstance(limit, int) else None}
    target_plan.notes = [CACHE_BLOB_NOTE]
    floored = [k for k in target_plan.kept if k.reason.startswith("kept: ")]
    if floored:
        size = sum(inventory.artifacts[cache_item_id(k.cache_id)].size for k in floored if k.cache_id is not None)
        verb = "is" if len(floored) == 1 else "are"
        target_plan.notes.append(f"{count(len(floored), 'entry', 'entries')} ({human_size(size)}) that the policy "
                                 f"would delete {verb} kept by the safety floor; a budget that counts them cannot be "
                                 "reached by deleting")
    if isinstance(limit, int):
        verdict = "fits" if after <= limit else "is still over"
        target_plan.notes.append(f"usage {human_size(usage)} of limit {human_size(limit)} (source: {facts.get('limit_source')}); "
                                 f"after the plan {human_size(after)}: {verdict} the limit")


def finish_interrupted_untags(inventory: Inventory, decisions: list[Decision]) -> list[Decision]:
    """The janitor's own placeholders (left by an untag that was interrupted after pushing one)
    are deleted whatever the policy says: that finishes the untag. Recognised by content
    (`labels["placeholder_for"]`, set by `core.manifests.placeholder_owner`), never by age, and only
    while no other tag uses it."""
    out = []
    for d in decisions:
        art = inventory.artifacts.get(d.digest)
        owner = art.labels.get("placeholder_for") if art is not None and not art.error else None
        if owner is not None and d.tag in (None, owner) and set(art.tags) <= {owner}:
            why = (f"the janitor's placeholder for {owner!r}, left by an interrupted untag: deleting it "
                   "finishes the untag")
            out.append(Decision(d.tag, d.digest, "delete", why, PLACEHOLDER_RULE))
        else:
            out.append(d)
    return out


def plan_inventory(inventory: Inventory, policy: Policy, now: datetime, only_tag: str | None = None) -> TargetPlan:
    """Evaluate, then build the safe plan.

    Unresolved tags, or an artifact that could not be inspected, block every delete by digest
    in the repository: the digest might be that tag's, or a child of that artifact.
    `only_tag` (a `REPO:TAG` target) restricts the plan to that tag (`plan/only_tag.py`).
    """
    if only_tag is not None:
        inventory = restrict.for_policy(inventory, only_tag)
    decisions = keep_locked(inventory, finish_interrupted_untags(inventory, evaluate(inventory, policy, now)))
    target_plan = build_target_plan(inventory, restrict.only(decisions, only_tag))
    if referrer_tags(inventory):
        deleted = {a.digest for a in target_plan.actions if a.action == DELETE}
        adjusted = keep_locked(inventory, _referrer_decisions(inventory, policy, restrict.only(decisions, only_tag), deleted))
        target_plan = build_target_plan(inventory, restrict.only(adjusted, only_tag))
    if inventory.traits.entries:            # cache entries against the cache's limit
        _cache_facts(target_plan, inventory)
    target_plan.warnings += pull_time_warnings(inventory, policy)      # not_pulled_for where no pull is recorded
    if only_tag is None:        # a restricted run considers its one tag, whatever the filter
        target_plan.warnings += filtered_out_warnings(inventory, policy)
    elif (missing := restrict.missing_tag(inventory, only_tag)) is not None:
        target_plan.errors.append(missing)
    if inventory.unresolved:
        unresolved = inventory.unresolved
        _block_deletes(target_plan, f"not deleted: the digest of {noun(len(unresolved), 'tag')} "
                                    f"{', '.join(unresolved[:5])} could not be learned")
    if inventory.facts.get("deletes_refused"):     # the store cannot delete here: nothing destructive
        _block_deletes(target_plan, f"not changed: {inventory.facts['deletes_refused']}", lambda a: True, untags=True)
    if inventory.facts.get("listing_problem"):
        _block_deletes(target_plan, f"not deleted: {inventory.facts['listing_problem']}",
                       lambda a: a.tag is None or a.parent is not None)
    failed = sorted(a.digest for a in inventory.artifacts.values() if a.error)
    if failed:
        what = "what it references" if len(failed) == 1 else "what they reference"
        _block_deletes(target_plan, f"not deleted: {count(len(failed), 'artifact')} could not be inspected "
                                    f"(e.g. {failed[0]}), so {what} is unknown")
    if only_tag is not None:
        restrict.narrow(target_plan, only_tag)
    return target_plan


def plan_results(results: list, policy: Policy, policy_name: str, now: datetime) -> tuple[Plan, list[Inventory]]:
    """The plan for finished inventories (pure: nothing is gathered here). `results`: one per
    target, each with its `target` (core.reference.Target) and either an `inventory` or an `error`
    (that target gets an error entry and no actions).

    Returns the plan and the inventories it was made from (for reports and metrics). A
    `REPO:TAG` target's plan and inventory show that tag only (`plan/only_tag.py`).
    """
    plans = []
    inventories = []
    for result in results:
        tag = result.target.tag
        if result.inventory is None:
            plans.append(TargetPlan(target=result.target.repository, backend=result.target.kind,
                                    errors=[result.error or "unknown error"], only_tag=tag))
            continue
        plans.append(plan_inventory(result.inventory, policy, now, only_tag=tag))
        inventories.append(result.inventory if tag is None else restrict.for_listing(result.inventory, tag))
    return new_plan(policy_name, plans, now), inventories
