"""planner.plan_inventory: referrer tags follow their subject; unresolved tags block deletes."""

from __future__ import annotations

from datetime import datetime, timezone

from ghcr_janitor.core.models import StoreTraits
from ghcr_janitor.plan.planner import plan_inventory
from ghcr_janitor.policy.loader import parse_policy
from tests.unit.test_plan import art, dg, inventory

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
STALE = parse_policy('[[rule]]\nname = "stale"\nselect = { tags = ["cache-*", "sha256-*"] }\n'
                     'older_than = "30d"\naction = "delete"\n', "test.toml")


def sig_tag(name: str, suffix: str = ".sig") -> str:
    return dg(name).replace(":", "-") + suffix


def actions(tp):
    return sorted((a.action, a.tag) for a in tp.actions)


def test_signature_of_kept_subject_is_kept_even_if_selected():
    inv = inventory({"latest": "img", sig_tag("img"): "sig"}, [art("img", {"l": 5}), art("sig", {"s": 1})])
    tp = plan_inventory(inv, STALE, NOW)
    assert actions(tp) == []
    assert any("belongs to kept subject" in k.reason for k in tp.kept)


def test_signature_of_deleted_subject_goes_with_it():
    tags = {"cache-old": "img", sig_tag("img"): "sig", sig_tag("img", ".att"): "att"}
    arts = [art("img", {"l": 5}), art("sig", {"s": 1}), art("att", {"a": 1})]
    tp = plan_inventory(inventory(tags, arts), STALE, NOW)              # --all-tags: all listed
    assert actions(tp) == sorted([("delete", "cache-old"), ("delete", sig_tag("img")), ("delete", sig_tag("img", ".att"))])
    # Unlisted referrer tags (default --tag cache-*) are left alone; protected ones too.
    assert actions(plan_inventory(inventory(tags, arts, listed=["cache-old"]), STALE, NOW)) == [("delete", "cache-old")]
    protecting = parse_policy('protect = ["sha256-*"]\n[[rule]]\nselect = { tags = ["cache-*"] }\n'
                              'older_than = "30d"\naction = "delete"\n', "p.toml")
    tp = plan_inventory(inventory(tags, arts), protecting, NOW)
    assert actions(tp) == [("delete", "cache-old")]
    assert any("protected by 'sha256-*'" in k.reason for k in tp.kept)


def test_orphaned_signature_deleted_only_where_every_manifest_is_listed():
    tags = {"cache-keep": "img", sig_tag("gone"): "sig"}
    arts = [art("img", {"l": 5}), art("sig", {"s": 1})]
    keep_policy = parse_policy('protect = ["cache-keep"]\n', "p.toml")
    oci = inventory(tags, arts)
    assert actions(plan_inventory(oci, keep_policy, NOW)) == []          # plain OCI: subject may be untagged
    ghcr = inventory(tags, arts)
    ghcr.backend, ghcr.traits = "ghcr", StoreTraits(lists_untagged=True)
    tp = plan_inventory(ghcr, keep_policy, NOW)
    assert actions(tp) == [("delete", sig_tag("gone"))]
    assert "orphaned" in tp.actions[0].reason
    # If anything failed to load, "the subject is gone" cannot be known.
    broken = inventory(tags, arts + [art("broken", {}, error="connection reset")])
    broken.backend, broken.traits = "ghcr", StoreTraits(lists_untagged=True)
    assert actions(plan_inventory(broken, keep_policy, NOW)) == []


def test_an_artifact_that_could_not_be_inspected_blocks_digest_deletes():
    """Its children are unknown: an untagged child of a kept-but-unreadable index must survive."""
    untagged_policy = parse_policy('[[rule]]\nselect = { untagged = true }\naction = "delete"\n'
                                   '[[rule]]\nselect = { tags = ["cache-*"] }\naction = "delete"\n', "p.toml")
    inv = inventory({"latest": "index", "cache-a": "x", "cache-b": "y", "cache-c": "y"},
                    [art("index", {}, error="GET failed: 503"), art("child", {"c": 9}), art("x", {"l": 1}),
                     art("y", {"l": 2})], untagged=["child"], listed=["cache-a", "cache-b", "latest"])
    inv.backend, inv.traits = "ghcr", StoreTraits(lists_untagged=True)
    tp = plan_inventory(inv, untagged_policy, NOW)
    assert actions(tp) == [("untag", "cache-b")]          # untags stay safe; no digest is deleted
    assert {k.digest for k in tp.kept} >= {dg("child"), dg("x")}
    assert any("could not be inspected" in e for e in tp.errors)


def test_unresolved_tags_block_deletes_but_not_untags():
    inv = inventory({"cache-a": "x", "cache-b": "y", "cache-keep": "y"},
                    [art("x", {"l1": 100}), art("y", {"l2": 100})], listed=["cache-a", "cache-b"])
    inv.unresolved = ["cache-mystery"]
    tp = plan_inventory(inv, STALE, NOW)
    assert actions(tp) == [("untag", "cache-b")]
    assert any("could not be learned" in k.reason and k.tag == "cache-a" for k in tp.kept)
    assert tp.errors and tp.reclaim_size == 0
