"""GAR against a hostile or misconfigured server (review findings H2, M1, M3, M4, M5): a tags-list
`Link` to another host is not followed, a redirect answer to a DELETE is no delete, an echoed token is
scrubbed whole, the listing's pages are bounded (an empty or repeated page ends it in one line, and so
does the total size)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import respx
import respx.mocks

from ghcr_janitor.core.errors import JanitorError, RegistryError
from ghcr_janitor.core.reference import parse_target
from ghcr_janitor.core.settings import HttpSettings
from ghcr_janitor.net.auth.credentials import Credentials
from ghcr_janitor.net.auth.secret import Secret
from ghcr_janitor.net.http import RequestLog
from ghcr_janitor.stores.gar import registry as gar_registry
from ghcr_janitor.stores.gar.credentials import Lazy
from ghcr_janitor.stores.gar.names import parse_name
from ghcr_janitor.stores.gar.registry import GarRegistry, _oci

respx.mocks.DEFAULT_MOCKER = "httpx"

BASE = "https://europe-docker.pkg.dev"
TOKEN = "ya29." + "G" * 515                # 520 characters
BEARER = "BEARER-gar-" + "B" * 300
D = "sha256:" + "d" * 64
LIST = f"{BASE}/v2/proj/repo/app/tags/list"
PAGE = {"tags": ["a"], "manifest": {D: {"tag": ["a"], "timeUploadedMs": "1767225600000"}}}


class Options:
    concurrency = 2
    log = RequestLog()

    class settings:
        http = HttpSettings()


def run(coro):
    return asyncio.run(coro)


def store() -> GarRegistry:
    target = parse_target("europe-docker.pkg.dev/proj/repo/app")
    lazy = Lazy(lambda: Credentials("oauth2accesstoken", Secret(TOKEN), "GOOGLE_OAUTH_ACCESS_TOKEN"))
    return GarRegistry(target, parse_name(target), _oci(BASE, target, Options, lazy), lazy)


def challenged(answer):
    """The registry: a 401 Bearer challenge without a token, else `answer(request)`."""
    respx.get(url__startswith=f"{BASE}/v2/token").mock(return_value=httpx.Response(200, json={"token": BEARER}))

    def reply(request):
        if "authorization" not in request.headers:
            return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="{BASE}/v2/token",service="x",'
                                                                    'scope="repository:proj/repo/app:pull,delete"'})
        return answer(request)
    return reply


@respx.mock
def test_a_link_to_another_host_is_not_followed():
    evil = respx.get(url__startswith="http://evil.example.net/").mock(return_value=httpx.Response(200, json=PAGE))
    respx.get(LIST).mock(side_effect=challenged(lambda request: httpx.Response(
        200, json=PAGE, headers={"Link": '<http://evil.example.net/v2/proj/repo/app/tags/list?last=a>; rel="next"'})))
    with pytest.raises(RegistryError, match="another host"):
        run(store().read_list())
    assert not evil.called


@respx.mock
def test_a_link_on_the_same_host_is_followed():
    second = {"tags": ["b"], "manifest": {"sha256:" + "e" * 64: {"tag": ["b"]}}}
    pages = iter([httpx.Response(200, json=PAGE, headers={"Link": '</v2/proj/repo/app/tags/list?last=a>; rel="next"'}),
                  httpx.Response(200, json=second)])
    respx.get(url__startswith=LIST).mock(side_effect=challenged(lambda request: next(pages)))
    listing = run(store().read_list())
    assert listing.tags == {"a", "b"} and len(listing.entries) == 2


@respx.mock
def test_an_empty_page_naming_a_next_one_ends_the_listing():
    pages = iter(httpx.Response(200, json={"tags": [], "manifest": {}},
                                headers={"Link": f'</v2/proj/repo/app/tags/list?last=x{i}>; rel="next"'})
                 for i in range(1000))
    route = respx.get(url__startswith=LIST).mock(side_effect=challenged(lambda request: next(pages)))
    with pytest.raises(RegistryError, match="empty page"):
        run(store().read_list())
    assert route.call_count == 2           # the challenge, then one page


@respx.mock
def test_the_same_page_with_a_fresh_link_ends_the_listing():
    counter = iter(range(1000))
    route = respx.get(url__startswith=LIST).mock(side_effect=challenged(lambda request: httpx.Response(
        200, json=PAGE, headers={"Link": f'</v2/proj/repo/app/tags/list?last=a{next(counter)}>; rel="next"'})))
    with pytest.raises(RegistryError, match="same page"):
        run(store().read_list())
    assert route.call_count == 3           # the challenge, then two pages


@respx.mock
def test_the_pages_of_one_listing_are_capped_in_all(monkeypatch):
    monkeypatch.setattr(gar_registry, "LIST_TOTAL_CAP", 3000)
    counter = iter(range(1000))

    def page(request):
        n = next(counter)
        return httpx.Response(200, json={"tags": [f"t{n}"], "manifest": {}, "pad": "x" * 1000},
                              headers={"Link": f'</v2/proj/repo/app/tags/list?last=t{n}>; rel="next"'})
    respx.get(url__startswith=LIST).mock(side_effect=challenged(page))
    with pytest.raises(RegistryError, match="cap|bytes of pages"):
        run(store().read_list())


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@respx.mock
def test_a_redirect_answer_to_a_delete_is_not_a_delete(status):
    respx.delete(url__startswith=f"{BASE}/v2/proj/repo/app/manifests/").mock(side_effect=challenged(
        lambda request: httpx.Response(status, headers={"Location": "https://sso.example.com/login"})))
    respx.get(url__startswith=f"{BASE}/v2/token").mock(return_value=httpx.Response(200, json={"token": BEARER}))
    with pytest.raises(JanitorError, match=str(status)):
        run(store()._delete(D, f"deleting {D}"))


@respx.mock
def test_202_is_a_delete():
    respx.delete(url__startswith=f"{BASE}/v2/proj/repo/app/manifests/").mock(side_effect=challenged(
        lambda request: httpx.Response(202)))
    run(store()._delete(D, f"deleting {D}"))


@respx.mock
def test_a_long_token_an_error_echoes_is_scrubbed_whole():
    respx.delete(url__startswith=f"{BASE}/v2/proj/repo/app/manifests/").mock(side_effect=challenged(
        lambda request: httpx.Response(400, json={"errors": [{"code": "DENIED", "message": f"bad {BEARER} {TOKEN}"}]})))
    with pytest.raises(JanitorError) as err:
        run(store()._delete(D, f"deleting {D}"))
    assert "B" * 20 not in str(err.value) and "G" * 20 not in str(err.value), str(err.value)
