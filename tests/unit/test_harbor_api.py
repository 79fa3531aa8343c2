"""The Harbor API client and store pieces: path encoding, times, auth, paging, error mapping, the
own-read memory, settings checks, and the store against its stand-in (index-form cache refusal,
children known present)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import respx

from ghcr_janitor.core.errors import AuthError, NotFoundError, RegistryError, UsageError
from ghcr_janitor.core.reference import HARBOR, Target
from ghcr_janitor.core.settings import HostSettings, Settings
from ghcr_janitor.net.auth.secret import Secret
from ghcr_janitor.net.http import RequestLog, make_client
from ghcr_janitor.stores.harbor import registry as harbor
from ghcr_janitor.stores.harbor.api import BasicAuth, HarborApi, harbor_time, repository_path
from ghcr_janitor.stores.reads import SAME_READ, OwnReads, corrected
from tests.support.harbor_standin import HarborStandIn
from tests.support.push import OCI_INDEX, Pusher

BASE = "https://harbor.example.com"
ARTIFACTS = f"{BASE}/api/v2.0/projects/proj/repositories/team%252Fapp/artifacts"


def api(base: str = BASE, auth: httpx.Auth | None = None) -> HarborApi:
    return HarborApi(base, make_client(4, auth, base_url=base), RequestLog(), "anonymous")


def run(coro):
    return asyncio.run(coro)


def test_repository_names_are_encoded_twice_in_paths():
    assert repository_path("proj", "team/app") == "/projects/proj/repositories/team%252Fapp"
    assert repository_path("proj", "app") == "/projects/proj/repositories/app"


def test_times_and_gos_zero_time_for_never():
    assert harbor_time("0001-01-01T00:00:00.000Z") is None
    assert harbor_time("0001-01-01T00:00:00Z") is None
    assert harbor_time(None) is None and harbor_time("") is None and harbor_time("yesterday") is None
    assert harbor_time("2026-03-04T05:06:07.123Z") == datetime(2026, 3, 4, 5, 6, 7, 123000, tzinfo=timezone.utc)


def test_basic_auth_never_goes_over_plain_http_to_another_host():
    auth = BasicAuth("robot$ci", Secret("s3cret-value"))
    assert "s3cret" not in repr(auth)
    request = httpx.Request("GET", "http://harbor.example.com/api/v2.0/projects")
    with pytest.raises(AuthError, match="plain HTTP"):
        next(auth.auth_flow(request))
    sent = next(auth.auth_flow(httpx.Request("GET", "http://127.0.0.1:8080/api/v2.0/projects")))
    assert sent.headers["Authorization"].startswith("Basic ")


@respx.mock
def test_pages_ask_100_at_a_time_and_stop_where_harbor_says():
    def page(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params["page"])
        assert request.url.params["page_size"] == "100" and request.url.params["with_immutable_status"] == "true"
        assert request.url.raw_path.startswith(b"/api/v2.0/projects/proj/repositories/team%252Fapp/artifacts?")
        items = [{"digest": f"sha256:{number:064d}"}] * (100 if number < 3 else 7)
        link = f'</x?page={number + 1}&page_size=100>; rel="next"' if number < 3 else '</x?page=2>; rel="prev"'
        return httpx.Response(200, json=items, headers={"Link": link, "X-Total-Count": "207"})

    route = respx.get(url__startswith=ARTIFACTS).mock(side_effect=page)
    found = run(api().artifacts("proj", "team/app"))
    assert len(found) == 207 and route.call_count == 3


@respx.mock
def test_without_a_link_header_a_short_page_is_the_last():
    route = respx.get(url__startswith=ARTIFACTS).mock(side_effect=[
        httpx.Response(200, json=[{"digest": "d"}] * 100), httpx.Response(200, json=[])])
    assert len(run(api().artifacts("proj", "team/app"))) == 100 and route.call_count == 2


@pytest.mark.parametrize("status, code, kind, words", [
    (401, "UNAUTHORIZED", AuthError, "refused the credentials"),
    (403, "FORBIDDEN", AuthError, "delete permissions to prune"),
    (404, "NOT_FOUND", NotFoundError, "not found (404 NOT_FOUND: repository"),
    (412, "PRECONDITION", RegistryError, "Harbor answered 412 PRECONDITION: the tag"),
])
@respx.mock
def test_errors_are_one_line_with_harbors_code(status, code, kind, words):
    body = {"errors": [{"code": code, "message": "the tag x\nconfigured as immutable" if status == 412
                        else "repository proj/app not found"}]}
    respx.delete(url__startswith=BASE).mock(return_value=httpx.Response(status, json=body))
    with pytest.raises(kind) as caught:
        run(api().delete_artifact("proj", "app", "sha256:" + "a" * 64, "deleting x"))
    assert words in str(caught.value) and "\n" not in str(caught.value) and caught.value.status == status


def test_the_janitors_own_read_is_seen_through_and_a_later_pull_is_not(tmp_path):
    read_at = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
    reads = OwnReads(tmp_path / "reads.sqlite")
    reads.record({"h/p/a@x": None, "h/p/a@y": read_at - timedelta(days=3), "h/p/a@z": "unknown"}, read_at)
    memory = reads.recorded(["h/p/a@x", "h/p/a@y", "h/p/a@z", "h/p/a@w"])
    assert corrected(read_at + timedelta(seconds=10), memory["h/p/a@x"]) == (None, True)
    assert corrected(read_at, memory["h/p/a@y"]) == (read_at - timedelta(days=3), True)
    later = read_at + SAME_READ + timedelta(seconds=1)
    assert corrected(later, memory["h/p/a@x"]) == (later, False)
    assert corrected(read_at, memory["h/p/a@z"]) == (read_at, False)
    assert "h/p/a@w" not in memory and corrected(None, memory["h/p/a@x"]) == (None, False)
    reads.close()
    assert OwnReads(None).recorded(["h/p/a@x"]) == {}


@pytest.mark.parametrize("host, words", [
    (HostSettings(kind="harbor", username="robot$ci"), "username without token_env"),
    (HostSettings(kind="harbor", token_env="HARBOR_TOKEN", token="x"), "without username"),
    (HostSettings(kind="harbor", username="robot$ci", token_env="HARBOR_TOKEN"), "HARBOR_TOKEN, which is not set"),
])
def test_preflight_refuses_settings_it_cannot_use(host, words):
    with pytest.raises(UsageError, match=words):
        harbor.preflight(None, host)
    harbor.preflight(None, HostSettings(kind="harbor", username="robot$ci", token_env="T", token="x"))


def test_a_target_names_a_project_and_a_repository():
    from ghcr_janitor.stores.connect import ConnectOptions

    with pytest.raises(UsageError, match="HOST/PROJECT/REPOSITORY"):
        harbor.open_store(Target(HARBOR, "harbor.example.com", "app"), ConnectOptions(settings=Settings()),
                          HostSettings())


def test_index_form_caches_are_told_apart():
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + "1" * 64}
    config = {"mediaType": "application/vnd.buildkit.cacheconfig.v0", "digest": "sha256:" + "2" * 64}
    assert harbor.index_form_cache(json.dumps({"manifests": [layer, config]}).encode())
    assert not harbor.index_form_cache(json.dumps({"manifests": [layer]}).encode())
    assert not harbor.index_form_cache(b"not json")


@pytest.fixture
def store(registry, tmp_path):
    from ghcr_janitor.stores.connect import ConnectOptions

    with HarborStandIn(registry.url) as standin:
        name = f"unit{id(standin) % 100000}/app"
        settings = Settings.from_env({"JANITOR_STATE_DIR": str(tmp_path / "state")})
        target = Target(HARBOR, standin.host, name)
        opened = harbor.open_store(target, ConnectOptions(settings=settings), HostSettings(kind="harbor"))
        yield standin, opened, Pusher(standin.url, name)
        run(opened.aclose())


def test_a_refused_index_form_cache_push_names_the_fix(store):
    standin, opened, pusher = store
    layer = pusher.layer(b"idx-layer", datetime.now(timezone.utc))
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                       "manifests": [layer, pusher.cache_config([layer])]}).encode()
    with pytest.raises(RegistryError) as caught:
        run(opened.put_manifest("cache-idx", body, OCI_INDEX))
    assert "index-form cache" in str(caught.value) and "image-manifest=true" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_children_of_an_index_are_known_present_and_reads_are_by_digest(store):
    standin, opened, pusher = store
    now = datetime.now(timezone.utc)
    child, body = pusher.image(None, [b"layer"], now)
    index, _ = pusher.index("v1", [(child, body, {"architecture": "amd64", "os": "linux"})])

    async def go():
        versions = await opened.list_versions()
        assert [v.digest for v in versions] == [index]           # Harbor lists the child as a reference only
        listed = frozenset(v.digest for v in versions)
        assert not opened.known_missing(child, listed) and opened.known_missing("sha256:" + "9" * 64, listed)
        await opened.get_manifest("v1")                          # by tag: HEAD, then GET by digest
        await opened.get_manifest(child)

    run(go())
    assert standin.tagdb[(pusher.repo, "v1")].pull_time is None              # a tag's pull time is untouched
    assert standin.artifacts[(pusher.repo, index)].pull_time is not None      # Harbor records the reads
    gets = [p for m, p, _ in standin.calls if m == "GET" and "/manifests/" in p]
    assert gets == [f"/v2/{pusher.repo}/manifests/{index}", f"/v2/{pusher.repo}/manifests/{child}"]


# --- review findings M1, M3, M4, M5 ----------------------------------------------------------------
@respx.mock
def test_an_answer_over_the_cap_is_one_line_not_read_whole():
    from ghcr_janitor.stores.harbor.api import BODY_CAP

    respx.get(url__startswith=BASE).mock(
        return_value=httpx.Response(200, content=b'[{"digest": "' + b"x" * (BODY_CAP + 10) + b'"}]'))
    with pytest.raises(RegistryError, match="byte cap") as caught:
        run(api().artifacts("proj", "team/app"))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@respx.mock
def test_a_redirected_delete_is_not_a_delete(status):
    respx.delete(url__startswith=BASE).mock(return_value=httpx.Response(
        status, headers={"Location": "https://sso.example.com/login?token=abc&next=/x"}))
    with pytest.raises(RegistryError) as caught:
        run(api().delete_artifact("proj", "app", "sha256:" + "a" * 64, "deleting x"))
    message = str(caught.value)
    assert f"answered {status}" in message and "https://sso.example.com" in message and "token=abc" not in message


@respx.mock
def test_a_delete_answered_with_a_login_page_is_not_a_delete():
    respx.delete(url__startswith=BASE).mock(return_value=httpx.Response(
        200, content=b"<html>Sign in</html>", headers={"Content-Type": "text/html; charset=utf-8"}))
    with pytest.raises(RegistryError, match="HTML page"):
        run(api().delete_tag("proj", "app", "sha256:" + "a" * 64, "v1", "untagging x"))


@respx.mock
def test_a_page_that_repeats_is_an_error_not_100000_requests():
    page = [{"digest": f"sha256:{n:064d}"} for n in range(100)]
    route = respx.get(url__startswith=ARTIFACTS).mock(return_value=httpx.Response(
        200, json=page, headers={"Link": '</x?page=2&page_size=100>; rel="next"'}))
    with pytest.raises(RegistryError, match="page 2 repeats page 1"):
        run(api().artifacts("proj", "team/app"))
    assert route.call_count == 2


@respx.mock
def test_an_empty_page_ends_the_listing_whatever_the_link_says():
    route = respx.get(url__startswith=ARTIFACTS).mock(side_effect=[
        httpx.Response(200, json=[{"digest": "d"}], headers={"Link": '</x?page=2>; rel="next"'}),
        httpx.Response(200, json=[], headers={"Link": '</x?page=3>; rel="next"'})])
    assert len(run(api().artifacts("proj", "team/app"))) == 1 and route.call_count == 2


@respx.mock
def test_an_echoed_password_is_scrubbed_before_the_message_is_cut():
    secret = "robot-secret-" + "s" * 300
    auth = BasicAuth("robot$ci", Secret(secret))
    basic = auth.secrets()[1]
    harbor_api = HarborApi(BASE, make_client(2, auth, base_url=BASE), RequestLog(), "settings", auth)
    message = f"bad credentials {secret} (Authorization: Basic {basic})"
    respx.get(url__startswith=BASE).mock(return_value=httpx.Response(
        401, json={"errors": [{"code": "UNAUTHORIZED", "message": message}]}))
    with pytest.raises(AuthError) as caught:
        run(harbor_api.artifacts("proj", "app"))
    text = str(caught.value)
    assert secret[:12] not in text and basic[:12] not in text and "********" in text, text
