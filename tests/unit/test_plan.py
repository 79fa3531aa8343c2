"""Plans: untag vs delete, reclaim arithmetic, JSON round trip, read_plan errors."""

import hashlib
import json
from datetime import datetime, timezone

import pytest

from ghcr_janitor.cli.common import exit_code_for
from ghcr_janitor.core.errors import PlanError
from ghcr_janitor.core.models import Artifact, Inventory
from ghcr_janitor.plan.model import Plan, new_plan
from ghcr_janitor.plan.file import parse_plan, read_plan, write_plan
from ghcr_janitor.plan.build import build_target_plan
from ghcr_janitor.policy import Decision

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def dg(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def art(name: str, blobs: dict[str, int], error: str | None = None, subject: str | None = None,
        version_id: int | None = None) -> Artifact:
    closure = {dg(name): 10} | {dg(b): s for b, s in blobs.items()}
    return Artifact(digest=dg(name), media_type="application/vnd.oci.image.index.v1+json", kind="buildkit-cache",
                    closure=closure, created=datetime(2026, 8, 1, tzinfo=timezone.utc), age_source="buildkit/createdat",
                    error=error, subject=subject, extra={"version_id": version_id} if version_id else {})


def inventory(tags: dict[str, str], artifacts: list[Artifact], untagged: list[str] = (), listed=None) -> Inventory:
    return Inventory(target="localhost:5000/acme/app", tags={t: dg(a) for t, a in tags.items()},
                     artifacts={a.digest: a for a in artifacts}, listed=sorted(tags) if listed is None else listed,
                     untagged=[dg(u) for u in untagged])


def delete(tag, name, reason="older than 30d"):
    return Decision(tag, dg(name), "delete", reason, "stale")


def keep(tag, name, reason="no rule matched"):
    return Decision(tag, dg(name), "keep", reason)


def summary(tp):
    return [(a.action, a.tag, a.reclaim_size) for a in tp.actions]


def test_shared_digest_with_kept_tag_is_untag():
    inv = inventory({"cache-a": "x", "cache-b": "x"}, [art("x", {"l1": 100})])
    tp = build_target_plan(inv, [delete("cache-a", "x"), keep("cache-b", "x")])
    assert summary(tp) == [("untag", "cache-a", 0)]
    assert "untag only" in tp.actions[0].reason and "cache-b" in tp.actions[0].reason
    assert tp.reclaim_size == 0 and tp.notes == []
    assert [(k.tag, k.reason) for k in tp.kept] == [("cache-b", "no rule matched")]


def test_unlisted_tag_keeps_the_digest():
    inv = inventory({"cache-a": "x", "release": "x"}, [art("x", {"l1": 100})], listed=["cache-a"])
    tp = build_target_plan(inv, [delete("cache-a", "x")])
    assert summary(tp) == [("untag", "cache-a", 0)]


def test_all_tags_go_first_delete_carries_reclaim():
    inv = inventory({"cache-b": "x", "cache-a": "x"}, [art("x", {"l1": 100, "l2": 50})])
    tp = build_target_plan(inv, [delete("cache-a", "x"), delete("cache-b", "x")])
    assert summary(tp) == [("delete", "cache-a", 160), ("delete", "cache-b", 0)]
    assert tp.reclaim_size == 160 and tp.notes == []       # what it means: the store's reclaim_note
    first = tp.actions[0]
    assert first.kind == "buildkit-cache" and first.size == 160 and first.created == "2026-08-01T00:00:00Z"
    assert first.age_source == "buildkit/createdat" and first.rule == "stale"


def test_reclaim_excludes_blobs_of_kept_artifacts():
    # x and y share "base" (1000); z (kept) shares "mid" with x.
    arts = [art("x", {"base": 1000, "mid": 200, "ox": 30}), art("y", {"base": 1000, "oy": 40}),
            art("z", {"mid": 200, "oz": 5})]
    inv = inventory({"cache-x": "x", "cache-y": "y", "cache-z": "z"}, arts)
    tp = build_target_plan(inv, [delete("cache-x", "x"), delete("cache-y", "y"), keep("cache-z", "z")])
    # Independently: freed = closure(x) ∪ closure(y) minus closure(z), each blob once.
    freed = (set(arts[0].closure) | set(arts[1].closure)) - set(arts[2].closure)
    sizes = arts[0].closure | arts[1].closure
    expected = sum(sizes[b] for b in freed)
    assert expected == 10 + 1000 + 30 + 10 + 40
    assert tp.reclaim_size == expected
    # "base" is attributed to the first action (cache-x).
    assert summary(tp) == [("delete", "cache-x", 10 + 1000 + 30), ("delete", "cache-y", 10 + 40)]


def test_untagged_artifact_counts_as_kept_for_reclaim():
    arts = [art("x", {"base": 1000, "ox": 30}), art("u", {"base": 1000})]
    inv = inventory({"cache-x": "x"}, arts, untagged=["u"])
    tp = build_target_plan(inv, [delete("cache-x", "x"), keep(None, "u")])
    assert summary(tp) == [("delete", "cache-x", 40)]
    assert [(k.tag, k.digest) for k in tp.kept] == [(None, dg("u"))]


def test_multi_arch_child_of_kept_index_is_kept():
    child = art("child", {"layer": 500})
    index = art("index", {"child": 10, "layer": 500})  # closure includes the child's manifest digest
    inv = inventory({"latest": "index"}, [child, index], untagged=["child"])
    tp = build_target_plan(inv, [keep("latest", "index"), delete(None, "child")])
    assert tp.actions == []
    assert (None, dg("child")) in [(k.tag, k.digest) for k in tp.kept]
    assert "used by kept artifact " + dg("index") in [k.reason for k in tp.kept if k.tag is None][0]


def test_child_of_deleted_index_is_deleted_with_it():
    child = art("child", {"layer": 500})
    index = art("index", {"child": 10, "layer": 500})
    inv = inventory({"cache-i": "index"}, [child, index], untagged=["child"])
    tp = build_target_plan(inv, [delete("cache-i", "index"), delete(None, "child")])
    assert summary(tp) == [("delete", "cache-i", 520), ("delete", None, 0)]


def test_transitive_keep_and_referrer():
    # kept "top" references "mid" (deleted otherwise), "mid" references "leaf"; "sig" refers to top.
    leaf = art("leaf", {"l": 1})
    mid = art("mid", {"leaf": 10, "l": 1})
    top = art("top", {"mid": 10, "leaf": 10, "l": 1})
    sig = art("sig", {"s": 3}, subject=dg("top"))
    inv = inventory({"v1": "top"}, [leaf, mid, top, sig], untagged=["leaf", "mid", "sig"])
    decisions = [keep("v1", "top"), delete(None, "leaf"), delete(None, "mid"), delete(None, "sig")]
    tp = build_target_plan(inv, decisions)
    assert tp.actions == []
    assert "refers to kept artifact" in [k.reason for k in tp.kept if k.digest == dg("sig")][0]


def test_error_artifact_is_kept_and_reported():
    inv = inventory({"cache-a": "x"}, [art("x", {"l": 1}, error="HTTP 500")])
    tp = build_target_plan(inv, [delete("cache-a", "x")])
    assert tp.actions == [] and tp.kept[0].reason == "could not be inspected: HTTP 500"
    assert tp.errors == [f"{dg('x')}: HTTP 500"]


def test_decision_not_matching_inventory_is_kept():
    inv = inventory({"cache-a": "x"}, [art("x", {}), art("y", {})])
    tp = build_target_plan(inv, [delete("cache-a", "y")])
    assert tp.actions == [] and tp.errors


def test_action_order_and_retag():
    arts = [art("a", {}), art("b", {}), art("c", {}, version_id=77)]
    inv = inventory({"cache-a": "a", "cache-a2": "a", "cache-b": "b", "cache-c": "c"}, arts)
    decisions = [delete("cache-a", "a"), keep("cache-a2", "a"),
                 Decision("cache-b", dg("b"), "retag", "selected", "archive", "archive-b"),
                 delete("cache-c", "c")]
    tp = build_target_plan(inv, decisions)
    assert [(a.action, a.tag, a.to) for a in tp.actions] == [
        ("retag", "cache-b", "archive-b"), ("untag", "cache-a", None), ("delete", "cache-c", None)]
    assert tp.actions[2].version_id == 77 and tp.actions[2].reclaim_size == 10


def test_json_round_trip(tmp_path):
    arts = [art("a", {"l": 5}, version_id=3), art("b", {})]
    inv = inventory({"cache-a": "a", "cache-b": "b"}, arts, untagged=[])
    tp = build_target_plan(inv, [delete("cache-a", "a"),
                                 Decision("cache-b", dg("b"), "retag", "r", "x", "archive-b")])
    plan = new_plan("policies/seed-stages.toml", [tp], NOW)
    path = tmp_path / "plan.json"
    write_plan(plan, path)
    data = json.loads(path.read_text())
    assert list(data) == ["plan_version", "id", "created", "policy", "targets"]
    assert data["plan_version"] == 1 and data["created"] == "2026-11-01T12:00:00Z"
    target = data["targets"][0]
    for key in ("target", "reclaim_size", "actions", "kept"):
        assert key in target
    assert set(target["actions"][0]) >= {"action", "tag", "digest", "to", "reclaim_size", "rule", "reason"}
    assert read_plan(path) == plan
    assert parse_plan(plan.to_dict()) == plan
    assert plan.reclaim_size == 15


def test_minimal_cli_md_plan_is_accepted():
    data = {"plan_version": 1, "created": "2026-11-01T10:00:00Z", "policy": "policies/seed-stages.toml",
            "targets": [{"target": "t", "reclaim_size": 0,
                         "actions": [{"action": "delete", "tag": "cache-x", "digest": dg("x"), "to": None,
                                      "reclaim_size": 0, "rule": "stale branch caches", "reason": "older"}],
                         "kept": [{"tag": "cache-base", "digest": dg("b"), "reason": "protected by 'cache-base'"}]}]}
    plan = parse_plan(data)
    assert plan.targets[0].backend == "oci" and plan.targets[0].actions[0].kind is None


def _good() -> dict:
    return {"plan_version": 1, "created": "2026-11-01T10:00:00Z", "policy": "p.toml",
            "targets": [{"target": "t", "reclaim_size": 1,
                         "actions": [{"action": "delete", "tag": "cache-x", "digest": dg("x"), "to": None,
                                      "reclaim_size": 1, "rule": "r", "reason": "why"}],
                         "kept": [{"tag": None, "digest": dg("k"), "reason": "why"}]}]}


def _mutate(path_keys, value):
    data = _good()
    obj = data
    for k in path_keys[:-1]:
        obj = obj[k]
    if value is KeyError:
        del obj[path_keys[-1]]
    else:
        obj[path_keys[-1]] = value
    return data


A = ("targets", 0, "actions", 0)


@pytest.mark.parametrize("data, key", [
    ([], "plan"),
    (_mutate(("plan_version",), 2), "plan_version"),
    (_mutate(("plan_version",), KeyError), "plan_version"),
    (_mutate(("plan_version",), True), "plan_version"),
    (_mutate(("created",), "yesterday"), "created"),
    (_mutate(("created",), KeyError), "created"),
    (_mutate(("policy",), 5), "policy"),
    (_mutate(("targets",), {}), "targets"),
    (_mutate(("targets", 0), "t"), "targets[0]"),
    (_mutate(("targets", 0, "target"), ""), "targets[0].target"),
    (_mutate(("targets", 0, "reclaim_size"), -1), "targets[0].reclaim_size"),
    (_mutate(("targets", 0, "reclaim_size"), "1"), "targets[0].reclaim_size"),
    (_mutate(("targets", 0, "actions"), KeyError), "targets[0].actions"),
    (_mutate(("targets", 0, "kept"), KeyError), "targets[0].kept"),
    (_mutate(("targets", 0, "notes"), [1]), "targets[0].notes"),
    (_mutate(A + ("action",), "nuke"), "targets[0].actions[0].action"),
    (_mutate(A + ("digest",), "sha256:abc"), "targets[0].actions[0].digest"),
    (_mutate(A + ("digest",), KeyError), "targets[0].actions[0].digest"),
    (_mutate(A + ("tag",), "bad tag"), "targets[0].actions[0].tag"),
    (_mutate(A + ("tag",), "-x"), "targets[0].actions[0].tag"),
    (_mutate(A + ("action",), "untag") | {}, None),  # untag with a tag: fine (checked below)
    (_mutate(A + ("to",), "other"), "targets[0].actions[0].to"),
    (_mutate(A + ("action",), "retag"), "targets[0].actions[0].to"),
    (_mutate(A + ("reclaim_size",), True), "targets[0].actions[0].reclaim_size"),
    (_mutate(A + ("reclaim_size",), 1.5), "targets[0].actions[0].reclaim_size"),
    (_mutate(A + ("reason",), None), "targets[0].actions[0].reason"),
    (_mutate(A + ("created",), "nope"), "targets[0].actions[0].created"),
    (_mutate(A + ("version_id",), "12"), "targets[0].actions[0].version_id"),
    (_mutate(("targets", 0, "kept", 0, "digest"), "md5:00"), "targets[0].kept[0].digest"),
    (_mutate(("targets", 0, "kept", 0, "tag"), "a/b"), "targets[0].kept[0].tag"),
    (_mutate(("targets", 0, "kept", 0), 3), "targets[0].kept[0]"),
])
def test_read_plan_errors(tmp_path, data, key):
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    if key is None:
        read_plan(path)
        return
    with pytest.raises(PlanError) as err:
        read_plan(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {key}: ") and "\n" not in message
    assert exit_code_for(err.value) == 2


def test_untag_needs_a_tag(tmp_path):
    path = tmp_path / "plan.json"
    data = _mutate(A + ("action",), "untag")
    data["targets"][0]["actions"][0]["tag"] = None
    path.write_text(json.dumps(data))
    with pytest.raises(PlanError, match=r"actions\[0\]\.tag"):
        read_plan(path)


def test_read_plan_missing_file(tmp_path):
    with pytest.raises(PlanError, match=r"nope\.json: plan file not found"):
        read_plan(tmp_path / "nope.json")


def test_read_plan_bad_json(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text("{not json\n\n")
    with pytest.raises(PlanError, match="not valid JSON") as err:
        read_plan(path)
    assert "\n" not in str(err.value)


def test_read_plan_deeply_nested_json(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(PlanError):
        read_plan(path)


def test_read_plan_directory(tmp_path):
    with pytest.raises(PlanError, match="cannot read plan"):
        read_plan(tmp_path)


def test_a_plan_file_cannot_mix_cache_actions_and_registry_targets(tmp_path):
    import json as _json

    from ghcr_janitor.core.errors import PlanError
    from ghcr_janitor.plan.file import read_plan

    cache_action = {"action": "delete", "tag": None, "digest": None, "cache_id": 5, "key": "k", "ref": "refs/heads/x",
                    "reclaim_size": 1, "reason": "r"}
    for target, action, where in (("localhost:5000/acme/app", cache_action, "cache_id belongs to gha: targets only"),
                                  ("gha:acme/app", {**cache_action, "cache_id": None, "digest": "sha256:" + "a" * 64},
                                   "need cache_id")):
        path = tmp_path / "plan.json"
        path.write_text(_json.dumps({"plan_version": 1, "created": "2026-11-01T00:00:00Z", "policy": None,
                                     "targets": [{"target": target, "reclaim_size": 0, "actions": [action], "kept": []}]}))
        with pytest.raises(PlanError, match=where):
            read_plan(path)


def test_reclaim_note_comes_from_the_inventory_and_round_trips(tmp_path):
    inv = inventory({"cache-a": "a"}, [art("a", {"l": 5})])
    inv.reclaim_note = "no longer referenced by any tag in this repository"   # the store says it
    tp = build_target_plan(inv, [delete("cache-a", "a")])
    assert tp.reclaim_note == "no longer referenced by any tag in this repository"
    plan = new_plan("p", [tp], NOW)
    path = tmp_path / "plan.json"
    write_plan(plan, path)
    assert json.loads(path.read_text())["targets"][0]["reclaim_note"] == tp.reclaim_note
    assert read_plan(path).targets[0].reclaim_note == tp.reclaim_note


def test_an_older_plan_without_reclaim_note_reads_as_empty():
    assert parse_plan(_good()).targets[0].reclaim_note == ""
    data = _good()
    data["targets"][0]["reclaim_note"] = 5
    with pytest.raises(PlanError, match=r"targets\[0\]\.reclaim_note: unexpected int"):
        parse_plan(data)
