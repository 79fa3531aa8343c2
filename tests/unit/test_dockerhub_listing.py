"""Docker Hub's tag and image answers as versions (stores/dockerhub/listing.py), from the documented
shapes: a tag's own digest, its times and its per-platform images; untagged images by `is_current`."""

from __future__ import annotations

from datetime import datetime, timezone

from ghcr_janitor.stores.dockerhub import listing

A, B, C, K1, K2 = ("sha256:" + c * 64 for c in "abcde")
INDEX = "application/vnd.oci.image.index.v1+json"


def t(day: int) -> str:
    return f"2026-0{day}-01T10:00:00.123456Z"


def when(day: int) -> datetime:
    return datetime(2026, day, 1, 10, 0, 0, 123456, tzinfo=timezone.utc)


def tag(name, digest, pushed, pulled=None, images=(), media_type="application/vnd.oci.image.manifest.v1+json"):
    doc = {"name": name, "media_type": media_type, "tag_last_pushed": t(pushed),
           "tag_last_pulled": t(pulled) if pulled else None, "tag_status": "active", "images": list(images)}
    if digest:
        doc["digest"] = digest
    return doc


def image(digest, pushed, pulled=None, tags=(), status="active"):
    return {"digest": digest, "last_pushed": t(pushed), "last_pulled": t(pulled) if pulled else None,
            "status": status, "tags": [{"tag": n, "is_current": cur} for n, cur in tags]}


def test_tagged_digests_take_the_latest_push_and_pull_of_their_tags_and_their_own_image():
    tags = [tag("cache-a", A, 1, 2, images=[image(A, 3, None)]), tag("release", A, 2, 5)]
    [version] = listing.versions(tags, [])
    assert version.digest == A and version.tags == ("cache-a", "release")
    assert version.created == when(3) and version.age_source == "dockerhub/pushed"
    assert version.extra["pushed"] == when(3) and version.extra["last_pulled"] == when(5)
    assert version.extra["pull_lag"] == listing.PULL_LAG


def test_an_index_tag_is_dated_by_itself_not_by_its_platform_images():
    tags = [tag("cache-idx", A, 1, None, images=[image(K1, 6, 7), image(K2, 6, 7)], media_type=INDEX)]
    [version] = listing.versions(tags, [])
    assert version.digest == A and version.created == when(1) and version.extra["last_pulled"] is None


def test_a_tag_without_a_digest_field_uses_its_only_image_or_the_v2_answer():
    single = tag("old-api", None, 1, images=[image(B, 1)])
    multi = tag("old-idx", None, 1, images=[image(K1, 1), image(K2, 1)], media_type=INDEX)
    assert listing.current_tags([single, multi]) == ({"old-api": B}, ["old-idx"])
    versions = {v.digest: v.tags for v in listing.versions([single, multi], [], {"old-idx": C})}
    assert versions == {B: ("old-api",), C: ("old-idx",)}


def test_untagged_images_are_those_with_no_current_tag():
    tags = [tag("cache-a", A, 1)]
    images = [image(B, 2, 3, tags=[("cache-a", False)]),      # cache-a was on it once: untagged now
              image(C, 2, tags=[("elsewhere", True)]),          # current tag the tag listing lacks: not untagged
              image(A, 4, tags=[("cache-a", True)]),            # the tagged one, listed anyway
              {"digest": "not-a-digest"}]
    versions = {v.digest: v for v in listing.versions(tags, images)}
    assert set(versions) == {A, B}
    assert versions[B].tags == () and versions[B].created == when(2) and versions[B].extra["last_pulled"] == when(3)
    assert versions[A].created == when(4)


def test_unknown_times_are_none_not_zero():
    [version] = listing.versions([], [{"digest": A, "tags": [], "last_pushed": None, "last_pulled": None}])
    assert version.created is None and version.age_source is None and version.extra["last_pulled"] is None
