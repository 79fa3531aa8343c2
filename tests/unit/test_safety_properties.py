"""Property tests: on random repositories and policies the plan is never wrong in the dangerous direction."""

import fnmatch
import hashlib
import json
import os
import random
import tempfile
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ghcr_janitor.core.errors import PolicyError
from ghcr_janitor.core.models import Artifact, Inventory
from ghcr_janitor.plan.file import parse_plan
from ghcr_janitor.plan.model import Plan, new_plan
from ghcr_janitor.plan.build import build_target_plan
from ghcr_janitor.policy import Policy, evaluate, load_policy
from ghcr_janitor.policy.model import Rule, Selector

NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)
TAG_POOL = ["cache-base", "cache-base-main", "cache-python-deps", "cache-python-deps-feat", "cache-pr-1",
            "cache-pr-22", "cache-builder", "cache-builder-x", "latest", "v1", "v1.2", "release"]
GLOB_POOL = ["cache-*", "cache-*-*", "cache-base", "v*", "*", "cache-pr-*", "latest", "nothing"]
REGEX_POOL = [None, None, r"cache-pr-[0-9]+", r"v[0-9.]+", r".*"]
TEMPLATES = ["archive-{tag}", "a-{date}", "q{quarter}-{digest}", "{tag}-{created:%Y%m}"]


