"""Real-world GHCR package shapes: multi-arch images, attestations, referrers, broken indexes.

On GHCR every platform manifest, attestation and referrer is its own untagged package version.
The REST side is the documented-shape stand-in of test_ghcr.py; manifests live on the REAL local
registry. Each test checks the exact set of versions and tags left after apply.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import respx

from ghcr_janitor.apply import applier as apply_module
from tests.integration.test_ghcr import (  # noqa: F401 (fixtures)
    FakeGitHub, api_mock, ghcr_env, make_package, serve,
)
from tests.support.push import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, Pusher, dumps, sha

EMPTY = "application/vnd.oci.empty.v1+json"
ATTESTATION_LAYER = "application/vnd.in-toto+json"


class Shapes:
    """Push images the way buildx and cosign lay them out; remember every closure (digest -> size)."""

    def __init__(self, pusher: Pusher, fake: FakeGitHub):
        self.pusher, self.fake = pusher, fake
        self.closures: dict[str, dict[str, int]] = {}
        self.bodies: dict[str, bytes] = {}

    def _blob(self, data: bytes) -> tuple[str, int]:
        return self.pusher.blob(data), len(data)

    def _manifest(self, ref: str | None, doc: dict, media_type: str, when: datetime, parts: dict[str, int]) -> str:
        body = dumps(doc)
        digest = self.pusher.manifest(ref or sha(body), body, media_type)
        self.fake.add(digest, when)
        self.closures[digest] = {digest: len(body), **parts}
        self.bodies[digest] = body
        return digest

    def image(self, name: str, when: datetime, arch: str = "amd64", tag: str | None = None) -> str:
        config, csize = self._blob(dumps({"created": when.isoformat(), "architecture": arch, "os": "linux",
                                          "note": name}))
        layer, lsize = self._blob(f"rootfs of {name}".encode())
        doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": {"mediaType": OCI_CONFIG, "digest": config, "size": csize},
               "layers": [{"mediaType": OCI_LAYER, "digest": layer, "size": lsize}]}
        return self._manifest(tag, doc, OCI_MANIFEST, when, {config: csize, layer: lsize})

    def attestation(self, name: str, when: datetime) -> str:
        """A buildx provenance/SBOM manifest (its index entry says which image it attests)."""
        config, csize = self._blob(b'{"architecture":"unknown","os":"unknown"}')
        layer, lsize = self._blob(f"in-toto statement for {name}".encode())
        doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": {"mediaType": OCI_CONFIG, "digest": config, "size": csize},
               "layers": [{"mediaType": ATTESTATION_LAYER, "digest": layer, "size": lsize,
                           "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}}]}
        return self._manifest(None, doc, OCI_MANIFEST, when, {config: csize, layer: lsize})

    def referrer(self, subject: str, when: datetime) -> str:
        """A cosign-style OCI 1.1 signature: its own version, `subject` pointing at an image."""
        config, csize = self._blob(b"{}")
        layer, lsize = self._blob(f"signature of {subject}".encode())
        doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
               "config": {"mediaType": EMPTY, "digest": config, "size": csize},
               "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": layer,
                           "size": lsize}],
               "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": len(self.bodies[subject])}}
        return self._manifest(None, doc, OCI_MANIFEST, when, {config: csize, layer: lsize})

    def index(self, tag: str | None, when: datetime, platforms: list[tuple[str, str]],
              attests: list[tuple[str, str]] = ()) -> str:
        """A multi-arch index: (arch, child digest) platform entries, then (attestation, subject) entries."""
        entries = [{"mediaType": OCI_MANIFEST, "digest": d, "size": len(self.bodies[d]),
                    "platform": {"architecture": arch, "os": "linux"}} for arch, d in platforms]
        entries += [{"mediaType": OCI_MANIFEST, "digest": a, "size": len(self.bodies[a]),
                     "platform": {"architecture": "unknown", "os": "unknown"},
                     "annotations": {"vnd.docker.reference.digest": s,
                                     "vnd.docker.reference.type": "attestation-manifest"}} for a, s in attests]
        parts: dict[str, int] = {}
        for entry in entries:
            parts.update(self.closures[entry["digest"]])
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        return self._manifest(tag, doc, OCI_INDEX, when, parts)

    def lose(self, digest: str) -> None:
        """Delete a version out-of-band (another tool did it): gone from REST and the registry."""
        self.fake._delete(self.fake.versions[digest]["id"])

    def remaining(self) -> tuple[set[str], list[str]]:
        """(digests of the versions left, every tag left), read from the stand-in and the registry."""
        self.fake.sync()
        tags = sorted(t for v in self.fake.versions.values() for t in v["metadata"]["container"]["tags"])
        assert sorted(self.pusher.tags()) == tags
        return set(self.fake.versions), tags


def union(closures: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in closures:
        out.update(c)
    return out


def day(n: int) -> datetime:
    """n days before now (the CLI decides ages against the real clock)."""
    return datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=n)


@pytest.fixture
def shapes(ghcr_env, api_mock, fast_sleep):
    owner, pusher, fake = make_package(ghcr_env)
    serve(api_mock, fake)
    s = Shapes(pusher, fake)
    s.target = f"ghcr.io/{owner}/app"
    s.prefix = f"/orgs/{owner}/packages/container/app/versions/"
    return s


def write(tmp_path, text: str, name: str = "policy.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def build_two_images(s: Shapes) -> dict:
    """`latest` and `pr-7`: multi-arch with attestations, sharing the arm64 manifest; signatures on both."""
    f: dict = {}
    f["shared"] = s.image("arm64 shared", day(3), "arm64")
    f["l_amd"] = s.image("latest amd64", day(2))
    f["l_att"] = s.attestation("latest amd64", day(2))
    f["latest"] = s.index("latest", day(2), [("amd64", f["l_amd"]), ("arm64", f["shared"])], [(f["l_att"], f["l_amd"])])
    f["l_sig"] = s.referrer(f["l_amd"], day(2))
    f["p_amd"] = s.image("pr amd64", day(3))
    f["p_att"] = s.attestation("pr amd64", day(3))
    f["pr"] = s.index("pr-7", day(3), [("amd64", f["p_amd"]), ("arm64", f["shared"])], [(f["p_att"], f["p_amd"])])
    f["p_sig"] = s.referrer(f["p_amd"], day(3))
    # a former `latest`, untagged for 40 days, and an old single-platform image
    f["u_amd"] = s.image("old amd64", day(40))
    f["u_arm"] = s.image("old arm64", day(40), "arm64")
    f["old_index"] = s.index(None, day(40), [("amd64", f["u_amd"]), ("arm64", f["u_arm"])])
    f["old_image"] = s.image("old single", day(45))
    return f


POLICY = """
protect = ["latest"]
[[rule]]
name = "pull request images"
select = { tags = ["pr-*"] }
action = "delete"
[[rule]]
name = "old untagged"
select = { untagged = true }
older_than = "30d"
action = "delete"
"""


def test_deleting_a_multi_arch_image_deletes_what_only_it_uses_parents_first(shapes, cli, tmp_path):
    s = shapes
    f = build_two_images(s)
    policy = write(tmp_path, POLICY)
    listing = json.loads(cli("ls", s.target, "--all-tags", "-O", "json").stdout)["targets"][0]
    assert sorted(e["digest"] for e in listing["untagged"]) == sorted([f["old_index"], f["old_image"]])

    dry = cli("prune", s.target, "--policy", policy, "--all-tags", "--dry-run", "-O", "json")
    assert dry.exit_code == 0, dry.stderr
    plan = json.loads(dry.stdout)["targets"][0]
    actions = plan["actions"]
    order = [a["digest"] for a in actions]
    gone = {f[k] for k in ("pr", "p_amd", "p_att", "p_sig", "old_index", "u_amd", "u_arm", "old_image")}
    assert set(order) == gone and len(order) == len(gone)
    assert all(a["action"] == "delete" for a in actions)
    # Parents first: each child after what it follows, with its own reason.
    by = {a["digest"]: a for a in actions}
    for child, parent in ((f["p_amd"], f["pr"]), (f["p_att"], f["pr"]), (f["p_sig"], f["p_amd"]),
                          (f["u_amd"], f["old_index"]), (f["u_arm"], f["old_index"])):
        assert order.index(parent) < order.index(child)
        assert by[child]["parent"] == parent and by[child]["tag"] is None
    assert by[f["p_amd"]]["reason"] == "platform manifest of pr-7, used by nothing kept"
    assert by[f["p_att"]]["reason"] == "attestation of pr-7, used by nothing kept"
    assert by[f["p_sig"]]["reason"].startswith("referrer of sha256:")
    assert by[f["u_amd"]]["rule"] == "old untagged" and by[f["p_amd"]]["rule"] == "pull request images"
    # The index's reclaim covers its children; bytes shared with `latest` (arm64, the empty config) are not counted.
    kept = union([s.closures[f[k]] for k in ("latest", "l_sig")])
    mine = union([s.closures[f[k]] for k in ("pr", "p_sig")])
    assert by[f["pr"]]["reclaim_size"] == sum(v for d, v in mine.items() if d not in kept)
    assert by[f["p_amd"]]["reclaim_size"] == by[f["p_att"]]["reclaim_size"] == 0
    assert plan["reclaim_size"] == sum(a["reclaim_size"] for a in actions)
    # `ls` says the same: an image's unique size counts what follows it; a child alone frees nothing.
    tags = {t["tag"]: t for t in listing["tags"]}
    assert tags["pr-7"]["unique_size"] == by[f["pr"]]["reclaim_size"]
    assert by[f["p_amd"]]["reclaim_share"] > 0 and by[f["p_amd"]]["parents"] == [f["pr"]]

    plan_file = tmp_path / "plan.json"
    assert cli("plan", s.target, "--policy", policy, "--all-tags", "-o", plan_file).exit_code == 0
    s.fake.requests.clear()
    applied = cli("apply", plan_file, "--yes", "-O", "json")
    assert applied.exit_code == 0, applied.stdout + applied.stderr
    deleted = [int(p[len(s.prefix):]) for m, p in s.fake.requests if m == "DELETE"]
    assert len(deleted) == len(gone)                               # one DELETE each, no placeholder
    versions, tags = s.remaining()
    assert versions == {f[k] for k in ("latest", "l_amd", "shared", "l_att", "l_sig")}
    assert tags == ["latest"]


def test_untagged_keep_newest_counts_untagged_images_not_the_children_of_a_tagged_one(shapes, cli, tmp_path):
    s = shapes
    images = [s.image(f"untagged {n}", day(10 * n)) for n in (1, 2, 3)]
    amd, arm = s.image("new amd64", day(0)), s.image("new arm64", day(0), "arm64")
    latest = s.index("latest", day(0), [("amd64", amd), ("arm64", arm)])
    policy = write(tmp_path, '[[rule]]\nname = "two untagged"\nselect = { untagged = true }\nkeep_newest = 2\n'
                             'action = "delete"\n')
    plan_file = tmp_path / "plan.json"
    assert cli("plan", s.target, "--policy", policy, "-o", plan_file).exit_code == 0
    plan = json.loads(plan_file.read_text())["targets"][0]
    assert [a["digest"] for a in plan["actions"]] == [images[2]]
    assert {k["digest"] for k in plan["kept"]} == set(images[:2])
    assert cli("apply", plan_file, "--yes").exit_code == 0
    versions, tags = s.remaining()
    assert versions == {images[0], images[1], amd, arm, latest} and tags == ["latest"]


def build_broken(s: Shapes) -> dict:
    f: dict = {}
    f["c1"], f["c2"], f["c3"] = (s.image(f"c{i}", day(5), arch) for i, arch in
                                 ((1, "amd64"), (2, "arm64"), (3, "s390x")))
    f["partial"] = s.index("cache-broken", day(5), [("amd64", f["c1"]), ("arm64", f["c2"]), ("s390x", f["c3"])])
    f["g1"], f["g2"] = s.image("g1", day(6)), s.image("g2", day(6), "arm64")
    f["ghost"] = s.index(None, day(6), [("amd64", f["g1"]), ("arm64", f["g2"])])
    f["old"] = s.image("old", day(60))
    f["base"] = s.image("base", day(1), tag="cache-base")
    for lost in ("c2", "c3", "g1", "g2"):
        s.lose(f[lost])
    return f


def test_broken_indexes_are_listed_as_facts_with_every_missing_child(shapes, cli):
    s = shapes
    f = build_broken(s)
    result = cli("ls", s.target, "-O", "json")
    assert result.exit_code == 0, result.stderr
    target = json.loads(result.stdout)["targets"][0]
    assert target["errors"] == []
    tag = next(t for t in target["tags"] if t["tag"] == "cache-broken")
    assert (tag["kind"], tag["broken"], tag["missing"]) == ("image-index", "partial", sorted([f["c2"], f["c3"]]))
    assert tag["size"] == sum(union([{f["partial"]: s.closures[f["partial"]][f["partial"]]}, s.closures[f["c1"]]]).values())
    untagged = {e["digest"]: e for e in target["untagged"]}
    assert set(untagged) == {f["ghost"], f["old"]}                # c1 follows its (broken) parent
    assert (untagged[f["ghost"]]["kind"], untagged[f["ghost"]]["broken"]) == ("image-index", "ghost")
    assert untagged[f["old"]]["broken"] is None
    for child in ("c2", "c3", "g1", "g2"):                        # every missing child is reported
        assert f[child] in result.stderr
    table = cli("ls", s.target)
    assert "image-index (partial)" in table.stdout and "image-index (ghost)" in table.stdout
    assert table.stderr.count("warning:") == 2 and "warning:" not in table.stdout


def test_broken_indexes_do_not_block_other_deletes_and_a_broken_selector_cleans_them(shapes, cli, tmp_path):
    s = shapes
    f = build_broken(s)
    old_only = write(tmp_path, '[[rule]]\nname = "old untagged"\nselect = { untagged = true }\nolder_than = "30d"\n'
                               'action = "delete"\n', "old.toml")
    dry = json.loads(cli("prune", s.target, "--policy", old_only, "--dry-run", "-O", "json").stdout)["targets"][0]
    names = {v: k for k, v in f.items()}
    assert [names.get(a["digest"], a["digest"]) for a in dry["actions"]] == ["old"], dry["actions"]
    assert dry["errors"] == []

    cleanup = write(tmp_path, '[[rule]]\nname = "broken images"\nselect = { broken = true }\naction = "delete"\n')
    plan_file = tmp_path / "plan.json"
    made = cli("plan", s.target, "--policy", cleanup, "-o", plan_file)
    assert made.exit_code == 0, made.stderr
    plan = json.loads(plan_file.read_text())["targets"][0]
    assert [(a["tag"], a["digest"]) for a in plan["actions"]] == [("cache-broken", f["partial"]), (None, f["ghost"]),
                                                                    (None, f["c1"])]
    table = cli("prune", s.target, "--policy", cleanup, "--dry-run")
    assert "image-index (partial)" in table.stdout and "image-index (ghost)" in table.stdout
    assert cli("apply", plan_file, "--yes").exit_code == 0
    versions, tags = s.remaining()
    assert versions == {f["old"], f["base"]} and tags == ["cache-base"]


def test_a_child_that_fails_for_another_reason_is_still_unknown_and_blocks_deletes(ghcr_env, fast_sleep, cli, tmp_path,
                                                                                     monkeypatch):
    owner, pusher, fake = make_package(ghcr_env)
    s = Shapes(pusher, fake)
    amd, arm = s.image("amd", day(5)), s.image("arm", day(5), "arm64")
    multi = s.index("cache-multi", day(5), [("amd64", amd), ("arm64", arm)])
    old = s.image("old", day(60))
    monkeypatch.setenv("JANITOR_RETRY_ATTEMPTS", "1")
    policy = write(tmp_path, '[[rule]]\nname = "old untagged"\nselect = { untagged = true }\nolder_than = "30d"\n'
                             'action = "delete"\n')
    with respx.mock(assert_all_called=False) as mock:
        mock.route(method="GET", path=f"/v2/{pusher.repo}/manifests/{arm}").mock(
            return_value=httpx.Response(500, json={"errors": [{"code": "UNKNOWN"}]}))
        mock.route(host="127.0.0.1").pass_through()
        serve(mock, fake)
        dry = cli("prune", f"ghcr.io/{owner}/app", "--policy", policy, "--dry-run", "-O", "json")
        listing = json.loads(cli("ls", f"ghcr.io/{owner}/app", "-O", "json").stdout)["targets"][0]
    assert dry.exit_code == 1
    # What could be read stays known: the index keeps its kind and its readable child is no root.
    tag = next(t for t in listing["tags"] if t["tag"] == "cache-multi")
    assert tag["digest"] == multi and tag["kind"] == "image-index" and "500" in tag["error"]
    assert [e["digest"] for e in listing["untagged"]] == [old]
    plan = json.loads(dry.stdout)["targets"][0]
    assert plan["actions"] == [] and old in {k["digest"] for k in plan["kept"]}
    assert any("could not be inspected" in e for e in plan["errors"])


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it runs, not even except/finally in the applier."""


