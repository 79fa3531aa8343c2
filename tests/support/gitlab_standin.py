"""A stand-in for GitLab's container registry, built from GitLab's documented shapes:

- REST (`/api/v4`, gitlabhq `doc/api/container_registry.md`, `lib/api/entities/container_registry.rb`):
  `GET /projects/:id_or_path`, `GET /projects/:id/registry/repositories`, `GET /groups/:id/registry/
  repositories`, `GET .../repositories/:rid/tags` (20 a page by default, `per_page` at most 100,
  offset pages with `Link`/`X-Next-Page`, or `pagination=keyset` with `Link` only where the metadata
  database runs, else 405), `GET .../tags/:tag_name` (`digest`, `created_at` = the image config's
  build time, `total_size`), `DELETE .../tags/:tag_name` (untag; 403 for a protected tag or a token
  without the role), the bulk `DELETE .../tags` (202; recorded, so tests can show it is never used),
  `GET /projects/:id/registry/protection/tag/rules` (GitLab 18.7; `rules_status` makes it 404 as on
  older GitLab). Tokens: `PRIVATE-TOKEN` or `JOB-TOKEN`; a private project is 404 to anonymous callers.
- The registry's metadata API (container-registry `docs/spec/gitlab/api.md`), when `metadata`:
  `GET /gitlab/v1/` (200, else 404) and `GET /gitlab/v1/repositories/<path>/tags/list/` (`n` 1-1000,
  default 100, `last`, `Link`; `digest`, `media_type`, `size_bytes`, `created_at`, `published_at`).
- `/v2`: the real docker-registry, except `DELETE /v2/<name>/manifests/<tag>`, which untags (GitLab
  >= 16.4), refused with 403 DENIED for a protected tag. A DELETE by digest is distribution's: the
  manifest and every tag on it go.
"""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timezone
from urllib.parse import quote, unquote, urlencode

from tests.support.vendor_standin import V2_PATH, Reply, Request, VendorStandIn

API = "/api/v4"
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z") if when else None


