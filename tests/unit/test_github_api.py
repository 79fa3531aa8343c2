"""GitHub Packages REST client: owner detection, pagination, rate limits, pacing, errors (respx)."""

from __future__ import annotations

import asyncio
import hashlib
import json

import httpx
import pytest
import respx

from ghcr_janitor.net.auth.secret import Secret
from ghcr_janitor.core.errors import AuthError, NotFoundError, RegistryError
from ghcr_janitor.net.github import (
    DOWNLOAD_LIMIT, DownloadLimitError, GitHubPackages, RateLimitError, parse_version,
)

API = "https://api.github.test"
TOKEN = "ghp_unit_test_token_value_123"
VERSIONS = "/orgs/acme/packages/container/app/versions"


def dg(i: int) -> str:
    return "sha256:" + hashlib.sha256(str(i).encode()).hexdigest()


def version(i: int, tags=(), created="2024-05-06T05:20:30Z", updated=None, owner="acme", package="app") -> dict:
    """A version object shaped like the documented live response (formats.md §6(b))."""
    return {
        "id": i, "name": dg(i),
        "url": f"{API}/orgs/{owner}/packages/container/{package}/versions/{i}",
        "package_html_url": f"https://github.com/orgs/{owner}/packages/container/package/{package}",
        "created_at": created, "updated_at": updated or created,
        "html_url": f"https://github.com/orgs/{owner}/packages/container/{package}/{i}",
        "metadata": {"package_type": "container", "container": {"tags": list(tags)}},
    }


def error(status: int, message: str, headers: dict | None = None) -> httpx.Response:
    return httpx.Response(status, headers=headers or {}, json={
        "message": message, "documentation_url": "https://docs.github.com/rest/packages/packages"})


class FakeTime:
    """An injected clock and sleep: sleeping advances the clock, nothing really waits."""

    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds > 0, "never spin"
        self.sleeps.append(round(seconds, 3))
        self.now += seconds


class FakeApi:
    """Answers (method, raw path?query) from queued responses; anything else fails the test."""

    def __init__(self):
        self.answers: dict[tuple[str, str], list] = {}
        self.requests: list[httpx.Request] = []

    def on(self, method: str, path: str, *responses) -> None:
        self.answers.setdefault((method, path), []).extend(responses)

    def __call__(self, request: httpx.Request):
        self.requests.append(request)
        key = (request.method, request.url.raw_path.decode())
        queue = self.answers.get(key)
        if not queue:
            return httpx.Response(599, json={"message": f"unexpected {key}"})
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def fake():
    api = FakeApi()
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="api.github.test").mock(side_effect=api)
        yield api


def client(fake_time: FakeTime, owner="acme", package="app", token: str | None = TOKEN, **kw) -> GitHubPackages:
    return GitHubPackages(owner, package, Secret(token) if token else None, api_url=API,
                          sleep=fake_time.sleep, clock=fake_time.clock, **kw)


def run(coro):
    return asyncio.run(coro)


async def _list_and_close(api: GitHubPackages):
    try:
        return await api.list_versions()
    finally:
        await api.aclose()


# --- owner detection, headers, names -------------------------------------------------------

def test_github_org_detection_headers_and_version_parsing(fake):
    t = FakeTime()
    fake.on("GET", "/orgs/acme", httpx.Response(200, json={"login": "acme", "id": 4242}))
    fake.on("GET", f"{VERSIONS}?per_page=100",
            httpx.Response(200, json=[version(2, ["cache-main", "cache-pr-1"], updated="2024-06-01T00:00:00Z"),
                                      version(1)]))
    api = client(t)
    versions = run(_list_and_close(api))
    assert [(v.id, v.name, v.tags) for v in versions] == [(2, dg(2), ("cache-main", "cache-pr-1")), (1, dg(1), ())]
    assert versions[0].updated_at.isoformat() == "2024-06-01T00:00:00+00:00"
    assert api.calls == [("GET", "/orgs/acme", 200), ("GET", f"{VERSIONS}?per_page=100", 200)]
    assert api.owner_type == "org"
    headers = fake.requests[-1].headers
    assert headers["accept"] == "application/vnd.github+json"
    assert headers["x-github-api-version"] == "2022-11-28"
    assert headers["authorization"] == f"Bearer {TOKEN}"


