"""planner.plan_inventory: referrer tags follow their subject; unresolved tags block deletes."""

from __future__ import annotations

from datetime import datetime, timezone

from ghcr_janitor.planner import plan_inventory
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
    inv = inventory({"cache-old": "img", sig_tag("img"): "sig", sig_tag("img", ".att"): "att"},
                    [art("img", {"l": 5}), art("sig", {"s": 1}), art("att", {"a": 1})], listed=["cache-old"])
    tp = plan_inventory(inv, STALE, NOW)
    assert actions(tp) == sorted([("delete", "cache-old"), ("delete", sig_tag("img")), ("delete", sig_tag("img", ".att"))])


def test_orphaned_signature_deleted_only_where_every_manifest_is_listed():
    tags = {"cache-keep": "img", sig_tag("gone"): "sig"}
    arts = [art("img", {"l": 5}), art("sig", {"s": 1})]
    keep_policy = parse_policy('protect = ["cache-keep"]\n', "p.toml")
    oci = inventory(tags, arts, listed=["cache-keep"])
    assert actions(plan_inventory(oci, keep_policy, NOW)) == []          # plain OCI: subject may be untagged
    ghcr = inventory(tags, arts, listed=["cache-keep"])
    ghcr.backend = "ghcr"
    tp = plan_inventory(ghcr, keep_policy, NOW)
    assert actions(tp) == [("delete", sig_tag("gone"))]
    assert "orphaned" in tp.actions[0].reason


def test_unresolved_tags_block_deletes_but_not_untags():
    inv = inventory({"cache-a": "x", "cache-b": "y", "cache-keep": "y"},
                    [art("x", {"l1": 100}), art("y", {"l2": 100})], listed=["cache-a", "cache-b"])
    inv.unresolved = ["cache-mystery"]
    tp = plan_inventory(inv, STALE, NOW)
    assert actions(tp) == [("untag", "cache-b")]
    assert any("could not be learned" in k.reason and k.tag == "cache-a" for k in tp.kept)
    assert tp.errors and tp.reclaim_size == 0
