"""`ls`, `inspect`, `prune --dry-run` and `prune --yes` on a cache dir with a manifest or layer blob that
is a FIFO, a symlink loop, a symlink to /dev/zero or huge (issue 19, points 10 and 11): no hang, no
traceback, no MemoryError; one line naming the file; the artifact is kept and the run exits non-zero.

The CLI runs in a subprocess with a timeout and an address-space limit, so that a regression fails
the test instead of hanging or swapping the machine."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.layout_factory import SHAPES

VICTIM = "cache-builder-feature-x"      # stale in the example: the default policy deletes it
KEPT = "cache-base"
TIMEOUT = 60


def janitor(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "JANITOR_CACHE_DIR": str(tmp_path / "cache"), "JANITOR_STATE_DIR": str(tmp_path / "state"),
           "DOCKER_CONFIG": str(tmp_path / "docker"), "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("GITHUB_STEP_SUMMARY", None)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    return subprocess.run([sys.executable, "-m", "ghcr_janitor", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=TIMEOUT, preexec_fn=limit)


def tagged(root: Path, tag: str) -> str:
    index = json.loads((root / "index.json").read_bytes())
    return next(m["digest"] for m in index["manifests"]
                if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)


def blob(root: Path, digest: str) -> Path:
    return root / "blobs" / "sha256" / digest.split(":")[1]


def sound(result: subprocess.CompletedProcess, needle: str) -> None:
    """Non-zero, no traceback, and one error line naming the file."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith(("error", "warning"))]
    assert any(needle in line for line in errors), result.stderr


@pytest.fixture(params=sorted(SHAPES))
def broken(request, layout):
    """The example cache dir with VICTIM's manifest blob turned into a FIFO, loop, /dev/zero or huge file."""
    digest = tagged(layout, VICTIM)
    path = blob(layout, digest)
    SHAPES[request.param](path)
    return layout, digest


def test_ls_reports_an_unreadable_manifest_blob_and_exits_1(tmp_path, broken):
    root, digest = broken
    result = janitor(tmp_path, "ls", f"oci-layout:{root}", "-O", "json")
    sound(result, digest.split(":")[1])
    tags = {t["tag"]: t for t in json.loads(result.stdout)["targets"][0]["tags"]}
    assert tags[VICTIM]["error"] and "\n" not in tags[VICTIM]["error"]
    assert tags[KEPT]["kind"] == "buildkit-cache" and not tags[KEPT].get("error")


def test_inspect_an_unreadable_manifest_blob_says_why_in_one_line(tmp_path, broken):
    root, digest = broken
    result = janitor(tmp_path, "inspect", f"oci-layout:{root}:{VICTIM}")
    sound(result, digest.split(":")[1])
    assert len([line for line in result.stderr.splitlines() if line.startswith("error")]) == 1


def test_prune_dry_run_keeps_an_unreadable_artifact_and_exits_1(tmp_path, broken):
    root, digest = broken
    result = janitor(tmp_path, "prune", "--dry-run", f"oci-layout:{root}", "-O", "json")
    sound(result, digest.split(":")[1])
    plan = json.loads(result.stdout)["targets"][0]
    assert digest not in {a["digest"] for a in plan["actions"]}
    kept = {k["tag"]: k["reason"] for k in plan["kept"]}
    assert "could not be inspected" in kept[VICTIM] and digest.split(":")[1] in kept[VICTIM]


@pytest.mark.parametrize("shape", ["loop", "fifo", "zero"])
def test_prune_yes_with_an_unreadable_layer_blob_prints_results_and_deletes_no_blob(tmp_path, layout, shape):
    """The tags go (index.json), gc refuses (nothing deleted, one line), the results table is printed."""
    manifest = json.loads(blob(layout, tagged(layout, KEPT)).read_bytes())
    layer = manifest["layers"][-1]["digest"]
    SHAPES[shape](blob(layout, layer))
    before = {p.name for p in (layout / "blobs" / "sha256").iterdir()}
    result = janitor(tmp_path, "prune", "--yes", f"oci-layout:{layout}")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert f"gc oci-layout:{layout}: nothing deleted" in result.stdout
    assert any(line.startswith(f"error: gc oci-layout:{layout}") and layer.split(":")[1] in line
               for line in result.stderr.splitlines()), result.stderr
    assert "cache-node-deps-pr-12" in result.stdout                          # the results table
    assert {p.name for p in (layout / "blobs" / "sha256").iterdir()} == before
