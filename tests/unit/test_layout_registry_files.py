"""LayoutRegistry reads only regular files of the layout, bounded, and never through a directory that
resolves outside it (issue 19, points 9 and 11): a FIFO, a symlink loop, /dev/zero or a huge file is a
one-line error naming the file, never a hang, a traceback or a MemoryError."""

from __future__ import annotations

import asyncio
import os
import signal
from contextlib import contextmanager

import pytest

from ghcr_janitor.core import mediatypes as mt
from ghcr_janitor.core.errors import LayoutError, ManifestError, NotFoundError
from ghcr_janitor.stores.layout.registry import LayoutRegistry, check_layout, read_index
from tests.layout_factory import IMAGE_CONFIG, OCI_INDEX, SHAPES, LayoutFactory, dumps


def run(coro):
    return asyncio.run(coro)


class Hung(Exception):
    """A read or open that blocked."""


@contextmanager
def within(seconds: int):
    """Fail instead of hanging when a read blocks (a FIFO with no writer)."""
    def expire(signum, frame):
        raise Hung(f"blocked for {seconds}s")        # not an OSError: nothing may swallow it

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def lay(tmp_path):
    f = LayoutFactory(tmp_path / "A")
    f.image_desc = f.image("amd64")
    f.tag("app", f.image_desc)
    return f


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_registry_refuses_an_unreadable_manifest_blob_in_one_line(lay, shape):
    path = lay.path(lay.image_desc["digest"])
    SHAPES[shape](path)
    reg = LayoutRegistry(lay.root)
    with within(10), pytest.raises(ManifestError) as caught:
        run(reg.get_manifest("app"))
    message = str(caught.value)
    assert "\n" not in message and str(path) in message


def test_registry_reads_no_blob_through_a_blobs_dir_outside_the_layout(tmp_path):
    b = LayoutFactory(tmp_path / "B")
    image = b.image("b")
    b.tag("b", image)
    a = LayoutFactory(tmp_path / "A")
    a.tag("b", image)                                 # A's index names B's image...
    os.rename(a.root / "blobs", a.root / "old")
    (a.root / "blobs").symlink_to(b.root / "blobs")   # ...and its blobs/ is B's
    reg = LayoutRegistry(a.root)
    with pytest.raises(LayoutError, match="outside the layout"):
        run(reg.get_manifest("b"))
    with pytest.raises(LayoutError, match="outside the layout"):
        run(reg.put_manifest("other", dumps({"schemaVersion": 2}), mt.OCI_MANIFEST))


def test_registry_missing_blob_is_not_found_and_a_dangling_symlink_is_not_missing(lay):
    path = lay.path(lay.image_desc["digest"])
    path.unlink()
    reg = LayoutRegistry(lay.root)
    with pytest.raises(NotFoundError):
        run(reg.get_manifest("app"))
    assert reg.known_missing(lay.image_desc["digest"], frozenset())
    path.symlink_to("nowhere")
    with pytest.raises(ManifestError, match="symlink"):
        run(reg.get_manifest("app"))
    assert not reg.known_missing(lay.image_desc["digest"], frozenset())


@pytest.mark.parametrize("name", ["oci-layout", "index.json"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_layout_files_that_are_not_regular_or_huge_are_one_line_layout_errors(lay, name, shape):
    SHAPES[shape](lay.root / name)
    with within(10), pytest.raises(LayoutError) as caught:
        check_layout(lay.root)
        read_index(lay.root)
    assert "\n" not in str(caught.value) and name in str(caught.value)


def test_get_manifest_types_a_blob_by_its_content_not_its_descriptor(lay):
    config = lay.blob(dumps({"architecture": "amd64", "os": "linux"}), IMAGE_CONFIG)
    bare = lay.blob(dumps({"schemaVersion": 2, "config": config, "layers": []}), OCI_INDEX)
    lay.tag("bare", bare)                              # index.json says index; the body is a manifest
    charset = lay.index([lay.image_desc])
    lay.tag("charset", {**charset, "mediaType": OCI_INDEX + "; charset=utf-8"})
    reg = LayoutRegistry(lay.root)
    assert run(reg.get_manifest("bare")).media_type == mt.OCI_MANIFEST
    assert run(reg.get_manifest("charset")).media_type == mt.OCI_INDEX
    versions = {v.digest: v for v in run(reg.list_versions())}
    assert versions[charset["digest"]].media_type == mt.OCI_INDEX


def test_ls_over_a_blobs_dir_outside_the_layout_keeps_and_exits_1(tmp_path, cli):
    b = LayoutFactory(tmp_path / "B")
    image = b.image("b")
    b.tag("b", image)
    a = LayoutFactory(tmp_path / "A")
    a.tag("b", image)
    os.rename(a.root / "blobs", a.root / "old")
    (a.root / "blobs").symlink_to(b.root / "blobs")
    result = cli("ls", f"oci-layout:{a.root}")
    assert result.exit_code == 1 and "outside the layout" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("shape", ["fifo", "zero"])
def test_a_lock_file_that_is_not_regular_is_a_one_line_error_not_a_hang(lay, shape, cli):
    lock = lay.root / "index.json.lock"
    lock.write_bytes(b"")
    SHAPES[shape](lock)
    with within(10), pytest.raises(LayoutError, match="index.json.lock") as caught:
        read_index(lay.root)
    assert "\n" not in str(caught.value)
    with within(20):
        result = cli("gc", f"oci-layout:{lay.root}")
    assert result.exit_code == 1 and "index.json.lock" in result.stderr and "Traceback" not in result.stderr
