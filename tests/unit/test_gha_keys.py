"""The Actions cache's facts from keys alone, ref states, keep order, and cache rules in policies."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from ghcr_janitor.stores.gha.store import CacheStore
from ghcr_janitor.cli.common import exit_code_for
from ghcr_janitor.core.errors import PolicyError
from ghcr_janitor.policy.loader import parse_policy
from ghcr_janitor.stores.gha.gather import keep_rank, ref_states
from ghcr_janitor.stores.gha.keys import BUILDKIT_VERSION, classify, family_of, ref_hash

MAIN = "refs/heads/main"
SHA = "0123456789abcdef0123456789abcdef01234567"


def test_ref_hash_matches_buildkit():
    assert ref_hash(MAIN) == "f921bd05" == hashlib.sha256(MAIN.encode()).hexdigest()[:8]
    assert ref_hash("refs/heads/m5-gate2") == "0a5bff13"        # seen in a third-party listing


@pytest.mark.parametrize("key,ref,kind,scope,generation,sig", [
    ("index-buildkit-1-f921bd05#12", MAIN, "buildkit-index", "buildkit", 12, False),
    ("index-my-app-build-1-f921bd05#3", MAIN, "buildkit-index", "my-app-build", 3, False),   # scope with dashes
    ("index-web-1-1-f921bd05-sig#7", MAIN, "buildkit-index", "web-1", 7, True),
    ("buildkit-blob-1-sha256:" + "a" * 64, MAIN, "buildkit-blob", None, None, False),
    ("buildkit-blob-1-sha256:" + "b" * 64 + "-sig", MAIN, "buildkit-blob", None, None, True),
])
def test_buildkit_key_grammar(key, ref, kind, scope, generation, sig):
    facts = classify(key, BUILDKIT_VERSION, ref)
    assert (facts.kind, facts.scope, facts.generation, facts.sig, facts.foreign) == (kind, scope, generation, sig, False)


def test_not_buildkit_without_its_version_or_with_another_refs_hash():
    assert classify("index-buildkit-1-f921bd05#12", "0" * 64, MAIN).kind == "actions-cache"
    assert classify("buildkit-blob-1-sha256:" + "a" * 64, "0" * 64, MAIN).kind == "actions-cache"
    foreign = classify("index-buildkit-1-f921bd05#12", BUILDKIT_VERSION, "refs/heads/dev")
    assert (foreign.kind, foreign.foreign) == ("actions-cache", True)
    assert classify("index-buildkit-1-f921bd05", BUILDKIT_VERSION, MAIN).kind == "actions-cache"   # no generation
    assert classify("buildkit-blob-1-sha256:abc", BUILDKIT_VERSION, MAIN).kind == "actions-cache"


@pytest.mark.parametrize("key,family", [
    (f"Linux-buildx-{SHA}", "Linux-buildx-"),
    (f"Windows-node-{hashlib.sha256(b'lock').hexdigest()}", "Windows-node-"),
    ("build-cache-9876543210", "build-cache-"),              # a run id
    ("build-cache-1234", "build-cache-1234"),                # short numbers are versions, not runs
    ("Linux-node-18", "Linux-node-18"),
    ("pip-3.12", "pip-3.12"),
    ("deps-ubuntu-22.04", "deps-ubuntu-22.04"),
    ("node-modules", "node-modules"),
    ("v2", "v2"),                                   # a digit without a separator is part of the name
    ("index-buildkit-1-f921bd05#12", "index-buildkit-1-f921bd05"),
    (SHA, SHA),                                     # nothing left: the key is its own family
])
def test_family_strips_a_per_commit_or_per_run_suffix(key, family):
    assert family_of(key) == family


class FakeApi:
    def __init__(self, branches, pulls, tags=()):
        self.branches, self.pulls, self.tags, self.calls = set(branches), dict(pulls), set(tags), []

    async def exists(self, path):
        self.calls.append(path)
        if path.startswith("/branches/"):
            name = path[len("/branches/"):].replace("%2F", "/")
            return None if name == "flaky" else name in self.branches
        return path.rsplit("/", 1)[1] in self.tags

    async def pull_state(self, number):
        self.calls.append(f"/pulls/{number}")
        return self.pulls.get(number)


def test_ref_states_one_call_per_distinct_ref_and_none_for_the_default():
    api = FakeApi({"feature/x", "main"}, {7: "open", 5: "closed"}, tags={"v1"})
    refs = {MAIN, "refs/heads/feature/x", "refs/heads/gone", "refs/pull/7/merge", "refs/pull/5/merge",
            "refs/pull/9/merge", "refs/tags/v1", "refs/heads/flaky", "weird"}
    states = asyncio.run(ref_states(api, refs, "main"))
    assert states == {MAIN: "default", "refs/heads/feature/x": "live", "refs/heads/gone": "deleted",
                      "refs/pull/7/merge": "live", "refs/pull/5/merge": "closed", "refs/pull/9/merge": "unknown",
                      "refs/tags/v1": "live", "refs/heads/flaky": "unknown", "weird": "unknown"}
    # One call per ref outside the default branch and "weird", plus one probe of the default branch.
    assert len(api.calls) == len(refs) - 2 + 1 and len(set(api.calls)) == len(api.calls)


def test_a_token_that_cannot_see_branches_makes_them_unknown_not_deleted():
    api = FakeApi(set(), {5: "closed"})                # every branch answers 404, even the default one
    states = asyncio.run(ref_states(api, {MAIN, "refs/heads/feature/x", "refs/pull/5/merge"}, "main"))
    assert states == {MAIN: "default", "refs/heads/feature/x": "unknown", "refs/pull/5/merge": "closed"}


def test_keep_rank_is_the_order_a_person_would_keep_things():
    order = [keep_rank("buildkit-index", "default", True), keep_rank("buildkit-blob", "default", False),
             keep_rank("actions-cache", "live", True), keep_rank("buildkit-blob", "live", False),
             keep_rank("buildkit-index", "live", False), keep_rank("buildkit-blob", "closed", False)]
    assert order == sorted(order) and order[0] == 0 and order[-1] == 4
    assert keep_rank("actions-cache", "unknown", True) == keep_rank("actions-cache", "live", True)


@pytest.mark.parametrize("select,extra,problem", [
    ('{ ref_state = ["gone"] }', "", "rule[1].select.ref_state[1]: unknown ref_state 'gone'"),
    ('{ kind = ["blob"] }', "", "rule[1].select.kind[1]: unknown kind 'blob'"),
    ('{ keys = [] }', "", "rule[1].select.keys: empty list"),
    ('{ key_regex = "(" }', "", "rule[1].select.key_regex: invalid regex"),
    ('{ tags = ["cache-*"], refs = ["refs/pull/*"] }', "", "not both"),
    ('{ kind = ["buildkit-index", "image"] }', "", "'image' is not an Actions-cache kind"),
    ('{ tags = ["cache-*"] }', 'per = ["ref"]\nkeep_newest = 1', "rule[1].per: only Actions-cache rules"),
    ('{ kind = ["actions-cache"] }', 'per = ["ref"]', "rule[1].per: groups keep_newest"),
    ('{ kind = ["actions-cache"] }', 'per = ["branch"]\nkeep_newest = 1', "rule[1].per[1]: unknown per 'branch'"),
    ('{ kind = ["actions-cache"] }', 'age = "accessed"', "rule[1].age: unknown age"),
    ('{ tags = ["cache-*"] }', 'age = "created"', "rule[1].age: only Actions-cache rules"),
])
def test_cache_rule_mistakes_are_one_line_errors(select, extra, problem):
    text = f'[[rule]]\nname = "r"\nselect = {select}\n{extra}\naction = "delete"\n'
    with pytest.raises(PolicyError) as err:
        parse_policy(text, "p.toml")
    assert problem in str(err.value) and "\n" not in str(err.value) and exit_code_for(err.value) == 2


def test_a_cache_rule_cannot_retag():
    with pytest.raises(PolicyError, match="cannot be retagged"):
        parse_policy('[[rule]]\nselect = { kind = ["actions-cache"] }\naction = "retag"\nto = "x"\n', "p.toml")


def test_a_budget_evicts_dead_refs_first_then_old_generations_then_lru_and_the_default_newest_last():
    from datetime import datetime, timedelta, timezone

    from ghcr_janitor.core.models import Inventory, cache_item_id
    from ghcr_janitor.plan.build import build_target_plan
    from ghcr_janitor.policy import evaluate
    from ghcr_janitor.stores.gha.api import CacheEntry
    from ghcr_janitor.stores.gha.gather import newest_of_groups, to_item

    now = datetime(2026, 11, 20, tzinfo=timezone.utc)
    day = timedelta(days=1)
    plain = "v" * 64
    rows = [  # (id, key, ref, age in days): every entry 100 bytes
        (1, f"Linux-buildx-{'1' * 40}", MAIN, 1),              # default branch, newest of its family
        (2, f"Linux-buildx-{'2' * 40}", MAIN, 5),              # default branch, older member
        (3, f"Linux-buildx-{'3' * 40}", "refs/heads/dev", 0),  # live branch, newest
        (4, f"Linux-buildx-{'4' * 40}", "refs/heads/dev", 9),  # live branch, older member
        (5, f"Linux-buildx-{'5' * 40}", "refs/pull/9/merge", 0),   # closed pull request, used today
    ]
    states = {MAIN: "default", "refs/heads/dev": "live", "refs/pull/9/merge": "closed"}
    entries = [CacheEntry(i, key, ref, plain, 100, now - age * day, now - age * day) for i, key, ref, age in rows]
    classified = [(e, classify(e.key, e.version, e.ref)) for e in entries]
    newest = newest_of_groups(classified)
    items = {cache_item_id(e.id): to_item(e, f, states[e.ref], e.id in newest) for e, f in classified}
    inv = Inventory(target="gha:acme/app", tags={}, artifacts=items, untagged=sorted(items), backend="gha",
                     traits=CacheStore.traits)
    policy = parse_policy('[[rule]]\nname = "budget"\nselect = { kind = ["actions-cache"] }\n'
                          'max_total_size = 250\naction = "delete"\n', "p.toml")
    plan = build_target_plan(inv, evaluate(inv, policy, now))
    # Kept while they fit, in keep order: 1 (default newest), 3 (live newest); then over budget:
    # the older members and the closed pull request's entry, although it was used most recently.
    assert sorted(a.cache_id for a in plan.actions) == [2, 4, 5]
    tight = parse_policy('[[rule]]\nname = "budget"\nselect = { kind = ["actions-cache"] }\n'
                         'max_total_size = 0\naction = "delete"\n', "p.toml")
    plan = build_target_plan(inv, evaluate(inv, tight, now))
    assert 1 not in {a.cache_id for a in plan.actions}          # the floor: the default branch's newest stays