def test_github_user_owner_with_own_token_uses_user_endpoint(fake):
    t = FakeTime()
    fake.on("GET", "/orgs/bob", error(404, "Not Found"))
    fake.on("GET", "/user", httpx.Response(200, json={"login": "Bob", "id": 7}))
    fake.on("GET", "/user/packages/container/app/versions?per_page=100", httpx.Response(200, json=[version(1)]))
    api = client(t, owner="bob")
    assert len(run(_list_and_close(api))) == 1
    assert [c[1] for c in api.calls] == ["/orgs/bob", "/user", "/user/packages/container/app/versions?per_page=100"]


def test_github_other_users_package_and_wrong_token_owner(fake):
    t = FakeTime()
    fake.on("GET", "/orgs/bob", error(404, "Not Found"))
    fake.on("GET", "/user", httpx.Response(200, json={"login": "alice"}))
    fake.on("GET", "/users/bob/packages/container/app/versions?per_page=100", error(404, "Package not found."))
    with pytest.raises(NotFoundError) as info:
        run(_list_and_close(client(t, owner="bob")))
    text = str(info.value)
    assert "package 'app' of user 'bob' (detected) not found" in text
    assert "the token belongs to 'alice', not 'bob'" in text
    assert TOKEN not in text


def test_github_owner_type_given_and_nested_name_is_url_encoded(fake):
    t = FakeTime()
    path = "/orgs/acme/packages/container/app%2Fcache/versions?per_page=100"
    fake.on("GET", path, httpx.Response(200, json=[version(1, package="app%2Fcache")]))
    api = client(t, package="app/cache", owner_type="org")
    run(_list_and_close(api))
    assert api.calls == [("GET", path, 200)]          # no detection call when --owner-type is given


def test_github_owner_type_wrong_is_explained(fake):
    t = FakeTime()
    fake.on("GET", f"{VERSIONS}?per_page=100", error(404, "Not Found"))
    fake.on("GET", "/orgs/acme", error(404, "Not Found"))
    with pytest.raises(NotFoundError, match="'acme' is not an organisation: use --owner-type user"):
        run(_list_and_close(client(t, owner_type="org")))
    fake.answers.clear()
    fake.on("GET", "/orgs/acme", httpx.Response(200, json={"login": "acme"}))
    fake.on("GET", "/user", httpx.Response(200, json={"login": "someone"}))
    fake.on("GET", "/users/acme/packages/container/app/versions?per_page=100", error(404, "Not Found"))
    with pytest.raises(NotFoundError, match="'acme' is an organisation: use --owner-type org"):
        run(_list_and_close(client(t, owner_type="user")))


def test_github_actions_token_without_user_falls_back_to_users_endpoint(fake):
    t = FakeTime()
    fake.on("GET", "/orgs/bob", error(404, "Not Found"))
    fake.on("GET", "/user", error(403, "Resource not accessible by integration"))
    fake.on("GET", "/users/bob/packages/container/app/versions?per_page=100", httpx.Response(200, json=[]))
    assert run(_list_and_close(client(t, owner="bob"))) == []


# --- pagination -------------------------------------------------------------------------------

