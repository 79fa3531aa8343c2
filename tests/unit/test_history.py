"""The run history: appended by every run, atomic under concurrent runs, bounded, moved as JSON lines,
and a broken history never blocks a run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ghcr_janitor.report import history as h

ROOT = Path(__file__).resolve().parents[2]


def row(i: int, target: str = "oci-layout:/c") -> h.Row:
    return h.Row(f"2026-11-{1 + i // 1440:02d}T{(i // 60) % 24:02d}:{i % 60:02d}:00Z", "ls", target, "layout",
                 i, 1000 + i, 500, None, None)


def test_every_run_appends_one_row_per_target_and_export_import_round_trip(layout, cli, tmp_path):
    store = tmp_path / "h.sqlite"
    assert cli("ls", layout, "--history", store).exit_code == 0
    assert cli("prune", layout, "--dry-run", "--history", store).exit_code == 0
    exported = cli("history", "export", "--history", store)
    assert exported.exit_code == 0
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [r["command"] for r in rows] == ["ls", "prune"] and all(r["target"] == f"oci-layout:{layout}" for r in rows)
    assert rows[1]["reclaimable"] > 0 and rows[0]["items"] == 6 and rows[0]["bytes"] > rows[0]["unique_bytes"] > 0
    dump = tmp_path / "history.jsonl"
    dump.write_text(exported.stdout)
    other = tmp_path / "other.sqlite"
    assert cli("history", "import", dump, "--history", other).stdout.strip() == "imported 2 of 2 rows"
    again = cli("history", "import", dump, "--history", other).stdout.strip()     # kept once
    assert again == "imported 0 of 2 rows (the rest were there already, or older than the newest 5,000 of their target)"
    assert cli("history", "export", "--history", other).stdout == exported.stdout


def test_two_concurrent_runs_append_atomically(tmp_path):
    store = tmp_path / "h.sqlite"
    code = ("import sys; from ghcr_janitor.report import history as h; k = int(sys.argv[1]); "
            "[h.History(sys.argv[2]).append([h.Row(f'2026-11-01T00:00:{i:02d}.{k}Z', 'ls', f't{k}-{i}', None, 1, 1, 1, "
            "None, None)]) for i in range(60)]")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(k), str(store)], cwd=ROOT) for k in (1, 2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert len(list(h.History(store).rows())) == 120


def test_history_is_bounded_per_target(tmp_path, monkeypatch):
    monkeypatch.setattr(h, "MAX_ROWS_PER_TARGET", 50)
    store = h.History(tmp_path / "h.sqlite")
    store.append([row(i) for i in range(80)] + [row(i, "other") for i in range(3)])
    rows = list(store.rows())
    assert len([r for r in rows if r.target == "oci-layout:/c"]) == 50 and len(rows) == 53
    assert min(r.items for r in rows if r.target == "oci-layout:/c") == 30          # the newest were kept


def test_a_corrupt_history_is_one_warning_and_never_blocks_prune(layout, cli, tmp_path):
    store = tmp_path / "h.sqlite"
    store.write_bytes(b"this is not sqlite" * 100)
    result = cli("prune", layout, "--dry-run", "--history", store)
    assert result.exit_code == 0 and "would reclaim" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if "history" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: history not recorded:") and str(store) in warnings[0]
    exported = cli("history", "export", "--history", store)
    assert exported.exit_code == 1 and exported.stderr.count("\n") == 1


@pytest.mark.parametrize("line,problem", [
    ("not json", "not JSON"),
    ('{"time": "2026-11-01T00:00:00Z"}', "expected an object with exactly"),
    (json.dumps({**h.asdict(row(1)), "items": -1}), "items: unexpected -1"),
    (json.dumps({**h.asdict(row(1)), "time": "yesterday"}), "time: invalid time"),
])
def test_import_refuses_bad_lines_with_file_and_line(tmp_path, cli, line, problem):
    dump = tmp_path / "bad.jsonl"
    dump.write_text(json.dumps(h.asdict(row(0))) + "\n" + line + "\n")
    result = cli("history", "import", dump, "--history", tmp_path / "h.sqlite")
    assert result.exit_code != 0 and f"{dump}:2: " in result.stderr and problem in result.stderr
    assert not (tmp_path / "h.sqlite").exists()               # nothing half-imported


def test_import_keeps_one_spelling_per_instant_and_refuses_rows_from_the_future(tmp_path, cli):
    from datetime import datetime, timedelta, timezone

    base = {"command": "ls", "target": "t", "backend": "oci", "items": 1, "bytes": 10, "unique_bytes": 5,
            "reclaimable": None, "reclaimed": None}
    same = [dict(base, time="2026-11-01T23:00:00-05:00"), dict(base, time="2026-11-02T04:00:00Z")]
    path = tmp_path / "h.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in same))
    store = tmp_path / "h.sqlite"
    assert cli("history", "import", path, "--history", store).stdout.startswith("imported 1 of 2 rows")
    assert [json.loads(line)["time"] for line in cli("history", "export", "--history", store).stdout.splitlines()] \
        == ["2026-11-02T04:00:00Z"]
    ahead = (datetime.now(timezone.utc) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    path.write_text(json.dumps(dict(base, time=ahead)) + "\n")
    result = cli("history", "import", path, "--history", store)
    assert result.exit_code == 1 and f"{path}:1: time: {ahead} is in the future" in result.stderr


def test_import_counts_what_the_bound_leaves(tmp_path, cli, monkeypatch):
    from ghcr_janitor.report import history

    monkeypatch.setattr(history, "MAX_ROWS_PER_TARGET", 3)
    rows = [{"time": f"2026-11-0{d}T00:00:00Z", "command": "ls", "target": "t", "backend": "oci", "items": 1,
             "bytes": d, "unique_bytes": d, "reclaimable": None, "reclaimed": None} for d in range(1, 6)]
    path = tmp_path / "h.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = cli("history", "import", path, "--history", tmp_path / "h.sqlite").stdout
    assert out.startswith("imported 3 of 5 rows")
