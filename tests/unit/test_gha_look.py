"""The last look lists a ref by key prefix: each prefix must hold every group its keys belong to."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ghcr_janitor.stores.gha.gather import listing_prefixes
from ghcr_janitor.stores.gha.keys import BUILDKIT_VERSION, classify, ref_hash

REFS = ["refs/heads/main", "refs/pull/7/merge", "refs/heads/other"]
_HEX = "0123456789abcdef"


@st.composite
def keys(draw) -> str:
    ref = draw(st.sampled_from(REFS))
    shape = draw(st.sampled_from(["index", "blob", "commit", "run", "text"]))
    if shape == "index":
        scope = draw(st.text(st.sampled_from("abc-1#"), min_size=1, max_size=8))
        return f"index-{scope}-1-{ref_hash(ref)}{draw(st.sampled_from(['', '-sig']))}#{draw(st.integers(0, 999))}"
    if shape == "blob":
        return "buildkit-blob-1-sha256:" + draw(st.text(st.sampled_from(_HEX), min_size=64, max_size=64))
    if shape == "commit":
        return draw(st.sampled_from(["Linux-buildx-", "pip-", ""])) + draw(st.text(st.sampled_from(_HEX), min_size=40, max_size=40))
    if shape == "run":
        return "node-" + str(draw(st.integers(0, 10 ** 9)))
    return draw(st.text(min_size=1, max_size=30))


def test_listing_prefixes_are_each_family_once_none_under_another():
    index = f"index-buildkit-1-{ref_hash('refs/heads/main')}"
    blob = "buildkit-blob-1-sha256:" + "a" * 64
    assert listing_prefixes({f"{index}#3", f"{index}#1", "Linux-buildx-" + "b" * 40, blob}) == \
        {index, "Linux-buildx-", "buildkit-blob-1-sha256:"}
    assert listing_prefixes({"pip", "pip-3.12"}) == {"pip"}
    assert listing_prefixes(set()) == set()


@given(keys(), st.sampled_from(REFS), st.sampled_from([BUILDKIT_VERSION, "v" * 64]))
def test_a_keys_listing_prefix_starts_its_group_whatever_its_version_and_ref(key, ref, version):
    (prefix,) = listing_prefixes({key})
    facts = classify(key, version, ref)
    assert key.startswith(prefix)
    if facts.kind != "buildkit-blob":          # blobs form no group: the entry itself is enough
        assert facts.family.startswith(prefix)
        assert key.startswith(facts.family)    # so every member of the group starts with the prefix
