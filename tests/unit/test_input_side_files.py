"""Files the janitor reads or appends to on the side (journal, step summary, event payload, the
previous metrics file) never hang it on a FIFO or a device, and media-type parameters never hide
an index's child (issue 19, points 8 and 11)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ghcr_janitor.apply.journal import Journal
from ghcr_janitor.core.errors import PlanError
from ghcr_janitor.core.files import UnreadableFile, append_regular
from ghcr_janitor.core.manifests import parse_manifest
from ghcr_janitor.report.metrics import _previous_success
from ghcr_janitor.core.settings import Settings
from ghcr_janitor.stores.gha.api import fork_pull_request

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "a" * 64


@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def test_append_to_a_fifo_without_a_reader_refuses_at_once(fifo):
    with pytest.raises(UnreadableFile):
        append_regular(fifo, b"x")


def test_append_to_a_device_is_refused(tmp_path):
    with pytest.raises(UnreadableFile, match="character device"):
        append_regular("/dev/null", b"x")


def test_append_creates_and_appends_a_regular_file(tmp_path):
    path = tmp_path / "summary.md"
    append_regular(path, b"a\n")
    append_regular(path, b"b\n")
    assert path.read_bytes() == b"a\nb\n"


def test_a_journal_that_is_a_fifo_is_one_plan_error(fifo):
    with pytest.raises(PlanError, match="not a regular file"):
        Journal(fifo, "plan-id")


def test_a_plan_fingerprint_never_reads_a_device(tmp_path):
    plan = tmp_path / "plan.json"
    plan.symlink_to("/dev/zero")
    assert Journal.for_plan(plan).plan_id == ""


def test_the_event_payload_is_read_bounded(fifo):
    env = {"GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(fifo)}
    assert fork_pull_request(Settings.from_env(env)) is False
    env["GITHUB_EVENT_PATH"] = "/dev/zero"
    assert fork_pull_request(Settings.from_env(env)) is False


def test_the_previous_metrics_file_is_read_bounded(fifo):
    assert _previous_success(fifo) is None
    assert _previous_success(Path("/dev/zero")) is None


def test_gc_with_a_fifo_step_summary_warns_and_finishes(tmp_path, fifo):
    from tests.layout_factory import LayoutFactory

    layout = LayoutFactory(tmp_path / "cache")
    layout.tag("cache-main", layout.image("main"))
    env = dict(os.environ, GITHUB_STEP_SUMMARY=str(fifo), PYTHONPATH=str(ROOT),
               JANITOR_STATE_DIR=str(tmp_path / "state"), JANITOR_CACHE_DIR=str(tmp_path / "cache-dir"))
    done = subprocess.run([sys.executable, "-m", "ghcr_janitor", "gc", f"oci-layout:{layout.root}"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "warning: GITHUB_STEP_SUMMARY" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("child_type", ["application/vnd.oci.image.manifest.v1+json; charset=utf-8",
                                        "Application/VND.OCI.Image.Manifest.v1+JSON"])
def test_an_index_child_typed_with_parameters_or_case_is_a_child(child_type):
    body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json; charset=utf-8",
                       "manifests": [{"mediaType": child_type, "digest": DIGEST, "size": 10}]}).encode()
    parsed = parse_manifest(body, "sha256:" + "b" * 64)
    assert [c.digest for c in parsed.children] == [DIGEST] and parsed.kind == "image-index"
