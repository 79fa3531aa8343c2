"""OCI client behaviour that a local registry cannot show: pagination styles, bad answers."""

from __future__ import annotations

import asyncio
import hashlib
import json

import httpx
import pytest
import respx

from ghcr_janitor.core import mediatypes as mt
from ghcr_janitor.core.errors import ManifestError, NotFoundError, RegistryError
from ghcr_janitor.net.http import make_client
from ghcr_janitor.net.links import next_link
from ghcr_janitor.stores.oci.registry import OciRegistry

BASE = "https://reg.example"


def _run(coro_fn):
    async def go():
        reg = OciRegistry(BASE, "org/app", make_client(4, None, http2=False))
        try:
            return await coro_fn(reg)
        finally:
            await reg.aclose()

    return asyncio.run(go())


def test_next_link_forms():
    assert next_link('</v2/a/tags/list?last=x&n=2>; rel="next"') == "/v2/a/tags/list?last=x&n=2"
    assert next_link('<https://h/v2/a/tags/list?n=2&last=b>; rel=next') == "https://h/v2/a/tags/list?n=2&last=b"
    assert next_link('<https://x/p?page=2>; rel="next", <https://x/p?page=9>; rel="last"') == "https://x/p?page=2"
    assert next_link('<https://x/p?page=9>; rel="last"') is None
    assert next_link(None) is None


@respx.mock
def test_pagination_relative_link():
    pages = {None: (["c", "a"], '</v2/org/app/tags/list?last=c&n=1000>; rel="next"'),
             "c": (["e", "d"], '</v2/org/app/tags/list?last=e&n=1000>; rel="next"'),
             "e": (["f"], None)}

    def handler(request):
        tags, link = pages[request.url.params.get("last")]
        return httpx.Response(200, json={"tags": tags}, headers={"Link": link} if link else {})

    route = respx.get(url__regex=rf"{BASE}/v2/org/app/tags/list.*").mock(side_effect=handler)
    assert _run(lambda r: r.list_tags()) == ["a", "c", "d", "e", "f"]
    assert route.call_count == 3


@respx.mock
def test_pagination_absolute_link_to_other_path():
    respx.get(f"{BASE}/v2/org/app/tags/list", params={"n": "1000"}).mock(return_value=httpx.Response(
        200, json={"tags": ["b"]}, headers={"Link": f'<{BASE}/v2/org/app/tags/list?page=2>; rel="next"'}))
    respx.get(f"{BASE}/v2/org/app/tags/list", params={"page": "2"}).mock(
        return_value=httpx.Response(200, json={"tags": ["a", "b"]}))
    assert _run(lambda r: r.list_tags()) == ["a", "b"]


@respx.mock
def test_registry_that_ignores_n_returns_everything_unsorted():
    tags = [f"cache-{i}" for i in range(2500, 0, -1)]
    respx.get(url__regex=rf"{BASE}/v2/org/app/tags/list.*").mock(return_value=httpx.Response(200, json={"tags": tags}))
    assert _run(lambda r: r.list_tags()) == sorted(tags)


@respx.mock
def test_short_page_with_link_is_followed():
    """A page shorter than n with a Link must not stop pagination."""
    def handler(request):
        if request.url.params.get("last") == "a":
            return httpx.Response(200, json={"tags": ["z"]})
        return httpx.Response(200, json={"tags": ["a"]},
                              headers={"Link": '</v2/org/app/tags/list?last=a&n=1000>; rel="next"'})

    respx.get(url__regex=rf"{BASE}/v2/org/app/tags/list.*").mock(side_effect=handler)
    assert _run(lambda r: r.list_tags()) == ["a", "z"]


@respx.mock
def test_looping_link_is_an_error_not_a_hang():
    respx.get(url__regex=rf"{BASE}/v2/org/app/tags/list.*").mock(return_value=httpx.Response(
        200, json={"tags": ["a"]}, headers={"Link": '</v2/org/app/tags/list?last=a&n=1000>; rel="next"'}))
    with pytest.raises(RegistryError, match="loops"):
        _run(lambda r: r.list_tags())


def _manifest() -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                       "config": {"mediaType": mt.BUILDKIT_CACHE_CONFIG, "digest": "sha256:" + "a" * 64, "size": 3},
                       "layers": []}).encode()


@respx.mock
def test_digest_mismatch_is_refused():
    body = _manifest()
    wrong = "sha256:" + "b" * 64
    respx.get(f"{BASE}/v2/org/app/manifests/{wrong}").mock(return_value=httpx.Response(
        200, content=body, headers={"Content-Type": mt.OCI_MANIFEST}))
    with pytest.raises(ManifestError, match="does not match"):
        _run(lambda r: r.get_manifest(wrong))
    respx.get(f"{BASE}/v2/org/app/manifests/cache-a").mock(return_value=httpx.Response(
        200, content=body, headers={"Content-Type": mt.OCI_MANIFEST, "Docker-Content-Digest": wrong}))
    with pytest.raises(ManifestError, match="does not match"):
        _run(lambda r: r.get_manifest("cache-a"))


