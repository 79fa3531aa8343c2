"""Action outputs from the janitor's JSON: a plan (dry run), apply results, or gc reports.

    outputs.py RESULT [PLAN]     deleted, untagged, reclaimed-bytes and failed-targets, for $GITHUB_OUTPUT
    outputs.py --annotate PLAN   one ::error annotation per target of the plan that failed to plan

RESULT is what this run printed (missing or empty when it failed before printing anything: then the
counts are 0). `deleted` and `untagged` count only actions with status "done" (not "gone": already
not there, nothing the janitor did; not skipped or failed ones). PLAN (`janitor plan -o`) names the
targets whose planning failed (`targets[].errors`).
"""

import json
import sys
import uuid


def documents(path: str) -> list:
    """Every JSON document in the file (gc writes one per target); none when it is missing."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return []
    docs, decoder, i = [], json.JSONDecoder(), 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        try:
            doc, i = decoder.raw_decode(text, i)
        except ValueError:
            break
        if isinstance(doc, dict):
            docs.append(doc)
    return docs


def counts(docs: list) -> tuple[int, int, int]:
    deleted = untagged = reclaimed = 0
    for doc in docs:
        if "plan_version" in doc:           # a plan: what would be done
            for target in doc.get("targets", []):
                actions = target.get("actions", [])
                deleted += sum(1 for a in actions if a.get("action") == "delete")
                untagged += sum(1 for a in actions if a.get("action") == "untag")
                reclaimed += target.get("reclaim_size", 0)
        elif "exit_code" in doc:            # apply results: what was done
            for target in doc.get("targets", []):
                done = [r for r in target.get("results", []) if r.get("status") == "done"]
                deleted += sum(1 for r in done if r.get("action") == "delete")
                untagged += sum(1 for r in done if r.get("action") == "untag")
                reclaimed += target.get("reclaimed_size", 0)
        elif "bytes_freed" in doc:          # gc
            deleted += len(doc.get("deleted", []))
            reclaimed += doc.get("bytes_freed", 0)
    return deleted, untagged, reclaimed


def failed_targets(docs: list) -> list[tuple[str, list[str]]]:
    """(target, errors) of every planned target with errors."""
    out = []
    for doc in docs:
        if "plan_version" in doc:
            out += [(str(t.get("target")), [str(e) for e in t.get("errors") or []])
                    for t in doc.get("targets", []) if t.get("errors")]
    return out


def escape(text: str) -> str:
    """A workflow command's message: %, CR and LF escaped (one annotation, one line)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def annotate(plan: str) -> None:
    for target, errors in failed_targets(documents(plan)):
        print(f"::error title=ghcr-janitor::{escape(target)}: {escape('; '.join(errors))}")


def main(result: str, plan: str | None = None) -> None:
    deleted, untagged, reclaimed = counts(documents(result))
    failed = [t for t, _ in failed_targets(documents(plan) if plan else documents(result))]
    delimiter = f"GHCR_JANITOR_{uuid.uuid4().hex}"
    print(f"deleted={deleted}\nuntagged={untagged}\nreclaimed-bytes={reclaimed}")
    print(f"failed-targets<<{delimiter}\n" + "".join(f"{t}\n" for t in failed) + delimiter)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--annotate"]:
        annotate(sys.argv[2])
    else:
        main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
