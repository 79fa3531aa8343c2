"""A Harbor stand-in: the real `docker-registry` behind `/v2` with Harbor's behaviour, and Harbor's REST
API v2.0 from its swagger (goharbor/harbor `api/v2.0/swagger.yaml` @c50c7dd) and server code.

What it does as Harbor does (file names: goharbor/harbor `src/`):
- `GET /api/v2.0/ping` answers 200 `Pong` (text/plain), without credentials.
- Artifacts live in a database of its own (as Harbor's): a manifest PUT through `/v2` creates the
  artifact (push time = first push) and moves the tag (tag push time = now). An index PUT whose
  entries are not artifacts of the repository answers 404 NOT_FOUND: what BuildKit's index-form
  caches meet (goharbor/harbor#14774).
- `/v2` manifest GET is a pull (the artifact's `pull_time`, the tag's when read by tag, and the
  pull time of every index referencing it: `updateParentArtifactPullTime`); HEAD is none
  (`server/registry/manifest.go`). DELETE by tag: 400 UNSUPPORTED; by digest: the artifact goes.
- `GET .../artifacts`: `page` (default 1), `page_size` (default 10, above 100: 422), `with_tag`
  (default true), `with_immutable_status` (default false: every tag's `immutable` is false unless
  asked), sorted newest push first, `X-Total-Count` and a `Link` header. The base collection is tagged
  artifacts and untagged ones no index references (`pkg/artifact/dao/dao.go`); an index's children
  are its `references` (`child_digest`). `pull_time` of an artifact never pulled is Go's zero time.
- Deleting an artifact (`controller/artifact/controller.go` `deleteDeeply`): 412 when an index
  references it, 412 when one of its tags is immutable (`controller/tag/controller.go`); else its
  tags go, and its untagged children no other index references.
- `DELETE .../artifacts/{reference}/tags/{tag}`: 404 when the tag is not on that artifact, 412 when
  it is immutable.
- `GET .../artifacts/{reference}` (`with_tag`, `with_immutable_status` as for the listing): the one
  artifact, 404 when there is none.
- Repository names in API paths are URL-encoded twice (`a/b` -> `a%252Fb`): a segment that decodes
  to a `/` in one pass misroutes (404), as Harbor's router does.
- With `users`, the API wants HTTP Basic (401 otherwise); a user in `readonly` gets 403 on deletes.
"""

from __future__ import annotations

import base64
import fnmatch
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import unquote, urlencode

from tests.support.vendor_standin import Reply, Request, VendorStandIn