def test_github_pagination_follows_absolute_link_verbatim(fake):
    t = FakeTime()
    items = [version(i) for i in range(260, 0, -1)]
    nxt = f"{API}/organizations/4242/packages/container/app/versions?per_page=100&page="
    fake.on("GET", "/orgs/acme", httpx.Response(200, json={"login": "acme"}))
    fake.on("GET", f"{VERSIONS}?per_page=100", httpx.Response(
        200, json=items[:100], headers={"link": f'<{nxt}2>; rel="next", <{nxt}3>; rel="last"'}))
    fake.on("GET", "/organizations/4242/packages/container/app/versions?per_page=100&page=2", httpx.Response(
        200, json=items[100:200],
        headers={"link": f'<{nxt}1>; rel="prev", <{nxt}3>; rel="next", <{nxt}3>; rel="last", <{nxt}1>; rel="first"'}))
    fake.on("GET", "/organizations/4242/packages/container/app/versions?per_page=100&page=3", httpx.Response(
        200, json=items[200:], headers={"link": f'<{nxt}2>; rel="prev", <{nxt}1>; rel="first"'}))
    api = client(t)
    versions = run(_list_and_close(api))
    assert len(versions) == 260 and len({v.id for v in versions}) == 260
    assert [c[1] for c in api.calls] == [
        "/orgs/acme", f"{VERSIONS}?per_page=100",
        "/organizations/4242/packages/container/app/versions?per_page=100&page=2",
        "/organizations/4242/packages/container/app/versions?per_page=100&page=3"]


def test_github_next_link_to_another_host_is_refused(fake):
    t = FakeTime()
    fake.on("GET", f"{VERSIONS}?per_page=100", httpx.Response(
        200, json=[version(1)], headers={"link": '<https://evil.test/versions?page=2>; rel="next"'}))
    with pytest.raises(RegistryError, match="another host"):
        run(_list_and_close(client(t, owner_type="org")))


# --- rate limits ------------------------------------------------------------------------------

def test_github_secondary_limits_429_then_403_with_retry_after_then_success(fake):
    t = FakeTime()
    path = f"{VERSIONS}?per_page=100"
    fake.on("GET", path,
            error(429, "Too many requests", {"retry-after": "7"}),
            error(403, "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                  {"retry-after": "11", "x-ratelimit-remaining": "4000"}),
            httpx.Response(200, json=[version(1)]))
    api = client(t, owner_type="org")
    assert len(run(_list_and_close(api))) == 1
    assert t.sleeps == [7, 11]
    assert api.calls == [("GET", path, 429), ("GET", path, 403), ("GET", path, 200)]


def test_github_secondary_limit_without_retry_after_backs_off_from_a_minute(fake):
    t = FakeTime()
    message = "You have exceeded a secondary rate limit and have been temporarily blocked from content creation."
    fake.on("GET", f"{VERSIONS}?per_page=100", error(403, message), error(403, message),
            httpx.Response(200, json=[]))
    run(_list_and_close(client(t, owner_type="org")))
    assert t.sleeps == [60, 120]


def test_github_primary_limit_waits_for_reset_before_next_call(fake):
    t = FakeTime()
    reset = int(t.now) + 120
    fake.on("GET", "/orgs/acme", httpx.Response(200, json={"login": "acme"},
                                                headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)}))
    fake.on("GET", f"{VERSIONS}?per_page=100", httpx.Response(200, json=[]))
    api = client(t)
    run(_list_and_close(api))
    assert t.sleeps == [121]
    assert len(api.calls) == 2                   # waited instead of calling into a 403


def test_github_primary_limit_403_waits_until_reset(fake):
    t = FakeTime()
    reset = int(t.now) + 30
    fake.on("GET", f"{VERSIONS}?per_page=100",
            error(403, "API rate limit exceeded for user ID 1.",
                  {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)}),
            httpx.Response(200, json=[]))
    run(_list_and_close(client(t, owner_type="org")))
    assert t.sleeps == [31]