def test_an_apply_killed_between_parent_and_children_finishes_on_rerun(shapes, cli, tmp_path, monkeypatch):
    s = shapes
    f = build_two_images(s)
    policy = write(tmp_path, POLICY)
    plan_file = tmp_path / "plan.json"
    assert cli("plan", s.target, "--policy", policy, "--all-tags", "-o", plan_file).exit_code == 0
    first = json.loads(plan_file.read_text())["targets"][0]["actions"][0]
    assert first["digest"] == f["pr"]                         # the tagged parent goes first

    real = apply_module.Applier._one
    calls = []

    async def dies_after_the_parent(self, action, look, removing):
        if calls:
            raise Killed()
        calls.append(action.digest)
        return await real(self, action, look, removing)

    monkeypatch.setattr(apply_module.Applier, "_one", dies_after_the_parent)
    with pytest.raises(Killed):
        cli("apply", plan_file, "--yes")
    versions, tags = s.remaining()
    assert f["pr"] not in versions and {f["p_amd"], f["p_att"]} <= versions     # orphaned children at worst
    assert tags == ["latest"]

    monkeypatch.setattr(apply_module.Applier, "_one", real)
    rerun = cli("apply", plan_file, "--yes", "-O", "json")
    assert rerun.exit_code == 0, rerun.stdout + rerun.stderr
    versions, tags = s.remaining()
    assert versions == {f[k] for k in ("latest", "l_amd", "shared", "l_att", "l_sig")} and tags == ["latest"]


