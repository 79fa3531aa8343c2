"""A small stand-in for the Amazon ECR API, built from botocore's service model: for what moto does
not do (DescribeImages/ListImages pagination and filters, archived images, pull times, the 100-id
caps, ThrottlingException).

It speaks ECR's JSON 1.1 protocol on 127.0.0.1 (POST /, `X-Amz-Target:
AmazonEC2ContainerRegistry_V20150921.<Operation>`), checks every request body against the
operation's input shape in botocore's model (a request the real service would refuse as invalid —
maxResults over 1000, 101 image ids — gets a 400 ValidationException), and answers only members the
output shape has. Behaviour follows the API reference as registries.md summarises it:
- DescribeImages/ListImages: `maxResults` (default 100) with an opaque `nextToken`; `filter.tagStatus`
  (TAGGED, UNTAGGED, ANY) and `filter.imageStatus` (default ACTIVE only; ARCHIVED, ANY);
  `imageSizeInBytes` of an index is its largest child (as ECR says), of a manifest its config + layers.
- BatchGetImage records a pull (`lastRecordedPullTime` = now), as ECR does (aws/containers-roadmap#2390);
  an archived image is not served (`ImageNotFound`) unless `archived_readable`.
- BatchDeleteImage: by digest deletes the image and its tags, refused (`ImageReferencedByManifestList`)
  while an index in the repository lists it; by tag removes the tag, and the image with its last tag.
- `throttle(n)`: the next n requests answer ThrottlingException.
Every request is counted per operation (`requests`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "AmazonEC2ContainerRegistry_V20150921."
ACCOUNT = "123456789012"
REGION = "us-east-1"
HOST = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"


def _model():
    import botocore.session

    return botocore.session.get_session().get_service_model("ecr")


@dataclass
class Image:
    manifest: str
    media_type: str
    tags: set[str] = field(default_factory=set)
    pushed: float = field(default_factory=time.time)
    last_pulled: float | None = None
    status: str = "ACTIVE"

    @property
    def doc(self) -> dict:
        return json.loads(self.manifest)


class EcrStandIn:
    """State and behaviour; `serve()` starts the HTTP server (a context manager stops it)."""

    def __init__(self, archived_readable: bool = True, record_pulls: bool = True, knows_image_status: bool = True):
        self.repos: dict[str, dict[str, Image]] = {}
        self.requests: Counter[str] = Counter()
        self.bodies: list[tuple[str, dict]] = []
        self.archived_readable = archived_readable
        self.record_pulls = record_pulls
        self.knows_image_status = knows_image_status      # False: an endpoint from before the archive
        self._throttle = 0
        self._lock = threading.Lock()
        self.model = _model()
        self.server: ThreadingHTTPServer | None = None

    # --- seeding --------------------------------------------------------------------
    def put(self, repo: str, manifest: dict | str, tags: tuple[str, ...] = (), pushed: float | None = None,
            last_pulled: float | None = None, status: str = "ACTIVE") -> str:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest, separators=(",", ":"))
        digest = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
        media_type = json.loads(text).get("mediaType") or "application/vnd.oci.image.manifest.v1+json"
        images = self.repos.setdefault(repo, {})
        for other in images.values():
            other.tags -= set(tags)
        image = images.get(digest) or Image(text, media_type)
        image.tags |= set(tags)
        image.pushed = pushed if pushed is not None else image.pushed
        image.last_pulled = last_pulled
        image.status = status
        images[digest] = image
        return digest

    def throttle(self, n: int) -> None:
        self._throttle = n

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "EcrStandIn":
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                target = self.headers.get("x-amz-target") or ""
                status, answer = standin.handle(target.removeprefix(PREFIX), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()

    # --- protocol -------------------------------------------------------------------
    def handle(self, operation: str, body: bytes) -> tuple[int, dict]:
        from botocore.validate import ParamValidator

        with self._lock:
            self.requests[operation] += 1
            if self._throttle > 0:
                self._throttle -= 1
                return 400, {"__type": "ThrottlingException", "message": "Rate exceeded"}
            try:
                op = self.model.operation_model(operation)
            except Exception:
                return 400, {"__type": "UnknownOperationException", "message": operation}
            try:
                params = json.loads(body or b"{}")
            except ValueError:
                return 400, {"__type": "SerializationException", "message": "bad JSON"}
            self.bodies.append((operation, params))
            report = ParamValidator().validate(params, op.input_shape)
            if report.has_errors():
                return 400, {"__type": "ValidationException", "message": " ".join(report.generate_report().split())}
            if not self.knows_image_status and "imageStatus" in (params.get("filter") or {}):
                return 400, {"__type": "InvalidParameterException", "message": "Invalid parameter at 'filter'"}
            handler = getattr(self, f"_{operation}", None)
            if handler is None:
                return 400, {"__type": "UnsupportedOperation", "message": f"the stand-in has no {operation}"}
            try:
                answer = handler(params)
            except _Failure as exc:
                return 400, {"__type": exc.code, "message": exc.message}
            allowed = set(op.output_shape.members) if op.output_shape is not None else set()
            unknown = set(answer) - allowed
            assert not unknown, f"{operation}: {unknown} not in the output shape"
            return 200, answer

    def _repo(self, params: dict) -> dict[str, Image]:
        name = params["repositoryName"]
        if params.get("registryId", ACCOUNT) != ACCOUNT or name not in self.repos:
            raise _Failure("RepositoryNotFoundException",
                           f"The repository with name '{name}' does not exist in the registry with id '{ACCOUNT}'")
        return self.repos[name]

    @staticmethod
    def _page(items: list, params: dict) -> tuple[list, dict]:
        size = params.get("maxResults", 100)
        start = int(base64.b64decode(params["nextToken"]).decode()) if params.get("nextToken") else 0
        page = items[start:start + size]
        more = {"nextToken": base64.b64encode(str(start + size).encode()).decode()} if start + size < len(items) else {}
        return page, more

    @staticmethod
    def _status_ok(image: Image, params: dict) -> bool:
        wanted = (params.get("filter") or {}).get("imageStatus", "ACTIVE")
        return wanted == "ANY" or image.status == wanted

    @staticmethod
    def _tag_ok(image: Image, params: dict) -> bool:
        wanted = (params.get("filter") or {}).get("tagStatus", "ANY")
        return wanted == "ANY" or (wanted == "TAGGED") == bool(image.tags)

    def _size(self, images: dict[str, Image], image: Image) -> int:
        doc = image.doc
        if "manifests" in doc:        # an index: its largest child, as ECR reports it
            sizes = [self._size(images, images[m["digest"]]) for m in doc["manifests"] if m["digest"] in images]
            return max(sizes, default=0)
        return sum(d.get("size", 0) for d in [doc.get("config") or {}, *(doc.get("layers") or [])])

    def _DescribeRepositories(self, params: dict) -> dict:
        names = sorted(self.repos)
        page, more = self._page(names, params)
        return {"repositories": [{"repositoryName": n, "registryId": ACCOUNT,
                                  "repositoryUri": f"{HOST}/{n}"} for n in page], **more}

    def _DescribeImages(self, params: dict) -> dict:
        images = self._repo(params)
        if params.get("imageIds"):
            chosen = []
            for ident in params["imageIds"]:
                digest = self._find(images, ident)
                if digest is None:
                    raise _Failure("ImageNotFoundException", f"The image with imageId {ident} does not exist")
                chosen.append(digest)
        else:
            chosen = [d for d, i in images.items() if self._status_ok(i, params) and self._tag_ok(i, params)]
        page, more = self._page(sorted(chosen), params)
        details = []
        for digest in page:
            image = images[digest]
            detail = {"registryId": ACCOUNT, "repositoryName": params["repositoryName"], "imageDigest": digest,
                      "imagePushedAt": image.pushed, "imageSizeInBytes": self._size(images, image),
                      "imageManifestMediaType": image.media_type, "imageStatus": image.status}
            if image.tags:
                detail["imageTags"] = sorted(image.tags)
            if image.last_pulled is not None:
                detail["lastRecordedPullTime"] = image.last_pulled
            details.append(detail)
        return {"imageDetails": details, **more}

    def _ListImages(self, params: dict) -> dict:
        images = self._repo(params)
        ids = []
        for digest in sorted(images):
            image = images[digest]
            if not (self._status_ok(image, params) and self._tag_ok(image, params)):
                continue
            ids += [{"imageDigest": digest, "imageTag": t} for t in sorted(image.tags)] or [{"imageDigest": digest}]
        page, more = self._page(ids, params)
        return {"imageIds": page, **more}

    @staticmethod
    def _find(images: dict[str, Image], ident: dict) -> str | None:
        if "imageDigest" in ident:
            return ident["imageDigest"] if ident["imageDigest"] in images else None
        return next((d for d, i in images.items() if ident.get("imageTag") in i.tags), None)

    def _BatchGetImage(self, params: dict) -> dict:
        images = self._repo(params)
        out, failures = [], []
        for ident in params["imageIds"]:
            digest = self._find(images, ident)
            image = images.get(digest) if digest else None
            if image is None or (image.status != "ACTIVE" and not self.archived_readable):
                failures.append({"imageId": ident, "failureCode": "ImageNotFound",
                                 "failureReason": "Requested image not found"})
                continue
            if self.record_pulls:
                image.last_pulled = time.time()
            out.append({"registryId": ACCOUNT, "repositoryName": params["repositoryName"],
                        "imageId": {"imageDigest": digest}, "imageManifest": image.manifest,
                        "imageManifestMediaType": image.media_type})
        return {"images": out, "failures": failures}

    def _BatchDeleteImage(self, params: dict) -> dict:
        images = self._repo(params)
        deleted, failures = [], []
        for ident in params["imageIds"]:
            digest = self._find(images, ident)
            if digest is None:
                failures.append({"imageId": ident, "failureCode": "ImageNotFound",
                                 "failureReason": "Requested image not found"})
                continue
            image = images[digest]
            if "imageTag" in ident and "imageDigest" not in ident:
                image.tags.discard(ident["imageTag"])
                deleted.append({"imageDigest": digest, "imageTag": ident["imageTag"]})
                if not image.tags:
                    del images[digest]
                continue
            users = [d for d, i in images.items() if d != digest
                     and digest in {m.get("digest") for m in i.doc.get("manifests") or []}]
            if users:
                failures.append({"imageId": ident, "failureCode": "ImageReferencedByManifestList",
                                 "failureReason": f"Requested image is referenced by manifest list {users[0]}"})
                continue
            deleted += [{"imageDigest": digest, "imageTag": t} for t in sorted(image.tags)] or [{"imageDigest": digest}]
            del images[digest]
        return {"imageIds": deleted, "failures": failures}

    def _PutImage(self, params: dict) -> dict:
        images = self._repo(params)
        text = params["imageManifest"]
        digest = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
        if params.get("imageDigest") not in (None, digest):
            raise _Failure("ImageDigestDoesNotMatchException", "digest mismatch")
        tag = params.get("imageTag")
        if digest in images and tag in images[digest].tags:
            raise _Failure("ImageAlreadyExistsException", "already exists")
        self.put(params["repositoryName"], text, (tag,) if tag else (), pushed=images[digest].pushed
                 if digest in images else None, last_pulled=images[digest].last_pulled if digest in images else None)
        return {"image": {"registryId": ACCOUNT, "repositoryName": params["repositoryName"],
                          "imageId": {"imageDigest": digest, **({"imageTag": tag} if tag else {})},
                          "imageManifest": text}}


class _Failure(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message