INDEX_TYPES = {"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}
ZERO_TIME = "0001-01-01T00:00:00.000Z"


def _iso(when: datetime | None) -> str:
    """What go-openapi's strfmt.DateTime writes (milliseconds, Z); Go's zero time for None."""
    if when is None:
        return ZERO_TIME
    utc = when.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def errors(code: str, message: str) -> dict:
    return {"errors": [{"code": code, "message": message}]}


@dataclass
class Artifact:
    id: int
    digest: str
    manifest_media_type: str
    media_type: str
    size: int
    references: list[str]
    push_time: datetime
    pull_time: datetime | None = None


@dataclass
class TagRow:
    id: int
    digest: str
    push_time: datetime
    pull_time: datetime | None = None


class HarborStandIn(VendorStandIn):
    """`users`: name -> password (None: the API is open); `readonly`: users whose deletes answer 403;
    `immutable`: tag immutability rules (globs of tag names); `unreadable`: digests whose `/v2` GET
    answers 404 MANIFEST_UNKNOWN although the database lists them."""

    def __init__(self, upstream: str, users: dict[str, str] | None = None, readonly: set[str] | None = None,
                 immutable: list[str] | None = None):
        super().__init__(upstream)
        self.users = users
        self.readonly = readonly or set()
        self.immutable = list(immutable or [])
        self.unreadable: set[str] = set()
        self.artifacts: dict[tuple[str, str], Artifact] = {}
        self.tagdb: dict[tuple[str, str], TagRow] = {}
        self._ids = 0

    # --- state helpers for tests ------------------------------------------------------------
    def _id(self) -> int:
        self._ids += 1
        return self._ids

    def listed_tags(self, repo: str) -> dict[str, str]:
        with self.lock:
            return {t: row.digest for (r, t), row in self.tagdb.items() if r == repo}

    def digests(self, repo: str) -> set[str]:
        with self.lock:
            return {d for (r, d) in self.artifacts if r == repo}

    def set_times(self, repo: str, digest: str, pushed: datetime | None = None, pulled: datetime | None = None,
                  never_pulled: bool = False) -> None:
        with self.lock:
            art = self.artifacts[(repo, digest)]
            if pushed is not None:
                art.push_time = pushed
            if pulled is not None or never_pulled:
                art.pull_time = pulled
            for row in self.tagdb.values():
                if row.digest == digest and pushed is not None:
                    row.push_time = pushed

    def is_immutable(self, tag: str) -> bool:
        return any(fnmatch.fnmatchcase(tag, rule) for rule in self.immutable)

    # --- /v2 -------------------------------------------------------------------------------
    def v2_hook(self, request: Request, name: str, what: str, ref: str | None) -> Reply | None:
        if what != "manifests" or not ref:
            return None
        raw = request.path + (("?" + urlencode(request.query, doseq=True)) if request.query else "")
        if request.method == "PUT":
            return self._put(request, name, ref, raw)
        if request.method == "DELETE":
            if not ref.startswith("sha256:"):
                return Reply(400, errors("UNSUPPORTED", f"unsupported digest {ref}: invalid checksum digest format"))
            return self._delete_artifact(name, ref, status=202)
        if request.method in ("GET", "HEAD"):
            with self.lock:
                digest = ref if ref.startswith("sha256:") else (self.tagdb.get((name, ref)) or TagRow(0, "", None)).digest
                if not digest or (name, digest) not in self.artifacts:
                    return Reply(404, errors("NOT_FOUND", f"artifact {name}:{ref} not found"))
            if request.method == "GET" and digest in self.unreadable:
                return Reply(404, errors("MANIFEST_UNKNOWN", "manifest unknown"))
            reply = self._forward(request, raw)
            if request.method == "GET" and reply.status == 200:
                self._pulled(name, digest, None if ref.startswith("sha256:") else ref)
            return reply
        return None

    def _pulled(self, name: str, digest: str, tag: str | None) -> None:
        when = self.clock()
        with self.lock:
            self.artifacts[(name, digest)].pull_time = when
            if tag and (name, tag) in self.tagdb:
                self.tagdb[(name, tag)].pull_time = when
            for (repo, _), art in self.artifacts.items():
                if repo == name and digest in art.references:
                    art.pull_time = when

    def _put(self, request: Request, name: str, ref: str, raw: str) -> Reply:
        try:
            doc = json.loads(request.body)
        except ValueError:
            return Reply(400, errors("MANIFEST_INVALID", "manifest invalid"))
        media_type = request.headers.get("content-type", "").split(";")[0] or doc.get("mediaType", "")
        children = [m.get("digest") for m in doc.get("manifests") or []] if media_type in INDEX_TYPES else []
        with self.lock:
            missing = [c for c in children if (name, c) not in self.artifacts]
            if missing:     # what Harbor answers to BuildKit's index-form caches (children are blobs)
                return Reply(404, errors("NOT_FOUND", f"artifact {name}@{missing[0]} not found"))
            if not ref.startswith("sha256:") and (name, ref) in self.tagdb and self.is_immutable(ref):
                return Reply(412, errors("PRECONDITION", f"the tag {ref} configured as immutable, cannot be updated"))
        reply = self._forward(request, raw)
        if reply.status != 201:
            return reply
        digest = reply.headers.get("Docker-Content-Digest") or reply.headers.get("docker-content-digest")
        when = self.clock()
        with self.lock:
            if (name, digest) not in self.artifacts:
                if media_type in INDEX_TYPES:
                    size = len(request.body) + sum(self.artifacts[(name, c)].size for c in children)
                    config_type = media_type
                else:
                    size = len(request.body) + sum(int(l.get("size") or 0) for l in doc.get("layers") or []) \
                        + int((doc.get("config") or {}).get("size") or 0)
                    config_type = (doc.get("config") or {}).get("mediaType") or media_type
                self.artifacts[(name, digest)] = Artifact(self._id(), digest, media_type, config_type, size,
                                                          children, when)
            if not ref.startswith("sha256:"):
                old = self.tagdb.get((name, ref))
                self.tagdb[(name, ref)] = TagRow(old.id if old else self._id(), digest, when)
        return reply

    # --- the shared delete (API and /v2) ------------------------------------------------------
    def _delete_artifact(self, name: str, digest: str, status: int) -> Reply:
        with self.lock:
            art = self.artifacts.get((name, digest))
            if art is None:
                return Reply(404, errors("NOT_FOUND", f"artifact {name}@{digest} not found"))
            if any(digest in a.references for (r, _), a in self.artifacts.items() if r == name):
                return Reply(412, errors("VIOLATE_FOREIGN_KEY_CONSTRAINT", "the deleting artifact is referenced by others"))
            for (r, tag), row in self.tagdb.items():
                if r == name and row.digest == digest and self.is_immutable(tag):
                    return Reply(412, errors("PRECONDITION", f"the tag {tag} configured as immutable, cannot be deleted"))
            self._delete_deeply(name, digest)
        return Reply(status, b"")

    def _delete_deeply(self, name: str, digest: str) -> None:
        art = self.artifacts.pop((name, digest))
        for child in art.references:
            tagged = any(r == name and row.digest == child for (r, _), row in self.tagdb.items())
            referenced = any(child in a.references for (r, _), a in self.artifacts.items() if r == name)
            if (name, child) in self.artifacts and not tagged and not referenced:
                self._delete_deeply(name, child)
        for key in [k for k, row in self.tagdb.items() if k[0] == name and row.digest == digest]:
            del self.tagdb[key]
        self.delete_digest(name, digest)

    # --- the REST API ------------------------------------------------------------------------
    def _authorised(self, request: Request) -> str | None | Reply:
        """The user, None when the API is open; a 401 Reply when credentials are wanted and wrong."""
        if self.users is None:
            return None
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if self.users.get(user) == password:
                return user
        return Reply(401, errors("UNAUTHORIZED", "unauthorized"))

    def api(self, request: Request) -> Reply:
        if request.path == "/api/v2.0/ping" and request.method == "GET":
            return Reply(200, b"Pong", {"Content-Type": "text/plain"})
        if not request.path.startswith("/api/v2.0/"):
            return Reply(404, b"404 page not found")
        user = self._authorised(request)
        if isinstance(user, Reply):
            return user
        once = [unquote(s) for s in request.path[len("/api/v2.0/"):].split("/")]
        if any("/" in s for s in once):             # Harbor's router decodes once: a single-encoded name misroutes
            return Reply(404, errors("NOT_FOUND", "not found"))
        parts = [unquote(s) for s in once]
        if request.method == "DELETE" and user in self.readonly:
            return Reply(403, errors("FORBIDDEN", "forbidden"))
        if parts == ["repositories"] and request.method == "GET":
            return self._page(request, self._repositories(None))
        if len(parts) == 3 and parts[0] == "projects" and parts[2] == "repositories" and request.method == "GET":
            repos = self._repositories(parts[1])
            if repos is None:
                return Reply(404, errors("NOT_FOUND", f"project {parts[1]} not found"))
            return self._page(request, repos)
        if len(parts) >= 5 and parts[0] == "projects" and parts[2] == "repositories" and parts[4] == "artifacts":
            name = f"{parts[1]}/{parts[3]}"
            rest = parts[5:]
            if not rest and request.method == "GET":
                return self._list_artifacts(request, name)
            if len(rest) == 1 and request.method == "GET":
                digest = self._reference(name, rest[0])
                if digest is None:
                    return Reply(404, errors("NOT_FOUND", f"artifact {name}:{rest[0]} not found"))
                return Reply(200, self._items(request, name, [digest])[0])
            if len(rest) == 1 and request.method == "DELETE":
                digest = self._reference(name, rest[0])
                if digest is None:
                    return Reply(404, errors("NOT_FOUND", f"artifact {name}:{rest[0]} not found"))
                return self._delete_artifact(name, digest, status=200)
            if len(rest) == 3 and rest[1] == "tags" and request.method == "DELETE":
                return self._delete_tag(name, rest[0], rest[2])
        return Reply(404, errors("NOT_FOUND", f"no such endpoint: {request.method} {request.path}"))

    def _reference(self, name: str, reference: str) -> str | None:
        with self.lock:
            if reference.startswith("sha256:"):
                return reference if (name, reference) in self.artifacts else None
            row = self.tagdb.get((name, reference))
            return row.digest if row else None

    def _delete_tag(self, name: str, reference: str, tag: str) -> Reply:
        with self.lock:
            digest = self._reference(name, reference)
            if digest is None:
                return Reply(404, errors("NOT_FOUND", f"artifact {name}:{reference} not found"))
            row = self.tagdb.get((name, tag))
            if row is None or row.digest != digest:
                return Reply(404, errors("NOT_FOUND", f"tag {tag} not found on artifact {digest}"))
            if self.is_immutable(tag):
                return Reply(412, errors("PRECONDITION", f"the tag {tag} configured as immutable, cannot be deleted"))
            del self.tagdb[(name, tag)]
            self.untag(name, tag)
        return Reply(200, b"")

    def _repositories(self, project: str | None) -> list[dict] | None:
        with self.lock:
            names = sorted({r for (r, _) in self.artifacts})
        if project is not None:
            if not any(n.split("/")[0] == project for n in names):
                return None
            names = [n for n in names if n.split("/")[0] == project]
        return [{"id": i + 1, "project_id": 1, "name": n, "artifact_count": len(self.digests(n)), "pull_count": 0}
                for i, n in enumerate(names)]

    def _page(self, request: Request, items: list[dict]) -> Reply:
        try:
            page = int(request.arg("page", "1") or 1)
            size = int(request.arg("page_size", "10") or 10)
        except ValueError:
            return Reply(422, errors("UNPROCESSABLE_ENTITY", "page and page_size must be integers"))
        if size > 100:
            return Reply(422, errors("UNPROCESSABLE_ENTITY",
                                     "validation failure list:\npage_size in query should be less than or equal to 100"))
        if page < 1 or size < 1:
            return Reply(422, errors("UNPROCESSABLE_ENTITY", "page and page_size must be positive"))
        chunk = items[(page - 1) * size: page * size]
        links = []
        query = {k: v for k, v in request.query.items() if k not in ("page", "page_size")}
        if page > 1:
            links.append(f'<{request.path}?{urlencode({**query, "page": page - 1, "page_size": size}, doseq=True)}>; rel="prev"')
        if page * size < len(items):
            links.append(f'<{request.path}?{urlencode({**query, "page": page + 1, "page_size": size}, doseq=True)}>; rel="next"')
        headers = {"X-Total-Count": str(len(items))}
        if links:
            headers["Link"] = " , ".join(links)
        return Reply(200, chunk, headers)

    def _list_artifacts(self, request: Request, name: str) -> Reply:
        with self.lock:
            arts = [a for (r, _), a in self.artifacts.items() if r == name]
            if not arts:
                return Reply(404, errors("NOT_FOUND", f"repository {name} not found"))
            tagged = {row.digest for (r, _), row in self.tagdb.items() if r == name}
            children = {c for a in arts for c in a.references}
            listed = [a for a in arts if a.digest in tagged or a.digest not in children]
            listed.sort(key=lambda a: (a.push_time, a.id), reverse=True)
            items = self._items(request, name, [a.digest for a in listed])
        return self._page(request, items)

    def _items(self, request: Request, name: str, digests: list[str]) -> list[dict]:
        """The artifacts `digests` of `name` as the API shows them (`with_tag`, `with_immutable_status`)."""
        with_tag = request.arg("with_tag", "true") != "false"
        immutable = request.arg("with_immutable_status", "false") == "true"
        with self.lock:
            arts = [a for (r, _), a in self.artifacts.items() if r == name]
            tags: dict[str, list[tuple[str, TagRow]]] = {}
            for (r, tag), row in self.tagdb.items():
                if r == name:
                    tags.setdefault(row.digest, []).append((tag, row))
            by_digest = {a.digest: a for a in arts}
            listed = [by_digest[d] for d in digests]
            items = [{
                "id": a.id, "type": "IMAGE" if "image" in a.media_type else "UNKNOWN", "media_type": a.media_type,
                "manifest_media_type": a.manifest_media_type, "project_id": 1, "repository_id": 1,
                "repository_name": name, "digest": a.digest, "size": a.size, "icon": "",
                "push_time": _iso(a.push_time), "pull_time": _iso(a.pull_time),
                "extra_attrs": {}, "annotations": None, "labels": None, "addition_links": {},
                "references": [{"parent_id": a.id, "child_id": by_digest[c].id, "child_digest": c, "urls": None}
                               for c in a.references if c in by_digest] or None,
                "tags": [{"id": row.id, "repository_id": 1, "artifact_id": a.id, "name": tag,
                          "push_time": _iso(row.push_time), "pull_time": _iso(row.pull_time),
                          "immutable": immutable and self.is_immutable(tag)}
                         for tag, row in sorted(tags.get(a.digest, []))] or None if with_tag else None,
            } for a in listed]
        return items
