"""Damaged state never crashes a run: bad rows of the first-seen ledger and of the run history are
skipped and counted with one warning; a state file that is not SQLite at all, or a state directory
that is not a directory, is one line naming it and what to do."""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ghcr_janitor.inventory.ledger import Ledger
from ghcr_janitor.report import history as h

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
BAD_SEEN = ["garbage", None, "2026-11-01T10:00:00", 1767225600, 1.5, b"\x00\x01blob", "", "9999-99-99T99:99:99+00:00"]


@pytest.fixture
def undated(tmp_path) -> Path:
    """A layout of three tags whose manifests carry no time: their ages come from the ledger."""
    from tests.layout_factory import IMAGE_CONFIG, LayoutFactory, dumps

    factory = LayoutFactory(tmp_path / "undated")
    config = factory.blob(dumps({"architecture": "amd64", "os": "linux"}), IMAGE_CONFIG)
    for name in ("a", "b", "c"):
        factory.tag(f"cache-{name}", factory.manifest(config, [factory.blob(f"layer {name}".encode())]))
    return factory.root


def ledger_file() -> Path:
    import os

    return Path(os.environ["JANITOR_STATE_DIR"]) / "first-seen.sqlite"


def damage_ledger(values: list) -> None:
    """Give the ledger's rows the damaged `seen` values, one each (the rest stay good)."""
    db = sqlite3.connect(ledger_file())
    with db:
        rowids = [r[0] for r in db.execute("SELECT rowid FROM first_seen ORDER BY rowid")]
        for rowid, value in zip(rowids, values):
            db.execute("UPDATE first_seen SET seen = ? WHERE rowid = ?", (value, rowid))
    db.close()


def warnings_in(stderr: str, word: str) -> list[str]:
    return [line for line in stderr.splitlines() if word in line]


# --- the first-seen ledger -----------------------------------------------------------------

@pytest.mark.parametrize("value", BAD_SEEN, ids=repr)
def test_ledger_skips_a_damaged_seen_value_and_keeps_the_good_ones(tmp_path, value, caplog):
    ledger = Ledger(tmp_path / "first-seen.sqlite")
    assert set(ledger.first_seen("r", ["d1", "d2"], NOW)) == {"d1", "d2"}
    db = sqlite3.connect(tmp_path / "first-seen.sqlite")
    with db:
        db.execute("UPDATE first_seen SET seen = ? WHERE digest = 'd1'", (value,))
    db.close()
    with caplog.at_level(logging.WARNING):
        seen = ledger.first_seen("r", ["d1", "d2"], NOW)
    assert seen == {"d2": NOW}
    assert all(when.tzinfo is not None for when in seen.values())
    assert len(caplog.records) == 1 and "1 damaged" in caplog.records[0].getMessage()
    ledger.close()


@pytest.mark.parametrize("command", [["ls"], ["plan"], ["prune", "--dry-run"]])
def test_damaged_ledger_rows_are_skipped_with_one_warning_by_every_command(undated, cli, command):
    first = cli("ls", undated, "-O", "json")
    assert first.exit_code == 0 and '"first-seen"' in first.stdout
    damage_ledger(["garbage", None, "2026-11-01T10:00:00"])
    result = cli(*command, undated, "-O", "json")
    assert result.exit_code == 0, result.stderr
    warned = warnings_in(result.stderr, "first-seen")
    assert len(warned) == 1 and "3 damaged" in warned[0] and str(ledger_file()) in warned[0], result.stderr
    assert "Traceback" not in result.stderr


def test_damaged_ledger_rows_leave_the_age_unknown_so_age_rules_keep_them(undated, cli, tmp_path):
    cli("ls", undated)
    damage_ledger(["garbage"])
    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\nname = "old"\nselect = { tags = ["cache-*"] }\nolder_than = "0s"\n'
                      'action = "delete"\n')
    result = cli("plan", undated, "--policy", policy, "-O", "json")
    (target,) = json.loads(result.stdout)["targets"]
    unknown = [k for k in target["kept"] if "unknown" in k["reason"]]
    assert len(unknown) == 1, target["kept"]