def test_github_gives_up_after_repeated_limits_and_on_too_long_waits(fake):
    t = FakeTime()
    fake.on("GET", f"{VERSIONS}?per_page=100", error(429, "slow down", {"retry-after": "5"}))
    with pytest.raises(RateLimitError, match="still rate-limited after 6 waits"):
        run(_list_and_close(client(t, owner_type="org")))
    assert t.sleeps == [5] * 6
    t2 = FakeTime()
    fake.answers.clear()
    fake.on("GET", f"{VERSIONS}?per_page=100", error(403, "API rate limit exceeded",
                                                      {"x-ratelimit-remaining": "0",
                                                       "x-ratelimit-reset": str(int(t2.now) + 3000)}))
    with pytest.raises(RateLimitError, match="rerun later"):
        run(_list_and_close(client(t2, owner_type="org", max_wait=600)))
    assert t2.sleeps == []


def test_github_transient_errors_are_retried_with_backoff(fake):
    t = FakeTime()
    fake.on("GET", f"{VERSIONS}?per_page=100", httpx.ConnectError("refused"), error(502, "Bad Gateway"),
            httpx.Response(200, json=[version(1)]))
    api = client(t, owner_type="org")
    assert len(run(_list_and_close(api))) == 1
    assert [c[2] for c in api.calls] == [0, 502, 200]
    assert t.sleeps == [0.5, 2]             # a refused connection: a short wait; a 502: the 5xx backoff


def _refused(host: str) -> httpx.ConnectError:
    """What httpx raises for a refused connection: its own words, the OS error behind them."""
    inner = OSError("All connection attempts failed")
    inner.__cause__ = ConnectionRefusedError(111, f"Connect call failed ('{host}', 443)")
    return _chained(inner)


def _chained(cause: BaseException) -> httpx.ConnectError:
    exc = httpx.ConnectError("All connection attempts failed")
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize("failure, bound, reason", [
    (lambda: _refused("api.github.test"), 3, "connection refused"),
    (lambda: _chained(__import__("socket").gaierror(-2, "Name or service not known")), 3,
     "DNS lookup failed: Name or service not known"),
    (lambda: httpx.ConnectTimeout("timed out"), 2, "timed out"),
])
def test_an_unreachable_api_fails_after_a_short_bounded_retry_naming_the_host(failure, bound, reason):
    """A connection that cannot be made is retried briefly (not the 2+4+8+16 s of a 5xx), then one
    line names the host and the reason, like a registry target's."""
    from ghcr_janitor.net.github import ConnectionFailed

    def refuse(request: httpx.Request):
        raise failure()

    t = FakeTime()
    api = client(t, owner_type="org", client=httpx.AsyncClient(transport=httpx.MockTransport(refuse)))
    with pytest.raises(ConnectionFailed) as caught:
        run(_list_and_close(api))
    assert str(caught.value) == f"connection failed (api.github.test: {reason})"
    assert [c[2] for c in api.calls] == [0] * bound                  # the attempts: bounded
    assert t.sleeps == [0.5, 1.0][:bound - 1]                        # and short


# --- delete -----------------------------------------------------------------------------------

async def _delete(api: GitHubPackages, *ids: int) -> None:
    try:
        for i in ids:
            await api.delete_version(i)
    finally:
        await api.aclose()


def test_github_deletes_are_paced(fake):
    t = FakeTime()
    for i in (1, 2, 3):
        fake.on("DELETE", f"{VERSIONS}/{i}", httpx.Response(204))
    api = client(t, owner_type="org")
    run(_delete(api, 1, 2, 3))
    assert api.calls == [("DELETE", f"{VERSIONS}/{i}", 204) for i in (1, 2, 3)]
    assert t.sleeps == [0.333, 0.333]            # GitHub's documented 180 a minute by default (net/pacing.py)
    t2 = FakeTime()
    api = client(t2, owner_type="org", deletes_per_minute=20)
    run(_delete(api, 1, 2))
    assert t2.sleeps == [3.0]


