"""ACR's API client and token exchange against the stand-in: 1,000 items a page whatever `n` says,
Link followed, one token per scope, each credential source exchanged as ACR documents, errors mapped
to one line, locks read from `changeableAttributes`."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import httpx
import pytest

from ghcr_janitor.core.errors import AuthError, NotFoundError
from ghcr_janitor.core.settings import Settings
from ghcr_janitor.net.http import RequestLog, make_client
from ghcr_janitor.stores.acr.api import AcrApi, LockedError
from ghcr_janitor.stores.acr.auth import AAD, ANONYMOUS, BASIC, NULL_GUID, REFRESH, AcrAuth, acr_credentials, request_scope
from ghcr_janitor.stores.acr.registry import lock_of
from ghcr_janitor.stores.connect import ConnectOptions
from tests.support.acr_standin import LOGIN_SERVER, READ_ACTIONS, AcrStandIn, Manifest, Tag

WHEN = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def standin(registry):
    with AcrStandIn(registry.url) as server:
        yield server


def synthetic(standin: AcrStandIn, repo: str, tags: int) -> None:
    """`tags` tags on as many manifests, in the stand-in's metadata only (the listings never read /v2)."""
    standin.manifests[repo] = {}
    standin.tag_map[repo] = {}
    for i in range(tags):
        digest = "sha256:" + f"{i:064x}"
        standin.manifests[repo][digest] = Manifest(digest, "application/vnd.oci.image.manifest.v1+json", 100, WHEN, WHEN)
        standin.tag_map[repo][f"cache-{i:05d}"] = Tag(digest, WHEN, WHEN)


def api_for(standin: AcrStandIn, auth: AcrAuth | None = None) -> AcrApi:
    auth = auth or AcrAuth(acr_credentials_refresh(standin.add_refresh_token()), LOGIN_SERVER, standin.url)
    client = make_client(4, auth, base_url=standin.url)
    return AcrApi(client, standin.url, standin.url, RequestLog())


def acr_credentials_refresh(token: str):
    from ghcr_janitor.net.auth.secret import Secret
    from ghcr_janitor.stores.acr.auth import AcrCredentials

    return AcrCredentials(REFRESH, Secret(token), "test")


def run(coro):
    return asyncio.run(coro)


def test_listings_take_a_request_per_thousand_whatever_n_says(standin):
    synthetic(standin, "big/app", 2500)
    api = api_for(standin)

    async def go():
        try:
            return await api.tags("big/app"), await api.manifests("big/app")
        finally:
            await api.client.aclose()

    tags, manifests = run(go())
    assert len({t["name"] for t in tags}) == 2500 and len({m["digest"] for m in manifests}) == 2500
    pages = [path for method, path, _ in standin.calls if path.startswith("/acr/v1/big/app/_tags")]
    assert len(pages) == 3 and pages[0] == "/acr/v1/big/app/_tags?n=1000"
    assert standin.count("GET", "/acr/v1/big/app/_manifests") == 3
    assert standin.count("POST", "/oauth2/token") == 1           # one metadata_read token serves both
    # The stand-in caps a page at 1,000 whatever n asks, as ACR does (Azure/acr#749).
    direct = httpx.get(f"{standin.url}/acr/v1/big/app/_tags?n=5000", headers=standin.pusher_headers())
    assert len(direct.json()["tags"]) == 1000 and 'rel="next"' in direct.headers["link"]


def test_timedesc_orders_by_last_update(standin):
    synthetic(standin, "t/app", 3)
    standin.tag_map["t/app"]["cache-00000"].updated = datetime(2026, 6, 1, tzinfo=timezone.utc)
    got = httpx.get(f"{standin.url}/acr/v1/t/app/_tags?orderby=timedesc", headers=standin.pusher_headers())
    assert got.json()["tags"][0]["name"] == "cache-00000"


def test_each_credential_is_exchanged_as_acr_documents(standin):
    synthetic(standin, "c/app", 1)
    from ghcr_janitor.net.auth.secret import Secret
    from ghcr_janitor.stores.acr.auth import AcrCredentials

    standin.add_user("admin", "pw")
    cases = {
        REFRESH: AcrCredentials(REFRESH, Secret(standin.add_refresh_token()), "t"),
        AAD: AcrCredentials(AAD, Secret(standin.add_aad_token()), "t"),
        BASIC: AcrCredentials(BASIC, Secret("pw"), "t", "admin"),
    }
    for mode, credentials in cases.items():
        before = len(standin.calls)
        api = api_for(standin, AcrAuth(credentials, LOGIN_SERVER, standin.url))

        async def go():
            try:
                return await api.tags("c/app"), await api.tags("c/app")
            finally:
                await api.client.aclose()

        first, second = run(go())
        assert [t["name"] for t in first] == ["cache-00000"] == [t["name"] for t in second]
        sent = [(m, p.split("?")[0]) for m, p, _ in standin.calls[before:]]
        token = ("POST", "/oauth2/token") if mode != BASIC else ("GET", "/oauth2/token")
        expected = ([("POST", "/oauth2/exchange")] if mode == AAD else []) + [token] + [("GET", "/acr/v1/c/app/_tags")] * 2
        assert sent == expected, mode


