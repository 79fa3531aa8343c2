"""ACR against a hostile or misconfigured server (review findings H2, H3, M1, M3, M4): a next link to
another host is not followed, the access token goes only to the configured origins and never over
plain HTTP off loopback, a redirect is no delete, an echoed token is scrubbed whole, answers are capped."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import respx
import respx.mocks

from ghcr_janitor.core.errors import AuthError, JanitorError, RegistryError
from ghcr_janitor.core.reference import parse_target
from ghcr_janitor.core.settings import HostSettings, Settings
from ghcr_janitor.net.auth.secret import Secret
from ghcr_janitor.net.http import RequestLog, make_client
from ghcr_janitor.stores.acr import api as acr_api
from ghcr_janitor.stores.acr.api import AcrApi
from ghcr_janitor.stores.acr.auth import REFRESH, AcrAuth, AcrCredentials

respx.mocks.DEFAULT_MOCKER = "httpx"

BASE = "https://myreg.azurecr.io"
REFRESH_TOKEN = "acr-refresh-" + "R" * 508          # 520 characters
ACCESS = "ACR-ACCESS-" + "A" * 300
D = "sha256:" + "d" * 64


def run(coro):
    return asyncio.run(coro)


def api_for(base: str = BASE, api_base: str | None = None) -> AcrApi:
    auth = AcrAuth(AcrCredentials(REFRESH, Secret(REFRESH_TOKEN), "ACR_REFRESH_TOKEN"), "myreg.azurecr.io", base,
                   api_base)
    return AcrApi(make_client(2, auth, base_url=base), api_base or base, base, RequestLog())


def token_endpoint(base: str = BASE):
    return respx.post(f"{base}/oauth2/token").mock(return_value=httpx.Response(200, json={"access_token": ACCESS}))


@respx.mock
def test_a_next_link_to_another_host_is_not_followed():
    token_endpoint()
    evil = respx.get(url__startswith="http://evil.example.net/").mock(return_value=httpx.Response(200, json={"tags": []}))
    respx.get(url__startswith=f"{BASE}/acr/v1/app/_tags").mock(return_value=httpx.Response(
        200, json={"tags": [{"name": "a", "digest": D}]},
        headers={"Link": '<http://evil.example.net/acr/v1/app/_tags?last=a>; rel="next"'}))
    with pytest.raises(RegistryError, match="another host"):
        run(api_for().tags("app"))
    assert not evil.called


@respx.mock
def test_a_relative_next_link_is_still_followed():
    token_endpoint()
    route = respx.get(url__startswith=f"{BASE}/acr/v1/app/_tags").mock(side_effect=[
        httpx.Response(200, json={"tags": [{"name": "a", "digest": D}]},
                       headers={"Link": '</acr/v1/app/_tags?last=a&n=1000>; rel="next"'}),
        httpx.Response(200, json={"tags": [{"name": "b", "digest": D}]})])
    assert [t["name"] for t in run(api_for().tags("app"))] == ["a", "b"]
    assert route.call_count == 2


@respx.mock
def test_the_token_is_attached_only_to_the_configured_origins():
    """The auth on its own (whatever the API layer follows): another host gets no Authorization."""
    token_endpoint()
    ours = respx.get(url__startswith=f"{BASE}/acr/v1/").mock(return_value=httpx.Response(200, json={}))
    theirs = respx.get(url__startswith="https://elsewhere.example.net/").mock(return_value=httpx.Response(200, json={}))
    api = api_for()
    run(api.client.send("GET", f"{BASE}/acr/v1/app/_tags"))
    run(api.client.send("GET", "https://elsewhere.example.net/acr/v1/app/_tags"))
    assert ours.calls[0].request.headers["authorization"] == f"Bearer {ACCESS}"
    assert "authorization" not in theirs.calls[0].request.headers


@respx.mock
def test_an_http_api_url_never_gets_the_token_in_clear():
    from ghcr_janitor.stores.acr.registry import _sides

    class Options:
        settings = Settings(env={"ACR_REFRESH_TOKEN": REFRESH_TOKEN})
        username = password = None
        concurrency = 2
        log = RequestLog()
        insecure = False

    host = HostSettings(api_url="http://acr-metadata.example.net")
    Options.settings = Settings(env={"ACR_REFRESH_TOKEN": REFRESH_TOKEN}, hosts={"myreg.azurecr.io": host})
    oci, api = _sides(parse_target("myreg.azurecr.io/app"), Options, host)
    token_endpoint()
    evil = respx.get(url__startswith="http://acr-metadata.example.net/").mock(
        return_value=httpx.Response(200, json={"tags": []}))
    with pytest.raises(AuthError, match="plain HTTP"):
        run(api.tags("app"))
    assert not evil.called


@respx.mock
def test_an_http_api_url_on_loopback_is_allowed():
    loop = "http://127.0.0.1:5999"
    token_endpoint(BASE)
    route = respx.get(url__startswith=f"{loop}/acr/v1/").mock(return_value=httpx.Response(200, json={"tags": []}))
    assert run(api_for(BASE, loop).tags("app")) == []
    assert route.calls[0].request.headers["authorization"] == f"Bearer {ACCESS}"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@respx.mock
def test_a_redirect_answer_to_a_delete_is_not_a_delete(status):
    token_endpoint()
    respx.delete(url__startswith=BASE).mock(return_value=httpx.Response(
        status, headers={"Location": "https://sso.example.com/login"}))
    with pytest.raises(JanitorError, match=str(status)):
        run(api_for().delete_digest("app", D))
    with pytest.raises(JanitorError, match=str(status)):
        run(api_for().delete_tag("app", "old"))


@respx.mock
def test_202_is_a_delete():
    token_endpoint()
    respx.delete(url__startswith=BASE).mock(return_value=httpx.Response(202))
    run(api_for().delete_digest("app", D))


@respx.mock
def test_a_long_token_an_error_echoes_is_scrubbed_whole():
    token_endpoint()
    respx.get(url__startswith=f"{BASE}/acr/v1/app/_tags").mock(return_value=httpx.Response(
        500, json={"errors": [{"code": "UNKNOWN", "message": f"bad token {ACCESS} and {REFRESH_TOKEN}"}]}))
    with pytest.raises(RegistryError) as err:
        run(api_for().tags("app"))
    assert "A" * 20 not in str(err.value) and "R" * 20 not in str(err.value), str(err.value)
    assert "bad token ********" in str(err.value)


@respx.mock
def test_an_answer_over_the_cap_is_refused(monkeypatch):
    monkeypatch.setattr(acr_api, "BODY_CAP", 1 << 16)
    token_endpoint()
    respx.get(url__startswith=f"{BASE}/acr/v1/app/_tags").mock(return_value=httpx.Response(
        200, content=b'{"tags": [], "pad": "' + b"x" * (1 << 17) + b'"}'))
    with pytest.raises(RegistryError, match="cap"):
        run(api_for().tags("app"))