def test_a_ledger_that_is_not_sqlite_is_one_line_naming_it_and_what_to_do(undated, cli):
    path = ledger_file()
    path.parent.mkdir(parents=True)
    path.write_bytes(bytes(range(256)) * 64)
    result = cli("ls", undated)
    assert result.exit_code == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "not a SQLite database" in lines[0], result.stderr
    assert "move it aside" in lines[0]


# --- the run history -----------------------------------------------------------------------

def _history_with(store: Path, **bad) -> None:
    """Two good rows and one whose columns are overwritten with `bad` (values of any type)."""
    h.History(store).append([h.Row(f"2026-11-0{i}T00:00:00Z", "ls", "t", "oci", 1, 10 * i, 5, None, None)
                             for i in (1, 2, 3)])
    db = sqlite3.connect(store)
    with db:
        for name, value in bad.items():
            db.execute(f"UPDATE history SET {name} = ? WHERE time = '2026-11-02T00:00:00Z'", (value,))
    db.close()


@pytest.mark.parametrize("bad", [{"bytes": "abc"}, {"time": b"\x00blob"}, {"time": "yesterday"}, {"items": -3},
                                 {"reclaimed": 1.5}, {"command": ""}, {"target": b"t"}], ids=repr)
def test_history_export_skips_damaged_rows_with_one_warning(tmp_path, cli, bad):
    store = tmp_path / "h.sqlite"
    _history_with(store, **bad)
    result = cli("history", "export", "--history", store)
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["bytes"] for line in result.stdout.splitlines()] == [10, 30]
    warned = result.stderr.splitlines()
    assert len(warned) == 1 and "1 damaged row" in warned[0] and str(store) in warned[0], result.stderr


def test_report_skips_a_history_row_with_text_bytes_with_one_warning(undated, cli, tmp_path):
    store = tmp_path / "h.sqlite"
    assert cli("ls", undated, "--history", store).exit_code == 0
    db = sqlite3.connect(store)
    with db:
        db.execute("UPDATE history SET bytes = 'abc'")
    db.close()
    result = cli("report", undated, "--history", store, "-o", tmp_path / "r.html")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "r.html").exists()
    warned = warnings_in(result.stderr, "damaged")
    assert len(warned) == 1 and "1 damaged row" in warned[0], result.stderr


def test_a_history_that_is_not_sqlite_says_what_to_do(tmp_path, cli):
    store = tmp_path / "h.sqlite"
    store.write_bytes(b"\x89random" * 500)
    result = cli("history", "export", "--history", store)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert str(store) in result.stderr and "move it aside" in result.stderr


# --- the state directory -------------------------------------------------------------------

@pytest.mark.parametrize("where", ["file", "under-a-file"])
def test_state_dir_that_is_not_a_directory_names_the_variable(undated, cli, tmp_path, monkeypatch, where):
    blocker = tmp_path / "state-file"
    blocker.write_text("not a directory")
    path = blocker if where == "file" else blocker / "sub"
    monkeypatch.setenv("JANITOR_STATE_DIR", str(path))
    for args in (["ls", undated], ["history", "export"]):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.stderr)
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and "JANITOR_STATE_DIR" in lines[0] and str(path) in lines[0], result.stderr
        assert "must be a directory" in lines[0]


def test_xdg_state_home_that_is_a_file_names_that_variable(undated, cli, tmp_path, monkeypatch):
    blocker = tmp_path / "xdg"
    blocker.write_text("")
    monkeypatch.delenv("JANITOR_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocker))
    result = cli("ls", undated)
    assert result.exit_code == 2 and "XDG_STATE_HOME" in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.skipif(hasattr(__import__("os"), "geteuid") and __import__("os").geteuid() == 0,
                    reason="root writes anywhere")
def test_state_dir_that_is_not_writable_names_the_variable(undated, cli, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    monkeypatch.setenv("JANITOR_STATE_DIR", str(locked / "state"))
    result = cli("ls", undated)
    assert result.exit_code == 2 and "JANITOR_STATE_DIR" in result.stderr and "writable" in result.stderr
