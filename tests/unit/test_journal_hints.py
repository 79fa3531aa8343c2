"""The journal's "done" lines are hints (issue 20, point 12): a line the store refutes is not
counted done in an interrupted run's account until the action is done again; "gone" is counted
as already gone, never as done."""

from __future__ import annotations

import json

from ghcr_janitor.apply.journal import Journal
from ghcr_janitor.apply.results import GONE, interrupted_message
from ghcr_janitor.net.http import mutations


def test_a_refuted_line_is_not_counted_done_until_the_action_is_done_again(tmp_path):
    mutations.clear()
    path = tmp_path / "plan.json.journal"
    path.write_text("".join(json.dumps({"plan": "p", "key": k, "status": "done"}) + "\n" for k in ("a", "b", "c")))
    journal = Journal(path, "p")
    assert journal.done == {"a", "b", "c"}
    journal.refute("b")                     # the registry was restored: b's tag is back
    assert interrupted_message(5, journal, "rerun").startswith("interrupted: 2 of 5 actions done;")
    journal.record("b", "done")             # carried out again
    assert journal.refuted == set()
    assert interrupted_message(5, journal, "rerun").startswith("interrupted: 3 of 5 actions done;")
    assert Journal(path, "p").done == {"a", "b", "c"}      # the file keeps every line: a hint again next run


def test_gone_is_counted_apart_and_never_loaded_as_done(tmp_path):
    mutations.clear()
    path = tmp_path / "plan.json.journal"
    journal = Journal(path, "p")
    journal.record("a", "done")
    journal.record("g", GONE)
    assert interrupted_message(3, journal, "rerun") == "interrupted: 1 of 3 actions done, 1 already gone; rerun"
    assert Journal(path, "p").done == {"a"}
