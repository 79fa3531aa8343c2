"""A Docker Hub stand-in: the Hub API (hub.docker.com) built from its documented shapes, in front of
the real `docker-registry` as Hub's `/v2` (registry-1.docker.io).

Hub API (docs.docker.com hub `latest.yaml`; docker/hub-tool `pkg/hub/tags.go`; the 2021 images docs):
- `POST /v2/auth/token {identifier, secret}` -> `{access_token}`; `POST /v2/users/login {username,
  password}` -> `{token}` (deprecated); 401 `{detail}` for a wrong secret. Tokens are opaque here.
- `GET /v2/namespaces/NS/repositories/REPO/tags?page=&page_size=` (max 100, else 400): `count`,
  `next` (absolute, on this server), `previous`, `results[]` of tags (`name`, `digest`, `media_type`,
  `content_type`, `tag_last_pushed`, `tag_last_pulled`, `last_updated`, `tag_status`, `full_size`,
  `images[]` of `{digest, last_pushed, last_pulled, status, size, architecture, os}`), newest first.
  Public repositories answer anonymously; `private` ones need a token.
- `GET /v2/namespaces/NS/repositories/REPO/images?page_size=&currently_tagged=&status=`: results of
  `{namespace, repository, digest, tags: [{tag, is_current}], last_pushed, last_pulled, status}`;
  a tag once on an image stays listed with `is_current: false`. Needs a token (`images_refused`: 403).
- `DELETE /v2/repositories/NS/REPO/tags/TAG/` -> 204, 404 for a tag that is not there; needs a token
  whose `permission` is "delete" (else 403). `untag_status` forces another answer (hub-feedback#2398).
- `GET /v2/repositories/NS/?page_size=&page=`: the namespace's repositories.
- Rate limits: `X-RateLimit-Limit/Remaining/Reset` on every API answer; `rate_limit(n, after)`: the
  next n API requests answer 429 with `X-Retry-After` = now + after (a unix time).

`/v2` (registry API latest.yaml): DELETE by tag is 405 "Only digest-based deletion is allowed"; a
DELETE by digest is 403 DENIED while a tag points at the manifest or another manifest of the
repository lists it, else it goes to the real registry. A DELETE needs Basic credentials (a
challenge otherwise; `v2_delete_denied` answers 403 to any). `background_500`: digests whose DELETE
answers 500 but happens anyway (`after_heads` HEADs later); `stuck_500`: 500 and nothing happens.
Every GET of a manifest is a pull (the base records it): Hub's `last_pulled`.
"""

from __future__ import annotations

import base64
import json
import threading
import re
import secrets
from datetime import datetime, timezone
from urllib.parse import urlencode

from tests.support.vendor_standin import ACCEPT, Reply, Request, VendorStandIn

USER = "acme-bot"
TOKEN = "dckr_pat_janitor-test-secret-never-printed"
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")

TAGS = re.compile(r"^/v2/namespaces/(?P<ns>[^/]+)/repositories/(?P<repo>[^/]+)/tags/?$")
IMAGES = re.compile(r"^/v2/namespaces/(?P<ns>[^/]+)/repositories/(?P<repo>[^/]+)/images/?$")
UNTAG = re.compile(r"^/v2/repositories/(?P<ns>[^/]+)/(?P<repo>[^/]+)/tags/(?P<tag>[^/]+)/?$")
REPOS = re.compile(r"^/v2/repositories/(?P<ns>[^/]+)/?$")


def iso(when: datetime | None) -> str | None:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if when else None


