"""Pure evaluation of a policy against an inventory: one Decision per listed tag and untagged digest.

Semantics (design.md, "How the criteria of one rule combine"):

* An artifact that could not be inspected (`Artifact.error`, or no artifact for the digest) is kept.
* A `protect` glob (fnmatchcase) always wins: the tag is kept, whatever the rules say.
* Rules are tried in order; the first rule that selects a tag (or untagged artifact) decides it.
* A rule's candidates are ordered newest first: `created` descending; unknown ages sort as the
  NEWEST (kept preferentially); ties broken by tag name (untagged: by digest, after tags).
* `keep_newest = N` is a floor counted over DISTINCT DIGESTS: several tags on one digest take one
  slot, since keeping any of them keeps the same bytes and deleting "the 5th newest tag" while the
  same manifest stays under a newer tag would free nothing. Candidates within the floor are kept.
* `older_than = D`: a candidate created more than D before `now` is acted on. A candidate with no
  known created time is NEVER acted on by an age-dependent criterion (older_than, and also the
  newest-first ordering of keep_newest and max_total_size, since "newest" is unknowable for it):
  it is kept and the reason says its age is unknown.
* `max_total_size = S`: walking newest first, a candidate is kept while the deduplicated bytes of
  the closures of all candidates kept so far (plus its own) fit in S; from the first that does
  not fit, it and every later (older) candidate are acted on.
* A candidate is acted on when any criterion set says so, unless the floor keeps it. With only
  `keep_newest` set, every candidate beyond the floor is acted on; combined with another criterion
  `keep_newest` is only the floor. A rule with no criterion acts on every candidate (any age).
* `select.not_pulled_for = D` narrows a rule to candidates whose store records pull times (ECR:
  `lastRecordedPullTime`, carried in `Artifact.extra`) and whose last pull, plus the store's
  recording delay (ECR: up to 24 h, `pull_lag`), lies more than D before `now`; never pulled counts
  from the push time. A candidate from a store that records no pull times is not selected (the next
  rule may decide it); `pull_time_warnings` names such rules for the plan.
* A retag whose rendered `to` is not a valid tag, already names another digest, or collides with
  another retag's `to` is turned into a keep with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from fnmatch import fnmatchcase

from ghcr_janitor.core.models import Artifact, Inventory
from ghcr_janitor.policy import template
from ghcr_janitor.policy.regex import fullmatch
from ghcr_janitor.policy.model import DELETE, KEEP, RETAG, Policy, Rule
from ghcr_janitor.policy.units import format_duration, format_size
from ghcr_janitor.core.reference import TAG_PATTERN


@dataclass(frozen=True)
class Decision:
    """What happens to one tag (or, with tag None, one untagged artifact) and why."""

    tag: str | None
    digest: str
    action: str  # "keep" | "delete" | "retag"
    reason: str
    rule: str | None = None
    to: str | None = None


@dataclass(frozen=True)
class _Cand:
    tag: str | None
    digest: str
    artifact: Artifact
    by_created: bool = False        # an Actions-cache rule with age = "created"

    @property
    def created(self) -> datetime | None:
        if self.by_created:
            return _aware(self.artifact.labels.get("created_at"))
        return _aware(self.artifact.created)

    @property
    def age_source(self) -> str | None:
        return "gha/created_at" if self.by_created else self.artifact.age_source


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def _order_key(c: _Cand) -> tuple:
    created = c.created
    # A store's keep order first (the Actions cache ranks what a person keeps longest; registries
    # rank everything 0); then unknown age first (newest), created descending, tags by name,
    # untagged by digest.
    stamp = -created.timestamp() if created is not None else float("-inf")
    return (c.artifact.labels.get("keep_rank", 0), stamp, c.tag is None, c.tag or "", c.digest)


def _created_text(c: _Cand) -> str:
    created = c.created
    assert created is not None
    source = f" ({c.age_source})" if c.age_source else ""
    return f"created {created.strftime('%Y-%m-%d')}{source}"


def _matches(text: str, globs: tuple[str, ...], regex: str | None) -> bool:
    """Any glob (fnmatchcase) or the regex (the whole text, RE2: linear time) matches."""
    return any(fnmatchcase(text, g) for g in globs) or (regex is not None and fullmatch(regex, text))


def tag_selected(rule: Rule, tag: str) -> bool:
    """Does the rule's tag part (globs, regex) match `tag`?"""
    return _matches(tag, rule.selector.tags, rule.selector.regex)


