"""Turn decisions into a pinned, safe plan (pure), and read/write plan files (JSON, version 1).

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
  never a listed index whose children are gone.
"""

from __future__ import annotations

import json
import uuid
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

from ghcr_janitor.core.digests import is_digest
from ghcr_janitor.core.errors import JanitorError, PlanError
from ghcr_janitor.core import models
from ghcr_janitor.core.models import Inventory
from ghcr_janitor.core.reference import TAG_PATTERN
from ghcr_janitor.core.timeparse import format_time, parse_time

PLAN_VERSION = 1
DELETE, UNTAG, RETAG = "delete", "untag", "retag"
_ACTION_ORDER = {RETAG: 0, UNTAG: 1, DELETE: 2}
GC_NOTE = ("this registry frees storage only after its own garbage collection "
           "(e.g. `registry garbage-collect`); reclaim_size is what becomes unreferenced")


@dataclass
class Action:
    """One mutating step, pinned to the digest seen at planning time."""

    action: str  # "delete" | "untag" | "retag"
    tag: str | None
    digest: str
    to: str | None = None
    reclaim_size: int = 0
    rule: str | None = None
    reason: str = ""
    kind: str | None = None
    size: int | None = None
    created: str | None = None
    age_source: str | None = None
    version_id: int | None = None
    parent: str | None = None


@dataclass
class Kept:
    """A tag (or untagged digest, tag None) left alone, and why."""

    tag: str | None
    digest: str
    reason: str


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan_version": self.plan_version,
            "id": self.id,
            "created": self.created,
            "policy": self.policy,
            "targets": [
                {
                    "target": t.target,
                    "backend": t.backend,
                    "reclaim_size": t.reclaim_size,
                    "actions": [asdict(a) for a in t.actions],
                    "kept": [asdict(k) for k in t.kept],
                    "notes": list(t.notes),
                    "errors": list(t.errors),
                    "warnings": list(t.warnings),
                }
                for t in self.targets
            ],
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "plan") -> "Plan":
        """Validate and build; PlanError(f"{source}: {key}: {problem}") on anything wrong."""
        return _parse_plan(data, source)


def new_plan(policy: str | None, targets: Iterable[TargetPlan], now: datetime) -> Plan:
    """A Plan stamped with `now` (RFC 3339 UTC)."""
    return Plan(created=format_time(now) or "", policy=policy, targets=list(targets))


# --- building -------------------------------------------------------------------------------

def followers(inventory: Inventory, wanted: set[str]) -> dict[str, str]:
    """Untagged, inspectable listed artifacts that follow a digest in `wanted` -> what they follow.

    Transitive: a referrer of a platform manifest of a deleted index follows it too.
    """
    arts = inventory.artifacts
    tagged = set(inventory.tags.values())
    deps = inventory.dependents()
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


def _kept_digests(inventory: Inventory, decisions: list) -> tuple[dict[str, str], set[str], dict[str, str]]:
    """(kept digest -> why, digests to delete if nothing keeps them, follower -> parent)."""
    arts = inventory.artifacts
    deleting_tags = {d.tag for d in decisions if d.action == DELETE and d.tag is not None
                     and inventory.tags.get(d.tag) == d.digest}
    decided = {d.digest for d in decisions if d.action == DELETE}
    follow = followers(inventory, decided)
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


def _label(digest: str, decisions: list) -> str:
    tags = sorted({d.tag for d in decisions if d.digest == digest and d.tag is not None})
    return ", ".join(tags) if tags else digest


def _follower_reason(inventory: Inventory, digest: str, parent: str, decisions: list) -> str:
    art = inventory.artifacts[digest]
    if art.subject == parent:
        what = "referrer"
    elif art.kind == models.ATTESTATION:
        what = "attestation"
    elif art.kind == models.IMAGE_INDEX:
        what = "child index"
    else:
        what = "platform manifest"
    return f"{what} of {_label(parent, decisions)}, used by nothing kept"


def _depths(inventory: Inventory, deleted: set[str]) -> dict[str, int]:
    """For each deleted digest, how many deleted ancestors stand above it (parents sort first)."""
    deps = inventory.dependents()
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
    return depth


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
    )


