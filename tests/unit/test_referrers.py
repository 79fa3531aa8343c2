"""Cosign-style referrer tags on registries without a referrers API (GHCR)."""

import hashlib

from ghcr_janitor.core.models import Artifact, Inventory, StoreTraits
from ghcr_janitor.plan.referrers import orphaned_referrer_tags, referrer_tags, subject_of_tag

HEX = hashlib.sha256(b"subject").hexdigest()
SUBJECT = f"sha256:{HEX}"


def dg(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def test_ghcr_referrer_subject_of_tag():
    assert subject_of_tag(f"sha256-{HEX}") == SUBJECT
    for suffix in ("sig", "att", "sbom"):
        assert subject_of_tag(f"sha256-{HEX}.{suffix}") == SUBJECT
    assert subject_of_tag(f"sha512-{'a' * 128}.sig") == f"sha512:{'a' * 128}"
    for other in ("cache-base", "latest", f"sha256-{HEX}.txt", f"sha256-{HEX[:-1]}.sig", f"sha256-{HEX.upper()}",
                  f"sha256:{HEX}", f"x-sha256-{HEX}", f"sha256-{HEX}.sig.sig", f"sha1-{HEX[:40]}"):
        assert subject_of_tag(other) is None, other


def _inventory(backend: str = "ghcr") -> Inventory:
    index, child, kept = dg("index"), dg("child"), dg("kept")
    arts = {
        index: Artifact(index, "application/vnd.oci.image.index.v1+json", "image-index",
                        closure={index: 10, child: 5, dg("layer"): 100}, tags=["latest"]),
        kept: Artifact(kept, "application/vnd.oci.image.manifest.v1+json", "image", closure={kept: 3}),
    }
    sig = dg("sig")
    arts[sig] = Artifact(sig, "application/vnd.oci.image.manifest.v1+json", "artifact", closure={sig: 1})
    hx = lambda d: d.split(":", 1)[1]  # noqa: E731
    tags = {"latest": index, f"sha256-{hx(index)}.sig": sig, f"sha256-{hx(index)}.att": sig,
            f"sha256-{hx(child)}.sig": sig, f"sha256-{hx(dg('gone'))}.sig": sig, f"sha256-{hx(dg('gone'))}": sig,
            "cache-base": kept}
    return Inventory(target="ghcr.io/acme/app", tags=tags, artifacts=arts, backend=backend,
                     traits=StoreTraits(lists_untagged=backend != "oci"))


def test_ghcr_referrer_tags_grouped_by_subject():
    inv = _inventory()
    found = referrer_tags(inv)
    hx = lambda d: d.split(":", 1)[1]  # noqa: E731
    assert found == {
        dg("index"): [f"sha256-{hx(dg('index'))}.att", f"sha256-{hx(dg('index'))}.sig"],
        dg("child"): [f"sha256-{hx(dg('child'))}.sig"],
        dg("gone"): [f"sha256-{hx(dg('gone'))}", f"sha256-{hx(dg('gone'))}.sig"],
    }


def test_ghcr_orphaned_referrers_only_when_the_listing_is_complete():
    inv = _inventory()
    # The child is in the index's closure, so its signature is not orphaned.
    assert list(orphaned_referrer_tags(inv)) == [dg("gone")]
    assert orphaned_referrer_tags(_inventory(backend="oci")) == {}
    assert list(orphaned_referrer_tags(_inventory(backend="oci"), complete=True)) == [dg("gone")]
