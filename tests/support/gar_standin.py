"""A Google Artifact Registry / Container Registry stand-in: the real docker-registry behind the shared
vendor proxy, with GAR's documented behaviour on top.

`/v2` (v2_hook):
- auth as GAR does it: a Bearer challenge whose realm (`/v2/token`) takes Basic
  `oauth2accesstoken:<access token>` and answers a registry token (only when `token` is set);
- `GET /v2/<name>/tags/list` answers Google's extension: `manifest{digest: {imageSizeBytes,
  mediaType, tag[], timeCreatedMs, timeUploadedMs}}`, `child[]`, `tags[]`, `name` — the whole map at
  once (`list_page` > 0 splits it into `Link`-chained pages to exercise a client's merging);
  `timeUploadedMs` is a number on Artifact Registry, a string on gcr.io (`flavour`), as
  google/go-containerregistry `pkg/v1/google/list.go` reads them; sizes and creation times strings;
- `DELETE /v2/<name>/manifests/<tag>` untags (the manifest stays); on a repository with immutable
  tags it is refused (403 DENIED: GAR's exact answer is not verified);
- `DELETE /v2/<name>/manifests/<digest>` is refused with 400 `GOOGLE_MANIFEST_DANGLING_TAG` while a
  tag points at it and `GOOGLE_MANIFEST_DANGLING_PARENT_IMAGE` while a present index lists it;
- a read-only token (`readonly`) gets 403 DENIED on any DELETE.

What the janitor is answered comes from a model of each image (tags and manifests, updated from every
push, untag and delete that passes through the stand-in), so a listing costs no upstream request;
tests check survivors on the real registry (`tags`, `present`).

REST (`api`, https://artifactregistry.googleapis.com/v1 shapes): `GET projects/P/locations/L/repositories`,
`.../repositories/R` (`dockerConfig.immutableTags`), `.../repositories/R/packages` (package ids with
`/` encoded as `%2F`), `pageSize` capped at 1,000, `pageToken`/`nextPageToken`; Bearer access token.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from urllib.parse import quote

import httpx

from tests.support.vendor_standin import Reply, Request, VendorStandIn

TOKEN_USERS = ("oauth2accesstoken", "_dcgcloud_token", "_token")
REST = re.compile(r"^/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/repositories"
                  r"(?:/(?P<repo>[^/]+)(?P<packages>/packages)?)?$")
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
PAGE_MAX = 1000


def oci_error(status: int, code: str, message: str) -> Reply:
    return Reply(status, {"errors": [{"code": code, "message": message}]})


def google_error(status: int, state: str, message: str) -> Reply:
    return Reply(status, {"error": {"code": status, "message": message, "status": state}})


class GarStandIn(VendorStandIn):
    def __init__(self, upstream: str, *, flavour: str = "ar", location: str = "us", token: str | None = None,
                 readonly: tuple[str, ...] = ()):
        super().__init__(upstream)
        self.flavour = flavour
        self.location = location
        self.token = token                          # None: no auth at all
        self.readonly = set(readonly)               # access tokens that may read but not delete
        self.immutable: set[str] = set()            # "PROJECT/REPO" with immutable tags
        self.list_page = 0                          # > 0: manifest map pages of this many entries
        self._issued: dict[str, str] = {}           # registry token -> the access token it was issued for
        self._serial = itertools.count(1)
        # The model: name -> tag -> digest, and name -> digest -> (body, media type).
        self.model_tags: dict[str, dict[str, str]] = {}
        self.model_manifests: dict[str, dict[str, tuple[bytes, str]]] = {}
        self.forward_errors: list[str] = []         # upstream transport errors met (and retried for reads)

    # --- the model ----------------------------------------------------------------------------
    def _forward(self, request: Request, raw_path: str, match: re.Match | None = None) -> Reply:
        for attempt in range(3):
            try:
                reply = super()._forward(request, raw_path, match)
                break
            except httpx.TransportError as exc:      # a loaded machine: the upstream keep-alive dropped
                self.forward_errors.append(repr(exc))
                if request.method not in ("GET", "HEAD") or attempt == 2:
                    raise
        if match and match["what"] == "manifests" and request.method == "PUT" and reply.status == 201:
            digest = reply.headers.get("docker-content-digest") or reply.headers.get("Docker-Content-Digest")
            media_type = (request.headers.get("content-type") or "").split(";")[0].strip()
            with self.lock:
                if digest:
                    self.model_manifests.setdefault(match["name"], {})[digest] = (request.body, media_type)
                    if match["ref"] and not match["ref"].startswith("sha256:"):
                        self.model_tags.setdefault(match["name"], {})[match["ref"]] = digest
        return reply

    def untag(self, name: str, tag: str) -> None:
        super().untag(name, tag)
        with self.lock:
            self.model_tags.get(name, {}).pop(tag, None)

    def delete_digest(self, name: str, digest: str) -> int:
        status = super().delete_digest(name, digest)
        if status == 202:
            with self.lock:
                self.model_manifests.get(name, {}).pop(digest, None)
                for tag in [t for t, d in self.model_tags.get(name, {}).items() if d == digest]:
                    self.model_tags[name].pop(tag)
        return status

    def present(self, name: str) -> set[str]:
        """Every digest ever pushed through the stand-in to `name` that the real registry still has."""
        with self.lock:
            seen = set(self.model_manifests.get(name, {})) | {d for (n, d) in self.pushed if n == name}
        return {d for d in seen if self.resolve(name, d)} | set(self.tags(name).values())

    # --- auth ---------------------------------------------------------------------------------
    def _challenge(self) -> Reply:
        return Reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                     {"WWW-Authenticate": f'Bearer realm="{self.url}/v2/token",service="{self.host}"'})

    def _registry_caller(self, request: Request) -> str | None:
        """The access token behind the request's registry Bearer token (None: not authenticated)."""
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return None
        return self._issued.get(header[len("Bearer "):])

    def _token_endpoint(self, request: Request) -> Reply:
        header = request.headers.get("authorization", "")
        try:
            user, _, secret = base64.b64decode(header[len("Basic "):]).decode().partition(":")
        except ValueError:
            user = secret = ""
        if not header.startswith("Basic ") or user not in TOKEN_USERS or secret not in {self.token, *self.readonly}:
            return Reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
        issued = f"standin-registry-token-{next(self._serial)}"
        self._issued[issued] = secret
        return Reply(200, {"token": issued, "expires_in": 3600})

    def _rest_caller(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        token = header[len("Bearer "):] if header.startswith("Bearer ") else None
        return token if token in {self.token, *self.readonly} else None

    # --- /v2 ----------------------------------------------------------------------------------
    def v2_hook(self, request: Request, name: str, what: str, ref: str | None) -> Reply | None:
        caller = None
        if self.token is not None:
            caller = self._registry_caller(request)
            if caller is None:
                return self._challenge()
        if what == "tags" and request.method == "GET":
            return self.tags_list(name, request.arg("last"))
        if what == "manifests" and request.method == "DELETE" and ref:
            if caller in self.readonly:
                perm = "versions" if ref.startswith("sha256:") else "tags"
                return oci_error(403, "DENIED", f'Permission "artifactregistry.{perm}.delete" denied on resource')
            return self._delete(name, ref)
        return None

    def _delete(self, name: str, ref: str) -> Reply:
        tags, manifests = self._model(name)
        if not ref.startswith("sha256:"):
            if ref not in tags:
                return oci_error(404, "MANIFEST_UNKNOWN", f"Failed to fetch \"{ref}\"")
            if "/".join(name.split("/")[:2]) in self.immutable:
                return oci_error(403, "DENIED", f"tag {ref} is immutable")
            self.untag(name, ref)
            return Reply(202)
        if ref not in manifests:
            return oci_error(404, "MANIFEST_UNKNOWN", f"Manifest {ref} not found")
        tagged = sorted(t for t, d in tags.items() if d == ref)
        if tagged:
            return oci_error(400, "GOOGLE_MANIFEST_DANGLING_TAG", f"Manifest is still referenced by tag: {tagged[0]}")
        for parent, (body, media_type) in manifests.items():
            if media_type in INDEX_TYPES and ref in {m.get("digest") for m in json.loads(body).get("manifests") or []}:
                return oci_error(400, "GOOGLE_MANIFEST_DANGLING_PARENT_IMAGE",
                                 f"Manifest {ref} is referenced by image {parent}")
        status = self.delete_digest(name, ref)
        return Reply(status) if status == 202 else oci_error(status, "UNKNOWN", "delete failed")

    def _model(self, name: str) -> tuple[dict[str, str], dict[str, tuple[bytes, str]]]:
        with self.lock:
            return dict(self.model_tags.get(name, {})), dict(self.model_manifests.get(name, {}))

    def _children(self, name: str) -> list[str]:
        prefix = name + "/" if name else ""
        with self.lock:
            names = [n for n, m in self.model_manifests.items() if m]
        return sorted({r[len(prefix):].split("/")[0] for r in names if r.startswith(prefix)})

    def _entry(self, name: str, digest: str, body: bytes, media_type: str, tags: list[str]) -> dict:
        doc = json.loads(body)
        size = len(body) + sum(int(d.get("size") or 0) for d in [doc.get("config") or {}, *(doc.get("layers") or [])])
        uploaded = self.pushed.get((name, digest))
        ms = int(uploaded.timestamp() * 1000) if uploaded else 0
        return {"imageSizeBytes": str(size), "mediaType": media_type, "tag": tags, "timeCreatedMs": "0",
                "timeUploadedMs": ms if self.flavour == "ar" else str(ms)}

    def tags_list(self, name: str, last: str | None = None) -> Reply:
        tags, present = self._model(name)
        children = self._children(name)
        if not tags and not present and not children:
            return oci_error(404, "NAME_UNKNOWN", f"Repository \"{name}\" not found")
        manifest = {d: self._entry(name, d, body, mt, sorted(t for t, td in tags.items() if td == d))
                    for d, (body, mt) in present.items()}
        headers = {}
        digests = sorted(manifest)
        if self.list_page > 0:
            start = digests.index(last) + 1 if last in digests else 0
            page = digests[start:start + self.list_page]
            if start + self.list_page < len(digests):
                headers["Link"] = f'</v2/{name}/tags/list?last={page[-1]}>; rel="next"'
            manifest = {d: manifest[d] for d in page}
            tags = {t: d for t, d in tags.items() if d in manifest}
        return Reply(200, {"child": children, "manifest": manifest, "name": name, "tags": sorted(tags)}, headers)

    # --- REST ---------------------------------------------------------------------------------
    def api(self, request: Request) -> Reply:
        if request.path == "/v2/token":
            return self._token_endpoint(request)
        match = REST.match(request.path)
        if match is None or request.method != "GET":
            return google_error(404, "NOT_FOUND", f"no such endpoint: {request.method} {request.path}")
        if self.token is not None and self._rest_caller(request) is None:
            return google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        project, location, repo = match["project"], match["location"], match["repo"]
        if location != self.location:
            return google_error(404, "NOT_FOUND", f"location {location} not found")
        with self.lock:
            names = [n for n, m in self.model_manifests.items() if m and n.startswith(f"{project}/")]
        repos = sorted({r.split("/")[1] for r in names if r.count("/") >= 2})
        parent = f"projects/{project}/locations/{location}/repositories"
        if repo is None:
            return self._page(request, "repositories", [{"name": f"{parent}/{r}", "format": "DOCKER"} for r in repos])
        if repo not in repos:
            return google_error(404, "NOT_FOUND", f"Requested entity was not found.")
        if not match["packages"]:
            return Reply(200, {"name": f"{parent}/{repo}", "format": "DOCKER", "mode": "STANDARD_REPOSITORY",
                               "dockerConfig": {"immutableTags": f"{project}/{repo}" in self.immutable}})
        images = sorted(r.split("/", 2)[2] for r in names if r.split("/")[1] == repo and r.count("/") >= 2)
        return self._page(request, "packages", [{"name": f"{parent}/{repo}/packages/{quote(i, safe='')}",
                                                 "createTime": "2026-01-01T00:00:00Z"} for i in images])

    @staticmethod
    def _page(request: Request, field: str, items: list[dict]) -> Reply:
        size = min(int(request.arg("pageSize") or 0) or PAGE_MAX, PAGE_MAX)
        start = int(request.arg("pageToken") or 0)
        doc: dict = {field: items[start:start + size]}
        if start + size < len(items):
            doc["nextPageToken"] = str(start + size)
        return Reply(200, doc)
