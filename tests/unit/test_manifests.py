"""Kind detection, sizes' inputs and created times from manifest bytes (pure)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from ghcr_janitor.core import mediatypes as mt
from ghcr_janitor.core.errors import ManifestError
from ghcr_janitor.core.manifests import parse_cache_config, parse_manifest
from ghcr_janitor.core.timeparse import parse_time

D = ["sha256:" + c * 64 for c in "0123456789abcdef"]


def desc(media_type, i, size=10, **extra):
    return {"mediaType": media_type, "digest": D[i], "size": size, **extra}


def parse(doc, media_type=None):
    return parse_manifest(json.dumps(doc).encode(), D[15], media_type)


def test_buildkit_image_manifest_form():
    m = parse({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
               "config": desc(mt.BUILDKIT_CACHE_CONFIG, 0),
               "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", 1,
                               annotations={"buildkit/createdat": "2022-03-13T08:13:28.292012782+01:00"})]})
    assert m.kind == "buildkit-cache"
    assert m.created == datetime(2022, 3, 13, 7, 13, 28, 292012, tzinfo=timezone.utc)
    assert m.age_source == "buildkit/createdat"
    assert [b.digest for b in m.blobs] == [D[0], D[1]] and m.children == ()


@pytest.mark.parametrize("index_type", [mt.OCI_INDEX, mt.DOCKER_LIST])
def test_buildkit_index_forms_entries_are_blobs(index_type):
    m = parse({"schemaVersion": 2, "mediaType": index_type, "manifests": [
        desc("application/vnd.oci.image.layer.v1.tar+gzip", 1), desc("application/vnd.oci.image.layer.v1.tar+gzip", 1),
        desc(mt.BUILDKIT_CACHE_CONFIG, 2)]})
    assert m.kind == "buildkit-cache"
    assert m.children == ()               # never fetched as manifests
    assert len(m.blobs) == 3 and m.config.digest == D[2]


def test_image_index_children_and_attestations():
    m = parse({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [
        desc(mt.OCI_MANIFEST, 1, platform={"architecture": "amd64", "os": "linux"}),
        desc(mt.OCI_MANIFEST, 2, annotations={"vnd.docker.reference.type": "attestation-manifest"})]})
    assert m.kind == "image-index" and [c.digest for c in m.children] == [D[1], D[2]]
    att = parse({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": desc(mt.OCI_IMAGE_CONFIG, 3),
                 "layers": [desc("application/vnd.in-toto+json", 4)]})
    assert att.kind == "attestation"


def test_images_artifacts_unknown():
    assert parse({"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST, "config": desc(mt.DOCKER_IMAGE_CONFIG, 1),
                  "layers": [desc("application/vnd.docker.image.rootfs.diff.tar.gzip", 2)]}).kind == "image"
    assert parse({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": "application/x-thing",
                  "config": desc(mt.OCI_EMPTY, 1), "layers": []}).kind == "artifact"
    assert parse({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                  "config": desc("application/vnd.unknown.config.v1+json", 1), "layers": []}).kind == "artifact"
    assert parse({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                  "config": desc(mt.OCI_EMPTY, 1), "layers": [], "subject": desc(mt.OCI_MANIFEST, 5)}).kind == "attestation"
    assert parse({"schemaVersion": 1, "name": "x"}, "application/vnd.docker.distribution.manifest.v1+prettyjws").kind == "unknown"


def test_created_annotation_wins():
    m = parse({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "config": desc(mt.OCI_IMAGE_CONFIG, 1), "layers": [],
               "annotations": {"org.opencontainers.image.created": "2026-01-02T03:04:05Z"}})
    assert m.created == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert m.age_source == "org.opencontainers.image.created"


@pytest.mark.parametrize("body", [b"", b"[]", b"{", b'{"mediaType": 5}', b'{"schemaVersion":2,"layers":"x"}',
                                  b'{"schemaVersion":2,"layers":[{"mediaType":"a","digest":"sha256:short","size":1}]}',
                                  b'{"schemaVersion":2,"layers":[{"mediaType":"a","digest":"sha256:' + b"a" * 64 + b'","size":-1}]}',
                                  b"[" * 100000 + b"]" * 100000])
def test_bad_manifests_raise_manifest_error(body):
    with pytest.raises(ManifestError):
        parse_manifest(body, D[0])


def test_time_parsing_variants():
    assert parse_time("2022-03-13T08:13:28.292012782+01:00") == datetime(2022, 3, 13, 7, 13, 28, 292012, tzinfo=timezone.utc)
    assert parse_time("2026-11-01T10:00:00Z") == datetime(2026, 11, 1, 10, tzinfo=timezone.utc)
    assert parse_time("2026-11-01T10:00:00-0530").hour == 15
    assert parse_time("0001-01-01T00:00:00Z") is None
    assert parse_time("yesterday") is None and parse_time(5) is None


def test_cache_config_summary():
    summary = parse_cache_config(json.dumps({"layers": [{"blob": D[1], "parent": -1}, {"blob": D[2]}],
                                             "records": [{"digest": D[3]}, {"digest": D[4], "layers": [
                                                 {"layer": 1, "createdAt": "2026-11-01T10:00:00.123456789Z"}]}]}).encode(), "x")
    assert summary["layers"] == 2 and summary["records"] == 2
    assert summary["newest_created"] == datetime(2026, 11, 1, 10, 0, 0, 123456, tzinfo=timezone.utc)