def _entry_selected(sel, labels: dict, kind: str) -> bool:
    """Every criterion the selector sets matches the cache entry (keys: any glob or the regex)."""
    if labels.get("foreign") and not (sel.keys or sel.key_regex):
        return False                    # another writer's index keys: only explicit key rules touch them
    if (sel.keys or sel.key_regex) and not _matches(labels.get("key") or "", sel.keys, sel.key_regex):
        return False
    if sel.refs and not any(fnmatchcase(labels.get("ref") or "", g) for g in sel.refs):
        return False
    if sel.ref_state and labels.get("ref_state") not in sel.ref_state:
        return False
    return not sel.kind or kind in sel.kind


def records_pulls(art: Artifact) -> bool:
    """Does the artifact's store record pull times (ECR)? It then carries `last_pulled` (None: never)."""
    return "last_pulled" in art.extra


def last_pull(art: Artifact) -> tuple[datetime | None, str]:
    """When it was last pulled as far as the store knows (never pulled: its push time), and how to say it."""
    pulled = _aware(art.extra.get("last_pulled"))
    if pulled is not None:
        return pulled, f"last pulled {pulled.strftime('%Y-%m-%d')}"
    pushed = _aware(art.extra.get("pushed")) or _aware(art.created)
    return pushed, "never pulled" + (f", pushed {pushed.strftime('%Y-%m-%d')}" if pushed else "")


def not_pulled(art: Artifact, limit: timedelta, now: datetime) -> bool:
    """Not pulled for more than `limit`, counting the store's recording delay as a pull that may
    not be recorded yet (ECR: up to 24 h)."""
    if not records_pulls(art):
        return False
    when, _ = last_pull(art)
    lag = art.extra.get("pull_lag") or timedelta(0)
    return when is not None and now - when > limit + lag


def _pull_reason(rule: Rule, c: _Cand) -> str:
    assert rule.selector.not_pulled_for is not None
    _, said = last_pull(c.artifact)
    lag = c.artifact.extra.get("pull_lag")
    late = f" (pulls are recorded up to {format_duration(lag)} late)" if lag else ""
    return f"not pulled for {format_duration(rule.selector.not_pulled_for)}: {said}{late}"


def pull_time_warnings(inventory: Inventory, policy: Policy) -> list[str]:
    """Rules with `not_pulled_for` on a store that records no pull times: they select nothing here."""
    arts = [a for a in inventory.artifacts.values() if not a.error]
    if not arts or any(records_pulls(a) for a in arts):
        return []
    return [f"rule {rule.name!r} selects by not_pulled_for, but {inventory.backend} records no pull times: it "
            "selects nothing here (ECR records them)" for rule in policy.rules if rule.selector.not_pulled_for]


def _selects(rule: Rule, c: _Cand, now: datetime) -> bool:
    sel = rule.selector
    if "cache_id" in c.artifact.labels:
        return sel.for_entries and _entry_selected(sel, c.artifact.labels, c.artifact.kind)
    if not sel.for_registry or (sel.kind and c.artifact.kind not in sel.kind):
        return False
    if sel.not_pulled_for is not None and not not_pulled(c.artifact, sel.not_pulled_for, now):
        return False
    if sel.broken and not c.artifact.broken:
        return False
    if sel.broken and not sel.by_tag and not sel.untagged:
        return True                     # `broken = true` alone: every broken image
    if c.tag is None:
        return sel.untagged
    return tag_selected(rule, c.tag)


