"""Target globs, expanded before planning: the real registry's catalog, the Packages REST API
(a respx stand-in from the documented shapes), and the organisation's repositories with caches."""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import respx

from tests.support.gha_api import CacheRepo, GhaServer, seed
from tests.support.push import Pusher

WHEN = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_registry_globs_expand_from_the_catalog_and_shards_split_them(registry, cli):
    prefix = f"disc{os.getpid()}"
    names = [f"{prefix}/r{i}" for i in range(20)] + [f"{prefix}/team/x"]
    for name in names:
        Pusher(registry.url, name).buildkit_cache("cache-base", [name.encode()], WHEN)
    everything = cli("ls", f"{registry.host}/{prefix}/*", "-O", "json")
    assert everything.exit_code == 0, everything.stderr
    listed = [t["target"] for t in json.loads(everything.stdout)["targets"]]
    assert sorted(listed) == sorted(f"{registry.host}/{n}" for n in names)
    assert f"expanded {registry.host}/{prefix}/*: 21 targets" in everything.stderr
    some = cli("ls", f"{registry.host}/{prefix}/r1*", "-O", "json")
    assert sorted(t["target"].rsplit("/", 1)[1] for t in json.loads(some.stdout)["targets"]) == \
        sorted(["r1"] + [f"r1{i}" for i in range(10)])
    shards = [json.loads(cli("ls", f"{registry.host}/{prefix}/*", "--shard", f"{i}/3", "-O", "json").stdout)["targets"]
              for i in (1, 2, 3)]
    covered = [t["target"] for shard in shards for t in shard]
    assert sorted(covered) == sorted(listed) and len(covered) == len(set(covered))   # each exactly once


class _NoCatalog(BaseHTTPRequestHandler):
    def do_GET(self):
        status = 200 if self.path == "/v2/" else 404
        body = b"{}" if status == 200 else b'{"errors":[{"code":"UNSUPPORTED"}]}'
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _SmallCatalog(BaseHTTPRequestHandler):
    """A catalog capped at 2 a page (distribution's catalog.maxentries): a larger `n` is refused."""

    def do_GET(self):
        from urllib.parse import parse_qs, urlsplit

        url = urlsplit(self.path)
        query = parse_qs(url.query)
        headers = {}
        if url.path == "/v2/":
            status, body = 200, {}
        elif url.path == "/v2/_catalog" and int(query.get("n", ["2"])[0]) > 2:
            status, body = 400, {"errors": [{"code": "PAGINATION_NUMBER_INVALID"}]}
        elif url.path == "/v2/_catalog":
            names = ["team/a", "team/b", "team/c"]
            start = names.index(query["last"][0]) + 1 if "last" in query else 0
            page = names[start:start + 2]
            if start + 2 < len(names):
                headers["Link"] = f'</v2/_catalog?last={page[-1]}&n=2>; rel="next"'
            status, body = 200, {"repositories": page}
        else:
            status, body = 404, {"errors": [{"code": "NAME_UNKNOWN"}]}
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {**headers, "content-type": "application/json", "content-length": str(len(data))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_a_catalog_with_a_small_page_size_is_followed_page_by_page(cli):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SmallCatalog)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    try:
        result = cli("ls", f"{host}/team/*", "-O", "json")
    finally:
        server.shutdown()
        server.server_close()
    assert f"expanded {host}/team/*: 3 targets" in result.stderr
    assert [t["target"] for t in json.loads(result.stdout)["targets"]] == [f"{host}/team/{n}" for n in "abc"]


def test_a_registry_that_refuses_its_catalog_is_a_one_line_error(cli):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoCatalog)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = cli("ls", f"127.0.0.1:{server.server_address[1]}/*")
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "refuses to list its repositories" in errors[0]


API = "https://api.github.test"


