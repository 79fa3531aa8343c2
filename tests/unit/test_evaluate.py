"""Pure evaluation: each criterion, their combinations, reasons, unknown ages, protection."""

import hashlib
from datetime import datetime, timedelta, timezone

import pytest

from ghcr_janitor.core.models import Artifact, Inventory
from ghcr_janitor.policy import Decision, Policy, evaluate
from ghcr_janitor.policy.model import Rule, Selector

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
GIB = 1024**3


def dg(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def days_ago(n: float | None) -> datetime | None:
    return None if n is None else NOW - timedelta(days=n)


def make_inventory(tags: dict[str, tuple[str, float | None]], sizes: dict[str, dict[str, int]] | None = None,
                   untagged: dict[str, float | None] | None = None, errors: dict[str, str] | None = None,
                   listed: list[str] | None = None) -> Inventory:
    """tags: tag -> (artifact name, age in days or None); sizes: artifact -> {blob name: size}."""
    sizes, untagged, errors = sizes or {}, untagged or {}, errors or {}
    ages = {name: age for name, age in tags.values()} | dict(untagged)
    artifacts = {}
    for name, age in ages.items():
        closure = {dg(name): 10} | {dg(b): s for b, s in sizes.get(name, {}).items()}
        artifacts[dg(name)] = Artifact(digest=dg(name), media_type="application/vnd.oci.image.index.v1+json",
                                       kind="buildkit-cache", closure=closure, created=days_ago(age),
                                       age_source=None if age is None else "buildkit/createdat",
                                       error=errors.get(name))
    return Inventory(target="localhost:5000/acme/app", tags={t: dg(a) for t, (a, _) in tags.items()},
                     artifacts=artifacts, listed=sorted(tags) if listed is None else listed,
                     untagged=[dg(n) for n in untagged])


def policy(*rules: Rule, protect: tuple[str, ...] = ()) -> Policy:
    return Policy(source="test.toml", protect=protect, rules=rules)


def rule(name="r", tags=("cache-*",), regex=None, untagged=False, **kw) -> Rule:
    return Rule(name=name, selector=Selector(tags=tuple(tags), regex=regex, untagged=untagged), **kw)


def by_tag(decisions: list[Decision]) -> dict:
    return {d.tag if d.tag is not None else d.digest: d for d in decisions}


def actions(decisions: list[Decision]) -> dict:
    return {k: d.action for k, d in by_tag(decisions).items()}


def test_no_rule_matched_and_protect():
    inv = make_inventory({"latest": ("a", 100), "cache-base": ("b", 100), "cache-x": ("c", 100)})
    out = by_tag(evaluate(inv, policy(rule(), protect=("cache-base",)), NOW))
    assert out["latest"] == Decision("latest", dg("a"), "keep", "no rule matched")
    assert out["cache-base"].reason == "protected by 'cache-base'" and out["cache-base"].rule is None
    assert out["cache-x"].action == "delete" and out["cache-x"].rule == "r"
    assert out["cache-x"].reason == "selected (rule has no criteria: every match is acted on)"


def test_protect_wins_over_matching_glob():
    inv = make_inventory({"cache-python-deps": ("a", 400), "cache-python-deps-main": ("b", 400)})
    pol = policy(rule(tags=("cache-*-*",), older_than=timedelta(days=30)), protect=("cache-python-deps",))
    assert actions(evaluate(inv, pol, NOW)) == {"cache-python-deps": "keep", "cache-python-deps-main": "delete"}


def test_first_protect_pattern_is_named():
    inv = make_inventory({"v1.2": ("a", 1)})
    out = evaluate(inv, policy(rule(tags=("*",)), protect=("latest", "v*", "v1.*")), NOW)
    assert out[0].reason == "protected by 'v*'"


def test_older_than_reason():
    inv = make_inventory({"cache-old": ("a", 92.5), "cache-new": ("b", 3)})
    out = by_tag(evaluate(inv, policy(rule(older_than=timedelta(days=30))), NOW))
    assert out["cache-old"].action == "delete"
    assert out["cache-old"].reason == "older than 30d: created 2026-08-01 (buildkit/createdat)"
    assert out["cache-new"].action == "keep"
    assert out["cache-new"].reason == "newer than 30d: created 2026-10-29 (buildkit/createdat)"


def test_unknown_age_never_acted_on_by_older_than():
    inv = make_inventory({"cache-x": ("a", None)})
    out = evaluate(inv, policy(rule(older_than=timedelta(days=1))), NOW)
    assert out[0].action == "keep" and "age unknown" in out[0].reason and "older_than=1d" in out[0].reason


def test_unknown_age_is_acted_on_by_a_rule_without_criteria():
    inv = make_inventory({"cache-pr-1": ("a", None)})
    assert evaluate(inv, policy(rule()), NOW)[0].action == "delete"


def test_keep_newest_only():
    inv = make_inventory({f"cache-{i}": (f"a{i}", i) for i in range(6)})
    out = by_tag(evaluate(inv, policy(rule(keep_newest=4)), NOW))
    assert [out[f"cache-{i}"].action for i in range(6)] == ["keep"] * 4 + ["delete"] * 2
    assert out["cache-0"].reason == "within keep_newest=4"
    assert out["cache-5"].reason == "beyond keep_newest=4"


def test_keep_newest_counts_distinct_digests():
    # cache-a and cache-b share the newest digest: they take one slot.
    inv = make_inventory({"cache-a": ("x", 1), "cache-b": ("x", 1), "cache-c": ("y", 2), "cache-d": ("z", 3)})
    assert actions(evaluate(inv, policy(rule(keep_newest=2)), NOW)) == {
        "cache-a": "keep", "cache-b": "keep", "cache-c": "keep", "cache-d": "delete"}


def test_keep_newest_zero_acts_on_all():
    inv = make_inventory({"cache-a": ("x", 1)})
    assert evaluate(inv, policy(rule(keep_newest=0)), NOW)[0].action == "delete"


def test_unknown_age_sorts_newest_and_is_kept():
    inv = make_inventory({"cache-u": ("u", None), "cache-a": ("a", 1), "cache-b": ("b", 2)})
    out = by_tag(evaluate(inv, policy(rule(keep_newest=1)), NOW))
    assert out["cache-u"].reason == "within keep_newest=1"
    assert out["cache-a"].action == "delete" and out["cache-b"].action == "delete"


def test_unknown_age_beyond_keep_newest_is_kept_and_reported():
    inv = make_inventory({"cache-u": ("u", None), "cache-v": ("v", None)})
    out = by_tag(evaluate(inv, policy(rule(keep_newest=1)), NOW))
    assert out["cache-u"].reason == "within keep_newest=1"  # tie broken by tag name
    assert out["cache-v"].action == "keep" and "age unknown" in out["cache-v"].reason


def test_keep_newest_is_a_floor_for_older_than():
    inv = make_inventory({f"cache-{i}": (f"a{i}", 100 + i) for i in range(4)})
    out = by_tag(evaluate(inv, policy(rule(keep_newest=2, older_than=timedelta(days=30))), NOW))
    assert [out[f"cache-{i}"].action for i in range(4)] == ["keep", "keep", "delete", "delete"]
    assert out["cache-1"].reason == "within keep_newest=2"
    assert out["cache-2"].reason.startswith("older than 30d: created")


def test_keep_newest_as_floor_does_not_act_by_itself():
    inv = make_inventory({f"cache-{i}": (f"a{i}", i) for i in range(4)})
    out = actions(evaluate(inv, policy(rule(keep_newest=1, older_than=timedelta(days=30))), NOW))
    assert set(out.values()) == {"keep"}


def test_max_total_size_dedups_shared_blobs():
    # Each cache: 10 B manifest + a shared 600 B base + 300 B of its own.
    tags = {f"cache-{i}": (f"a{i}", i) for i in range(4)}
    sizes = {f"a{i}": {"base": 600, f"own{i}": 300} for i in range(4)}
    inv = make_inventory(tags, sizes)
    # kept so far: 910, 1220, 1530 -> 4th would be 1840 > 1600
    out = by_tag(evaluate(inv, policy(rule(max_total_size=1600)), NOW))
    assert [out[f"cache-{i}"].action for i in range(4)] == ["keep", "keep", "keep", "delete"]
    assert out["cache-0"].reason == "within budget 1.6 KiB"
    assert out["cache-3"].reason == "over budget 1.6 KiB (kept 1.5 KiB newer)"


def test_max_total_size_acts_on_everything_older_after_overflow():
    tags = {"cache-0": ("a", 0), "cache-1": ("big", 1), "cache-2": ("c", 2)}
    inv = make_inventory(tags, {"big": {"huge": 10_000}})
    out = actions(evaluate(inv, policy(rule(max_total_size=1000)), NOW))
    # cache-2 alone would fit, but the walk stops at the first overflow.
    assert out == {"cache-0": "keep", "cache-1": "delete", "cache-2": "delete"}


def test_budget_reason_with_gib():
    tags = {"cache-0": ("a", 0), "cache-1": ("b", 1)}
    inv = make_inventory(tags, {"a": {"x": int(19.8 * GIB)}, "b": {"y": GIB}})
    out = by_tag(evaluate(inv, policy(rule(max_total_size=20 * GIB)), NOW))
    assert out["cache-1"].reason == "over budget 20 GiB (kept 19.8 GiB newer)"


def test_budget_with_floor():
    tags = {"cache-0": ("a", 0), "cache-1": ("b", 1), "cache-2": ("c", 2)}
    inv = make_inventory(tags, {"a": {"x": 5000}})
    out = by_tag(evaluate(inv, policy(rule(max_total_size=1000, keep_newest=1)), NOW))
    assert out["cache-0"].reason == "within keep_newest=1"
    assert out["cache-1"].action == "delete" and out["cache-2"].action == "delete"


def test_budget_and_age_combined_any_criterion_acts():
    tags = {"cache-0": ("a", 0), "cache-1": ("b", 40), "cache-2": ("c", 1)}
    inv = make_inventory(tags)
    out = by_tag(evaluate(inv, policy(rule(max_total_size=25, older_than=timedelta(days=30))), NOW))
    # order: cache-0 (0d), cache-2 (1d), cache-1 (40d)
    assert out["cache-0"].action == "keep" and out["cache-2"].action == "keep"
    assert out["cache-1"].action == "delete"
    assert "older than 30d" in out["cache-1"].reason and "over budget" in out["cache-1"].reason


def test_unknown_age_never_acted_on_by_budget():
    inv = make_inventory({"cache-u": ("u", None), "cache-v": ("v", None)}, {"u": {"x": 5000}, "v": {"y": 5000}})
    out = by_tag(evaluate(inv, policy(rule(max_total_size=1000)), NOW))
    assert {d.action for d in out.values()} == {"keep"}
    assert "age unknown" in out["cache-v"].reason


def test_first_matching_rule_decides():
    inv = make_inventory({"cache-pr-1": ("a", 1), "cache-main": ("b", 100)})
    pol = policy(rule("keep prs", tags=("cache-pr-*",), older_than=timedelta(days=30)),
                 rule("everything", tags=("cache-*",)))
    out = by_tag(evaluate(inv, pol, NOW))
    assert out["cache-pr-1"].action == "keep" and out["cache-pr-1"].rule == "keep prs"
    assert out["cache-main"].action == "delete" and out["cache-main"].rule == "everything"


def test_regex_matches_whole_tag():
    inv = make_inventory({"cache-pr-12": ("a", 1), "cache-pr-12x": ("b", 1), "xcache-pr-1": ("c", 1)})
    out = actions(evaluate(inv, policy(rule(tags=(), regex=r"cache-pr-[0-9]+")), NOW))
    assert out == {"cache-pr-12": "delete", "cache-pr-12x": "keep", "xcache-pr-1": "keep"}


def test_untagged_selection():
    inv = make_inventory({"cache-a": ("a", 1)}, untagged={"u1": 100, "u2": 1})
    out = by_tag(evaluate(inv, policy(rule(tags=(), untagged=True, older_than=timedelta(days=30))), NOW))
    assert out[dg("u1")].action == "delete" and out[dg("u1")].tag is None
    assert out[dg("u2")].action == "keep"
    assert out["cache-a"].reason == "no rule matched"


def test_untagged_not_selected_by_tag_rules():
    inv = make_inventory({}, untagged={"u1": 100})
    assert evaluate(inv, policy(rule(tags=("*",))), NOW)[0].reason == "no rule matched"


def test_artifact_with_error_is_kept():
    inv = make_inventory({"cache-a": ("a", 100)}, errors={"a": "HTTP 500 on manifest"})
    out = evaluate(inv, policy(rule()), NOW)
    assert out[0].action == "keep" and out[0].reason == "could not be inspected: HTTP 500 on manifest"


def test_missing_artifact_is_kept():
    inv = make_inventory({"cache-a": ("a", 100)})
    inv.artifacts.clear()
    assert evaluate(inv, policy(rule()), NOW)[0].reason.startswith("could not be inspected")


def test_only_listed_tags_get_decisions():
    inv = make_inventory({"cache-a": ("a", 1), "cache-b": ("b", 1)}, listed=["cache-a"])
    assert [d.tag for d in evaluate(inv, policy(rule()), NOW)] == ["cache-a"]


def test_retag_renders_template():
    inv = make_inventory({"cache-base": ("a", 92.5)})
    pol = policy(rule(tags=("cache-base",), action="retag", to="archive-{tag}-{created:%Y}q{quarter}-{date}-{digest}"))
    out = evaluate(inv, pol, NOW)[0]
    assert out.action == "retag"
    assert out.to == f"archive-cache-base-2026q3-20261101-{dg('a')[7:19]}"


def test_retag_unknown_age_kept():
    inv = make_inventory({"cache-base": ("a", None)})
    out = evaluate(inv, policy(rule(action="retag", to="a-{created}")), NOW)[0]
    assert out.action == "keep" and "age unknown" in out.reason


def test_retag_onto_existing_tag_is_refused():
    inv = make_inventory({"cache-a": ("a", 1), "archive-cache-a": ("b", 1), "cache-c": ("c", 1),
                          "archive-cache-c": ("c", 1)})
    out = by_tag(evaluate(inv, policy(rule(tags=("cache-*",), action="retag", to="archive-{tag}")), NOW))
    assert out["cache-a"].action == "keep" and "already points at another digest" in out["cache-a"].reason
    assert out["cache-c"].action == "keep" and "already tagged" in out["cache-c"].reason


def test_retag_collision_between_two_tags():
    inv = make_inventory({"cache-a": ("a", 1), "cache-b": ("b", 1)})
    out = by_tag(evaluate(inv, policy(rule(action="retag", to="archive-{date}")), NOW))
    assert out["cache-a"].action == "retag" and out["cache-a"].to == "archive-20261101"
    assert out["cache-b"].action == "keep"


def test_retag_too_long_is_kept():
    tag = "cache-" + "x" * 120
    inv = make_inventory({tag: ("a", 1)})
    out = evaluate(inv, policy(rule(action="retag", to="archive-{tag}")), NOW)[0]
    assert out.action == "keep" and "not a valid tag" in out.reason


def test_naive_datetimes_are_utc():
    inv = make_inventory({"cache-a": ("a", 40)})
    out = evaluate(inv, policy(rule(older_than=timedelta(days=30))), NOW.replace(tzinfo=None))
    assert out[0].action == "delete"


@pytest.mark.parametrize("seed", range(5))
def test_order_independent(seed):
    import random
    tags = {f"cache-{i}": (f"a{i % 5}", None if i % 7 == 0 else i * 3) for i in range(20)}
    inv = make_inventory(tags, {f"a{i}": {"base": 100, f"o{i}": 50 * i} for i in range(5)})
    pol = policy(rule(keep_newest=2, max_total_size=400), protect=("cache-1*",))
    expected = evaluate(inv, pol, NOW)
    rng = random.Random(seed)
    items = list(inv.tags.items())
    rng.shuffle(items)
    listed = list(inv.listed)
    rng.shuffle(listed)
    arts = list(inv.artifacts.items())
    rng.shuffle(arts)
    shuffled = Inventory(target=inv.target, tags=dict(items), artifacts=dict(arts), listed=listed)
    assert evaluate(shuffled, pol, NOW) == expected


def test_broken_selector_alone_selects_every_broken_image_and_narrows_otherwise():
    inv = make_inventory({"cache-a": ("a", 1), "cache-b": ("b", 1), "v1": ("c", 1)})
    for name in ("a", "c"):
        inv.artifacts[dg(name)].broken = "partial"
    inv.artifacts[dg("u")] = Artifact(dg("u"), "application/vnd.oci.image.index.v1+json", "image-index",
                                      {dg("u"): 10}, created=days_ago(1), broken="ghost")
    inv.untagged = [dg("u")]
    inv.listed = ["cache-a", "cache-b", "v1"]
    alone = actions(evaluate(inv, policy(Rule("b", Selector(broken=True))), NOW))
    assert alone == {"cache-a": "delete", "cache-b": "keep", "v1": "delete", dg("u"): "delete"}
    narrowed = actions(evaluate(inv, policy(Rule("b", Selector(tags=("cache-*",), broken=True))), NOW))
    assert narrowed == {"cache-a": "delete", "cache-b": "keep", "v1": "keep", dg("u"): "keep"}
    protected = actions(evaluate(inv, policy(Rule("b", Selector(broken=True)), protect=("v*",)), NOW))
    assert protected["v1"] == "keep"