def _apply_rule(rule: Rule, cands: list[_Cand], now: datetime) -> list[tuple[_Cand, bool, str]]:
    """(candidate, acted_on, reason) for each candidate, in newest-first order."""
    out = []
    floors: dict[tuple, set[str]] = {}
    kept_bytes: dict[str, int] = {}
    over_budget = False
    # keep_newest acts on the rest only when it is the rule's only criterion; otherwise a floor.
    only_count = rule.older_than is None and rule.max_total_size is None
    if rule.age == "created":
        cands = [_Cand(c.tag, c.digest, c.artifact, by_created=True) for c in cands]
    per = f" per {', '.join(rule.per)}" if rule.per else ""
    for c in sorted(cands, key=_order_key):
        created = c.created
        acts: list[str] = []
        keeps: list[str] = []
        in_floor = False
        if rule.keep_newest is not None:
            floor = floors.setdefault(_group_of(rule, c), set())
            if c.digest in floor or len(floor) < rule.keep_newest:
                floor.add(c.digest)
                in_floor = True
            elif only_count and created is not None:
                acts.append(f"beyond keep_newest={rule.keep_newest}{per}")
        if rule.older_than is not None:
            limit = format_duration(rule.older_than)
            if created is None:
                keeps.append(f"age unknown: not acted on by older_than={limit}")
            elif now - created > rule.older_than:
                acts.append(f"older than {limit}: {_created_text(c)}")
            else:
                keeps.append(f"newer than {limit}: {_created_text(c)}")
        if rule.max_total_size is not None:
            budget = format_size(rule.max_total_size)
            before = sum(kept_bytes.values())
            merged = sum({**kept_bytes, **c.artifact.closure}.values())
            if not over_budget and merged > rule.max_total_size:
                over_budget = True
            if over_budget and created is not None:
                acts.append(f"over budget {budget} (kept {format_size(before)} newer)")
            elif not over_budget:
                keeps.append(f"within budget {budget}")
        if only_count and rule.keep_newest is not None and not in_floor and created is None:
            keeps.insert(0, f"age unknown: not acted on by keep_newest={rule.keep_newest}")
        if rule.max_total_size is not None and over_budget and created is None:
            keeps.append(f"age unknown: not acted on by max_total_size={format_size(rule.max_total_size)}")
        if not rule.has_criteria:
            reason = _selected_reason(rule, c)
            if rule.selector.not_pulled_for is not None:
                reason = _pull_reason(rule, c)
            out.append((c, True, reason))
            continue
        if in_floor:
            act, reason = False, f"within keep_newest={rule.keep_newest}{per}"
        elif acts:
            act, reason = True, "; ".join(acts)
            if rule.selector.not_pulled_for is not None:
                reason = f"{_pull_reason(rule, c)}; {reason}"
        else:
            act, reason = False, "; ".join(keeps)
        if not act:
            kept_bytes.update(c.artifact.closure)
        out.append((c, act, reason))
    return out


DEAD_REFS = {"closed": "its pull request is closed or merged", "deleted": "its branch or tag is gone"}


def _selected_reason(rule: Rule, c: _Cand) -> str:
    """Why a rule without criteria acts: for a dead ref's cache entry, say what is dead."""
    labels = c.artifact.labels
    if "cache_id" in labels and labels.get("ref_state") in DEAD_REFS and rule.selector.ref_state:
        return f"{labels['ref']}: {DEAD_REFS[labels['ref_state']]}; nothing can restore its caches"
    return "selected (rule has no criteria: every match is acted on)"


def _group_of(rule: Rule, c: _Cand) -> tuple:
    """The keep_newest group of a candidate: its values of the rule's `per` labels."""
    labels = c.artifact.labels
    return tuple(c.artifact.kind if name == "kind" else labels.get(name) for name in rule.per)


