"""Read and validate policy TOML files; every problem is one PolicyError line naming file and key.

Schema (keys are checked; anything else is an error)::

    protect = ["cache-base", "v*"]          # fnmatch globs, case-sensitive
    [[rule]]
    name = "stale branch caches"            # optional, default "rule N"; unique
    select = { tags = ["cache-*-*"], regex = "cache-pr-[0-9]+", untagged = false, broken = false,
               not_pulled_for = "30d" }     # narrows: only images not pulled for 30d (ECR pull times)
    # or, for Actions-cache entries (gha: targets):
    # select = { keys = ["Linux-buildx-*"], key_regex = "...", refs = ["refs/pull/*"],
    #            ref_state = ["closed", "deleted"], kind = ["buildkit-index"] }
    per = ["family", "ref"]                 # Actions cache: keep_newest counted per group
    age = "created"                         # Actions cache: age by created (default: last_accessed)
    older_than = "30d"                      # optional duration
    keep_newest = 4                         # optional, >= 0, counted over distinct digests
    max_total_size = "20GiB"                # optional size (string or integer bytes)
    action = "delete"                       # required: "delete" or "retag"
    to = "archive-{tag}"                    # retag only (required there)

Rules are numbered from 1 in messages: `rule[2].older_than` is the second `[[rule]]`.
`regex` and `key_regex` are RE2 syntax, matched against the whole tag or key in linear time
(policy/regex.py); a pattern RE2 cannot run (backreferences, lookaround) is refused here.
The file itself is read only when regular and at most MAX_POLICY_BYTES.
"""

from __future__ import annotations

import tomllib
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from ghcr_janitor.core.errors import PolicyError
from ghcr_janitor.core.files import UnreadableFile, read_regular
from ghcr_janitor.core.models import CACHE_KINDS, KINDS, REF_STATES
from ghcr_janitor.policy import regex as policy_regex
from ghcr_janitor.policy import template
from ghcr_janitor.policy.model import ACTIONS, DELETE, RETAG, Policy, Rule, Selector
from ghcr_janitor.policy.units import parse_duration, parse_size

DEFAULT_SOURCE = "default.toml (packaged)"
_TOP_KEYS = ("protect", "rule")
_RULE_KEYS = ("name", "select", "older_than", "keep_newest", "max_total_size", "action", "to", "per", "age")
_SELECT_KEYS = ("tags", "regex", "untagged", "broken", "keys", "key_regex", "refs", "ref_state", "kind",
                "not_pulled_for")
_GROUP_LABELS = ("family", "ref", "scope", "kind", "version")
_AGES = ("last_accessed", "created")
MAX_POLICY_BYTES = 1 << 20      # policies are a few kB; a larger file is a mistake (or /dev/zero)


