"""A stand-in for Azure Container Registry, built from the documented shapes (Azure/azure-rest-api-specs
`containerregistry/data-plane/Azure.ContainerRegistry/stable/2021-07-01/containerregistry.json` and its
examples GetTagList, GetManifestList, PostRefreshToken, PostAccessToken, DeleteTag) over the real
`docker-registry` (tests/support/vendor_standin.py).

What it does as ACR does (or as registries.md §5 says it does):
- tokens: `POST /oauth2/exchange` (grant_type=access_token: an Entra ID token -> a refresh token),
  `POST /oauth2/token` (grant_type=refresh_token + scope -> an access token), `GET /oauth2/token`
  (Basic username/password + scope). An access token carries the actions its credential may do
  (`grants`); a request without a token for its scope answers 401 with ACR's Bearer challenge and
  `UNAUTHORIZED`, as ACR does for a token lacking the action.
- `/acr/v1/_catalog`, `/acr/v1/{repo}`, `/_tags`, `/_tags/{tag}`, `/_manifests`, `/_manifests/{digest}`
  (GET; PATCH of `changeableAttributes`; DELETE of a tag = untag), at most 1,000 items a page
  whatever `n` says (`PAGE_CAP`), `Link: <...?last=..&n=..&orderby=>; rel="next"`; `orderby=timedesc`.
- `/v2`: DELETE by tag is refused (405 UNSUPPORTED: "only by digest"); DELETE by digest removes the
  manifest and every tag on it; tags/list and _catalog pages are capped at 1,000 too.
- locks: a delete touching a repository, manifest or tag with `deleteEnabled` or `writeEnabled`
  false answers 405 `REGISTRY_DISALLOWED_OPERATION`.
The stand-in tracks which manifests the repository holds (ACR lists untagged ones; distribution
cannot) from the pushes that pass through it.
"""

from __future__ import annotations

import base64
import itertools
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qs, quote

from tests.support.vendor_standin import Reply, Request, VendorStandIn

LOGIN_SERVER = "janitortest.azurecr.io"
PAGE_CAP = 1000
ALL_ACTIONS = frozenset({"pull", "push", "delete", "metadata_read", "metadata_write", "catalog"})
READ_ACTIONS = frozenset({"pull", "metadata_read", "catalog"})
UNLOCKED = {"deleteEnabled": True, "writeEnabled": True, "readEnabled": True, "listEnabled": True}
ACR_V1 = re.compile(r"^/acr/v1/(?P<name>.+?)/(?P<what>_tags|_manifests)(?:/(?P<ref>[^/]+))?$")
ACR_REPO = re.compile(r"^/acr/v1/(?P<name>(?!_catalog$).+)$")


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


@dataclass
class Manifest:
    digest: str
    media_type: str
    size: int
    created: datetime
    updated: datetime
    locks: dict = field(default_factory=dict)


@dataclass
class Tag:
    digest: str
    created: datetime
    updated: datetime
    locks: dict = field(default_factory=dict)


def error(status: int, code: str, message: str, headers: dict | None = None) -> Reply:
    return Reply(status, {"errors": [{"code": code, "message": message, "detail": {}}]}, headers or {})