def test_apply_keeps_a_child_that_an_index_tagged_since_planning_uses(shapes, cli, tmp_path):
    s = shapes
    f = build_two_images(s)
    policy = write(tmp_path, POLICY)
    plan_file = tmp_path / "plan.json"
    assert cli("plan", s.target, "--policy", policy, "--all-tags", "-o", plan_file).exit_code == 0
    rebuilt = s.index("pr-8", day(0), [("amd64", f["p_amd"]), ("arm64", f["shared"])])    # reuses pr-7's amd64
    result = cli("apply", plan_file, "--yes", "-O", "json")
    assert result.exit_code == 4, result.stdout + result.stderr
    done = json.loads(result.stdout)["targets"][0]
    outcome = {r["digest"]: r for r in done["results"]}
    assert outcome[f["p_amd"]]["status"] == "skipped" and "pr-8" in outcome[f["p_amd"]]["reason"]
    assert outcome[f["p_sig"]]["status"] == "skipped"            # it follows the kept amd64 manifest
    planned = {a["digest"]: a for a in json.loads(plan_file.read_text())["targets"][0]["actions"]}
    left = planned[f["p_amd"]]["reclaim_share"] + planned[f["p_sig"]]["reclaim_share"]
    assert done["reclaimed_size"] == sum(a["reclaim_size"] for a in planned.values()) - left
    versions, tags = s.remaining()
    assert {rebuilt, f["p_amd"], f["shared"]} <= versions and f["pr"] not in versions
    assert tags == ["latest", "pr-8"]


def test_children_stay_when_their_parent_gained_a_tag_and_was_only_untagged(shapes, cli, tmp_path):
    s = shapes
    f = build_two_images(s)
    policy = write(tmp_path, POLICY)
    plan_file = tmp_path / "plan.json"
    assert cli("plan", s.target, "--policy", policy, "--all-tags", "-o", plan_file).exit_code == 0
    s.pusher.manifest("release-1", s.bodies[f["pr"]], OCI_INDEX)           # pr-7's index gains a tag
    result = cli("apply", plan_file, "--yes", "-O", "json")
    assert result.exit_code == 4, result.stdout + result.stderr
    versions, tags = s.remaining()
    assert {f["pr"], f["p_amd"], f["p_att"], f["shared"]} <= versions     # release-1 is whole
    assert "release-1" in tags and "pr-7" not in tags
