"""A run restricted to one tag (`REPO:TAG`): what the plan holds, what the plan file accepts,
which targets may say `:TAG` / `@DIGEST` (issue 20, point 7)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from ghcr_janitor.core.models import StoreTraits
from ghcr_janitor.core.errors import PlanError, UsageError
from ghcr_janitor.core.reference import parse_run_target, parse_target
from ghcr_janitor.plan import only_tag as restrict
from ghcr_janitor.plan.file import parse_plan
from ghcr_janitor.plan.model import Plan, new_plan
from ghcr_janitor.plan.planner import plan_inventory
from ghcr_janitor.policy.loader import parse_policy
from tests.unit.test_plan import art, dg, inventory
from tests.unit.test_planner import STALE, sig_tag

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
ALL_OLD = parse_policy('[[rule]]\nname = "old"\nselect = { tags = ["*"] }\nolder_than = "30d"\naction = "delete"\n'
                       '[[rule]]\nname = "untagged"\nselect = { untagged = true }\nolder_than = "1d"\naction = "delete"\n',
                       "p.toml")


def actions(tp):
    return [(a.action, a.tag, a.digest) for a in tp.actions]


def test_only_the_named_tags_actions_and_kept_entry():
    inv = inventory({"cache-a": "a", "cache-b": "b", "keep-me": "k"}, [art("a", {"la": 5}), art("b", {"lb": 7}),
                    art("k", {}), art("loose", {"ll": 3})], untagged=["loose"])
    whole = plan_inventory(inv, ALL_OLD, NOW)
    assert {a.tag for a in whole.actions} == {"cache-a", "cache-b", "keep-me", None}
    tp = plan_inventory(inv, ALL_OLD, NOW, only_tag="cache-b")
    assert actions(tp) == [("delete", "cache-b", dg("b"))]
    assert tp.reclaim_size == tp.actions[0].reclaim_size == 10 + 7
    assert tp.only_tag == "cache-b" and tp.kept == [] and tp.errors == []


def test_a_digest_another_tag_keeps_is_untagged_not_deleted():
    inv = inventory({"cache-a": "a", "cache-a2": "a"}, [art("a", {"l": 5})])
    assert [a.action for a in plan_inventory(inv, ALL_OLD, NOW).actions] == ["delete", "delete"]
    tp = plan_inventory(inv, ALL_OLD, NOW, only_tag="cache-a")
    assert [(a.action, a.tag, a.reclaim_size) for a in tp.actions] == [("untag", "cache-a", 0)]
    assert tp.reclaim_size == 0


def test_the_tag_is_decided_whatever_the_listing_filter_says():
    inv = inventory({"cache-a": "a", "latest": "l"}, [art("a", {}), art("l", {})], listed=["cache-a"])
    tp = plan_inventory(inv, ALL_OLD, NOW, only_tag="latest")
    assert actions(tp) == [("delete", "latest", dg("l"))]
    assert tp.warnings == []           # the filter's "rule matches tags it leaves out" is not this run's


def test_what_follows_the_tags_artifact_goes_with_it_nothing_else_untagged():
    child = art("child", {"lc": 4})
    index = art("idx", {"child": 10})
    index.closure.update(child.closure)
    inv = inventory({"cache-x": "idx"}, [index, child, art("loose", {"ll": 3})], untagged=["loose"])
    inv.backend, inv.traits = "ghcr", StoreTraits(lists_untagged=True)
    tp = plan_inventory(inv, ALL_OLD, NOW, only_tag="cache-x")
    assert actions(tp) == [("delete", "cache-x", dg("idx")), ("delete", None, dg("child"))]
    assert tp.actions[1].parent == dg("idx")


def test_a_referrer_tag_of_a_subject_this_run_keeps_is_kept():
    tags = {"cache-old": "img", sig_tag("img"): "sig"}
    inv = inventory(tags, [art("img", {"l": 5}), art("sig", {"s": 1})])
    assert {a.tag for a in plan_inventory(inv, STALE, NOW).actions} == {"cache-old", sig_tag("img")}
    tp = plan_inventory(inv, STALE, NOW, only_tag=sig_tag("img"))
    assert tp.actions == []
    assert [k.tag for k in tp.kept] == [sig_tag("img")] and "kept subject" in tp.kept[0].reason


def test_a_tag_the_repository_lacks_is_an_error_of_the_target():
    inv = inventory({"cache-a": "a"}, [art("a", {})])
    tp = plan_inventory(inv, ALL_OLD, NOW, only_tag="cache-zz")
    assert tp.actions == [] and tp.errors == ["no tag 'cache-zz' in this repository"]


def test_listing_shows_the_tag_only():
    inv = inventory({"cache-a": "a", "cache-b": "b"}, [art("a", {}), art("b", {}), art("u", {})], untagged=["u"])
    shown = restrict.for_listing(inv, "cache-b")
    assert (shown.listed, shown.untagged) == (["cache-b"], [])
    assert (inv.listed, inv.untagged) == (["cache-a", "cache-b"], [dg("u")])      # the original is untouched
    assert restrict.for_listing(inv, "nope").listed == []


def _plan_dict(only_tag, action_tag="cache-x"):
    tp = {"target": "t", "reclaim_size": 0, "kept": [],
          "actions": [{"action": "delete", "tag": action_tag, "digest": dg("x"), "to": None, "reclaim_size": 0,
                       "rule": "r", "reason": "why"}]}
    if only_tag is not ...:
        tp["only_tag"] = only_tag
    return {"plan_version": 1, "created": "2026-11-01T10:00:00Z", "policy": "p", "targets": [tp]}


def test_plan_file_carries_only_tag_and_keeps_a_restricted_plan_restricted():
    plan = parse_plan(_plan_dict("cache-x"))
    assert plan.targets[0].only_tag == "cache-x"
    again = new_plan("p", plan.targets, NOW)
    assert parse_plan(json.loads(json.dumps(again.to_dict()))).targets[0].only_tag == "cache-x"
    assert parse_plan(_plan_dict(...)).targets[0].only_tag is None            # older plans
    with pytest.raises(PlanError, match=r"targets\[0\]\.actions\[0\]\.tag: the plan is restricted to tag 'cache-x'"):
        parse_plan(_plan_dict("cache-x", action_tag="cache-other"))
    with pytest.raises(PlanError, match=r"targets\[0\]\.only_tag: invalid tag"):
        parse_plan(_plan_dict("bad tag"))


def test_run_targets_take_a_tag_but_no_digest():
    assert parse_run_target("127.0.0.1:5000/acme/app:cache-x").tag == "cache-x"
    assert parse_run_target("oci-layout:/nonexistent/dir:cache-x").tag == "cache-x"
    digest = dg("x")
    assert parse_target(f"127.0.0.1:5000/acme/app@{digest}").digest == digest      # inspect's
    for text in (f"127.0.0.1:5000/acme/app@{digest}", f"127.0.0.1:5000/acme/app:cache-x@{digest}"):
        with pytest.raises(UsageError, match="@DIGEST names one artifact, for `janitor inspect`"):
            parse_run_target(text)
    with pytest.raises(UsageError, match="a glob target takes no :TAG or @DIGEST"):
        parse_run_target("ghcr.io/acme/*:cache-x")
    with pytest.raises(UsageError, match="a gha: target takes no :TAG or @DIGEST"):
        parse_run_target("gha:acme/app:cache-x")
    with pytest.raises(UsageError, match="a gha: target takes no :TAG or @DIGEST"):
        parse_run_target(f"gha:acme/app@{digest}")