class _Invalid(Exception):
    """Internal: a problem at `key`; turned into PolicyError with the file name."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key
        self.message = message


def _type_name(value: Any) -> str:
    return {str: "a string", bool: "a boolean", int: "an integer", float: "a number",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_keys(table: dict, allowed: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in allowed:
            name = f"{where}.{key}" if where else str(key)
            raise _Invalid(name, f"unknown key (allowed: {', '.join(allowed)})")


def _string_list(value: Any, key: str, what: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Invalid(key, f"expected an array of {what}, got {_type_name(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise _Invalid(f"{key}[{i + 1}]", f"expected a string, got {_type_name(item)}")
        if not item.strip():
            raise _Invalid(f"{key}[{i + 1}]", "empty pattern")
    return tuple(value)


def _duration(table: dict, name: str, where: str) -> "timedelta | None":
    """`table[name]` as a timedelta (None when absent); a bad value names `where.name`."""
    if name not in table:
        return None
    try:
        return parse_duration(table[name])
    except ValueError as exc:
        raise _Invalid(f"{where}.{name}", str(exc)) from None


def _selector(value: Any, where: str, action: str, rule_name: str) -> Selector:
    """The `select` table of rule `where`, named `rule_name` (see the module docstring for its keys)."""
    key = f"{where}.select"
    if not isinstance(value, dict):
        raise _Invalid(key, f"expected a table like {{ tags = [\"cache-*\"] }}, got {_type_name(value)}")
    _check_keys(value, _SELECT_KEYS, key)
    tags: tuple[str, ...] = ()
    if "tags" in value:
        tags = _string_list(value["tags"], f"{key}.tags", "tag globs")
        if not tags:
            raise _Invalid(f"{key}.tags", "empty list selects nothing (give at least one glob, e.g. \"cache-*\")")
    regex = _regex(value, "regex", key, rule_name)
    keys = _globs(value, "keys", key, "key globs", "\"Linux-buildx-*\"")
    refs = _globs(value, "refs", key, "ref globs", "\"refs/pull/*\"")
    key_regex = _regex(value, "key_regex", key, rule_name)
    ref_state = _choices(value, "ref_state", key, REF_STATES)
    kind = _choices(value, "kind", key, KINDS + CACHE_KINDS)
    untagged = value.get("untagged", False)
    if not isinstance(untagged, bool):
        raise _Invalid(f"{key}.untagged", f"expected true or false, got {_type_name(untagged)}")
    broken = value.get("broken", False)
    if not isinstance(broken, bool):
        raise _Invalid(f"{key}.broken", f"expected true or false, got {_type_name(broken)}")
    not_pulled_for = _duration(value, "not_pulled_for", key)
    selector = Selector(tags=tags, regex=regex, untagged=untagged, broken=broken, keys=keys, key_regex=key_regex,
                        refs=refs, ref_state=ref_state, kind=kind, not_pulled_for=not_pulled_for)
    if not_pulled_for is not None and selector.for_entries:
        raise _Invalid(f"{key}.not_pulled_for", "Actions-cache entries have no pull times: their rules age by last "
                                                "access already (older_than, with age = \"last_accessed\")")
    if not_pulled_for is not None and not selector.for_registry:
        raise _Invalid(f"{key}.not_pulled_for", "narrows a selection: give tags = [...], regex = \"...\" or "
                                                "untagged = true too")
    if not selector.for_registry and not selector.for_entries:
        raise _Invalid(key, "selects nothing: give tags = [...], regex = \"...\", untagged = true or broken = true "
                            "(registries), or keys, key_regex, refs, ref_state, kind (the Actions cache)")
    if selector.for_registry and selector.for_entries:
        raise _Invalid(key, "a rule selects registry tags (tags, regex, untagged, broken) or Actions-cache entries "
                            "(keys, key_regex, refs, ref_state, a cache kind), not both: write two rules")
    if selector.for_entries and set(kind) - set(CACHE_KINDS):
        raise _Invalid(f"{key}.kind", f"{sorted(set(kind) - set(CACHE_KINDS))[0]!r} is not an Actions-cache kind "
                                      f"({', '.join(CACHE_KINDS)})")
    if selector.for_registry and set(kind) & set(CACHE_KINDS):
        raise _Invalid(f"{key}.kind", "Actions-cache kinds do not go with tags, regex, untagged or broken")
    if untagged and action == RETAG:
        raise _Invalid(f"{key}.untagged", "a retag rule cannot select untagged artifacts")
    if broken and action == RETAG:
        raise _Invalid(f"{key}.broken", "a retag rule cannot select broken images (retag keeps them broken)")
    if selector.for_entries and action == RETAG:
        raise _Invalid(f"{where}.action", "Actions-cache entries cannot be retagged: use action = \"delete\"")
    return selector


def _regex(value: dict, name: str, key: str, rule_name: str) -> str | None:
    """A regex RE2 can run (linear time: a tag or cache key cannot hang the run), or _Invalid."""
    regex = value.get(name)
    if regex is None:
        return None
    if not isinstance(regex, str) or not regex:
        raise _Invalid(f"{key}.{name}", f"expected a non-empty string, got {_short(regex)}")
    problem = policy_regex.check(regex)
    if problem is not None:
        raise _Invalid(f"{key}.{name}", f"{problem} (rule {rule_name!r})")
    return regex


def _globs(value: dict, name: str, key: str, what: str, example: str) -> tuple[str, ...]:
    if name not in value:
        return ()
    globs = _string_list(value[name], f"{key}.{name}", what)
    if not globs:
        raise _Invalid(f"{key}.{name}", f"empty list selects nothing (give at least one glob, e.g. {example})")
    return globs


def _choices(value: dict, name: str, key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if name not in value:
        return ()
    raw = value[name]
    items = _string_list([raw] if isinstance(raw, str) else raw, f"{key}.{name}", "names")
    if not items:
        raise _Invalid(f"{key}.{name}", f"empty list selects nothing (one of {', '.join(allowed)})")
    for i, item in enumerate(items):
        if item not in allowed:
            raise _Invalid(f"{key}.{name}[{i + 1}]", f"unknown {name} {_short(item)} (one of {', '.join(allowed)})")
    return items


def _rule(table: Any, index: int, names: set[str]) -> Rule:
    where = f"rule[{index}]"
    if not isinstance(table, dict):
        raise _Invalid(where, f"expected a table ([[rule]]), got {_type_name(table)}")
    _check_keys(table, _RULE_KEYS, where)
    name = table.get("name", f"rule {index}")
    if not isinstance(name, str) or not name.strip():
        raise _Invalid(f"{where}.name", f"expected a non-empty string, got {_short(name)}")
    if name in names:
        raise _Invalid(f"{where}.name", f"duplicate rule name {name!r}")
    names.add(name)
    if "action" not in table:
        raise _Invalid(f"{where}.action", "missing (use action = \"delete\" or \"retag\")")
    action = table["action"]
    if action not in ACTIONS or not isinstance(action, str):
        raise _Invalid(f"{where}.action", f"unknown action {_short(action)} (use \"delete\" or \"retag\")")
    if "select" not in table:
        raise _Invalid(f"{where}.select", "missing (e.g. select = { tags = [\"cache-*-*\"] })")
    selector = _selector(table["select"], where, action, name)
    older_than = _duration(table, "older_than", where)
    keep_newest = table.get("keep_newest")
    if keep_newest is not None and (isinstance(keep_newest, bool) or not isinstance(keep_newest, int)):
        raise _Invalid(f"{where}.keep_newest", f"expected an integer, got {_type_name(keep_newest)}")
    if keep_newest is not None and keep_newest < 0:
        raise _Invalid(f"{where}.keep_newest", f"must be 0 or more, got {keep_newest}")
    max_total_size = None
    if "max_total_size" in table:
        try:
            max_total_size = parse_size(table["max_total_size"])
        except ValueError as exc:
            raise _Invalid(f"{where}.max_total_size", str(exc)) from None
    to = table.get("to")
    if action == DELETE and "to" in table:
        raise _Invalid(f"{where}.to", "only a retag rule takes `to` (this rule deletes)")
    if action == RETAG:
        if to is None:
            raise _Invalid(f"{where}.to", "missing: a retag rule needs to = \"TEMPLATE\" (e.g. \"archive-{tag}\")")
        if not isinstance(to, str):
            raise _Invalid(f"{where}.to", f"expected a string, got {_type_name(to)}")
        try:
            template.validate(to)
        except ValueError as exc:
            raise _Invalid(f"{where}.to", str(exc)) from None
    per: tuple[str, ...] = ()
    if "per" in table:
        if not selector.for_entries:
            raise _Invalid(f"{where}.per", "only Actions-cache rules group keep_newest (registries count per rule)")
        if keep_newest is None:
            raise _Invalid(f"{where}.per", "groups keep_newest: give keep_newest = N too")
        per = _choices(table, "per", where, _GROUP_LABELS)
    age = table.get("age")
    if age is not None:
        if not selector.for_entries:
            raise _Invalid(f"{where}.age", "only Actions-cache rules choose their age (registries use created)")
        if age not in _AGES:
            raise _Invalid(f"{where}.age", f"unknown age {_short(age)} (one of {', '.join(_AGES)})")
    return Rule(name=name, selector=selector, older_than=older_than, keep_newest=keep_newest,
                max_total_size=max_total_size, action=action, to=to, per=per, age=age)


def parse_policy(text: str, source: str) -> Policy:
    """Validate TOML text; PolicyError (one line, naming `source` and the key) on any problem."""
    try:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise _Invalid("", f"invalid TOML: {exc}") from None
        _check_keys(data, _TOP_KEYS, "")
        protect = _string_list(data.get("protect", []), "protect", "tag globs")
        rules_raw = data.get("rule", [])
        if not isinstance(rules_raw, list):
            raise _Invalid("rule", f"expected [[rule]] tables, got {_type_name(rules_raw)}")
        names: set[str] = set()
        rules = tuple(_rule(table, i + 1, names) for i, table in enumerate(rules_raw))
        return Policy(source=source, protect=protect, rules=rules)
    except _Invalid as exc:
        prefix = f"{source}: {exc.key}: " if exc.key else f"{source}: "
        raise PolicyError(_one_line(prefix + exc.message)) from None
    except PolicyError:
        raise
    except Exception as exc:  # a safety net: the loader must only ever raise PolicyError
        raise PolicyError(_one_line(f"{source}: invalid policy: {type(exc).__name__}: {exc}")) from None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file."""
    source = str(path)
    try:
        raw = read_regular(path, MAX_POLICY_BYTES)
    except UnreadableFile as exc:
        raise PolicyError(_one_line(f"{source}: cannot read policy file: {exc.why}")) from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PolicyError(_one_line(f"{source}: cannot read policy file: {reason}")) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    return parse_policy(text, source)


def default_policy_text() -> str:
    """The packaged default policy's TOML (same bytes as policies/default.toml)."""
    return resources.files("ghcr_janitor").joinpath("policies/default.toml").read_text(encoding="utf-8")


def load_default_policy() -> Policy:
    """The policy used when no --policy is given."""
    try:
        text = default_policy_text()
    except (OSError, ValueError) as exc:  # broken install
        raise PolicyError(f"{DEFAULT_SOURCE}: cannot read packaged default policy: {exc}") from None
    return parse_policy(text, DEFAULT_SOURCE)
