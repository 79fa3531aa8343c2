"""Action outputs from the janitor's JSON: a plan (dry run), apply results, or gc reports."""

import json
import sys


def main(path: str) -> None:
    try:
        text = open(path, encoding="utf-8").read()
    except OSError:
        text = ""
    docs, decoder, i = [], json.JSONDecoder(), 0
    while i < len(text):                    # gc writes one document per target
        if text[i].isspace():
            i += 1
            continue
        try:
            doc, i = decoder.raw_decode(text, i)
        except ValueError:
            break
        docs.append(doc)
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
    print(f"deleted={deleted}\nuntagged={untagged}\nreclaimed-bytes={reclaimed}")


if __name__ == "__main__":
    main(sys.argv[1])