def _retag(rule: Rule, c: _Cand, reason: str, inv: Inventory, now: datetime) -> Decision:
    assert rule.to is not None and c.tag is not None
    try:
        to = template.render(rule.to, c.tag, c.created, c.digest, now)
    except ValueError as exc:
        return Decision(c.tag, c.digest, KEEP, f"cannot retag: {exc}", rule.name)
    if not TAG_PATTERN.match(to):
        return Decision(c.tag, c.digest, KEEP, f"cannot retag: {to!r} is not a valid tag", rule.name)
    existing = inv.tags.get(to)
    if existing == c.digest:
        return Decision(c.tag, c.digest, KEEP, f"already tagged {to!r}", rule.name)
    if existing is not None:
        return Decision(c.tag, c.digest, KEEP, f"cannot retag: {to!r} already points at another digest", rule.name)
    return Decision(c.tag, c.digest, RETAG, reason, rule.name, to)


def _dedupe_retags(decisions: list[Decision]) -> list[Decision]:
    """Two retags onto one new tag would overwrite each other: the first (in sorted order) wins."""
    claimed: dict[str, str] = {}
    out = []
    for d in decisions:
        if d.action == RETAG and d.to is not None:
            owner = claimed.get(d.to)
            if owner is not None and owner != d.digest:
                d = Decision(d.tag, d.digest, KEEP, f"cannot retag: {d.to!r} is also the target of another retag", d.rule)
            elif owner is None:
                claimed[d.to] = d.digest
        out.append(d)
    return out


def evaluate(inventory: Inventory, policy: Policy, now: datetime) -> list[Decision]:
    """Decide every listed tag and untagged digest. Pure, deterministic, order-independent.

    Decisions are returned sorted: tags by name, then untagged artifacts by digest.
    """
    now = _aware(now) or now
    decided: dict[tuple[str | None, str], Decision] = {}
    pending: list[_Cand] = []
    items: list[tuple[str | None, str]] = [
        (t, inventory.tags[t]) for t in sorted(set(inventory.listed)) if t in inventory.tags
    ]
    items += [(None, d) for d in sorted(set(inventory.untagged))]
    tags_of: dict[str, list[str]] = {}          # once, not a scan of every tag per untagged digest
    for t, d in sorted(inventory.tags.items()):
        tags_of.setdefault(d, []).append(t)
    for tag, digest in items:
        art = inventory.artifacts.get(digest)
        key = (tag, digest)
        if art is None:
            decided[key] = Decision(tag, digest, KEEP, "could not be inspected: manifest not in inventory")
        elif art.error:
            decided[key] = Decision(tag, digest, KEEP, f"could not be inspected: {art.error}")
        elif tag is None and digest in tags_of:
            decided[key] = Decision(tag, digest, KEEP, f"still tagged {', '.join(tags_of[digest])}")
        elif tag is not None and (pat := next((p for p in policy.protect if fnmatchcase(tag, p)), None)):
            decided[key] = Decision(tag, digest, KEEP, f"protected by {pat!r}")
        else:
            pending.append(_Cand(tag, digest, art))
    for rule in policy.rules:
        mine = [c for c in pending if _selects(rule, c, now)]
        if not mine:
            continue
        pending = [c for c in pending if not _selects(rule, c, now)]
        for c, act, reason in _apply_rule(rule, mine, now):
            key = (c.tag, c.digest)
            if not act:
                decided[key] = Decision(c.tag, c.digest, KEEP, reason, rule.name)
            elif rule.action == RETAG:
                decided[key] = _retag(rule, c, reason, inventory, now)
            else:
                decided[key] = Decision(c.tag, c.digest, DELETE, reason, rule.name)
    for c in pending:
        decided[(c.tag, c.digest)] = Decision(c.tag, c.digest, KEEP, "no rule matched")
    ordered = [decided[k] for k in sorted(decided, key=lambda k: (k[0] is None, k[0] or "", k[1]))]
    return _dedupe_retags(ordered)
