"""Docker Hub against a hostile or misconfigured server (review findings H3, M1, M3, M5): the token never
goes over plain HTTP off loopback (each request checked as sent, and the settings' URLs by the host httpx
connects to), an echoed token is scrubbed whole before the one-line cut, answers are capped, and an
empty or repeated page that names a next one ends the listing in one line."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import respx
import respx.mocks

from ghcr_janitor.core.errors import AuthError, JanitorError, RegistryError, UsageError
from ghcr_janitor.core.settings import HostSettings, Settings
from ghcr_janitor.net.auth.secret import Secret
from ghcr_janitor.net.http import RequestLog, make_client
from ghcr_janitor.stores.dockerhub import api as hub_api
from ghcr_janitor.stores.dockerhub.api import HubApi, HubLogin
from ghcr_janitor.stores.dockerhub.registry import preflight

respx.mocks.DEFAULT_MOCKER = "httpx"

HUB = "https://hub.example.com"
TOKEN = "dckr_pat_" + "Q" * 511            # 520 characters
JWT = "eyJ" + "J" * 400


def run(coro):
    return asyncio.run(coro)


def api_for(base: str = HUB, secret: str | None = TOKEN) -> HubApi:
    login = HubLogin("me", Secret(secret), "DOCKERHUB_TOKEN") if secret else None
    return HubApi(base, login, make_client(2, None, base_url=base), RequestLog())


class Options:
    def __init__(self, env):
        self.settings = Settings(env=env)
        self.username = self.password = None


@respx.mock
def test_the_login_is_never_posted_over_plain_http_off_loopback():
    """The send-level check alone (no preflight): httpx would connect to evil.example.net."""
    login = respx.post(host="evil.example.net").mock(return_value=httpx.Response(200, json={"access_token": JWT}))
    respx.get(host="evil.example.net").mock(return_value=httpx.Response(200, json={"results": []}))
    with pytest.raises(AuthError, match="plain HTTP"):
        run(api_for("http://localhost:1@evil.example.net").tags("me", "app"))
    assert not login.called


@respx.mock
def test_plain_http_to_loopback_is_allowed():
    respx.post("http://127.0.0.1:5002/v2/auth/token").mock(return_value=httpx.Response(200, json={"access_token": JWT}))
    respx.get(url__startswith="http://127.0.0.1:5002/").mock(return_value=httpx.Response(200, json={"results": []}))
    assert run(api_for("http://127.0.0.1:5002").tags("me", "app")) == []


@pytest.mark.parametrize("url", ["http://localhost:1@evil.example.net", "http://127.0.0.1@evil.example.net/",
                                 "http://evil.example.net"])
def test_preflight_judges_the_host_httpx_connects_to(url):
    options = Options({"DOCKERHUB_USERNAME": "me", "DOCKERHUB_TOKEN": TOKEN})
    with pytest.raises(UsageError, match="plain HTTP"):
        preflight(options, HostSettings(kind="dockerhub", api_url=url))
    preflight(options, HostSettings(kind="dockerhub", api_url="http://localhost:5002"))


@respx.mock
def test_a_long_token_echoed_in_an_error_is_scrubbed_whole():
    respx.post(f"{HUB}/v2/auth/token").mock(return_value=httpx.Response(401, json={"detail": f"bad secret {TOKEN}"}))
    with pytest.raises(JanitorError) as err:
        run(api_for().tags("me", "app"))
    assert "Q" * 20 not in str(err.value), str(err.value)
    assert "bad secret ********" in str(err.value)


@respx.mock
def test_a_long_jwt_echoed_in_an_error_is_scrubbed_whole():
    respx.post(f"{HUB}/v2/auth/token").mock(return_value=httpx.Response(200, json={"access_token": JWT}))
    respx.get(url__startswith=f"{HUB}/v2/namespaces/").mock(return_value=httpx.Response(
        500, json={"message": f"token {JWT} rejected"}))
    with pytest.raises(RegistryError) as err:
        run(api_for().tags("me", "app"))
    assert "J" * 20 not in str(err.value), str(err.value)


@respx.mock
def test_an_answer_over_the_cap_is_refused(monkeypatch):
    monkeypatch.setattr(hub_api, "JSON_CAP", 1 << 16)
    respx.get(url__startswith=f"{HUB}/").mock(return_value=httpx.Response(
        200, content=b'{"results": [], "pad": "' + b"x" * (1 << 17) + b'"}'))
    with pytest.raises(RegistryError, match="cap"):
        run(api_for(secret=None).tags("ns", "repo"))


@respx.mock
def test_an_empty_page_naming_a_fresh_next_ends_the_listing():
    counter = iter(range(10_000))
    route = respx.get(url__startswith=f"{HUB}/").mock(side_effect=lambda request: httpx.Response(
        200, json={"results": [], "next": f"{HUB}/v2/namespaces/ns/repositories/repo/tags?page={next(counter) + 2}"}))
    with pytest.raises(RegistryError, match="empty page"):
        run(api_for(secret=None).tags("ns", "repo"))
    assert route.call_count == 1


@respx.mock
def test_the_same_page_with_a_fresh_next_ends_the_listing():
    counter = iter(range(10_000))
    route = respx.get(url__startswith=f"{HUB}/").mock(side_effect=lambda request: httpx.Response(
        200, json={"results": [{"name": "a", "digest": "sha256:" + "a" * 64}],
                   "next": f"{HUB}/v2/namespaces/ns/repositories/repo/tags?page={next(counter) + 2}"}))
    with pytest.raises(RegistryError, match="same page"):
        run(api_for(secret=None).tags("ns", "repo"))
    assert route.call_count == 2


@respx.mock
def test_the_pages_of_one_listing_are_capped_in_all(monkeypatch):
    monkeypatch.setattr(hub_api, "LIST_TOTAL_CAP", 5000)
    counter = iter(range(10_000))

    def page(request):
        n = next(counter)
        return httpx.Response(200, content=json.dumps({
            "results": [{"name": f"t{n}", "pad": "x" * 1000}],
            "next": f"{HUB}/v2/namespaces/ns/repositories/repo/tags?page={n + 2}"}).encode())
    route = respx.get(url__startswith=f"{HUB}/").mock(side_effect=page)
    with pytest.raises(RegistryError, match="cap|bytes of pages"):
        run(api_for(secret=None).tags("ns", "repo"))
    assert route.call_count <= 5


@respx.mock
def test_a_redirect_answer_to_an_untag_is_not_an_untag():
    respx.post(f"{HUB}/v2/auth/token").mock(return_value=httpx.Response(200, json={"access_token": JWT}))
    respx.delete(url__startswith=f"{HUB}/").mock(return_value=httpx.Response(
        302, headers={"Location": "https://sso.example.com/login"}))
    with pytest.raises(RegistryError, match="302"):
        run(api_for().delete_tag("me", "app", "old"))
