"""The OCI store's memory of tag digests (stores/oci/memory.py): what it recalls, its bounds, and
damage: a damaged file or row is one warning, never a traceback, never a digest to probe."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ghcr_janitor.stores.oci import memory as m
from ghcr_janitor.stores.oci.memory import DigestMemory

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
REPO = "127.0.0.1:5000/acme/app"


def dg(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(m, "_warned", set())


@pytest.fixture
def memory(tmp_path) -> DigestMemory:
    return DigestMemory(tmp_path / m.FILE_NAME)


def digests(recalled) -> list[str]:
    entries, _ = recalled
    return [e.digest for e in entries]


def test_a_first_run_knows_none_and_a_later_run_recalls_what_a_tag_left(memory):
    assert memory.recall(REPO, set(), NOW) == ([], None)
    memory.record(REPO, {"cache-a": dg("a1"), "cache-b": dg("b1")}, NOW)
    later = NOW + timedelta(days=1)
    # cache-a was overwritten: a1 is remembered, b1 is still tagged (not recalled).
    entries, since = memory.recall(REPO, {dg("a2"), dg("b1")}, later)
    assert since == NOW
    assert [(e.digest, e.tag, e.last_tagged) for e in entries] == [(dg("a1"), "cache-a", NOW)]
    # Another repository's memory is its own.
    assert memory.recall("127.0.0.1:5000/acme/other", set(), later) == ([], None)


def test_a_digest_seen_tagged_again_is_last_seen_then_and_forget_drops_it(memory):
    memory.record(REPO, {"cache-a": dg("a1")}, NOW)
    memory.record(REPO, {"cache-a": dg("a1")}, NOW + timedelta(days=3))
    entries, since = memory.recall(REPO, set(), NOW + timedelta(days=4))
    assert since == NOW and [e.last_tagged for e in entries] == [NOW + timedelta(days=3)]
    memory.forget(REPO, [dg("a1")])
    assert digests(memory.recall(REPO, set(), NOW + timedelta(days=4))) == []


def test_memory_is_bounded_in_number_and_age(memory, monkeypatch):
    monkeypatch.setattr(m, "MAX_REMEMBERED", 3)
    for day in range(6):        # cache-a overwritten every day: six digests, one tagged now
        memory.record(REPO, {"cache-a": dg(f"a{day}"), "cache-base": dg("base")}, NOW + timedelta(days=day))
    db = sqlite3.connect(memory.path)
    rows = {d for (d,) in db.execute("SELECT digest FROM tag_digests")}
    db.close()
    # The tagged ones (a5, base), and the 3 most recently tagged others; the oldest two forgotten.
    assert rows == {dg("a5"), dg("base"), dg("a4"), dg("a3"), dg("a2")}
    recalled = digests(memory.recall(REPO, {dg("a5"), dg("base")}, NOW + timedelta(days=6)))
    assert recalled == [dg("a4"), dg("a3"), dg("a2")]
    # Not seen under a tag for FORGET_AFTER: neither recalled nor kept at the next record.
    much_later = NOW + timedelta(days=5) + m.FORGET_AFTER + timedelta(days=1)
    assert digests(memory.recall(REPO, {dg("base")}, much_later)) == []
    memory.record(REPO, {"cache-base": dg("base")}, much_later)
    db = sqlite3.connect(memory.path)
    assert {d for (d,) in db.execute("SELECT digest FROM tag_digests")} == {dg("base")}
    db.close()


@pytest.mark.parametrize("column, value", [
    ("digest", "sha256:../../v2/_catalog"), ("digest", None), ("digest", 12), ("digest", b"\x00blob"),
    ("digest", "sha256:" + "A" * 64),
    ("last_tagged", "garbage"), ("last_tagged", None), ("last_tagged", "2026-11-01T10:00:00"),
    ("last_tagged", 1767225600), ("last_tagged", "9999-12-31T00:00:00+00:00"),
    ("tag", "../x"), ("tag", "x" * 500), ("tag", b"\x00tag"),
], ids=repr)
def test_a_damaged_row_is_skipped_with_one_warning_and_never_probed(memory, column, value, caplog):
    memory.record(REPO, {"cache-a": dg("a1"), "cache-b": dg("b1")}, NOW)
    db = sqlite3.connect(memory.path)
    with db:
        db.execute(f"UPDATE tag_digests SET {column} = ? WHERE digest = ?", (value, dg("a1")))
    db.close()
    with caplog.at_level(logging.WARNING):
        recalled = memory.recall(REPO, set(), NOW + timedelta(hours=1))
        memory.recall(REPO, set(), NOW + timedelta(hours=2))
    assert digests(recalled) == [dg("b1")]
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "1 damaged row" in warned[0] and str(memory.path) in warned[0]
    # Recording goes on, and does not delete the damaged row (damage is never a reason to delete).
    memory.record(REPO, {"cache-b": dg("b1")}, NOW + timedelta(hours=3))
    db = sqlite3.connect(memory.path)
    assert db.execute("SELECT COUNT(*) FROM tag_digests").fetchone()[0] == 2
    db.close()


@pytest.mark.parametrize("content", [b"not a database at all", b"SQLite format 3\x00" + b"\xff" * 5000, b""],
                         ids=["text", "damaged-sqlite", "empty"])
def test_a_damaged_file_is_one_warning_and_the_memory_goes_unused(memory, content, caplog):
    memory.path.write_bytes(content)
    with caplog.at_level(logging.WARNING):
        first = memory.recall(REPO, set(), NOW)
        memory.record(REPO, {"cache-a": dg("a1")}, NOW)
        memory.forget(REPO, [dg("a1")])
        again = memory.recall(REPO, set(), NOW)
    if content:
        assert first is None and again is None
        assert len(caplog.records) == 1, [r.getMessage() for r in caplog.records]
        assert str(memory.path) in caplog.records[0].getMessage()
        assert memory.path.read_bytes() == content          # never replaced or deleted
    else:                           # an empty file is a new database
        assert first == ([], None) and again[1] == NOW and caplog.records == []


def test_a_directory_in_the_files_place_is_one_warning(memory, caplog):
    memory.path.mkdir(parents=True)
    with caplog.at_level(logging.WARNING):
        assert memory.recall(REPO, set(), NOW) is None
        memory.record(REPO, {"cache-a": dg("a1")}, NOW)
    assert len(caplog.records) == 1 and "not a regular file" in caplog.records[0].getMessage()


def test_concurrent_runs_record_without_losing_a_digest(memory):
    """Eight runs at once, each its own tags: every digest is remembered, nothing raises."""
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            for step in range(10):
                memory.record(REPO, {f"cache-{i}": dg(f"{i}-{step}")}, NOW + timedelta(seconds=step))
        except BaseException as exc:       # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    recalled = set(digests(memory.recall(REPO, set(), NOW + timedelta(minutes=1))))
    assert recalled == {dg(f"{i}-{step}") for i in range(8) for step in range(10)}


# --- properties ------------------------------------------------------------------------------

NAMES = [dg(f"d{i}") for i in range(12)]
TAGS = ["cache-a", "cache-b", "cache-c", "latest"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(runs=st.lists(st.dictionaries(st.sampled_from(TAGS), st.sampled_from(NAMES), max_size=4), min_size=1,
                     max_size=8),
       cap=st.integers(1, 6), tagged_now=st.sets(st.sampled_from(NAMES)))
def test_recall_is_what_earlier_runs_saw_tagged_bounded_and_never_a_tagged_digest(tmp_path_factory, runs, cap,
                                                                                 tagged_now):
    """Against a model of the memory: recall never names a digest a tag points at now; it names the
    `cap` most recently tagged of the digests earlier runs saw under a tag (each run keeping, besides
    its own tags' digests, the `cap` most recently tagged others), with the time each was last seen."""
    memory = DigestMemory(tmp_path_factory.mktemp("mem") / m.FILE_NAME)
    original = m.MAX_REMEMBERED
    m.MAX_REMEMBERED = cap
    model: dict[str, datetime] = {}
    try:
        for i, tags in enumerate(runs):
            when = NOW + timedelta(hours=i)
            memory.record(REPO, tags, when)
            model.update((d, when) for d in tags.values())
            others = sorted(((t, d) for d, t in model.items() if d not in tags.values()), reverse=True)
            for _, dropped in others[cap:]:
                del model[dropped]
        entries, since = memory.recall(REPO, tagged_now, NOW + timedelta(days=1))
    finally:
        m.MAX_REMEMBERED = original
    assert since == NOW
    recalled = {e.digest: e.last_tagged for e in entries}
    candidates = {d: t for d, t in model.items() if d not in tagged_now}
    assert not set(recalled) & tagged_now
    assert len(recalled) == len(entries) == min(cap, len(candidates))
    assert all(candidates.get(d) == t for d, t in recalled.items())
    times = [e.last_tagged for e in entries]
    assert times == sorted(times, reverse=True)
    if recalled:            # none left out was tagged more recently than one recalled (ties either way)
        assert all(t <= min(times) for d, t in candidates.items() if d not in recalled)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=3000), sqlite_header=st.booleans())
def test_any_file_content_is_a_memory_or_one_warning_never_a_traceback(tmp_path_factory, content, sqlite_header):
    path = tmp_path_factory.mktemp("mem") / m.FILE_NAME
    path.write_bytes((b"SQLite format 3\x00" if sqlite_header else b"") + content)
    memory = DigestMemory(path)
    m._warned.clear()
    recalled = memory.recall(REPO, set(), NOW)
    memory.record(REPO, {"cache-a": dg("a1")}, NOW)
    assert recalled is None or all(e.digest.startswith("sha256:") for e in recalled[0])