def build_target_plan(inventory: Inventory, decisions: list, backend_frees_storage: bool) -> TargetPlan:
    """Apply the safety rules to `decisions` (policy.Decision objects) for one inventory."""
    arts = inventory.artifacts
    kept, _, follow = _kept_digests(inventory, decisions)
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
        elif d.digest in kept and d.tag is not None:
            actions.append(_action(UNTAG, d, inventory, f"{d.reason} (untag only: digest {kept[d.digest]})"))
        elif d.digest in kept:
            kept_entries.append(Kept(None, d.digest, kept[d.digest]))
        else:
            actions.append(_action(DELETE, d, inventory))
    deleted = {a.digest for a in actions if a.action == DELETE}
    rules = {a.digest: a.rule for a in actions if a.action == DELETE}
    for digest in sorted(follow):
        parent = follow[digest]
        if digest in kept or digest in deleted:
            continue
        root = parent
        while root in follow:
            root = follow[root]
        if root not in deleted:         # what it follows is kept (or only untagged): so is it
            continue
        follower = _Follower(None, digest, rules.get(root), _follower_reason(inventory, digest, parent, decisions))
        action = _action(DELETE, follower, inventory)
        action.parent = parent
        actions.append(action)
    deleted = {a.digest for a in actions if a.action == DELETE}
    depth = _depths(inventory, deleted)
    actions.sort(key=lambda a: (_ACTION_ORDER[a.action], depth.get(a.digest, 0) if a.action == DELETE else 0,
                                a.tag is None, a.tag or "", a.digest, a.to or ""))
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
        owner = a
        while owner.parent is not None and owner.parent in first_delete:    # the image's action carries it
            owner = first_delete[owner.parent]
        owner.reclaim_size += sum(freed.values())
    kept_entries.sort(key=lambda k: (k.tag is None, k.tag or "", k.digest))
    notes = [] if backend_frees_storage else [GC_NOTE]
    return TargetPlan(
        target=inventory.target, backend=inventory.backend,
        reclaim_size=sum(a.reclaim_size for a in actions), actions=actions,
        kept=kept_entries, notes=notes, errors=errors, warnings=list(inventory.warnings),
    )


# --- files ----------------------------------------------------------------------------------

def write_plan(plan: Plan, path: str | Path) -> None:
    """Write the plan as JSON, atomically (temp file + rename)."""
    target = Path(path)
    text = json.dumps(plan.to_dict(), indent=2) + "\n"
    try:
        fd, tmp = tempfile.mkstemp(prefix=".plan-", dir=target.parent if str(target.parent) else ".")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except OSError as exc:
        raise JanitorError(f"{path}: cannot write plan: {exc.strerror or exc}") from None