class DockerHubStandIn(VendorStandIn):
    def __init__(self, upstream: str):
        super().__init__(upstream)
        self.accounts = {USER: TOKEN}
        self.permission = "delete"                  # of every token issued: "read", "write" or "delete"
        self.tokens: dict[str, str] = {}            # issued JWT -> user
        self.private: set[str] = set()              # repositories whose listing needs a token
        self.images_refused = False
        self.untag_status: int | None = None
        self.v2_delete_denied = False
        self.background_500: dict[str, int] = {}    # digest -> HEADs of it before the delete happens
        self.stuck_500: set[str] = set()
        self.history: dict[tuple[str, str], set[str]] = {}     # (repo, digest) -> every tag once on it
        self.limited: list[float] = []              # X-Retry-After offsets of the next 429s
        self.remaining = 180
        self._state: dict[str, tuple[dict[str, str], dict[str, list[str]]]] = {}
        self.serial = threading.RLock()             # Hub API answers, manifest PUTs and DELETEs: one at a time
        self._manifests: dict[tuple[str, str], tuple[bytes, str] | None] = {}

    # --- state: read from the registry once per repository, then kept up to date -------------
    def changed(self, name: str | None = None) -> None:
        """Forget the state (of `name`, or of every repository): it is read again when asked."""
        with self.lock:
            if name is None:
                self._state.clear()
            else:
                self._state.pop(name, None)

    def _forward(self, request, raw_path, match=None):
        if match and match["what"] == "manifests" and request.method not in ("GET", "HEAD"):
            with self.serial:
                return self._forward_change(request, raw_path, match)
        return super()._forward(request, raw_path, match)

    def _forward_change(self, request, raw_path, match):
        if match and request.method == "PUT" and match["what"] == "manifests" and match["ref"] \
                and not match["ref"].startswith("sha256:"):
            before = self.resolve(match["name"], match["ref"])      # an overwritten tag: Hub lists it as once there
            if before:
                with self.lock:
                    self.history.setdefault((match["name"], before), set()).add(match["ref"])
        reply = super()._forward(request, raw_path, match)
        if match and match["what"] == "manifests" and request.method == "PUT" and reply.status == 201:
            name, digest = match["name"], reply.headers.get("docker-content-digest") or \
                reply.headers.get("Docker-Content-Digest")
            with self.lock:
                cached = self._state.get(name)
            if cached is not None and digest:
                cached[1][digest] = self._children(name, digest)
                if not match["ref"].startswith("sha256:"):
                    cached[0][match["ref"]] = digest
        elif match and request.method not in ("GET", "HEAD") and match["what"] == "manifests":
            self.changed(match["name"])
        return reply

    def untag(self, name: str, tag: str) -> None:
        super().untag(name, tag)
        with self.lock:
            cached = self._state.get(name)
            if cached is not None:
                cached[0].pop(tag, None)

    def delete_digest(self, name: str, digest: str) -> int:
        status = super().delete_digest(name, digest)
        with self.lock:
            cached = self._state.get(name)
            if cached is not None and status == 202:
                cached[1].pop(digest, None)
                for tag in [t for t, d in cached[0].items() if d == digest]:
                    cached[0].pop(tag)
        return status

    def state(self, name: str) -> tuple[dict[str, str], dict[str, list[str]]]:
        """(tag -> digest, digest -> child digests) of every manifest the repository holds now."""
        with self.lock:
            cached = self._state.get(name)
        if cached is not None:
            return dict(cached[0]), dict(cached[1])
        tags = self.tags(name)
        with self.lock:
            known = {d for (n, d) in self.pushed if n == name} | set(tags.values())
        present = {d: self._children(name, d) for d in sorted(known) if self.resolve(name, d)}
        with self.lock:
            self._state[name] = (tags, present)
        return dict(tags), dict(present)

    def _manifest(self, name: str, digest: str) -> tuple[bytes, str] | None:
        key = (name, digest)
        if key not in self._manifests:
            self._manifests[key] = self.manifest(name, digest)
        return self._manifests[key]

    # --- helpers ---------------------------------------------------------------------------
    def rate_limit(self, times: int, after: float) -> None:
        self.limited += [after] * times

    def _user(self, request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        return self.tokens.get(auth[len("Bearer "):]) if auth.startswith("Bearer ") else None

    def _page(self, request: Request, items: list, path: str) -> Reply:
        size = int(request.arg("page_size", "10") or 10)
        page = int(request.arg("page", "1") or 1)
        if size > 100 or size < 1:
            return Reply(400, {"message": "page_size must be between 1 and 100"})
        chunk = items[(page - 1) * size: page * size]
        params = {k: v[0] for k, v in request.query.items() if k not in ("page",)}
        more = page * size < len(items)
        return Reply(200, {"count": len(items), "next": f"{self.url}{path}?{urlencode({**params, 'page': page + 1})}"
                           if more else None,
                           "previous": f"{self.url}{path}?{urlencode({**params, 'page': page - 1})}" if page > 1 else None,
                           "results": chunk})

    def _when(self, table: dict, key) -> datetime | None:
        with self.lock:
            return table.get(key)

    def _children(self, name: str, digest: str) -> list[str]:
        got = self._manifest(name, digest)
        if not got or not any(got[1].startswith(t) for t in INDEX_TYPES):
            return []
        return [m["digest"] for m in json.loads(got[0]).get("manifests", []) if isinstance(m, dict)]

    def _image(self, name: str, digest: str) -> dict:
        pushed, pulled = self._when(self.pushed, (name, digest)), self._when(self.pulled, (name, digest))
        return {"digest": digest, "last_pushed": iso(pushed), "last_pulled": iso(pulled),
                "status": "active", "size": 0, "architecture": "amd64", "os": "linux"}

    def _tag(self, name: str, tag: str, digest: str, children: list[str]) -> dict:
        got = self._manifest(name, digest)
        media_type = got[1].split(";")[0] if got else ""
        images = [self._image(name, c) for c in children] if children else [self._image(name, digest)]
        pushed = self._when(self.tag_pushed, (name, tag)) or self._when(self.pushed, (name, digest))
        pulled = self._when(self.pulled, (name, digest))
        return {"id": abs(hash((name, tag))) % 10**8, "name": tag, "digest": digest, "media_type": media_type,
                "content_type": "image", "creator": 1, "last_updater": 1, "last_updater_username": USER,
                "last_updated": iso(pushed), "tag_last_pushed": iso(pushed), "tag_last_pulled": iso(pulled),
                "tag_status": "active", "full_size": 0, "v2": True, "repository": 1, "images": images}

    # --- the Hub API -----------------------------------------------------------------------
    def api(self, request: Request) -> Reply:
        with self.serial:
            return self._limited(request)

    def _limited(self, request: Request) -> Reply:
        with self.lock:
            after = self.limited.pop(0) if self.limited else None
        now = self.clock().timestamp()
        if after is not None:
            return Reply(429, {"detail": "Rate limit exceeded", "error": False},
                         {"X-Retry-After": str(int(now + after))})
        reply = self._api(request)
        reply.headers.update({"X-RateLimit-Limit": "180", "X-RateLimit-Remaining": str(self.remaining),
                              "X-RateLimit-Reset": str(int(now + 60))})
        return reply

    def _api(self, request: Request) -> Reply:
        if request.method == "POST" and request.path in ("/v2/auth/token", "/v2/users/login"):
            body = request.json() or {}
            user = body.get("identifier") if request.path == "/v2/auth/token" else body.get("username")
            secret = body.get("secret") if request.path == "/v2/auth/token" else body.get("password")
            if not user or self.accounts.get(user) != secret:
                return Reply(401, {"detail": "Incorrect authentication credentials"})
            jwt = "eyJ" + secrets.token_urlsafe(24)
            with self.lock:
                self.tokens[jwt] = user
            return Reply(200, {"access_token": jwt} if request.path == "/v2/auth/token" else {"token": jwt})
        user = self._user(request)
        if request.headers.get("authorization") and user is None:
            return Reply(401, {"detail": "Invalid token"})
        if (m := TAGS.match(request.path)) and request.method == "GET":
            name = f"{m['ns']}/{m['repo']}"
            if name in self.private and user is None:
                return Reply(401, {"detail": "authentication required"})
            tags, present = self.state(name)
            if not tags and name not in self.repositories():
                return Reply(404, {"message": "object not found", "errinfo": {}})
            results = [self._tag(name, t, d, present.get(d, [])) for t, d in tags.items()]
            results.sort(key=lambda r: (r["last_updated"] or "", r["name"]), reverse=True)
            return self._page(request, results, request.path)
        if (m := IMAGES.match(request.path)) and request.method == "GET":
            if user is None:
                return Reply(401, {"detail": "authentication required"})
            if self.images_refused:
                return Reply(403, {"detail": "forbidden"})
            name = f"{m['ns']}/{m['repo']}"
            tags, present = self.state(name)
            results = []
            for digest in sorted(present):
                current = sorted(t for t, d in tags.items() if d == digest)
                once = sorted(self.history.get((name, digest), set()) - set(current))
                entry = {"namespace": m["ns"], "repository": m["repo"], "digest": digest,
                         "tags": [{"tag": t, "is_current": True} for t in current]
                         + [{"tag": t, "is_current": False} for t in once],
                         "last_pushed": iso(self._when(self.pushed, (name, digest))),
                         "last_pulled": iso(self._when(self.pulled, (name, digest))), "status": "active"}
                wanted = request.arg("currently_tagged")
                if wanted is None or (wanted == "true") == bool(current):
                    results.append(entry)
            return self._page(request, results, request.path)
        if (m := UNTAG.match(request.path)) and request.method == "DELETE":
            if user is None:
                return Reply(401, {"detail": "authentication required"})
            if self.permission != "delete":
                return Reply(403, {"detail": "insufficient scope"})
            if self.untag_status is not None:
                return Reply(self.untag_status, {"detail": "forced by the test"})
            name = f"{m['ns']}/{m['repo']}"
            digest = self.state(name)[0].get(m["tag"])
            if digest is None:
                return Reply(404, {"message": "tag not found", "errinfo": {}})
            with self.lock:
                self.history.setdefault((name, digest), set()).add(m["tag"])
            self.untag(name, m["tag"])
            return Reply(204, b"")
        if (m := REPOS.match(request.path)) and request.method == "GET":
            names = [r.split("/", 1)[1] for r in self.repositories() if r.startswith(m["ns"] + "/") and r.count("/") == 1]
            return self._page(request, [{"name": n, "namespace": m["ns"], "repository_type": "image"} for n in names],
                              request.path)
        return Reply(404, {"message": f"no such endpoint: {request.method} {request.path}"})

    # --- Hub's /v2 -------------------------------------------------------------------------------
    def v2_hook(self, request: Request, name: str, what: str, ref: str | None) -> Reply | None:
        if any(p.match(request.path) for p in (TAGS, IMAGES, UNTAG)):
            return self.api(request)            # hub.docker.com's paths: one server stands in for both hosts
        if what == "manifests" and request.method in ("DELETE", "HEAD"):
            with self.serial:
                return self._v2(request, name, what, ref)
        return None

    def _v2(self, request: Request, name: str, what: str, ref: str | None) -> Reply | None:
        if what == "manifests" and request.method == "HEAD" and ref in self.background_500:
            with self.lock:
                self.background_500[ref] -= 1
                due = self.background_500[ref] <= 0
            if due:
                self.background_500.pop(ref, None)
                self.delete_digest(name, ref)
            return None
        if what != "manifests" or request.method != "DELETE":
            return None
        if not self._basic_ok(request):
            return Reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                         {"WWW-Authenticate": 'Basic realm="standin"'})
        if self.v2_delete_denied:
            return Reply(403, {"errors": [{"code": "DENIED", "message": "requested access to the resource is denied"}]})
        if ref is None or not ref.startswith("sha256:"):
            return Reply(405, {"errors": [{"code": "UNSUPPORTED", "message": "Only digest-based deletion is allowed"}]})
        tags, present = self.state(name)
        users = [t for t, d in tags.items() if d == ref] + [d for d, kids in present.items() if ref in kids]
        if users:
            return Reply(403, {"errors": [{"code": "DENIED", "message": "manifest is still referenced"}]})
        if ref in self.stuck_500:
            return Reply(500, {"errors": [{"code": "UNKNOWN", "message": "internal error"}]})
        if ref in self.background_500:
            return Reply(500, {"errors": [{"code": "UNKNOWN", "message": "internal error"}]})
        status = self.delete_digest(name, ref)
        return Reply(status if status != 202 else 202, b"")

    def _basic_ok(self, request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Basic "):
            return False
        user, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        return self.accounts.get(user) == secret

    def head_count(self, name: str, ref: str) -> int:
        return sum(1 for m, p, _ in self.calls if m == "HEAD" and p.startswith(f"/v2/{name}/manifests/{ref}"))


__all__ = ["DockerHubStandIn", "USER", "TOKEN", "ACCEPT"]
