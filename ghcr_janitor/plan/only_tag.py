"""A run restricted to one tag: `REPO:TAG` on `ls`, `plan`, `prune` and `report` (pure).

The inventory and the policy still see the whole repository, so unique sizes, `keep_newest`
counts and "used by a kept tag" stay right; only what the run shows and does is that one tag:

* the policy decides the named tag whatever `--tag`/`--all-tags` say (it is listed for the
  policy, matched literally), and every other tag and untagged artifact as it would anyway;
* every decision but the named tag's then becomes "keep", and the safe plan is built from
  that: the tag's digest is deleted only when no other tag points at it (else the tag is
  untagged), and reclaim counts only what that delete frees. The untagged platform manifests,
  attestations and referrers that follow the tag's artifact (GHCR lists them as versions of
  their own) go with it, as in a whole run; no other untagged artifact is touched;
* the plan lists only the named tag's actions and kept entry, and carries `only_tag`, so that
  `apply PLAN` of it stays restricted.
"""

from __future__ import annotations

from dataclasses import replace

from ghcr_janitor.core.models import Inventory
from ghcr_janitor.plan.model import TargetPlan
from ghcr_janitor.policy import Decision

OTHER_TAG = "not the tag this run is restricted to"


def missing_tag(inventory: Inventory, tag: str) -> str | None:
    """The error of a restricted run whose tag the repository does not have (None: it has it,
    or its digest could not be learned, which the inventory already says)."""
    if tag in inventory.tags or tag in inventory.unresolved:
        return None
    return f"no tag {tag!r} in this repository"


def for_policy(inventory: Inventory, tag: str) -> Inventory:
    """The inventory the policy evaluates: the whole repository, with the named tag listed."""
    if tag not in inventory.tags or tag in inventory.listed:
        return inventory
    return replace(inventory, listed=sorted([*inventory.listed, tag]))


def for_listing(inventory: Inventory, tag: str) -> Inventory:
    """What the run shows: the named tag only (no other tag, no untagged artifact); the facts
    (sizes, unique sizes, every tag) stay the whole repository's."""
    return replace(inventory, listed=[tag] if tag in inventory.tags else [], untagged=[])


def only(decisions: list[Decision], tag: str | None) -> list[Decision]:
    """Every decision but the named tag's becomes "keep" (`tag` None: an unrestricted run, all stand)."""
    if tag is None:
        return decisions
    return [d if d.tag == tag else Decision(d.tag, d.digest, "keep", OTHER_TAG) for d in decisions]


def narrow(target_plan: TargetPlan, tag: str) -> TargetPlan:
    """The plan of a restricted run shows the named tag's kept entry only (its actions are the
    only ones `only` left), and says which tag it is restricted to."""
    target_plan.kept = [k for k in target_plan.kept if k.tag == tag]
    target_plan.only_tag = tag
    return target_plan

