"""The apply journal: one JSON line per finished action, next to the plan file.

A rerun of `janitor apply PLAN` after an interruption reads it and does not redo what
was done; everything else is re-checked against the registry as usual. A "done" line is a hint,
never proof: before a rerun reports an action done from the journal it checks the store as it is
now (`apply.verify`: the tag no longer points at the pinned digest, the digest is gone, the cache
id is gone). A registry restored from a backup, or a tag pushed back, refutes the line (`refute`)
and the action is carried out again through the same last look as any other. Every line carries
the plan's fingerprint (sha256 of the plan file's bytes), so a new plan written to the
same path never inherits the old plan's "done" (a cron job that runs `plan -o plan.json`
and `apply plan.json` daily would otherwise skip today's work).

Each line is written whole by one `write` call on an append-only descriptor, then fsynced, so an
interrupt (Ctrl-C, a kill) cannot tear it; a line torn by an older crash or a full disk is skipped
on reading, and the next line starts on a line of its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from ghcr_janitor.core.errors import PlanError
from ghcr_janitor.core.files import UnreadableFile, append_regular, read_regular
from ghcr_janitor.plan.file import MAX_PLAN_BYTES

MAX_JOURNAL_BYTES = 256 << 20   # one line per action: ~150 bytes; a million actions fit


def action_key(target: str, action: str, tag: str | None, digest: str, to: str | None) -> str:
    return "|".join([target, action, tag or "", digest, to or ""])


class Journal:
    def __init__(self, path: Path | None, plan_id: str = ""):
        self.path = path
        self.plan_id = plan_id
        self.done: set[str] = set()             # journalled done (earlier runs: hints) or done by this run
        self.refuted: set[str] = set()          # journalled done, but the store says otherwise now
        self.counts: dict[str, int] = {}        # statuses recorded by this run
        self.last_at = time.monotonic_ns()      # when this run last recorded (or started)
        self._newline = False                   # the file ends in a torn line: start a new one
        if path is not None and os.path.lexists(path):
            try:
                text = read_regular(path, MAX_JOURNAL_BYTES).decode("utf-8", errors="replace")
            except UnreadableFile as exc:
                raise PlanError(f"apply journal {exc}; move it aside to start over") from None
            self._newline = bool(text) and not text.endswith("\n")
            for line in text.splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue            # a line cut by a crash
                if (isinstance(entry, dict) and entry.get("plan") == plan_id and entry.get("status") == "done"
                        and isinstance(entry.get("key"), str)):
                    self.done.add(entry["key"])

    @classmethod
    def for_plan(cls, plan_path: Path | None) -> "Journal":
        if plan_path is None:
            return cls(None)
        try:
            plan_id = hashlib.sha256(read_regular(plan_path, MAX_PLAN_BYTES)).hexdigest()
        except OSError:
            plan_id = ""
        return cls(plan_path.with_name(plan_path.name + ".journal"), plan_id)

    def refute(self, key: str) -> None:
        """The store shows `key`'s effect undone (restored from a backup, pushed again): not done."""
        self.refuted.add(key)

    def record(self, key: str, status: str) -> None:
        if status == "done":
            self.done.add(key)
            self.refuted.discard(key)
        self.counts[status] = self.counts.get(status, 0) + 1
        self.last_at = time.monotonic_ns()
        if self.path is None:
            return
        line = (json.dumps({"plan": self.plan_id, "key": key, "status": status}) + "\n").encode("utf-8")
        if self._newline:
            line = b"\n" + line
        append_regular(self.path, line, sync=True, mode=0o666)     # one write call: whole, or cut short by a full disk
        self._newline = False