@respx.mock
def test_missing_digest_header_hashes_exact_bytes():
    body = _manifest() + b"\n  "   # whitespace matters: never re-serialise
    respx.get(f"{BASE}/v2/org/app/manifests/cache-a").mock(return_value=httpx.Response(
        200, content=body, headers={"Content-Type": mt.OCI_MANIFEST}))
    raw = _run(lambda r: r.get_manifest("cache-a"))
    assert raw.digest == "sha256:" + hashlib.sha256(body).hexdigest()
    assert raw.media_type == mt.OCI_MANIFEST


@respx.mock
def test_oversize_manifest_is_refused():
    big = b"{" + b" " * (mt.MAX_MANIFEST_BYTES + 10) + b"}"
    respx.get(f"{BASE}/v2/org/app/manifests/cache-big").mock(return_value=httpx.Response(200, content=big))
    with pytest.raises(ManifestError, match="cap"):
        _run(lambda r: r.get_manifest("cache-big"))


@respx.mock
def test_accept_header_lists_all_four_types_and_head_falls_back_to_get():
    body = _manifest()
    seen = []

    def handler(request):
        seen.append((request.method, request.headers["accept"]))
        return httpx.Response(200, content=body if request.method == "GET" else b"",
                              headers={"Content-Type": mt.OCI_MANIFEST})

    respx.route(url=f"{BASE}/v2/org/app/manifests/cache-a").mock(side_effect=handler)
    digest = _run(lambda r: r.resolve("cache-a"))
    assert digest == "sha256:" + hashlib.sha256(body).hexdigest()
    assert [m for m, _ in seen] == ["HEAD", "GET"]
    for _, accept in seen:
        for media_type in (mt.OCI_INDEX, mt.OCI_MANIFEST, mt.DOCKER_LIST, mt.DOCKER_MANIFEST):
            assert media_type in accept


@respx.mock
def test_plain_text_404_is_not_found():
    respx.get(url__regex=rf"{BASE}/v2/org/app/tags/list.*").mock(return_value=httpx.Response(404, text="404 page not found"))
    with pytest.raises(NotFoundError):
        _run(lambda r: r.list_tags())


@respx.mock
@pytest.mark.parametrize("elsewhere", ["https://evil.example/v2/org/app/tags/list?last=b",
                                       "http://reg.example/v2/org/app/tags/list?last=b",
                                       "//evil.example/v2/org/app/tags/list?last=b"])
def test_a_link_to_another_host_or_to_plain_http_is_not_followed(elsewhere):
    respx.get(f"{BASE}/v2/org/app/tags/list", params={"n": "1000"}).mock(return_value=httpx.Response(
        200, json={"tags": ["b"]}, headers={"Link": f'<{elsewhere}>; rel="next"'}))
    followed = respx.get(url__regex=r".*last=b.*").mock(return_value=httpx.Response(200, json={"tags": []}))
    with pytest.raises(RegistryError, match="the next page is on another host"):
        _run(lambda r: r.list_tags())
    assert followed.call_count == 0


def test_registry_credentials_go_only_to_the_host_the_client_was_made_for():
    """A Bearer token (or Basic credentials) is never attached to a request for another host, even one
    whose 401 challenges for it."""
    from ghcr_janitor.net.auth.credentials import Credentials
    from ghcr_janitor.net.auth.flow import RegistryAuth
    from ghcr_janitor.net.auth.secret import Secret

    secret = "s" * 520
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.host, request.headers.get("authorization")))
        if request.url.host == "auth.reg.example":
            return httpx.Response(200, json={"token": "t0ken-for-reg"})
        if "authorization" not in request.headers:
            return httpx.Response(401, headers={"WWW-Authenticate":
                                                'Bearer realm="https://auth.reg.example/token",service="reg"'})
        return httpx.Response(200, json={"tags": []})

    auth = RegistryAuth(Credentials("me", Secret(secret), "test"))
    with httpx.Client(transport=httpx.MockTransport(handler), auth=auth) as client:
        assert client.get("https://reg.example/v2/org/app/tags/list").status_code == 200
        assert client.get("https://evil.example/v2/org/app/tags/list").status_code == 401
    evil = [a for host, a in seen if host == "evil.example"]
    assert evil == [None]
    assert any(a == "Bearer t0ken-for-reg" for host, a in seen if host == "reg.example")


@respx.mock
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_answer_to_a_digest_delete_is_not_a_delete(status):
    digest = "sha256:" + "a" * 64
    respx.delete(f"{BASE}/v2/org/app/manifests/{digest}").mock(return_value=httpx.Response(
        status, headers={"Location": "https://sso.example/login?session=s3cr3t"}))
    with pytest.raises(RegistryError, match=f"answered {status}.*not a delete") as caught:
        _run(lambda r: r.delete_manifest(digest))
    assert "s3cr3t" not in str(caught.value)