def test_ghcr_globs_expand_over_three_pages_of_packages(cli, monkeypatch, registry, fast_sleep):
    monkeypatch.setenv("GITHUB_API_URL", API)
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_discovery_token")
    monkeypatch.setenv("JANITOR_GHCR_REGISTRY", registry.url)
    packages = [f"app-{i:03d}" for i in range(230)] + ["lib", "app/cache"]

    def answer(request: httpx.Request) -> httpx.Response:
        path, query = request.url.path, dict(request.url.params)
        if path == "/orgs/acme":
            return httpx.Response(200, json={"login": "acme", "id": 1})
        if path == "/orgs/acme/packages":
            assert query["package_type"] == "container"
            page, per = int(query.get("page", "1")), int(query["per_page"])
            chunk = packages[(page - 1) * per: page * per]
            headers = {}
            if page * per < len(packages):
                headers["link"] = f'<{API}/orgs/acme/packages?package_type=container&per_page={per}&page={page + 1}>; rel="next"'
            return httpx.Response(200, json=[{"id": i, "name": n, "package_type": "container"} for i, n in enumerate(chunk)],
                                  headers=headers)
        if path.startswith("/orgs/acme/packages/container/") and path.endswith("/versions"):
            return httpx.Response(200, json=[])
        return httpx.Response(404, json={"message": "Not Found"})

    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="127.0.0.1").pass_through()
        route = mock.route(host="api.github.test").mock(side_effect=answer)
        result = cli("plan", "ghcr.io/acme/app-0*", "-O", "json")
        pages = [c.request.url for c in route.calls if c.request.url.path == "/orgs/acme/packages"]
    assert result.exit_code == 0, result.stderr
    targets = [t["target"] for t in json.loads(result.stdout)["targets"]]
    assert targets == [f"ghcr.io/acme/app-{i:03d}" for i in range(100)]
    assert len(pages) == 3
    assert "expanded ghcr.io/acme/app-0*: 100 targets" in result.stderr


def test_ghcr_globs_explain_a_token_that_cannot_list_packages(cli, monkeypatch, fast_sleep):
    monkeypatch.setenv("GITHUB_API_URL", API)
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_workflow_token")
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="api.github.test", path="/orgs/acme").mock(return_value=httpx.Response(200, json={"login": "acme"}))
        mock.route(host="api.github.test").mock(return_value=httpx.Response(403, json={
            "message": "Resource not accessible by integration"}))
        result = cli("ls", "ghcr.io/acme/*")
    assert result.exit_code == 1
    assert "GITHUB_TOKEN cannot list packages" in result.stderr and "ghs_workflow_token" not in result.stderr


def test_gha_globs_expand_from_the_organisations_cache_usage(cli, monkeypatch, fast_sleep):
    state = CacheRepo()
    seed(state)
    state.org_repositories = [f"acme/svc-{i}" for i in range(150)]
    with GhaServer(state) as server:
        monkeypatch.setenv("GITHUB_API_URL", server.url)
        monkeypatch.setenv("GITHUB_TOKEN", state.token)
        result = cli("ls", "gha:acme/ap*", "-O", "json")
        usage_pages = [p for _, p, _ in state.requests if "usage-by-repository" in p]
    assert result.exit_code == 0, result.stderr
    assert [t["target"] for t in json.loads(result.stdout)["targets"]] == ["gha:acme/app"]
    assert "expanded gha:acme/ap*: 1 target: gha:acme/app" in result.stderr
    assert len(usage_pages) == 2                                 # 151 repositories, 100 a page


def test_github_globs_ignore_case_and_a_glob_that_matches_nothing_is_an_error(cli, monkeypatch, fast_sleep):
    state = CacheRepo()
    seed(state)
    state.org_repositories = ["ACME/Other"]
    with GhaServer(state) as server:
        monkeypatch.setenv("GITHUB_API_URL", server.url)
        monkeypatch.setenv("GITHUB_TOKEN", state.token)
        found = cli("ls", "gha:acme/oth*", "-O", "json")
        none = cli("ls", "gha:acme/zzz*", "-O", "json")
    assert "expanded gha:acme/oth*: 1 target: gha:ACME/Other" in found.stderr
    assert none.exit_code == 1 and "matches none of the 2 listed" in none.stderr
    assert json.loads(none.stdout)["targets"][0]["errors"]