def dg(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


@st.composite
def repositories(draw) -> Inventory:
    n = draw(st.integers(1, 8))
    blob_sizes = {dg(f"blob{i}"): draw(st.integers(0, 1000)) for i in range(10)}
    artifacts: dict[str, Artifact] = {}
    names = [dg(f"m{i}") for i in range(n)]
    for i, digest in enumerate(names):
        closure = {digest: draw(st.integers(1, 50))}
        for blob in draw(st.lists(st.sampled_from(sorted(blob_sizes)), max_size=4)):
            closure[blob] = blob_sizes[blob]
        children = draw(st.lists(st.sampled_from(names[:i]), max_size=2, unique=True)) if i else []
        for child in children:  # an index: its closure includes each child's manifest and blobs
            closure.update(artifacts[child].closure)
        age = draw(st.one_of(st.none(), st.integers(0, 200)))
        subject = draw(st.one_of(st.none(), st.sampled_from(names))) if draw(st.booleans()) else None
        artifacts[digest] = Artifact(
            digest=digest, media_type="application/vnd.oci.image.index.v1+json", kind="buildkit-cache",
            closure=closure, children=tuple(children), subject=subject if subject != digest else None,
            created=None if age is None else NOW - timedelta(days=age, hours=draw(st.integers(0, 23))),
            age_source=None if age is None else "buildkit/createdat",
            error="boom" if draw(st.integers(0, 9)) == 0 else None)
    tags = draw(st.dictionaries(st.sampled_from(TAG_POOL), st.sampled_from(names), max_size=10))
    listed = draw(st.lists(st.sampled_from(sorted(tags)), unique=True)) if tags else []
    tagged = set(tags.values())
    untagged = [d for d in names if d not in tagged and draw(st.booleans())]
    return Inventory(target="localhost:5000/acme/app", tags=tags, artifacts=artifacts, listed=listed,
                     untagged=untagged)


@st.composite
def rules(draw, index: int) -> Rule:
    action = draw(st.sampled_from(["delete", "delete", "retag"]))
    tags = tuple(draw(st.lists(st.sampled_from(GLOB_POOL), max_size=2)))
    regex = draw(st.sampled_from(REGEX_POOL))
    untagged = action == "delete" and draw(st.booleans())
    if not tags and regex is None and not untagged:
        tags = ("cache-*",)
    return Rule(
        name=f"rule {index}", selector=Selector(tags=tags, regex=regex, untagged=untagged),
        older_than=draw(st.one_of(st.none(), st.integers(0, 100).map(lambda d: timedelta(days=d)))),
        keep_newest=draw(st.one_of(st.none(), st.integers(0, 4))),
        max_total_size=draw(st.one_of(st.none(), st.integers(0, 3000))),
        action=action, to=draw(st.sampled_from(TEMPLATES)) if action == "retag" else None)


@st.composite
def policies(draw) -> Policy:
    protect = tuple(draw(st.lists(st.sampled_from(GLOB_POOL), max_size=3)))
    count = draw(st.integers(0, 3))
    return Policy(source="fuzz.toml", protect=protect, rules=tuple(draw(rules(i + 1)) for i in range(count)))


def shuffled(inv: Inventory, seed: int) -> Inventory:
    rng = random.Random(seed)

    def mix(d: dict) -> dict:
        items = list(d.items())
        rng.shuffle(items)
        return dict(items)

    listed, untagged = list(inv.listed), list(inv.untagged)
    rng.shuffle(listed)
    rng.shuffle(untagged)
    return Inventory(target=inv.target, tags=mix(inv.tags), artifacts=mix(inv.artifacts), listed=listed,
                     untagged=untagged, errors=list(inv.errors), backend=inv.backend,
                     traits=inv.traits)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(repositories(), policies())
def test_plan_never_deletes_anything_kept(inv, policy):
    decisions = evaluate(inv, policy, NOW)
    # One decision per listed tag and per untagged digest.
    assert sorted(d.tag for d in decisions if d.tag is not None) == sorted(inv.listed)
    assert sorted(d.digest for d in decisions if d.tag is None) == sorted(inv.untagged)
    tp = build_target_plan(inv, decisions)
    deleted = {a.digest for a in tp.actions if a.action == "delete"}
    decided = {d.tag: d for d in decisions if d.tag is not None}

    # Protected tags are kept.
    for tag, d in decided.items():
        if any(fnmatch.fnmatchcase(tag, p) for p in policy.protect):
            assert d.action == "keep"
    # Any tag not being deleted (kept, protected, retagged or not listed) keeps its digest.
    for tag, digest in inv.tags.items():
        if tag not in decided or decided[tag].action != "delete":
            assert digest not in deleted, (tag, digest)
    # Untag actions never delete; deletes only for delete decisions.
    for a in tp.actions:
        if a.action in ("delete", "untag") and a.tag is not None:
            assert decided[a.tag].action == "delete"
        if a.action == "untag":
            assert a.digest not in deleted
    # Nothing in the closure of a kept artifact is deleted; artifacts with errors are kept.
    for digest, art in inv.artifacts.items():
        if digest not in deleted:
            assert not (set(art.closure) & deleted), digest
        if art.error:
            assert digest not in deleted
    # Unknown-age artifacts are never deleted by older_than alone.
    for d in decisions:
        if d.action == "delete" and d.reason.startswith("older than"):
            assert inv.artifacts[d.digest].created is not None
    # Reclaim counts exactly the blobs no kept artifact uses, each once.
    in_use = set()
    for digest, art in inv.artifacts.items():
        if digest not in deleted:
            in_use |= set(art.closure) | {digest}
    freed = {}
    for digest in deleted:
        freed.update({b: s for b, s in inv.artifacts[digest].closure.items() if b not in in_use})
    assert tp.reclaim_size == sum(freed.values()) == sum(a.reclaim_size for a in tp.actions)
    assert all(a.reclaim_size == 0 for a in tp.actions if a.action != "delete")
    # Action order: retag, untag, delete.
    order = {"retag": 0, "untag": 1, "delete": 2}
    assert [order[a.action] for a in tp.actions] == sorted(order[a.action] for a in tp.actions)
    # The plan survives a JSON round trip.
    plan = new_plan("fuzz.toml", [tp], NOW)
    assert parse_plan(json.loads(json.dumps(plan.to_dict()))) == plan


@settings(max_examples=200, deadline=None)
@given(repositories(), policies(), st.integers(0, 2**32))
def test_evaluation_is_deterministic_and_order_independent(inv, policy, seed):
    first = evaluate(inv, policy, NOW)
    assert evaluate(inv, policy, NOW) == first
    other = shuffled(inv, seed)
    assert evaluate(other, policy, NOW) == first
    assert build_target_plan(other, evaluate(other, policy, NOW)) == build_target_plan(inv, first)


# --- loader fuzzing ---------------------------------------------------------------------------

KEYS = ["protect", "rule", "name", "select", "tags", "regex", "untagged", "older_than", "keep_newest",
        "max_total_size", "action", "to", "x"]
scalars = st.one_of(
    st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.sampled_from(["30d", "20GiB", "delete", "retag", "cache-*", "{tag}", "{bogus}", "(", "", "-1", "1h30m",
                     "archive-{created:%Y}q{quarter}", "99999999999999w", "1e400GiB"]),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)),
    max_leaves=20,
)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(v), repr(v))
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are valid TOML basic strings (mostly)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(i) for i in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(i)}" for k, i in v.items()) + "}"


@st.composite
def policy_documents(draw) -> str:
    lines = []
    if draw(st.booleans()):
        lines.append(f"protect = {toml_value(draw(values))}")
    for _ in range(draw(st.integers(0, 3))):
        lines.append("[[rule]]")
        for key in draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=6)):
            lines.append(f"{key} = {toml_value(draw(values))}")
    return "\n".join(lines) + "\n"


def _load(text: str) -> None:
    fd, path = tempfile.mkstemp(suffix=".toml")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogatepass") as fh:
            fh.write(text)
        try:
            load_policy(path)
        except PolicyError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(path + ": ")
    finally:
        os.unlink(path)


@settings(max_examples=300, deadline=None)
@given(policy_documents())
def test_load_policy_structured_fuzz_only_raises_policy_error(text):
    _load(text)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.text(alphabet='[]{}="\n .,-_0123456789abcdrulegtx#\\', max_size=200)))
def test_load_policy_text_fuzz_only_raises_policy_error(text):
    _load(text)


@settings(max_examples=30, deadline=None)
@given(st.integers(100, 3000), st.sampled_from(["[", "{a = ", "[[", "x = ["]))
def test_load_policy_deep_nesting(depth, opener):
    _load("protect = " + opener * depth + "\n")