def test_refusals_are_mapped_to_one_line_errors(standin):
    synthetic(standin, "r/app", 2)
    standin.tag_map["r/app"]["cache-00001"].locks = {"deleteEnabled": False}
    reader = api_for(standin, AcrAuth(acr_credentials_refresh(standin.add_refresh_token(READ_ACTIONS)),
                                      LOGIN_SERVER, standin.url))
    writer = api_for(standin)
    bad = api_for(standin, AcrAuth(acr_credentials_refresh("wrong"), LOGIN_SERVER, standin.url))

    async def go():
        try:
            with pytest.raises(AuthError, match="lack the delete permission"):
                await reader.delete_tag("r/app", "cache-00000")
            with pytest.raises(LockedError, match="REGISTRY_DISALLOWED_OPERATION"):
                await writer.delete_tag("r/app", "cache-00001")
            with pytest.raises(NotFoundError):
                await writer.delete_tag("r/app", "no-such-tag")
            with pytest.raises(AuthError, match=r"refused \(401\)") as refused:
                await bad.tags("r/app")
            assert "wrong" not in str(refused.value)
            assert await writer.tag("r/app", "no-such-tag") is None
            assert await writer.manifest("r/app", "sha256:" + "f" * 64) is None
        finally:
            for api in (reader, writer, bad):
                await api.client.aclose()

    run(go())
    assert set(standin.tag_map["r/app"]) == {"cache-00000", "cache-00001"}


def test_scopes_per_request():
    assert request_scope("/v2/team/app/manifests/x", "GET") == "repository:team/app:pull"
    assert request_scope("/v2/team/app/manifests/sha256:1", "DELETE") == "repository:team/app:delete"
    assert request_scope("/v2/team/app/blobs/uploads/", "POST") == "repository:team/app:pull,push"
    assert request_scope("/acr/v1/team/app/_tags", "GET") == "repository:team/app:metadata_read"
    assert request_scope("/acr/v1/team/app/_tags/cache-a", "DELETE") == "repository:team/app:delete"
    assert request_scope("/acr/v1/team/app", "GET") == "repository:team/app:metadata_read"
    assert request_scope("/acr/v1/_catalog", "GET") == request_scope("/v2/_catalog", "GET") == "registry:catalog:*"
    assert request_scope("/v2/", "GET") is None


def test_credentials_come_in_the_documented_order(tmp_path):
    import base64
    import json

    (tmp_path / "config.json").write_text(json.dumps({"auths": {LOGIN_SERVER: {
        "auth": base64.b64encode(f"{NULL_GUID}:from-az-login".encode()).decode()}}}))
    base = {"DOCKER_CONFIG": str(tmp_path)}

    def found(env: dict, **options):
        settings = Settings.from_env(env)
        return acr_credentials(LOGIN_SERVER, ConnectOptions(settings=settings, **options), settings.host(LOGIN_SERVER))

    docker = found(base)
    assert (docker.mode, docker.secret.reveal()) == (REFRESH, "from-az-login")
    assert found({**base, "AZURE_ACCESS_TOKEN": "aad"}).mode == AAD
    assert found({**base, "AZURE_ACCESS_TOKEN": "aad", "ACR_REFRESH_TOKEN": "rt"}).source == "ACR_REFRESH_TOKEN"
    explicit = found({**base, "ACR_REFRESH_TOKEN": "rt"}, username="admin", password="pw")
    assert (explicit.mode, explicit.username) == (BASIC, "admin")
    assert found({"DOCKER_CONFIG": str(tmp_path / "none")}).mode == ANONYMOUS
    assert "from-az-login" not in repr(docker)


def test_locks_are_read_from_changeable_attributes():
    assert lock_of("tag", {"changeableAttributes": {"deleteEnabled": True, "writeEnabled": True}}) is None
    assert lock_of("tag", {"changeableAttributes": {"deleteEnabled": False}}) == "ACR tag lock: deleteEnabled = false"
    assert lock_of("manifest", {"changeableAttributes": {"deleteEnabled": False, "writeEnabled": False}}) == \
        "ACR manifest lock: deleteEnabled = false and writeEnabled = false"
    assert lock_of("tag", {}) is None
