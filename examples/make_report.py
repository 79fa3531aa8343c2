#!/usr/bin/env python3
"""Make the README's example report: `janitor report` on the example BuildKit cache directory,
with the history the example's own story gives it.

    python examples/make_report.py [--out DIR] [--screenshot docs/report.png]

The example cache (examples/make_buildx_cache.py) is the result of nine exports between
2026-08-02 and 2026-11-23. This script rebuilds the directory as it stood after each export,
lists it with `janitor ls` and records the totals at that export's time (`janitor history
import`), so the history chart shows how the directory grew, not invented numbers. Then it
writes DIR/report.html (default: a temporary dir) and, with --screenshot, a PNG of the page
taken by headless chromium (Debian: apt-get install chromium). Needs `janitor` with the report
extra: pip install -e '.[report]'.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_buildx_cache as example  # noqa: E402

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1000,1700"]


def janitor(*args: str, env: dict, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "ghcr_janitor", *args], env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"janitor {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def history_rows(work: Path, target: str, env: dict) -> list[dict]:
    """One `ls` row per export, at the time it finished."""
    rows = []
    for k in range(1, len(example.EXPORTS) + 1):
        step = work / f"after-{k}"
        example.build(step, exports=k)
        totals = json.loads(janitor("ls", f"oci-layout:{step}", "-O", "json", "--history", str(work / "scratch.sqlite"),
                                    env=env, cwd=work))["targets"][0]["totals"]
        when = datetime.fromtimestamp(example.export_time(example.EXPORTS[k - 1][2]), timezone.utc)
        rows.append({"time": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "command": "ls", "target": target,
                     "backend": "layout", "items": totals["tags"], "bytes": totals["size"],
                     "unique_bytes": totals["unique_size"], "reclaimable": None, "reclaimed": None})
        shutil.rmtree(step)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="directory for report.html (default: a temporary one)")
    parser.add_argument("--screenshot", type=Path, help="write a PNG of the report here (needs chromium)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="janitor-report-"))
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="janitor-example-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "JANITOR_STATE_DIR": str(work / "state"), "JANITOR_CACHE_DIR": str(work / "cache")}
        env.pop("GITHUB_STEP_SUMMARY", None)
        cache = out / "buildx-cache"
        if cache.exists():
            shutil.rmtree(cache)
        example.build(cache)
        target = "oci-layout:buildx-cache"          # relative to DIR: the name the report shows
        (work / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history_rows(work, target, env)))
        janitor("history", "import", str(work / "history.jsonl"), env=env, cwd=out)
        janitor("report", target, "-o", "report.html", env=env, cwd=out)
    print(f"wrote {out / 'report.html'}")
    if args.screenshot:
        browser = shutil.which("chromium") or shutil.which("chromium-browser")
        if browser is None:
            sys.exit("--screenshot needs chromium: apt-get install -y chromium")
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([browser, *CHROMIUM_FLAGS, f"--screenshot={args.screenshot.resolve()}",
                        (out / "report.html").resolve().as_uri()], check=True, capture_output=True, timeout=120)
        print(f"wrote {args.screenshot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
