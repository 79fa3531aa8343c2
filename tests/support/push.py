"""Push content to a registry with raw HTTP, laid out exactly as BuildKit and docker do.

Independent of the janitor's own client: the tests build what they then check the
janitor reads.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime

import httpx

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
CACHE_CONFIG = "application/vnd.buildkit.cacheconfig.v0"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def dumps(doc) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def rfc3339_nano(when: datetime) -> str:
    """Like Go's time.MarshalText: nanoseconds, keeps the offset."""
    text = when.isoformat(timespec="microseconds")
    if text.endswith("+00:00"):
        text = text[:-6] + "Z"
    head, _, tail = text.partition(".")
    micro, offset = tail[:6], tail[6:]
    return f"{head}.{micro}123{offset}"


@dataclass
class Pusher:
    base: str                     # http://127.0.0.1:PORT
    repo: str
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))
    pushed_blobs: set = field(default_factory=set)

    def blob(self, data: bytes) -> str:
        digest = sha(data)
        if digest in self.pushed_blobs:
            return digest
        start = self.client.post(f"{self.base}/v2/{self.repo}/blobs/uploads/")
        assert start.status_code == 202, start.text
        location = httpx.URL(self.base).join(start.headers["location"])
        done = self.client.put(location.copy_merge_params({"digest": digest}), content=data,
                               headers={"Content-Type": "application/octet-stream"})
        assert done.status_code == 201, done.text
        self.pushed_blobs.add(digest)
        return digest

    def manifest(self, ref: str, body: bytes, media_type: str) -> str:
        response = self.client.put(f"{self.base}/v2/{self.repo}/manifests/{ref}", content=body,
                                   headers={"Content-Type": media_type})
        assert response.status_code == 201, response.text
        return sha(body)

    def layer(self, data: bytes, created: datetime, docker: bool = False) -> dict:
        digest = self.blob(data)
        return {"mediaType": DOCKER_LAYER if docker else OCI_LAYER, "digest": digest, "size": len(data),
                "annotations": {"buildkit/createdat": rfc3339_nano(created),
                                "containerd.io/uncompressed": sha(data + b"-uncompressed")}}

    def cache_config(self, layers: list[dict]) -> dict:
        config = {"layers": [{"blob": l["digest"], "parent": -1} if i == 0 else {"blob": l["digest"]}
                             for i, l in enumerate(layers)],
                  "records": [{"digest": sha(b"record-%d" % i),
                               "layers": [{"layer": i, "createdAt": l["annotations"]["buildkit/createdat"]}]}
                              for i, l in enumerate(layers)]}
        body = dumps(config)
        return {"mediaType": CACHE_CONFIG, "digest": self.blob(body), "size": len(body)}

    def buildkit_cache(self, tag: str, layer_data: list[bytes], created: list[datetime] | datetime,
                       form: str = "manifest", duplicate_first: bool = False) -> tuple[str, bytes]:
        """Push a BuildKit registry cache in one of three forms: manifest | index | docker-list."""
        times = created if isinstance(created, list) else [created] * len(layer_data)
        layers = [self.layer(d, t, docker=(form == "docker-list")) for d, t in zip(layer_data, times)]
        if duplicate_first and layers:
            layers.append(dict(layers[0]))          # BuildKit may list one blob twice
        config = self.cache_config(layers)
        if form == "manifest":
            doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers}
            media_type = OCI_MANIFEST
        else:
            media_type = OCI_INDEX if form == "index" else DOCKER_LIST
            doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": layers + [config]}
        body = dumps(doc)
        return self.manifest(tag, body, media_type), body

    def image(self, tag: str | None, layer_data: list[bytes], created: datetime, docker: bool = False,
              platform: dict | None = None) -> tuple[str, bytes]:
        config_body = dumps({"created": created.isoformat().replace("+00:00", "Z"),
                             "architecture": (platform or {}).get("architecture", "amd64"), "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [sha(d) for d in layer_data]}})
        config = {"mediaType": DOCKER_CONFIG if docker else OCI_CONFIG, "digest": self.blob(config_body),
                  "size": len(config_body)}
        layers = [{"mediaType": DOCKER_LAYER if docker else OCI_LAYER, "digest": self.blob(d), "size": len(d)}
                  for d in layer_data]
        media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
        body = dumps({"schemaVersion": 2, "mediaType": media_type, "config": config, "layers": layers})
        digest = self.manifest(tag or sha(body), body, media_type)
        return digest, body

    def index(self, tag: str, children: list[tuple[str, bytes, dict]]) -> tuple[str, bytes]:
        """A multi-arch OCI index over already pushed (digest, body, platform) children."""
        doc = {"schemaVersion": 2, "mediaType": OCI_INDEX,
               "manifests": [{"mediaType": OCI_MANIFEST, "digest": d, "size": len(b), "platform": p}
                             for d, b, p in children]}
        body = dumps(doc)
        return self.manifest(tag, body, OCI_INDEX), body

    def tags(self) -> dict[str, str]:
        """tag -> digest, read with plain HTTP (HEAD with full Accept)."""
        accept = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])
        listing = self.client.get(f"{self.base}/v2/{self.repo}/tags/list")
        if listing.status_code == 404:
            return {}
        result = {}
        for tag in listing.json().get("tags") or []:
            head = self.client.head(f"{self.base}/v2/{self.repo}/manifests/{tag}", headers={"Accept": accept})
            if head.status_code == 200:
                result[tag] = head.headers["docker-content-digest"]
        return result
