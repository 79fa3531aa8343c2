"""The reachable set of a local OCI layout, by content.

Seeded from every `index.json` descriptor. Each reachable blob is looked at once: a blob that could
be JSON (a regular file within the manifest size cap, opening with `{`) is read and classified by
its own content (`mediatypes.content_type`: its `mediaType`, else its shape); manifests, indexes,
cache configs (and schema-1 / artifact manifests) have their references followed, whatever the
descriptors that reached them say (descriptor media types are only normalised hints). What
references a blob makes are: `manifests`, `config`, `layers`, `blobs` descriptors, a cache config's
`layers[].blob`, a schema-1 `fsLayers[].blobSum`; never `subject` (a weak reference).

The walk is *blocked* (the reachable set is unknown, so nothing may be deleted) by a reachable blob
that cannot be read (a symlink, FIFO, device, unreadable), one a descriptor calls a manifest or index
(or any root) whose content is not one gc can walk, a manifest-like blob that does not match its
digest or has malformed references, or a lost blob that a descriptor says could reference others.
A lost or corrupt plain blob (a layer) is only reported.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ghcr_janitor.core import mediatypes as mt
from ghcr_janitor.core.digests import check_digest, verify
from ghcr_janitor.core.errors import ManifestError
from ghcr_janitor.core.files import UnreadableFile
from ghcr_janitor.stores.layout.files import blob_path, hash_blob, looks_like_json, not_regular, read_blob
from ghcr_janitor.core.words import count

# digest, normalised media type, size, referrer (a digest or "index.json"), role (the field that named it)
Ref = tuple[str, "str | None", "int | None", str, str]
ROOT = "root"


@dataclass
class Walk:
    """The outcome of a walk: what is reachable and what went wrong."""

    reachable: set[str] = field(default_factory=set)        # every digest referenced (present or not)
    present: int = 0
    present_bytes: int = 0
    missing: list[tuple[str, str]] = field(default_factory=list)     # (digest, referenced by)
    corrupt: list[tuple[str, str]] = field(default_factory=list)     # (digest, reason)
    blocked: str | None = None

    def block(self, why: str) -> None:
        self.blocked = self.blocked or why


def claims_walkable(media_type: str | None, role: str) -> bool:
    """Does a descriptor say its blob is a manifest, index or config gc must be able to walk? (A root
    always is: index.json lists manifests and indexes only.)"""
    return role == ROOT or mt.looks_like_manifest(media_type)


def could_reference(media_type: str | None, role: str) -> bool:
    """If this blob were lost, could references be lost with it? Yes for what claims to be walkable,
    for any config (BuildKit's cache manifests name their cache config as the config) and for an
    untyped index entry; a lost layer is a leaf."""
    return (claims_walkable(media_type, role) or media_type in mt.IMAGE_CONFIG_TYPES or role == "config"
            or (role == "manifests" and media_type is None))


def _descriptor(value: object, where: str, referrer: str, role: str) -> Ref:
    if not isinstance(value, dict):
        raise ManifestError(f"{where}: a descriptor that is not an object")
    digest = check_digest(value.get("digest"), f"{where}: descriptor digest")
    size = value.get("size")
    size = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
    return digest, mt.normalise(value.get("mediaType")), size, referrer, role


def _descriptors(doc: dict[str, Any], key: str, where: str, referrer: str) -> list[Ref]:
    value = doc.get(key)
    if value is None:
        return []
    if key == "config":
        return [_descriptor(value, f"{where} config", referrer, key)]
    if not isinstance(value, list):
        raise ManifestError(f"{where}: {key} is not a list")
    return [_descriptor(v, f"{where} {key}[{i}]", referrer, key) for i, v in enumerate(value)]


def references(doc: dict[str, Any], kind: str, digest: str, where: str) -> list[Ref]:
    """What a manifest-like document of this kind references (see the module docstring)."""
    if kind == mt.BUILDKIT_CACHE_CONFIG:
        layers = doc.get("layers") or []
        if not isinstance(layers, list):
            raise ManifestError(f"{where}: cache config layers is not a list")
        return [(check_digest(l.get("blob"), f"{where}: cache config blob"), None, None, digest, "cacheconfig")
                for l in layers if isinstance(l, dict) and "blob" in l]
    if kind in mt.SCHEMA1_TYPES:
        layers = doc.get("fsLayers")
        if not isinstance(layers, list) or not all(isinstance(l, dict) for l in layers):
            raise ManifestError(f"{where}: fsLayers is not a list of objects")
        return [(check_digest(l.get("blobSum"), f"{where}: blobSum"), None, None, digest, "fsLayers")
                for l in layers]
    refs: list[Ref] = []
    for key in ("manifests", "config", "layers", "blobs"):
        refs += _descriptors(doc, key, where, digest)
    return refs


class _Walker:
    """One walk over one layout; `visit` is called once per descriptor that reaches a blob."""

    def __init__(self, root: Path, verify: bool):
        self.root, self.verify, self.out = root, verify, Walk()
        self.stack: list[Ref] = []
        self.size: dict[str, int | None] = {}       # digest -> bytes on disk (None: missing)
        self.leaf: set[str] = set()                 # present, and not manifest-like by content
        self.lost: set[str] = set()                 # missing, and a descriptor says it could reference
        self.wrong_size: set[str] = set()
        self.failed: set[str] = set()               # present but unreadable or unwalkable: said once

    def run(self, roots: list[Ref]) -> Walk:
        self.stack = list(reversed(roots))
        while self.stack:
            self.visit(*self.stack.pop())
        if self.lost:
            named = ", ".join(sorted(self.lost)[:3]) + (", ..." if len(self.lost) > 3 else "")
            self.out.block(f"{count(len(self.lost), 'referenced manifest/index/config blob')} missing ({named}): "
                           "the layout is damaged and what they referenced is unknown")
        return self.out

    def visit(self, digest: str, media_type: str | None, size: int | None, referrer: str, role: str) -> None:
        """Look at the blob the first time (by content); check what every descriptor says of it."""
        if digest not in self.size:
            self.out.reachable.add(digest)
            self.size[digest] = self._look(digest, claims_walkable(media_type, role))
            if self.size[digest] is None:
                self.out.missing.append((digest, referrer))
        on_disk = self.size[digest]
        if on_disk is None:
            if could_reference(media_type, role):
                self.lost.add(digest)
            return
        if size is not None and on_disk != size and not {digest} & (self.wrong_size | self.failed):
            self.wrong_size.add(digest)
            self.out.corrupt.append((digest, f"{on_disk} bytes on disk, descriptor says {size}"))
        if digest in self.leaf and claims_walkable(media_type, role):
            self.out.block(f"blob {digest} is described as {media_type or 'a manifest'} (by {referrer}) but its "
                           "content is not a manifest, index or cache config gc can walk: the reachable set is unknown")

    def _fail(self, digest: str, why: str) -> None:
        """A reachable blob gc cannot read or walk: what it references is unknown."""
        self.failed.add(digest)
        self.out.corrupt.append((digest, why))
        self.out.block(f"cannot walk {digest}: {why}; the reachable set is unknown")

    def _look(self, digest: str, claims: bool) -> int | None:
        """Stat, classify and (when manifest-like) walk a blob; its size on disk, None if missing."""
        path = blob_path(self.root, digest)
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            self._fail(digest, f"{path}: {exc.strerror}")
            return 0
        self.out.present += 1
        self.out.present_bytes += st.st_size
        why = not_regular(st.st_mode)
        if why:
            self._fail(digest, f"{path}: {why}")
            return st.st_size
        try:
            walked = self._walk(digest, st.st_size, claims, str(path))
        except (UnreadableFile, ManifestError) as exc:
            self._fail(digest, str(exc))
        else:
            if not walked:
                self.leaf.add(digest)
                self._verify(digest)
        return st.st_size

    def _verify(self, digest: str) -> None:
        """With --verify, hash a leaf blob: a wrong one is reported (a leaf hides no references)."""
        if not self.verify:
            return
        try:
            if hash_blob(self.root, digest) != digest:
                self.out.corrupt.append((digest, "content does not match its digest"))
        except UnreadableFile as exc:
            self._fail(digest, str(exc))

    def _walk(self, digest: str, size: int, claims: bool, where: str) -> bool:
        """Push the references of a manifest-like blob; False for a plain blob (a leaf)."""
        if size > mt.MAX_MANIFEST_BYTES:
            if claims:
                raise ManifestError(f"{where}: {size} bytes, over the {mt.MAX_MANIFEST_BYTES} byte limit of a manifest")
            return False
        if not claims and not looks_like_json(self.root, digest):
            return False
        body = read_blob(self.root, digest, mt.MAX_MANIFEST_BYTES)
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            doc = None
        kind = mt.content_type(doc) if isinstance(doc, dict) else None
        if not mt.looks_like_manifest(kind):
            return False
        verify(body, digest, where)
        if kind not in mt.REFERENCING_TYPES:
            raise ManifestError(f"{where}: a {kind} gc cannot walk")
        self.stack.extend(reversed(references(doc, kind, digest, where)))
        return True


def walk(root: Path, roots: list[Ref], verify: bool = False) -> Walk:
    """Walk a layout from its index.json descriptors `roots` (digest, media type, size, "index.json")."""
    return _Walker(root, verify).run([(d, mt.normalise(m), s, r, ROOT) for d, m, s, r in roots])
