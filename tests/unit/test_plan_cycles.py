"""Planning finishes on references that form a cycle (two referrers naming each other as
`subject`, an index that lists its own referrer): a crafted repository must not hang a run."""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime, timedelta, timezone

from ghcr_janitor.core.models import Artifact, Inventory
from ghcr_janitor.plan.planner import plan_inventory
from ghcr_janitor.policy.loader import parse_policy

NOW = datetime(2026, 12, 7, tzinfo=timezone.utc)
POLICY = parse_policy('[[rule]]\nname = "all"\nselect = { tags = ["cache-*"] }\naction = "delete"\n'
                      '[[rule]]\nname = "untagged"\nselect = { untagged = true }\naction = "delete"\n', "cycle.toml")


def dg(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def art(name: str, closure: list[str] = (), subject: str | None = None, children: tuple = ()) -> Artifact:
    digest = dg(name)
    return Artifact(digest=digest, media_type="application/vnd.oci.image.manifest.v1+json", kind="image",
                    closure={digest: 10, **{c: 10 for c in closure}}, subject=subject, children=children,
                    created=NOW - timedelta(days=90), age_source="test")


def plan_with_timeout(inventory: Inventory, seconds: float = 20.0):
    out: list = []
    worker = threading.Thread(target=lambda: out.append(plan_inventory(inventory, POLICY, NOW)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "planning did not finish: a reference cycle loops"
    return out[0]


def test_referrers_naming_each_other_as_subject_are_planned():
    a, b, c = dg("a"), dg("b"), dg("c")
    arts = {c: art("c", closure=[a], children=(a,)), a: art("a", subject=b), b: art("b", subject=a)}
    inventory = Inventory(target="localhost:5000/acme/app", tags={"cache-x": c}, artifacts=arts,
                          listed=["cache-x"], untagged=[])
    arts[c].tags.append("cache-x")
    plan = plan_with_timeout(inventory)
    assert {x.digest for x in plan.actions} <= {a, b, c} and c in {x.digest for x in plan.actions}


def test_an_index_and_its_child_listing_each_other_are_planned():
    a, b = dg("a"), dg("b")
    arts = {a: art("a", closure=[b], children=(b,)), b: art("b", closure=[a], children=(a,))}
    arts[a].tags.append("cache-a")
    inventory = Inventory(target="localhost:5000/acme/app", tags={"cache-a": a}, artifacts=arts,
                          listed=["cache-a"], untagged=[])
    plan_with_timeout(inventory)


def test_linking_followers_whose_parents_form_a_cycle_finishes():
    """Two deleted referrers that each follow the other (the shape the safety property found):
    naming the rule of each one's root must not walk the cycle for ever."""
    from ghcr_janitor.plan.build import _link_followers
    from ghcr_janitor.plan.model import DELETE, Action

    a, b = dg("a"), dg("b")
    arts = {a: art("a", subject=b), b: art("b", subject=a)}
    inventory = Inventory(target="localhost:5000/acme/app", tags={}, artifacts=arts, listed=[], untagged=[])
    actions = [Action(DELETE, None, a), Action(DELETE, None, b)]
    worker = threading.Thread(target=_link_followers, args=(actions, {a, b}, {a: {b}, b: {a}}, inventory, []),
                              daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "linking followers loops on a parent cycle"
    assert (actions[0].parent, actions[1].parent) == (b, a)


def test_a_deleted_image_whose_referrers_name_each_other_is_planned():
    """The shape CI's property run hung on: a deleted index C uses A; A and B name each other as
    `subject`, and B sorts before C. Both follow the index, and each other."""
    a, b, c = dg("a"), dg("b10"), dg("c")
    assert b < c < a
    arts = {c: art("c", closure=[a], children=(a,)), a: art("a", subject=b), b: art("b10", subject=a)}
    arts[c].tags.append("cache-x")
    inventory = Inventory(target="localhost:5000/acme/app", tags={"cache-x": c}, artifacts=arts,
                          listed=["cache-x"], untagged=[])
    plan = plan_with_timeout(inventory)
    assert c in {x.digest for x in plan.actions}


def test_a_referrer_whose_subject_is_in_its_own_closure_is_planned():
    """Found by the safety property on a fresh run: m4 lists m3 (which lists m1, which lists m0)
    and names m0 as its `subject`, so m0 and m4 each follow the other. Deleting the untagged m3
    must finish, naming an owner for every follower's bytes."""
    m = [dg(f"m{i}") for i in range(6)]
    arts = {
        m[0]: art("m0"),
        m[1]: art("m1", closure=[m[0]], children=(m[0],)),
        m[3]: art("m3", closure=[m[1], m[0]], children=(m[1],)),
        m[4]: art("m4", closure=[m[3], m[1], m[0]], children=(m[3],), subject=m[0]),
    }
    inventory = Inventory(target="localhost:5000/acme/app", tags={}, artifacts=arts, listed=[], untagged=[m[3]])
    plan = plan_with_timeout(inventory)
    assert m[3] in {x.digest for x in plan.actions}
