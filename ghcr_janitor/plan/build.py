"""Turn decisions into a pinned, safe plan (pure).

Safety rules enforced here, whatever the decisions say:

* a digest is KEPT if any tag on it in `inventory.tags` (all tags, listed or not) is not being
  deleted, if its artifact could not be inspected (error or missing), if it is in the closure of a
  kept artifact (multi-arch child, attestation in an index), or if it is a referrer (`subject`)
  of a kept artifact; this is a fixpoint, kept artifacts keep what they reference;
* a delete decision whose digest is kept becomes an `untag` (reclaim 0);
* a digest all of whose tags go becomes one `delete` action per tag (sorted by tag); the first
  carries the reclaim, the others 0 (the applier deletes the digest once, later ones find it gone);
* reclaim counts a blob (or manifest) only if no kept artifact's closure has it, once per target;
* deleting an artifact deletes the untagged listed artifacts that follow it (GHCR keeps every
  platform manifest, attestation and referrer as its own version) unless something kept uses
  them; each is its own action (`parent` names what it follows, and apply deletes it only once
  that is gone), and the parent's reclaim covers them;
* deletes are ordered parents first, so an interrupted apply leaves orphaned children at worst,
  never a listed index whose children are gone;
* the Actions cache's floor holds whatever a policy says: the newest index generation of a live
  ref's scope, a live ref's `buildkit-blob` entries, and the default branch's newest entry of
  each family are never deleted; entries are pinned by cache id, key and ref.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ghcr_janitor.core import models
from ghcr_janitor.core.models import Inventory
from ghcr_janitor.core.timeparse import format_time
from ghcr_janitor.plan.model import ACTION_ORDER, DELETE, RETAG, UNTAG, Action, Kept, TargetPlan


def followers(inventory: Inventory, wanted: set[str], deps: dict[str, set[str]] | None = None) -> dict[str, str]:
    """Untagged, inspectable listed artifacts that follow a digest in `wanted` -> what they follow.

    Transitive: a referrer of a platform manifest of a deleted index follows it too.
    """
    arts = inventory.artifacts
    tagged = set(inventory.tags.values())
    deps = inventory.dependents() if deps is None else deps
    found: dict[str, str] = {}
    work = sorted(wanted, reverse=True)
    while work:
        parent = work.pop()
        for digest in sorted(deps.get(parent, ())):
            if digest in wanted or digest in found or digest in tagged or arts[digest].error:
                continue
            found[digest] = parent
            work.append(digest)
    return found


def _kept_digests(inventory: Inventory, decisions: list,
                  deps: dict[str, set[str]]) -> tuple[dict[str, str], set[str], dict[str, str]]:
    """(kept digest -> why, digests to delete if nothing keeps them, follower -> parent)."""
    arts = inventory.artifacts
    deleting_tags = {d.tag for d in decisions if d.action == DELETE and d.tag is not None
                     and inventory.tags.get(d.tag) == d.digest}
    decided = {d.digest for d in decisions if d.action == DELETE}
    follow = followers(inventory, decided, deps)
    wanted = decided | set(follow)
    kept: dict[str, str] = {}
    for tag in sorted(inventory.tags):
        digest = inventory.tags[tag]
        if tag not in deleting_tags:
            kept.setdefault(digest, f"also tagged {tag!r}, which is kept")
    for digest in sorted(set(arts) | wanted):
        art = arts.get(digest)
        if art is None:
            kept.setdefault(digest, "could not be inspected: manifest not in inventory")
        elif art.error:
            kept.setdefault(digest, f"could not be inspected: {art.error}")
        elif digest not in wanted:
            kept.setdefault(digest, "not selected for deletion")
    # Fixpoint: whatever a kept artifact references (closure) or that refers to it (subject) stays.
    by_subject: dict[str, list[str]] = {}
    for digest in sorted(wanted):
        subject = arts[digest].subject if digest in arts else None
        if subject:
            by_subject.setdefault(subject, []).append(digest)
    work = sorted(kept)
    while work:
        digest = work.pop()
        art = arts.get(digest)
        refs = sorted(art.closure) if art is not None else []
        for ref in refs:
            if ref in wanted and ref not in kept:
                kept[ref] = f"used by kept artifact {digest}"
                work.append(ref)
        for ref in by_subject.get(digest, []):
            if ref not in kept:
                kept[ref] = f"refers to kept artifact {digest}"
                work.append(ref)
    return kept, wanted, follow


LIVE_REF_STATES = ("default", "live", "unknown")


def cache_floor(art: models.Artifact) -> str | None:
    """Why an Actions-cache entry may never be deleted, whatever the policy says (None: it may)."""
    labels = art.labels
    if "cache_id" not in labels:
        return None
    live = labels.get("ref_state") in LIVE_REF_STATES
    if art.kind == models.BUILDKIT_INDEX and labels.get("newest") and live:
        return "the newest index generation of a live ref's scope: builds read it"
    if art.kind == models.BUILDKIT_BLOB and live:
        return ("a buildkit-blob of a live ref: the REST API cannot see which index still uses it "
                "(it goes with its ref once the ref is closed or deleted)")
    if labels.get("ref_state") == "default" and labels.get("newest"):
        return "the default branch's newest entry of its family"
    return None


def _pin_entries(actions: list[Action], kept: list[Kept], inventory: Inventory) -> None:
    """Actions-cache items are pinned by cache id plus what the id must still carry: key, ref,
    size and creation time (`created` is the entry's created_at, never its last access)."""
    for item in [*actions, *kept]:
        art = inventory.artifacts.get(item.digest or "")
        if art is None or "cache_id" not in art.labels:
            continue
        labels = art.labels
        item.cache_id, item.key, item.digest = labels["cache_id"], labels["key"], None
        if isinstance(item, Action):
            item.ref, item.ref_state = labels["ref"], labels["ref_state"]
            item.created = format_time(labels.get("created_at"))
            item.age_source = "gha/created_at" if labels.get("created_at") else None


def _tags_by_digest(decisions: list) -> dict[str, set[str]]:
    """Each decided digest's tags (built once: a lookup per follower, not a scan of every decision)."""
    found: dict[str, set[str]] = {}
    for d in decisions:
        if d.tag is not None:
            found.setdefault(d.digest, set()).add(d.tag)
    return found


def _label(digest: str, tags_of: dict[str, set[str]]) -> str:
    tags = sorted(tags_of.get(digest, ()))
    return ", ".join(tags) if tags else digest


def _follower_reason(inventory: Inventory, digest: str, parent: str, tags_of: dict[str, set[str]]) -> str:
    art = inventory.artifacts[digest]
    if art.subject == parent:
        what = "referrer"
    elif art.kind == models.ATTESTATION:
        what = "attestation"
    elif art.kind == models.IMAGE_INDEX:
        what = "child index"
    else:
        what = "platform manifest"
    return f"{what} of {_label(parent, tags_of)}, used by nothing kept"


def _depths(deps: dict[str, set[str]], deleted: set[str]) -> tuple[dict[str, int], dict[str, set[str]]]:
    """For each deleted digest: how deep it stands below deleted ancestors (parents sort first),
    and the deleted artifacts it follows (closure or `subject`)."""
    parents: dict[str, set[str]] = {}
    for parent in deleted:
        for child in deps.get(parent, ()):
            if child in deleted:
                parents.setdefault(child, set()).add(parent)
    depth: dict[str, int] = {}

    def of(digest: str, trail: frozenset[str]) -> int:
        if digest not in depth:
            above = [p for p in parents.get(digest, ()) if p not in trail]
            depth[digest] = 1 + max((of(p, trail | {digest}) for p in above), default=-1)
        return depth[digest]

    for digest in sorted(deleted):
        of(digest, frozenset())
    return depth, parents


def _link_followers(actions: list[Action], followers_: set[str], parents_of: dict[str, set[str]],
                    inventory: Inventory, decisions: list) -> None:
    """Name what each follower's delete follows: every deleted parent (`parents`, in plan order;
    apply deletes it only once all are gone), the first as `parent` (its reason and rule)."""
    position: dict[str, int] = {}
    for i, a in enumerate(actions):
        if a.action == DELETE:
            position.setdefault(a.digest, i)
    by_digest = {a.digest: a for a in actions if a.action == DELETE}
    tags_of = _tags_by_digest(decisions)
    for a in actions:
        if a.action != DELETE or a.digest not in followers_ or a.tag is not None:
            continue
        ordered = sorted(parents_of.get(a.digest, ()), key=lambda d: (position[d], d))
        a.parent, a.parents = ordered[0], ordered
        a.reason = _follower_reason(inventory, a.digest, a.parent, tags_of)
        root, seen = by_digest[a.parent], {a.digest}
        while root.parent is not None and root.digest not in seen:     # parents may form a cycle
            seen.add(root.digest)
            root = by_digest[root.parent]
        a.rule = root.rule


@dataclass(frozen=True)
class _Follower:
    """A decision-shaped record for a follower's delete."""

    tag: None
    digest: str
    rule: str | None
    reason: str
    to: None = None


def _action(kind: str, d: Any, inventory: Inventory, reason: str | None = None) -> Action:
    art = inventory.artifacts.get(d.digest)
    version_id = art.extra.get("version_id") if art is not None else None
    return Action(
        action=kind, tag=d.tag, digest=d.digest, to=d.to if kind == RETAG else None,
        rule=d.rule, reason=reason or d.reason,
        kind=art.kind if art is not None else None,
        size=art.size if art is not None else None,
        created=format_time(art.created) if art is not None else None,
        age_source=art.age_source if art is not None else None,
        version_id=version_id if isinstance(version_id, int) and not isinstance(version_id, bool) else None,
        broken=art.broken if art is not None else None,
    )


def build_target_plan(inventory: Inventory, decisions: list) -> TargetPlan:
    """Apply the safety rules to `decisions` (policy.Decision objects) for one inventory.

    What the reclaim figure means on the store (freed at once, or only by a GC) is the store's
    `reclaim_note`, carried by the inventory.
    """
    arts = inventory.artifacts
    deps = inventory.dependents()          # once: followers, kept set and delete order all need it
    kept, _, follow = _kept_digests(inventory, decisions, deps)
    actions: list[Action] = []
    kept_entries: list[Kept] = []
    errors = list(inventory.errors)
    known = set(errors)
    errors += [e for e in (f"{d}: {arts[d].error}" for d in sorted(arts) if arts[d].error) if e not in known]
    for d in decisions:
        art = arts.get(d.digest)
        if d.tag is not None and inventory.tags.get(d.tag) != d.digest:
            kept_entries.append(Kept(d.tag, d.digest, "tag does not point at this digest in the inventory"))
            errors.append(f"{d.tag}: decision pinned to {d.digest}, inventory says {inventory.tags.get(d.tag)}")
        elif d.action == "keep":
            kept_entries.append(Kept(d.tag, d.digest, d.reason))
        elif art is None or art.error:
            why = f"could not be inspected: {art.error}" if art is not None else "could not be inspected: manifest not in inventory"
            kept_entries.append(Kept(d.tag, d.digest, why))
        elif d.action == RETAG:
            actions.append(_action(RETAG, d, inventory))
        elif d.action != DELETE:
            kept_entries.append(Kept(d.tag, d.digest, f"unknown decision {d.action!r}"))
        elif (floor := cache_floor(art)) is not None:
            kept_entries.append(Kept(d.tag, d.digest, f"kept: {floor} (rule {d.rule!r} would delete it)"))
        elif d.digest in kept and d.tag is not None:
            actions.append(_action(UNTAG, d, inventory, f"{d.reason} (untag only: digest {kept[d.digest]})"))
        elif d.digest in kept:
            kept_entries.append(Kept(None, d.digest, kept[d.digest]))
        else:
            actions.append(_action(DELETE, d, inventory))
    deleted = {a.digest for a in actions if a.action == DELETE}
    for digest in sorted(follow):
        if digest in kept or digest in deleted:
            continue
        root = follow[digest]
        while root in follow:
            root = follow[root]
        if root in deleted:             # what it follows is kept (or only untagged): so is it
            actions.append(_action(DELETE, _Follower(None, digest, None, ""), inventory))
    deleted = {a.digest for a in actions if a.action == DELETE}
    depth, parents_of = _depths(deps, deleted)
    actions.sort(key=lambda a: (ACTION_ORDER[a.action], depth.get(a.digest, 0) if a.action == DELETE else 0,
                                a.tag is None, a.tag or "", a.digest, a.to or ""))
    _link_followers(actions, set(follow), parents_of, inventory, decisions)
    in_use: set[str] = {d for d in inventory.tags.values() if d not in deleted}
    for digest, art in arts.items():
        if digest not in deleted:
            in_use.update(art.closure)
            in_use.add(digest)
    counted: set[str] = set()
    first_delete = {}
    for a in actions:
        if a.action == DELETE:
            first_delete.setdefault(a.digest, a)
    for a in actions:
        if a.action != DELETE:
            continue
        freed = {b: s for b, s in arts[a.digest].closure.items() if b not in in_use and b not in counted}
        counted.update(freed)
        owner, seen = a, {a.digest}
        while owner.parent is not None and owner.parent in first_delete and owner.parent not in seen:
            owner = first_delete[owner.parent]                  # the image's action carries it
            seen.add(owner.digest)                              # (parents may form a cycle)
        owner.reclaim_size += sum(freed.values())
        if a.parent is not None:        # what stays if this child is skipped at apply time
            a.reclaim_share = sum(s for b, s in arts[a.digest].closure.items() if b not in in_use)
    kept_entries.sort(key=lambda k: (k.tag is None, k.tag or "", k.digest))
    _pin_entries(actions, kept_entries, inventory)
    return TargetPlan(
        target=inventory.target, backend=inventory.backend,
        reclaim_size=sum(a.reclaim_size for a in actions), actions=actions,
        kept=kept_entries, errors=errors, warnings=list(inventory.warnings),
        reclaim_note=inventory.reclaim_note,
    )