def read_plan(path: str | Path) -> Plan:
    """Read and validate a plan file; PlanError (one line, naming the file) on any problem."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError(f"{source}: plan file not found") from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PlanError(" ".join(f"{source}: cannot read plan: {reason}".split())) from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise PlanError(" ".join(f"{source}: not valid JSON: {exc}".split())) from None
    return _parse_plan(data, source)


class _Bad(Exception):
    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key, self.message = key, message


def _get(obj: dict, name: str, where: str, kinds: tuple, *, required: bool = True, default: Any = None) -> Any:
    key = f"{where}.{name}" if where else name
    if name not in obj:
        if required:
            raise _Bad(key, "missing")
        return default
    value = obj[name]
    if isinstance(value, bool) and bool not in kinds:
        raise _Bad(key, f"unexpected {json.dumps(value)}")
    if not isinstance(value, kinds):
        raise _Bad(key, f"unexpected {type(value).__name__ if value is not None else 'null'}")
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        raise _Bad(key, "must not be negative")
    return value


def _tag(obj: dict, where: str, nullable: bool) -> str | None:
    tag = _get(obj, "tag", where, (str, type(None)) if nullable else (str,))
    if tag is not None and not TAG_PATTERN.match(tag):
        raise _Bad(f"{where}.tag", f"invalid tag {tag[:80]!r}")
    return tag


def _digest(obj: dict, where: str) -> str:
    digest = _get(obj, "digest", where, (str,))
    if not is_digest(digest):
        raise _Bad(f"{where}.digest", f"invalid digest {digest[:80]!r}")
    return digest


def _dict(value: Any, key: str) -> dict:
    if not isinstance(value, dict):
        raise _Bad(key, "expected an object")
    return value


def _parse_action(raw: Any, where: str) -> Action:
    obj = _dict(raw, where)
    kind = _get(obj, "action", where, (str,))
    if kind not in _ACTION_ORDER:
        raise _Bad(f"{where}.action", f"unknown action {kind[:40]!r} (delete, untag, retag)")
    tag = _tag(obj, where, nullable=kind == DELETE)
    to = _get(obj, "to", where, (str, type(None)), required=False)
    if kind == RETAG and (to is None or not TAG_PATTERN.match(to)):
        raise _Bad(f"{where}.to", "a retag needs a valid tag in `to`")
    if kind != RETAG and to is not None:
        raise _Bad(f"{where}.to", f"must be null for {kind}")
    created = _get(obj, "created", where, (str, type(None)), required=False)
    if created is not None and parse_time(created) is None:
        raise _Bad(f"{where}.created", f"invalid time {created[:40]!r}")
    opt = (str, type(None))
    return Action(
        action=kind, tag=tag, digest=_digest(obj, where), to=to,
        reclaim_size=_get(obj, "reclaim_size", where, (int,)),
        rule=_get(obj, "rule", where, opt, required=False),
        reason=_get(obj, "reason", where, (str,)),
        kind=_get(obj, "kind", where, opt, required=False),
        size=_get(obj, "size", where, (int, type(None)), required=False),
        created=created,
        age_source=_get(obj, "age_source", where, opt, required=False),
        version_id=_get(obj, "version_id", where, (int, type(None)), required=False),
        parent=_parent(obj, where),
    )


def _parent(obj: dict, where: str) -> str | None:
    parent = _get(obj, "parent", where, (str, type(None)), required=False)
    if parent is not None and not is_digest(parent):
        raise _Bad(f"{where}.parent", f"invalid digest {parent[:80]!r}")
    return parent


def _parse_target(raw: Any, where: str) -> TargetPlan:
    obj = _dict(raw, where)
    target = _get(obj, "target", where, (str,))
    if not target:
        raise _Bad(f"{where}.target", "empty")
    actions = _get(obj, "actions", where, (list,))
    kept = _get(obj, "kept", where, (list,))
    notes = _get(obj, "notes", where, (list,), required=False, default=[])
    errors = _get(obj, "errors", where, (list,), required=False, default=[])
    warnings = _get(obj, "warnings", where, (list,), required=False, default=[])
    for name, items in (("notes", notes), ("errors", errors), ("warnings", warnings)):
        if not all(isinstance(i, str) for i in items):
            raise _Bad(f"{where}.{name}", "expected strings")
    kept_items = []
    for i, k in enumerate(kept):
        kw = f"{where}.kept[{i}]"
        k = _dict(k, kw)
        kept_items.append(Kept(_tag(k, kw, nullable=True), _digest(k, kw), _get(k, "reason", kw, (str,))))
    return TargetPlan(
        target=target,
        backend=_get(obj, "backend", where, (str,), required=False, default="oci"),
        reclaim_size=_get(obj, "reclaim_size", where, (int,)),
        actions=[_parse_action(a, f"{where}.actions[{i}]") for i, a in enumerate(actions)],
        kept=kept_items, notes=list(notes), errors=list(errors), warnings=list(warnings),
    )


def _parse_plan(data: Any, source: str) -> Plan:
    try:
        obj = _dict(data, "plan")
        version = obj.get("plan_version")
        if version != PLAN_VERSION or isinstance(version, bool):
            raise _Bad("plan_version", f"unsupported plan_version {json.dumps(version)[:40]} (this janitor reads {PLAN_VERSION})")
        created = _get(obj, "created", "", (str,))
        if parse_time(created) is None:
            raise _Bad("created", f"invalid time {created[:40]!r}")
        targets = _get(obj, "targets", "", (list,))
        plan_id = _get(obj, "id", "", (str,), required=False, default="")
        return Plan(
            created=created,
            policy=_get(obj, "policy", "", (str, type(None))),
            targets=[_parse_target(t, f"targets[{i}]") for i, t in enumerate(targets)],
            id=plan_id,
        )
    except _Bad as exc:
        raise PlanError(" ".join(f"{source}: {exc.key}: {exc.message}".split())) from None
