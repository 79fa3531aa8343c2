"""Plan files: write atomically, read and validate (one PlanError line naming the file and the key)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from dataclasses import asdict
from typing import Any, Iterator

from ghcr_janitor.core.digests import is_digest
from ghcr_janitor.core.errors import JanitorError, PlanError
from ghcr_janitor.core.files import UnreadableFile, atomic_write, read_regular
from ghcr_janitor.core.reference import TAG_PATTERN
from ghcr_janitor.core.timeparse import parse_time
from ghcr_janitor.plan.model import ACTION_ORDER, DELETE, PLAN_VERSION, RETAG, Action, Kept, Plan, TargetPlan

# A GHCR package of 100,000 versions plans ~100,000 deletes at ~900 bytes each (benchmarks/scale.py:
# 90 MiB); a plan of a million actions is not one.
MAX_PLAN_BYTES = 512 << 20
CHUNK = 1 << 16


class _LazyRows(list):
    """A list for `json` that makes each item's dict as it is written (`json.dumps` with `indent`
    walks lists with `len()` and iteration only): a plan's actions are never held as dicts all at once."""

    def __init__(self, items: list):
        super().__init__()
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return (asdict(item) for item in self.items)


def _chunks(plan: Plan) -> Iterator[bytes]:
    """The plan's JSON (exactly `json.dumps(plan.to_dict(), indent=2)` and a newline), in chunks."""
    pending: list[str] = []
    size = 0
    for piece in json.JSONEncoder(indent=2).iterencode(plan.to_dict(_LazyRows)):
        pending.append(piece)
        size += len(piece)
        if size >= CHUNK:
            yield "".join(pending).encode("utf-8")
            pending, size = [], 0
    pending.append("\n")
    yield "".join(pending).encode("utf-8")


def write_plan(plan: Plan, path: str | Path) -> None:
    """Write the plan as JSON, atomically (temp file + rename), streamed: a plan of 100,000 actions
    would otherwise be held as dicts and as one string at once (hundreds of MB)."""
    target = Path(path)
    try:
        atomic_write(target, _chunks(plan), like=target)
    except OSError as exc:
        raise JanitorError(f"{path}: cannot write plan: {exc.strerror or exc}") from None


def read_plan(path: str | Path) -> Plan:
    """Read and validate a plan file; PlanError (one line, naming the file) on any problem."""
    source = str(path)
    try:
        text = read_regular(path, MAX_PLAN_BYTES).decode("utf-8")
    except UnreadableFile as exc:
        if exc.why == os.strerror(errno.ENOENT):
            raise PlanError(f"{source}: plan file not found") from None
        raise PlanError(" ".join(f"{source}: cannot read plan: {exc.why}".split())) from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PlanError(" ".join(f"{source}: cannot read plan: {reason}".split())) from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise PlanError(" ".join(f"{source}: not valid JSON: {exc}".split())) from None
    return parse_plan(data, source)


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
    if kind not in ACTION_ORDER:
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
    cache_id, key, ref = _cache_pin(obj, where)
    if cache_id is not None and (kind != DELETE or tag is not None):
        raise _Bad(f"{where}.cache_id", "an Actions-cache entry is only ever deleted (tag null)")
    return Action(
        action=kind, tag=tag, digest=None if cache_id is not None else _digest(obj, where), to=to,
        cache_id=cache_id, key=key, ref=ref,
        ref_state=_get(obj, "ref_state", where, opt, required=False),
        reclaim_size=_get(obj, "reclaim_size", where, (int,)),
        rule=_get(obj, "rule", where, opt, required=False),
        reason=_get(obj, "reason", where, (str,)),
        kind=_get(obj, "kind", where, opt, required=False),
        size=_get(obj, "size", where, (int, type(None)), required=False),
        created=created,
        age_source=_get(obj, "age_source", where, opt, required=False),
        version_id=_get(obj, "version_id", where, (int, type(None)), required=False),
        parent=_parent(obj, where),
        parents=_parents(obj, where),
        reclaim_share=_get(obj, "reclaim_share", where, (int,), required=False, default=0),
        broken=_get(obj, "broken", where, opt, required=False),
    )


def _cache_pin(obj: dict, where: str) -> tuple[int | None, str | None, str | None]:
    """(cache_id, key, ref) of an Actions-cache item; all three or none, and then digest is null."""
    cache_id = _get(obj, "cache_id", where, (int, type(None)), required=False)
    if cache_id is None:
        return None, None, None
    if obj.get("digest") is not None:
        raise _Bad(f"{where}.digest", "must be null for an Actions-cache entry (it is pinned by cache_id)")
    key = _get(obj, "key", where, (str,))
    ref = _get(obj, "ref", where, (str,), required="action" in obj)
    return cache_id, key, ref


def _parent(obj: dict, where: str) -> str | None:
    parent = _get(obj, "parent", where, (str, type(None)), required=False)
    if parent is not None and not is_digest(parent):
        raise _Bad(f"{where}.parent", f"invalid digest {parent[:80]!r}")
    return parent


def _parents(obj: dict, where: str) -> list[str] | None:
    parents = _get(obj, "parents", where, (list, type(None)), required=False)
    if parents is not None and not all(is_digest(p) for p in parents):
        raise _Bad(f"{where}.parents", "expected a list of digests")
    return parents


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
        cache_id, key, _ = _cache_pin(k, kw)
        kept_items.append(Kept(_tag(k, kw, nullable=True), None if cache_id is not None else _digest(k, kw),
                               _get(k, "reason", kw, (str,)), cache_id=cache_id, key=key))
    actions_parsed = [_parse_action(a, f"{where}.actions[{i}]") for i, a in enumerate(actions)]
    entries = target.startswith("gha:")
    for i, a in enumerate(actions_parsed):
        if (a.cache_id is not None) != entries:
            what = "an Actions-cache target's actions need cache_id" if entries else \
                "cache_id belongs to gha: targets only"
            raise _Bad(f"{where}.actions[{i}].cache_id", what)
    only_tag = _get(obj, "only_tag", where, (str, type(None)), required=False)
    if only_tag is not None and not TAG_PATTERN.match(only_tag):
        raise _Bad(f"{where}.only_tag", f"invalid tag {only_tag[:80]!r}")
    for i, a in enumerate(actions_parsed):
        if only_tag is not None and a.tag != only_tag and a.parent is None:
            raise _Bad(f"{where}.actions[{i}].tag", f"the plan is restricted to tag {only_tag!r} (only_tag)")
    return TargetPlan(
        target=target, only_tag=only_tag,
        backend=_get(obj, "backend", where, (str,), required=False, default="oci"),
        reclaim_size=_get(obj, "reclaim_size", where, (int,)),
        reclaim_note=_get(obj, "reclaim_note", where, (str,), required=False, default=""),
        actions=actions_parsed,
        kept=kept_items, notes=list(notes), errors=list(errors), warnings=list(warnings),
        cache=_get(obj, "cache", where, (dict, type(None)), required=False),
    )


def parse_plan(data: Any, source: str = "plan") -> Plan:
    """Validate and build; PlanError(f"{source}: {key}: {problem}") on anything wrong."""
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