class GitLabStandIn(VendorStandIn):
    def __init__(self, upstream: str, *, metadata: bool = False, token: str = "glpat-standin-token",
                 job_token: str | None = None, private: bool = True):
        super().__init__(upstream)
        self.metadata = metadata
        self.token = token
        self.job_token = job_token
        self.readonly_tokens: set[str] = set()
        self.private = private
        self.projects: dict[str, int] = {}              # project path -> id
        self.repositories: dict[str, tuple[int, int]] = {}   # repository path -> (repository id, project id)
        self.rules: dict[int, list[dict]] = {}          # project id -> tag protection rules
        self.rules_status = 200
        self.bulk_deletes = 0
        self._untagging = threading.Lock()
        self._digests: dict[str, dict[str, str]] = {}      # repository -> tag -> digest (see `current`)
        self._generation = 0                                # bumped by every change: a stale read is not cached

    def untag(self, name: str, tag: str) -> None:
        """The base's untag, one at a time (its placeholder pushes race when run concurrently)."""
        with self._untagging:
            super().untag(name, tag)
        self._forget()

    def _forget(self) -> None:
        with self.lock:
            self._generation += 1
            self._digests.clear()

    def current(self, repo: str) -> dict[str, str]:
        """tag -> digest now, cached until a request through the stand-in changes something."""
        with self.lock:
            cached = self._digests.get(repo)
            generation = self._generation
        if cached is None:
            cached = self.tags(repo)
            with self.lock:
                if generation == self._generation:      # nothing changed while it was read
                    self._digests[repo] = cached
        return dict(cached)

    # --- seeding -------------------------------------------------------------------------
    def project(self, path: str, images: tuple[str, ...] = ("",)) -> int:
        """A project and its container repositories (`""`: the project's own path)."""
        pid = self.projects.setdefault(path, 100 + len(self.projects))
        for image in images:
            repo = f"{path}/{image}" if image else path
            self.repositories.setdefault(repo, (1000 + len(self.repositories), pid))
        return pid

    def protect(self, project: str, pattern: str, delete: str | None = "maintainer", push: str | None = "maintainer"):
        self.rules.setdefault(self.projects[project], []).append(
            {"id": len(self.rules) + 1, "project_id": self.projects[project], "tag_name_pattern": pattern,
             "minimum_access_level_for_push": push, "minimum_access_level_for_delete": delete})

    def locked(self, repo: str, tag: str) -> bool:
        pid = self.repositories[repo][1] if repo in self.repositories else None
        return any(re.search(r["tag_name_pattern"], tag) for r in self.rules.get(pid, []))

    # --- auth --------------------------------------------------------------------------------
    def _caller(self, request: Request) -> str | None:
        """"ok", "readonly", None (anonymous) or "bad"."""
        given = request.headers.get("private-token") or request.headers.get("job-token")
        if given is None:
            return None
        if given in self.readonly_tokens:
            return "readonly"
        if given == self.token or (self.job_token and request.headers.get("job-token") == self.job_token):
            return "ok"
        return "bad"

    # --- /v2 ------------------------------------------------------------------------------------
    def v2_hook(self, request: Request, name: str, what: str, ref: str | None) -> Reply | None:
        if request.method in ("PUT", "DELETE", "POST", "PATCH"):
            self._forget()
        if request.method == "DELETE" and what == "manifests" and ref and not ref.startswith("sha256:"):
            if self.locked(name, ref):
                return Reply(403, {"errors": [{"code": "DENIED", "message": f"tag {ref} is protected"}]})
            if self.resolve(name, ref) is None:
                return Reply(404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})
            self.untag(name, ref)
            return Reply(202)
        if request.method == "DELETE" and what == "manifests" and ref:
            # docker-registry 2.8 walks every tag on a digest DELETE; an untag placeholder appearing and
            # vanishing meanwhile makes it answer 500: one mutation at a time (GitLab's registry has no
            # such race; this is the real registry behind the stand-in).
            with self._untagging:
                reply = self._forward(request, request.path)
            self._forget()
            return reply
        if request.method == "PUT" and what == "manifests":        # the tag listing changes when it is done
            raw = request.path + (("?" + urlencode(request.query, doseq=True)) if request.query else "")
            reply = self._forward(request, raw, V2_PATH.match(request.path))
            self._forget()
            return reply
        return None

    # --- the APIs ---------------------------------------------------------------------------------
    def api(self, request: Request) -> Reply:
        if request.path.startswith("/gitlab/v1/"):
            return self._metadata_api(request)
        if not request.path.startswith(API + "/"):
            return Reply(404, {"message": "404 Not Found"})
        caller = self._caller(request)
        if caller == "bad":
            return Reply(401, {"message": "401 Unauthorized"})
        if caller is None and self.private:
            return Reply(404, {"message": "404 Project Not Found"})
        path = request.path[len(API):]
        if match := re.fullmatch(r"/projects/([^/]+)", path):
            return self._project(match[1])
        if match := re.fullmatch(r"/groups/([^/]+)/registry/repositories", path):
            group = unquote(match[1])
            repos = [r for r in self.repositories if r.startswith(group + "/")]
            if not repos:
                return Reply(404, {"message": "404 Group Not Found"})
            return self._paged(request, [self._repo_json(r) for r in sorted(repos)])
        match = re.fullmatch(r"/projects/([^/]+)(/.*)", path)
        if not match:
            return Reply(404, {"message": "404 Not Found"})
        pid = self._project_id(match[1])
        if pid is None:
            return Reply(404, {"message": "404 Project Not Found"})
        rest = match[2]
        if rest == "/registry/repositories" and request.method == "GET":
            return self._paged(request, [self._repo_json(r) for r, (_, p) in sorted(self.repositories.items())
                                         if p == pid])
        if rest == "/registry/protection/tag/rules" and request.method == "GET":
            if self.rules_status != 200:
                return Reply(self.rules_status, {"message": f"{self.rules_status}"})
            return self._paged(request, self.rules.get(pid, []))
        match = re.fullmatch(r"/registry/repositories/(\d+)/tags(?:/([^/]+))?", rest)
        if not match:
            return Reply(404, {"message": "404 Not Found"})
        repo = next((r for r, (rid, p) in self.repositories.items() if rid == int(match[1]) and p == pid), None)
        if repo is None:
            return Reply(404, {"message": "404 Repository Not Found"})
        tag = unquote(match[2]) if match[2] else None
        if tag is None and request.method == "GET":
            return self._tag_list(request, repo)
        if tag is None and request.method == "DELETE":
            self.bulk_deletes += 1
            return Reply(202)
        if request.method == "GET":
            return self._tag_details(repo, tag)
        if request.method == "DELETE":
            if caller != "ok" or self.locked(repo, tag):
                return Reply(403, {"message": "403 Forbidden"})
            if self.resolve(repo, tag) is None:
                return Reply(404, {"message": "404 Tag Not Found"})
            self.untag(repo, tag)
            return Reply(200)
        return Reply(405, {"message": "405 Method Not Allowed"})

    def _project_id(self, ref: str) -> int | None:
        ref = unquote(ref)
        if ref.isdigit():
            return int(ref) if int(ref) in self.projects.values() else None
        return self.projects.get(ref)

    def _project(self, ref: str) -> Reply:
        pid = self._project_id(ref)
        if pid is None:
            return Reply(404, {"message": "404 Project Not Found"})
        path = next(p for p, i in self.projects.items() if i == pid)
        return Reply(200, {"id": pid, "path_with_namespace": path, "name": path.rsplit("/", 1)[-1]})

    def _repo_json(self, repo: str) -> dict:
        rid, pid = self.repositories[repo]
        project = next(p for p, i in self.projects.items() if i == pid)
        return {"id": rid, "name": repo[len(project) + 1:], "path": repo, "project_id": pid,
                "location": f"{self.host}/{repo}", "created_at": "2026-01-01T00:00:00.000Z",
                "cleanup_policy_started_at": None, "status": None}

    def _paged(self, request: Request, items: list, base: str | None = None) -> Reply:
        per_page = min(MAX_PER_PAGE, max(1, int(request.arg("per_page", str(DEFAULT_PER_PAGE)))))
        page = max(1, int(request.arg("page", "1")))
        chunk = items[(page - 1) * per_page: page * per_page]
        headers = {"X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(len(items))}
        if page * per_page < len(items):
            query = "&".join(f"{k}={quote(v[0])}" for k, v in request.query.items() if k != "page")
            headers["Link"] = f'<{self.url}{request.path}?{query}&page={page + 1}>; rel="next"'
            headers["X-Next-Page"] = str(page + 1)
        return Reply(200, chunk, headers)

    def _tag_list(self, request: Request, repo: str) -> Reply:
        names = sorted(self.tags_names(repo))
        items = [{"name": t, "path": f"{repo}:{t}", "location": f"{self.host}/{repo}:{t}"} for t in names]
        if request.arg("pagination") != "keyset":
            return self._paged(request, items)
        if not self.metadata:
            return Reply(405, {"message": "405 Method Not Allowed"})
        per_page = min(MAX_PER_PAGE, max(1, int(request.arg("per_page", str(DEFAULT_PER_PAGE)))))
        last = request.arg("last")
        rest = [i for i in items if last is None or i["name"] > last][:per_page]
        headers = {}
        if rest and rest[-1]["name"] != items[-1]["name"]:
            headers["Link"] = (f'<{self.url}{request.path}?pagination=keyset&per_page={per_page}'
                               f'&last={quote(rest[-1]["name"])}>; rel="next"')
        return Reply(200, rest, headers)

    def tags_names(self, repo: str) -> list[str]:
        got = self.registry.get(f"/v2/{repo}/tags/list", params={"n": 100000})
        return (got.json().get("tags") or []) if got.status_code == 200 else []

    def _tag_details(self, repo: str, tag: str) -> Reply:
        found = self.manifest(repo, tag)
        if found is None:
            return Reply(404, {"message": "404 Tag Not Found"})
        body, _ = found
        doc = json.loads(body)
        built, size = None, 0
        config = doc.get("config") or {}
        if config:
            size += config.get("size", 0)
            if config.get("mediaType") in ("application/vnd.oci.image.config.v1+json",
                                           "application/vnd.docker.container.image.v1+json"):
                blob = self.registry.get(f"/v2/{repo}/blobs/{config['digest']}")
                if blob.status_code == 200:
                    built = json.loads(blob.content).get("created")
        size += sum(layer.get("size", 0) for layer in doc.get("layers") or [])
        digest = self.resolve(repo, tag)
        return Reply(200, {"name": tag, "path": f"{repo}:{tag}", "location": f"{self.host}/{repo}:{tag}",
                           "revision": (digest or "")[7:], "short_revision": (digest or "")[7:16], "digest": digest,
                           "created_at": built, "total_size": size})

    def _metadata_api(self, request: Request) -> Reply:
        if not self.metadata:
            return Reply(404, {"errors": [{"code": "NOT_FOUND", "message": "metadata database disabled"}]})
        if request.path == "/gitlab/v1/":
            return Reply(200)
        match = re.fullmatch(r"/gitlab/v1/repositories/(.+)/tags/list/", request.path)
        if not match or request.method != "GET":
            return Reply(404, {"errors": [{"code": "NOT_FOUND"}]})
        repo = match[1]
        n = int(request.arg("n", "100"))
        if not 1 <= n <= 1000:
            return Reply(400, {"errors": [{"code": "INVALID_QUERY_PARAMETER_VALUE"}]})
        tags = self.current(repo)
        if not tags and repo not in self.repositories:
            return Reply(404, {"errors": [{"code": "NAME_UNKNOWN"}]})
        last = request.arg("last")
        names = [t for t in sorted(tags) if last is None or t > last][:n]
        items = []
        for name in names:
            published = self.tag_pushed.get((repo, name))
            items.append({"name": name, "digest": tags[name], "media_type": "application/vnd.oci.image.manifest.v1+json",
                          "size_bytes": 0, "created_at": _iso(published), "published_at": _iso(published)})
        headers = {}
        if names and names[-1] != max(tags):
            headers["Link"] = f'<{self.url}/gitlab/v1/repositories/{repo}/tags/list/?n={n}&last={names[-1]}>; rel="next"'
        return Reply(200, items, headers)