def test_github_delete_404_first_is_not_found_but_on_a_retry_is_done(fake):
    t = FakeTime()
    fake.on("DELETE", f"{VERSIONS}/1", error(404, "Not Found"))
    with pytest.raises(NotFoundError, match="version 1 of package 'app' of organisation 'acme'"):
        run(_delete(client(t, owner_type="org"), 1))
    fake.on("DELETE", f"{VERSIONS}/2", error(502, "Bad Gateway"), error(404, "Not Found"))
    api = client(t, owner_type="org")
    run(_delete(api, 2))
    assert [c[2] for c in api.calls] == [502, 404]


def test_github_download_limit_is_reported_clearly(fake):
    t = FakeTime()
    fake.on("DELETE", f"{VERSIONS}/1", error(
        400, "Publicly visible package versions with more than 5000 downloads cannot be deleted. "
             "Contact GitHub support for further assistance."))
    with pytest.raises(DownloadLimitError) as info:
        run(_delete(client(t, owner_type="org"), 1))
    assert str(info.value) == DOWNLOAD_LIMIT


# --- errors a user meets ------------------------------------------------------------------------

def test_github_missing_token(fake):
    with pytest.raises(AuthError, match="set GITHUB_TOKEN or GH_TOKEN"):
        run(_list_and_close(client(FakeTime(), token=None)))
    assert fake.requests == []


def test_github_bad_token_and_missing_scopes(fake):
    t = FakeTime()
    fake.on("GET", "/orgs/acme", error(401, "Bad credentials"))
    with pytest.raises(AuthError, match=r"rejected the token \(401: Bad credentials\)"):
        run(_list_and_close(client(t)))
    fake.answers.clear()
    fake.on("GET", f"{VERSIONS}?per_page=100", error(403, "Permission denied", {"x-oauth-scopes": "repo"}))
    with pytest.raises(AuthError) as info:
        run(_list_and_close(client(t, owner_type="org")))
    assert "needs the read:packages scope; the token has scopes: repo" in str(info.value)
    fake.on("DELETE", f"{VERSIONS}/5", error(403, "You must have admin permission",
                                             {"x-oauth-scopes": "read:packages"}))
    with pytest.raises(AuthError) as info:
        run(_delete(client(t, owner_type="org"), 5))
    text = str(info.value)
    assert "read:packages and delete:packages" in text and "admin rights" in text
    assert "the token has scopes: read:packages" in text and TOKEN not in text


def test_github_token_never_in_reprs():
    api = GitHubPackages("acme", "app", Secret(TOKEN), api_url=API)
    assert TOKEN not in repr(api) and TOKEN not in repr(vars(api))
    run(api.aclose())


def test_github_plain_http_api_refused_off_loopback():
    with pytest.raises(Exception, match="plain HTTP"):
        GitHubPackages("acme", "app", Secret(TOKEN), api_url="http://github.example.com/api/v3")


def test_github_malformed_version_is_an_error():
    with pytest.raises(RegistryError, match="malformed"):
        parse_version({"id": "1", "name": dg(1)})
    assert parse_version(json.loads(json.dumps(version(3, ["b", "a"])))).tags == ("a", "b")


def test_a_520_character_token_is_sent_whole_and_never_in_a_repr(fake):
    """GitHub App installation tokens and GITHUB_TOKEN are ~520 characters since 2026, any prefix."""
    from ghcr_janitor.stores.gha.api import ActionsCacheApi
    from tests.support.tokens import long_token

    token = long_token("ghs_")
    fake.on("GET", f"{VERSIONS}?per_page=100", httpx.Response(200, json=[version(1)]))
    api = client(FakeTime(), owner_type="org", token=token)
    assert len(run(_list_and_close(api))) == 1
    assert fake.requests[0].headers["authorization"] == f"Bearer {token}"
    cache = ActionsCacheApi("acme", "app", Secret(token), api_url=API)
    for text in (repr(api), str(api), repr(cache), repr(cache._token), repr(vars(cache))):
        assert token[:12] not in text
    run(cache.aclose())
