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
        if not ref.startswith("sha256:"):
            if self.resolve(name, ref) is None:
                return oci_error(404, "MANIFEST_UNKNOWN", f"Failed to fetch \"{ref}\"")
            if "/".join(name.split("/")[:2]) in self.immutable:
                return oci_error(403, "DENIED", f"tag {ref} is immutable")
            self.untag(name, ref)
            return Reply(202)
        if self.resolve(name, ref) is None:
            return oci_error(404, "MANIFEST_UNKNOWN", f"Manifest {ref} not found")
        tagged = sorted(t for t, d in self.tags(name).items() if d == ref)
        if tagged:
            return oci_error(400, "GOOGLE_MANIFEST_DANGLING_TAG", f"Manifest is still referenced by tag: {tagged[0]}")
        for parent, (body, media_type) in self._present(name).items():
            if media_type in INDEX_TYPES and ref in {m.get("digest") for m in json.loads(body).get("manifests") or []}:
                return oci_error(400, "GOOGLE_MANIFEST_DANGLING_PARENT_IMAGE",
                                 f"Manifest {ref} is referenced by image {parent}")
        status = self.delete_digest(name, ref)
        return Reply(status) if status == 202 else oci_error(status, "UNKNOWN", "delete failed")

    def _present(self, name: str) -> dict[str, tuple[bytes, str]]:
        """Every manifest of `name` pushed through the stand-in (or tagged) that the registry still has."""
        with self.lock:
            digests = {d for (n, d) in self.pushed if n == name}
        digests |= set(self.tags(name).values())
        found = {}
        for digest in sorted(digests):
            got = self.manifest(name, digest)
            if got is not None:
                found[digest] = (got[0], got[1].split(";")[0].strip())
        return found

    def repositories(self) -> list[str]:
        """The registry's catalog, page by page (distribution refuses an `n` above its 1,000 cap)."""
        names: list[str] = []
        url: str | None = "/v2/_catalog?n=1000"
        while url:
            got = self.registry.get(url)
            got.raise_for_status()
            names += got.json().get("repositories") or []
            link = got.headers.get("link", "")
            url = link[link.index("<") + 1:link.index(">")] if link.startswith("<") else None
        return sorted(names)

    def _children(self, name: str) -> list[str]:
        prefix = name + "/" if name else ""
        return sorted({r[len(prefix):].split("/")[0] for r in self.repositories() if r.startswith(prefix)})

    def _entry(self, name: str, digest: str, body: bytes, media_type: str, tags: list[str]) -> dict:
        doc = json.loads(body)
        size = len(body) + sum(int(d.get("size") or 0) for d in [doc.get("config") or {}, *(doc.get("layers") or [])])
        uploaded = self.pushed.get((name, digest))
        ms = int(uploaded.timestamp() * 1000) if uploaded else 0
        return {"imageSizeBytes": str(size), "mediaType": media_type, "tag": tags, "timeCreatedMs": "0",
                "timeUploadedMs": ms if self.flavour == "ar" else str(ms)}

    def tags_list(self, name: str, last: str | None = None) -> Reply:
        tags = self.tags(name)
        present = self._present(name)
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
        names = [r for r in self.repositories() if r.startswith(f"{project}/")]
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
