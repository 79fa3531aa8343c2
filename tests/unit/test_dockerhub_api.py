"""The Docker Hub API client (stores/dockerhub/api.py) against the stand-in: login and its fallback,
pages of 100 and `next` links, 429 with X-Retry-After waited out, X-RateLimit-Remaining 0 paced,
errors in one line without the token; and the settings it refuses before any contact."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from ghcr_janitor.core.errors import AuthError, RegistryError, UsageError
from ghcr_janitor.core.settings import HostSettings, HttpSettings, Settings
from ghcr_janitor.net.auth.secret import Secret
from ghcr_janitor.net.http import make_client
from ghcr_janitor.stores.connect import ConnectOptions
from ghcr_janitor.stores.dockerhub import registry as hub_registry
from ghcr_janitor.stores.dockerhub.api import PAGE_SIZE, RATE_RETRIES, HubApi, HubLogin
from tests.support.dockerhub_standin import TOKEN, USER, DockerHubStandIn
from tests.support.push import Pusher
from tests.support.vendor_standin import Fault, Reply


@pytest.fixture
def standin(registry):
    with DockerHubStandIn(registry.url) as server:
        yield server


def run(coro):
    return asyncio.run(coro)


def api_for(standin, secret: str = TOKEN, waits: list | None = None, clock=time.time) -> HubApi:
    async def sleep(seconds: float) -> None:
        if waits is not None:
            waits.append(seconds)

    login = HubLogin(USER, Secret(secret), "DOCKERHUB_TOKEN") if secret else None
    # net.http retries a 429 itself (twice here, quickly) without reading X-Retry-After; then HubApi waits.
    client = make_client(4, None, base_url=standin.url, policy=HttpSettings(attempts=2, wait=0.01))
    return HubApi(standin.url, login, client, sleep=sleep, clock=clock)


async def closing(api: HubApi, coro):
    try:
        return await coro
    finally:
        await api.client.aclose()


def test_pages_of_a_hundred_follow_next_and_stay_on_the_api_host(standin):
    pusher = Pusher(standin.url, "acme/many")
    digest, body = pusher.buildkit_cache("t-000", [b"x"], time_now())
    for i in range(1, 230):
        pusher.manifest(f"t-{i:03d}", body, "application/vnd.oci.image.manifest.v1+json")
    api = api_for(standin)
    tags = run(closing(api, api.tags("acme", "many")))
    assert len(tags) == 230 and {t["digest"] for t in tags} == {digest}
    pages = [p for m, p, _ in standin.calls if p.startswith("/v2/namespaces/acme/repositories/many/tags")]
    assert len(pages) == 3 and all(f"page_size={PAGE_SIZE}" in p for p in pages)
    # A `next` naming another host is rebuilt on the API's own base: the token goes nowhere else.
    assert api._on_api("https://elsewhere.example/v2/x?page=2") == f"{standin.url}/v2/x?page=2"


def time_now():
    from datetime import datetime, timezone
    return datetime.now(timezone.utc)


def test_a_429_waits_for_x_retry_after_then_gives_up_after_the_bounded_retries(standin):
    Pusher(standin.url, "acme/limited").buildkit_cache("cache-a", [b"a"], time_now())
    waits: list[float] = []
    standin.rate_limit(2, 30)                   # both of net.http's attempts
    api = api_for(standin, waits=waits)
    assert len(run(closing(api, api.tags("acme", "limited")))) == 1
    assert len(waits) == 1 and 25 <= waits[0] <= 31          # until X-Retry-After (a unix time), not a guess
    standin.rate_limit(50, 5)
    api = api_for(standin, waits=waits)
    with pytest.raises(RegistryError) as caught:
        run(closing(api, api.tags("acme", "limited")))
    assert caught.value.status == 429 and "API rate limit" in str(caught.value)
    assert len(waits) == 1 + RATE_RETRIES and all(w <= 6 for w in waits[1:])


def test_remaining_zero_paces_the_next_request_until_the_reset(standin):
    Pusher(standin.url, "acme/paced").buildkit_cache("cache-a", [b"a"], time_now())
    standin.remaining = 0
    waits: list[float] = []
    api = api_for(standin, waits=waits)

    async def twice():
        await api.tags("acme", "paced")
        await api.tags("acme", "paced")

    run(closing(api, twice()))
    assert waits and 50 <= waits[-1] <= 61                    # X-RateLimit-Reset is now + 60 on the stand-in


def test_login_falls_back_to_users_login_and_a_wrong_secret_is_one_line_without_it(standin):
    standin.faults.append(Fault("POST /v2/auth/token", Reply(404, {"detail": "not here"})))
    api = api_for(standin)
    assert run(closing(api, api.bearer())) is not None
    assert [p for m, p, _ in standin.calls if m == "POST"] == ["/v2/auth/token", "/v2/users/login"]
    wrong = "dckr_pat_wrong-secret-never-printed"
    api = api_for(standin, secret=wrong)
    with pytest.raises(AuthError) as caught:
        run(closing(api, api.bearer()))
    message = str(caught.value)
    assert "\n" not in message and wrong not in message and "refused the login" in message and USER in message
    assert wrong not in repr(api) and TOKEN not in repr(api_for(standin))


def test_an_expired_token_logs_in_again_once(standin):
    Pusher(standin.url, "acme/priv").buildkit_cache("cache-a", [b"a"], time_now())
    standin.private.add("acme/priv")
    api = api_for(standin)

    async def expire_then_list():
        await api.bearer()
        standin.tokens.clear()                          # Hub forgot it (expired, revoked)
        return await api.tags("acme", "priv")

    assert len(run(closing(api, expire_then_list()))) == 1
    assert [p for m, p, _ in standin.calls if p.startswith("/v2/auth")] == ["/v2/auth/token", "/v2/auth/token"]


def test_the_untag_probe_accepts_404_and_names_a_refusal(standin):
    Pusher(standin.url, "acme/probe").buildkit_cache("cache-a", [b"a"], time_now())
    api = api_for(standin)
    assert run(closing(api, api.untag_refused("acme", "probe"))) is None
    standin.permission = "read"
    api = api_for(standin)
    refused = run(closing(api, api.untag_refused("acme", "probe")))
    assert refused.startswith(f"Docker Hub refuses tag deletes for {USER} (HTTP 403")
    assert standin.tags("acme/probe") == {"cache-a": standin.resolve("acme/probe", "cache-a")}


def options(env: dict[str, str], hosts: dict | None = None) -> ConnectOptions:
    settings = replace(Settings.from_env(env), hosts=hosts or {})
    return ConnectOptions(settings=settings)


@pytest.mark.parametrize("env, host, words", [
    ({"DOCKERHUB_TOKEN": "x"}, HostSettings(), "DOCKERHUB_USERNAME is not"),
    ({}, HostSettings(token_env="MY_HUB_TOKEN"), "names MY_HUB_TOKEN, which is not set"),
    ({}, HostSettings(api_url="http://hub.example.com"), "plain HTTP would send the Docker Hub token in clear"),
])
def test_preflight_refuses_settings_it_cannot_use(env, host, words):
    with pytest.raises(UsageError) as caught:
        hub_registry.preflight(options(env), host)
    assert words in str(caught.value)


def test_who_the_hub_api_is_asked_as(tmp_path):
    env = {"DOCKERHUB_USERNAME": "ci", "DOCKERHUB_TOKEN": "dckr_pat_env", "DOCKER_CONFIG": str(tmp_path)}
    login = hub_registry.hub_login(options(env), HostSettings())
    assert (login.username, login.source) == ("ci", "DOCKERHUB_TOKEN")
    login = hub_registry.hub_login(options({"DOCKER_CONFIG": str(tmp_path)}),
                                   HostSettings(username="org", token_env="HUB", token="dckr_oat"))
    assert (login.username, login.source) == ("org", "HUB")
    (tmp_path / "config.json").write_text('{"auths": {"https://index.docker.io/v1/": {"auth": "dXNlcjpwYXQ="}}}')
    login = hub_registry.hub_login(options({"DOCKER_CONFIG": str(tmp_path)}), HostSettings())
    assert login.username == "user" and login.secret.reveal() == "pat"
    (tmp_path / "config.json").write_text('{"auths": {"https://index.docker.io/v1/": {"identitytoken": "oauth"}}}')
    assert hub_registry.hub_login(options({"DOCKER_CONFIG": str(tmp_path)}), HostSettings()) is None