class AcrStandIn(VendorStandIn):
    """ACR over the real registry. Credentials: `refresh_tokens`/`aad_tokens`/`users` map a secret to the
    actions it grants; `pusher_headers()` authorises the tests' own pushes."""

    def __init__(self, upstream: str, login_server: str = LOGIN_SERVER):
        super().__init__(upstream)
        self.login_server = login_server
        self.refresh_tokens: dict[str, frozenset[str]] = {}
        self.aad_tokens: dict[str, frozenset[str]] = {}
        self.users: dict[tuple[str, str], frozenset[str]] = {}
        self.access: dict[str, tuple[str, frozenset[str]]] = {}      # access token -> (repo or "*", actions)
        self.manifests: dict[str, dict[str, Manifest]] = {}         # repo -> digest -> manifest
        self.tag_map: dict[str, dict[str, Tag]] = {}                  # repo -> tag -> tag
        self.repo_locks: dict[str, dict] = {}
        self.token_requests = 0
        self._ids = itertools.count(1)
        self._pusher = self._issue("*", ALL_ACTIONS)

    # --- credentials ---------------------------------------------------------------------------------
    def add_refresh_token(self, actions: frozenset[str] = ALL_ACTIONS) -> str:
        token = f"acr-refresh-{secrets.token_hex(8)}"
        self.refresh_tokens[token] = actions
        return token

    def add_aad_token(self, actions: frozenset[str] = ALL_ACTIONS) -> str:
        token = f"aad-{secrets.token_hex(8)}"
        self.aad_tokens[token] = actions
        return token

    def add_user(self, username: str, password: str, actions: frozenset[str] = ALL_ACTIONS) -> None:
        self.users[(username, password)] = actions

    def pusher_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._pusher}"}

    def _issue(self, repo: str, actions: frozenset[str]) -> str:
        token = f"acr-access-{next(self._ids)}-{secrets.token_hex(6)}"
        self.access[token] = (repo, actions)
        return token

    def _grant(self, scopes: list[str], allowed: frozenset[str]) -> str:
        """One access token for the first scope, limited to what the credential may do."""
        repo, actions = "*", frozenset()
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, wanted = rest.rpartition(":")
            if kind == "registry" and name == "catalog":
                repo, actions = "*", frozenset({"catalog"}) & allowed
            elif kind == "repository":
                repo, actions = name, frozenset(wanted.split(",")) & allowed
        return self._issue(repo, actions)

    def _authorised(self, request: Request, repo: str, action: str) -> Reply | None:
        """None when the request's bearer token covers `action` on `repo`; else ACR's 401."""
        header = request.headers.get("authorization", "")
        token = header[len("Bearer "):] if header.startswith("Bearer ") else ""
        granted = self.access.get(token)
        if granted and (granted[0] in ("*", repo)) and action in granted[1]:
            return None
        scope = "registry:catalog:*" if action == "catalog" else f"repository:{repo}:{action}"
        challenge = f'Bearer realm="https://{self.login_server}/oauth2/token",service="{self.login_server}",scope="{scope}"'
        return error(401, "UNAUTHORIZED", "authentication required, visit https://aka.ms/acr/authorization for more "
                     "information.", {"WWW-Authenticate": challenge})

    # --- what the tests set --------------------------------------------------------------------------
    def lock_tag(self, repo: str, tag: str, **flags: bool) -> None:
        self.tag_map[repo][tag].locks.update(flags or {"deleteEnabled": False})

    def lock_manifest(self, repo: str, digest: str, **flags: bool) -> None:
        self.manifests[repo][digest].locks.update(flags or {"deleteEnabled": False})

    def lock_repository(self, repo: str, **flags: bool) -> None:
        self.repo_locks.setdefault(repo, {}).update(flags or {"deleteEnabled": False})

    def set_times(self, repo: str, digest: str, when: datetime) -> None:
        """The manifest and every tag on it were pushed at `when`."""
        m = self.manifests[repo][digest]
        m.created = m.updated = when
        for tag in self.tag_map.get(repo, {}).values():
            if tag.digest == digest:
                tag.created = tag.updated = when

    def add_tags(self, repo: str, digest: str, names: list[str]) -> None:
        """Tags in ACR's metadata only (a measurement's 1,000 tags on a few real manifests): the janitor
        reads tags from /acr/v1 alone, so they are real to it; /v2's tag list does not show them."""
        when = self.manifests[repo][digest].updated
        for name in names:
            self.tag_map.setdefault(repo, {})[name] = Tag(digest, when, when)

    def held(self, repo: str) -> dict[str, list[str]]:
        """digest -> its tags, as the stand-in holds them (cross-checked against the real registry)."""
        out = {d: [] for d in self.manifests.get(repo, {})}
        for name, tag in self.tag_map.get(repo, {}).items():
            out.setdefault(tag.digest, []).append(name)
        return {d: sorted(t) for d, t in out.items()}

    # --- pushes pass through /v2 -----------------------------------------------------------------------
    def _forward(self, request, raw_path, match=None):
        reply = super()._forward(request, raw_path, match)
        if match and match["what"] == "manifests" and request.method == "PUT" and reply.status == 201:
            digest = reply.headers.get("docker-content-digest") or reply.headers.get("Docker-Content-Digest")
            name, ref, when = match["name"], match["ref"], self.clock()
            media = request.headers.get("content-type", "").split(";")[0]
            with self.lock:
                repo = self.manifests.setdefault(name, {})
                if digest not in repo:
                    repo[digest] = Manifest(digest, media, len(request.body), when, when)
                if ref and not ref.startswith("sha256:"):
                    old = self.tag_map.setdefault(name, {}).get(ref)
                    self.tag_map[name][ref] = Tag(digest, old.created if old else when, when,
                                                  old.locks if old else {})
        return reply

    def v2_hook(self, request: Request, name: str, what: str, ref: str | None) -> Reply | None:
        if what == "base":
            return None
        if what == "catalog":
            return self._authorised(request, "*", "catalog") or self._capped(request, "repositories")
        action = {"GET": "pull", "HEAD": "pull", "DELETE": "delete"}.get(request.method, "push")
        refused = self._authorised(request, name, action)
        if refused is not None:
            return refused
        if what == "tags":
            return self._capped(request, "tags")
        if what == "manifests" and request.method == "DELETE":
            if not (ref or "").startswith("sha256:"):
                return error(405, "UNSUPPORTED", "The operation is unsupported.")
            return self._delete_manifest(name, ref or "")
        return None

    def _capped(self, request: Request, field: str) -> Reply:
        """Forward a /v2 list asking for at most PAGE_CAP, and rewrite its Link to this server."""
        query = {k: v[0] for k, v in request.query.items()}
        query["n"] = str(min(int(query.get("n") or PAGE_CAP), PAGE_CAP))
        path = request.path + "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
        upstream = self.registry.get(path)
        headers = {"Content-Type": "application/json"}
        if upstream.headers.get("link"):
            headers["Link"] = upstream.headers["link"].replace(self.upstream, "")
        return Reply(upstream.status_code, upstream.content, headers)

    def _delete_manifest(self, name: str, digest: str) -> Reply:
        with self.lock:
            held = self.manifests.get(name, {}).get(digest)
            if held is None:
                return error(404, "MANIFEST_UNKNOWN", "manifest unknown")
            tags = [t for t in self.tag_map.get(name, {}).values() if t.digest == digest]
            if _locked(self.repo_locks.get(name)) or _locked(held.locks) or any(_locked(t.locks) for t in tags):
                return _disallowed()
        # On the real registry (it drops the tags too); the bookkeeping here knows the tags, so the
        # base's `delete_digest` (a HEAD per tag ever pushed) is not needed.
        status = self.registry.delete(f"/v2/{name}/manifests/{digest}").status_code
        if status != 202:
            return error(status, "UNKNOWN", f"the registry answered {status}")
        with self.lock:
            self.manifests[name].pop(digest, None)
            self.pushed.pop((name, digest), None)
            for tag, info in list(self.tag_map.get(name, {}).items()):
                if info.digest == digest:
                    del self.tag_map[name][tag]
                    self.tag_pushed.pop((name, tag), None)
        return Reply(202, b"")

    # --- the ACR API -----------------------------------------------------------------------------------
    def api(self, request: Request) -> Reply:
        if request.path == "/oauth2/exchange" and request.method == "POST":
            return self._exchange(request)
        if request.path == "/oauth2/token":
            return self._token(request)
        if request.path == "/acr/v1/_catalog":
            return self._authorised(request, "*", "catalog") or self._page(
                request, sorted(n for n, m in self.manifests.items() if m), "repositories", key=lambda n: n)
        match = ACR_V1.match(request.path)
        if match:
            return self._repo_api(request, match["name"], match["what"], match["ref"])
        match = ACR_REPO.match(request.path)
        if match:
            name = match["name"]
            refused = self._authorised(request, name, "metadata_read")
            if refused or name not in self.manifests:
                return refused or error(404, "NAME_UNKNOWN", "repository name not known to registry")
            if request.method == "PATCH":
                self.repo_locks.setdefault(name, {}).update(request.json())
            return Reply(200, {"registry": self.login_server, "imageName": name,
                               "createdTime": iso(self.clock()), "lastUpdateTime": iso(self.clock()),
                               "manifestCount": len(self.manifests[name]), "tagCount": len(self.tag_map.get(name, {})),
                               "changeableAttributes": {**UNLOCKED, **self.repo_locks.get(name, {})}})
        return Reply(404, {"errors": [{"code": "NOT_FOUND", "message": f"no such endpoint: {request.path}"}]})

    def _form(self, request: Request) -> dict[str, list[str]]:
        return parse_qs(request.body.decode("utf-8"), keep_blank_values=True)

    def _exchange(self, request: Request) -> Reply:
        self.token_requests += 1
        form = self._form(request)
        if form.get("grant_type") != ["access_token"] or form.get("service") != [self.login_server]:
            return error(400, "BAD_REQUEST", "grant_type access_token and this registry's service are required")
        actions = self.aad_tokens.get((form.get("access_token") or [""])[0])
        if actions is None:
            return error(401, "UNAUTHORIZED", "invalid AAD access token")
        return Reply(200, {"refresh_token": self.add_refresh_token(actions)})

    def _token(self, request: Request) -> Reply:
        self.token_requests += 1
        if request.method == "POST":
            form = self._form(request)
            if form.get("grant_type") != ["refresh_token"] or form.get("service") != [self.login_server]:
                return error(400, "BAD_REQUEST", "grant_type refresh_token and this registry's service are required")
            actions = self.refresh_tokens.get((form.get("refresh_token") or [""])[0])
            if actions is None:
                return error(401, "UNAUTHORIZED", "invalid refresh token")
            return Reply(200, {"access_token": self._grant(form.get("scope") or [], actions)})
        if request.arg("service") != self.login_server:
            return error(400, "BAD_REQUEST", "service must be this registry")
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return error(401, "UNAUTHORIZED", "authentication required")
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        actions = self.users.get((user, password))
        if actions is None:
            return error(401, "UNAUTHORIZED", "invalid username or password")
        return Reply(200, {"access_token": self._grant(request.query.get("scope") or [], actions)})

    def _repo_api(self, request: Request, name: str, what: str, ref: str | None) -> Reply:
        action = {"GET": "metadata_read", "DELETE": "delete"}.get(request.method, "metadata_write")
        refused = self._authorised(request, name, action)
        if refused is not None:
            return refused
        if name not in self.manifests:
            return error(404, "NAME_UNKNOWN", "repository name not known to registry")
        with self.lock:
            if what == "_tags" and ref is None:
                items = [self._tag_doc(t, info) for t, info in self.tag_map.get(name, {}).items()
                         if info.locks.get("listEnabled", True)]
                return self._page(request, items, "tags", key=lambda i: i["name"], name=name)
            if what == "_manifests" and ref is None:
                items = [self._manifest_doc(name, m) for m in self.manifests[name].values()
                         if m.locks.get("listEnabled", True)]
                return self._page(request, items, "manifests", key=lambda i: i["digest"], name=name)
            if what == "_tags":
                info = self.tag_map.get(name, {}).get(ref or "")
                if info is None:
                    return error(404, "TAG_UNKNOWN", "the specified tag does not exist")
                if request.method == "PATCH":
                    info.locks.update(request.json())
                if request.method == "DELETE":
                    if _locked(self.repo_locks.get(name)) or _locked(info.locks):
                        return _disallowed()
                    del self.tag_map[name][ref]
                else:
                    return Reply(200, {"registry": self.login_server, "imageName": name,
                                       "tag": self._tag_doc(ref or "", info)})
            else:
                held = self.manifests[name].get(ref or "")
                if held is None:
                    return error(404, "MANIFEST_UNKNOWN", "manifest unknown")
                if request.method == "PATCH":
                    held.locks.update(request.json())
                return Reply(200, {"registry": self.login_server, "imageName": name,
                                   "manifest": self._manifest_doc(name, held)})
            self.untag(name, ref or "")            # on the real registry (the base's bookkeeping wants the lock)
        return Reply(202, b"")

    def _tag_doc(self, name: str, info: Tag) -> dict:
        return {"name": name, "digest": info.digest, "createdTime": iso(info.created),
                "lastUpdateTime": iso(info.updated), "signed": False,
                "changeableAttributes": {**UNLOCKED, **info.locks}}

    def _manifest_doc(self, repo: str, m: Manifest) -> dict:
        tags = sorted(t for t, info in self.tag_map.get(repo, {}).items() if info.digest == m.digest)
        doc = {"digest": m.digest, "imageSize": m.size, "createdTime": iso(m.created),
               "lastUpdateTime": iso(m.updated), "mediaType": m.media_type,
               "changeableAttributes": {**UNLOCKED, **m.locks}}
        if tags:
            doc["tags"] = tags
        return doc

    def _page(self, request: Request, items: list, field: str, key, name: str | None = None) -> Reply:
        """At most PAGE_CAP items after `last` (lexical, or by time with orderby), and a Link to the rest."""
        try:
            n = int(request.arg("n") or 100)
        except ValueError:
            return error(400, "PAGINATION_NUMBER_INVALID", "invalid number of results requested")
        n = max(1, min(n, PAGE_CAP))
        orderby = request.arg("orderby") or ""
        if orderby in ("timedesc", "timeasc"):
            items = sorted(items, key=lambda i: (i["lastUpdateTime"], key(i)), reverse=orderby == "timedesc")
        else:
            items = sorted(items, key=key)
        last = request.arg("last")
        if last is not None:
            keys = [key(i) for i in items]
            start = keys.index(last) + 1 if last in keys else sum(1 for k in keys if k <= last)
            items = items[start:]
        page, more = items[:n], len(items) > n
        body: dict = {"registry": self.login_server, field: page}
        if name is not None:
            body["imageName"] = name
        headers = {}
        if more:
            base = request.path
            headers["Link"] = f'<{base}?last={quote(key(page[-1]), safe="")}&n={n}&orderby={orderby}>; rel="next"'
        return Reply(200, body, headers)


def _locked(locks: dict | None) -> bool:
    return bool(locks) and (locks.get("deleteEnabled") is False or locks.get("writeEnabled") is False)


def _disallowed() -> Reply:
    return error(405, "REGISTRY_DISALLOWED_OPERATION", "The operation is disallowed on this registry, repository or "
                 "image. View troubleshooting steps at https://aka.ms/acr/faq/#why-does-my-pull-or-push-request-fail-"
                 "with-disallowed-operation")
