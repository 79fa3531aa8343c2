"""A policy in words, for `janitor policy check FILE`."""

from __future__ import annotations

from ghcr_janitor.policy.model import RETAG, Policy, Rule
from ghcr_janitor.policy.units import format_duration, format_size


def _quoted(items: tuple[str, ...]) -> str:
    return ", ".join(repr(i) for i in items)


def _entry_selection(rule: Rule) -> str:
    sel = rule.selector
    parts = []
    if sel.kind:
        parts.append(" or ".join(sel.kind) + " entries")
    else:
        parts.append("Actions-cache entries")
    if sel.keys or sel.key_regex:
        keys = [repr(k) for k in sel.keys] + ([f"the regex {sel.key_regex!r}"] if sel.key_regex else [])
        parts.append(f"with keys matching {' or '.join(keys)}")
    if sel.refs:
        parts.append(f"on refs matching {_quoted(sel.refs)}")
    if sel.ref_state:
        parts.append(f"whose ref is {' or '.join(sel.ref_state)}")
    return " ".join(parts)


def _selection(rule: Rule) -> str:
    if rule.selector.for_entries:
        return _entry_selection(rule)
    parts = []
    if rule.selector.tags:
        parts.append(f"tags matching {_quoted(rule.selector.tags)}")
    if rule.selector.regex is not None:
        parts.append(f"tags matching the regex {rule.selector.regex!r} (whole tag)")
    if rule.selector.untagged:
        parts.append("untagged images (their platform manifests, attestations and referrers go with them)")
    if rule.selector.not_pulled_for is not None:
        parts = [" or ".join(parts) + f" not pulled for {format_duration(rule.selector.not_pulled_for)} (never "
                 "pulled: since pushed; pull times as ECR records them, up to 24 h late; on a store that records "
                 "none the rule selects nothing)"]
    if not rule.selector.broken:
        return " or ".join(parts)
    if not parts:
        return "broken images (indexes with children known to be gone), tagged or untagged"
    return "broken images among " + " or ".join(parts)


def describe_rule(index: int, rule: Rule) -> str:
    """One sentence for one rule."""
    verb = f"retag as {rule.to!r} (the old tag stays)" if rule.action == RETAG else "delete"
    criteria = []
    if rule.older_than is not None:
        criteria.append(f"older than {format_duration(rule.older_than)}")
    only_count = rule.older_than is None and rule.max_total_size is None
    unit = f"per {' and '.join(rule.per)}" if rule.per else "distinct digests" if not rule.selector.for_entries else "entries"
    if rule.keep_newest is not None and only_count:
        criteria.append(f"beyond the newest {rule.keep_newest} ({unit})")
    if rule.max_total_size is not None:
        criteria.append(f"once the newer ones kept exceed {format_size(rule.max_total_size)} (deduplicated)")
    text = f"rule {index} {rule.name!r}: {_selection(rule)} not decided by an earlier rule: "
    if not criteria:
        text += f"{verb} all of them"
    else:
        text += f"{verb} those " + " or ".join(criteria)
        if rule.keep_newest is not None and not only_count:
            text += f", but always keep the newest {rule.keep_newest} ({unit})"
    if rule.older_than is not None or rule.keep_newest is not None or rule.max_total_size is not None:
        if rule.selector.for_entries:
            text += f"; ages by {'created' if rule.age == 'created' else 'last access'}"
        else:
            text += "; artifacts of unknown age are kept and reported"
    if rule.selector.for_entries:
        text += (" (never the newest index generation of a live ref, a live ref's buildkit-blob entries, "
                 "or the default branch's newest of a family)")
    return text + "."


def describe(policy: Policy) -> list[str]:
    """Lines describing the policy: source, protected patterns, rules in order, the fallback."""
    lines = [f"policy {policy.source}"]
    if policy.protect:
        lines.append(f"protected (always kept, whatever a rule says): {_quoted(policy.protect)}")
    else:
        lines.append("protected: nothing")
    if not policy.rules:
        lines.append("no rules: everything is kept")
    for i, rule in enumerate(policy.rules, 1):
        lines.append(describe_rule(i, rule))
    lines.append("anything no rule selects is kept; artifacts that could not be inspected are kept.")
    return lines
