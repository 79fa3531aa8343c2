"""Credentials lookup, challenge parsing and the Bearer/Basic flow (respx: no token server here)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat

import httpx
import pytest
import respx

from ghcr_janitor.core.settings import Settings
from ghcr_janitor.net.auth.challenge import parse_challenge
from ghcr_janitor.net.auth.credentials import find_credentials
from ghcr_janitor.net.auth.flow import RegistryAuth, request_scope
from ghcr_janitor.net.auth.secret import Secret
from ghcr_janitor.core.errors import AuthError
from ghcr_janitor.net.http import make_client
from ghcr_janitor.stores.oci.registry import OciRegistry
from tests.support.tokens import long_token

CANARY = "ghp_CANARYtoken0123456789abcdef"


def test_parse_bearer_challenge():
    c = parse_challenge('Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:o/p:pull"')
    assert c.scheme == "bearer"
    assert c.params == {"realm": "https://ghcr.io/token", "service": "ghcr.io", "scope": "repository:o/p:pull"}
    assert parse_challenge('Basic realm="basic-realm"').params == {"realm": "basic-realm"}
    assert parse_challenge('Bearer realm="a\\"b", error="insufficient_scope"').params["realm"] == 'a"b'
    assert parse_challenge("") is None


def test_request_scope_by_method():
    assert request_scope(httpx.Request("GET", "https://r/v2/a/b/manifests/x")) == "repository:a/b:pull"
    assert request_scope(httpx.Request("DELETE", "https://r/v2/a/manifests/x")) == "repository:a:delete"
    assert request_scope(httpx.Request("PUT", "https://r/v2/a/manifests/x")) == "repository:a:pull,push"
    assert request_scope(httpx.Request("GET", "https://r/v2/")) is None


def _write_config(tmp_path, doc) -> dict:
    (tmp_path / "docker").mkdir(exist_ok=True)
    (tmp_path / "docker" / "config.json").write_text(json.dumps(doc))
    return {"DOCKER_CONFIG": str(tmp_path / "docker"), "PATH": os.environ["PATH"]}


def test_credentials_precedence(tmp_path):
    env = _write_config(tmp_path, {"auths": {"reg.example": {"auth": base64.b64encode(b"alice:pw1").decode()}}})
    found = find_credentials("reg.example", settings=Settings.from_env(env))
    assert (found.username, found.secret.reveal()) == ("alice", "pw1")
    assert find_credentials("other.example", settings=Settings.from_env(env)) is None
    env2 = {**env, "JANITOR_USERNAME": "bob", "JANITOR_PASSWORD": "pw2"}
    assert find_credentials("reg.example", settings=Settings.from_env(env2)).secret.reveal() == "pw2"
    assert find_credentials("reg.example", password="pw3", settings=Settings.from_env(env2)).secret.reveal() == "pw3"
    ghcr = find_credentials("ghcr.io", settings=Settings.from_env({**env, "GH_TOKEN": CANARY}))
    assert ghcr.secret.reveal() == CANARY and ghcr.source == "GH_TOKEN"
    assert find_credentials("ghcr.io", settings=Settings.from_env({**env, "GITHUB_TOKEN": "a", "GH_TOKEN": "b"})).source == "GITHUB_TOKEN"


def _fake_helper(tmp_path, name: str, script: str) -> str:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    path = bindir / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(bindir)


def test_credential_helpers(tmp_path):
    bindir = _fake_helper(tmp_path, "fake", 'read host; [ "$1" = get ] || exit 3\n'
                          'if [ "$host" = "reg.example" ]; then echo "{\\"ServerURL\\":\\"$host\\",\\"Username\\":\\"helper-user\\",\\"Secret\\":\\"' + CANARY + '\\"}"; '
                          'else echo "credentials not found in native keychain"; exit 1; fi\n')
    env = _write_config(tmp_path, {"credHelpers": {"reg.example": "fake", "gone.example": "fake"},
                                   "auths": {"reg.example": {}}})
    env["PATH"] = bindir + os.pathsep + env["PATH"]
    found = find_credentials("reg.example", settings=Settings.from_env(env))
    assert found.username == "helper-user" and found.secret.reveal() == CANARY
    assert find_credentials("gone.example", settings=Settings.from_env(env)) is None
    # credsStore covers hosts without a credHelpers entry
    env = _write_config(tmp_path, {"credsStore": "fake"})
    env["PATH"] = bindir + os.pathsep + env["PATH"]
    assert find_credentials("reg.example", settings=Settings.from_env(env)).username == "helper-user"


def test_failing_helper_error_hides_output(tmp_path):
    bindir = _fake_helper(tmp_path, "broken", f'echo "{CANARY}"; exit 7\n')
    env = _write_config(tmp_path, {"credHelpers": {"reg.example": "broken"}})
    env["PATH"] = bindir + os.pathsep + env["PATH"]
    with pytest.raises(AuthError) as info:
        find_credentials("reg.example", settings=Settings.from_env(env))
    assert CANARY not in str(info.value) and "exit 7" in str(info.value)


def test_secret_never_in_repr():
    creds = find_credentials("ghcr.io", settings=Settings.from_env({"GITHUB_TOKEN": CANARY, "DOCKER_CONFIG": "/nonexistent"}))
    auth = RegistryAuth(creds)
    for text in (repr(creds), str(creds), repr(auth), repr(Secret(CANARY)), f"{creds}"):
        assert CANARY not in text


@respx.mock
def test_bearer_flow_caches_token_per_scope_and_refreshes():
    calls = {"token": 0}

    def token(request):
        calls["token"] += 1
        assert request.headers["authorization"].startswith("Basic ")
        assert request.url.params.get_list("scope") == ["repository:org/app:pull"]
        return httpx.Response(200, json={"token": f"tok{calls['token']}", "expires_in": 300})

    respx.get("https://auth.example/token").mock(side_effect=token)
    seen = []

    def tags(request):
        seen.append(request.headers.get("authorization"))
        if request.headers.get("authorization") not in ("Bearer tok1", "Bearer tok2") or (
                request.headers.get("authorization") == "Bearer tok1" and len(seen) > 3):
            return httpx.Response(401, headers={"WWW-Authenticate":
                'Bearer realm="https://auth.example/token",service="reg",scope="repository:org/app:pull"'})
        return httpx.Response(200, json={"name": "org/app", "tags": ["cache-a"]})

    respx.get(url__regex=r"https://reg\.example/v2/org/app/tags/list.*").mock(side_effect=tags)
    creds = find_credentials("reg.example", username="u", password=CANARY, settings=Settings.from_env({}))

    async def go():
        reg = OciRegistry("https://reg.example", "org/app", make_client(4, RegistryAuth(creds), http2=False))
        first = await reg.list_tags()
        second = await reg.list_tags()   # token reused: no new challenge
        third = await reg.list_tags()    # token rejected: refreshed once
        await reg.aclose()
        return first, second, third

    assert asyncio.run(go()) == (["cache-a"],) * 3
    assert calls["token"] == 2
    assert seen == [None, "Bearer tok1", "Bearer tok1", "Bearer tok1", "Bearer tok2"]


@respx.mock
def test_basic_challenge_and_no_basic_over_plain_http():
    respx.get(url__regex=r"https://reg\.example/v2/a/tags/list.*").mock(side_effect=lambda r: (
        httpx.Response(200, json={"tags": ["x"]}) if r.headers.get("authorization", "").startswith("Basic ")
        else httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="basic-realm"'})))
    respx.get(url__regex=r"http://reg\.example/v2/a/tags/list.*").mock(
        return_value=httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="basic-realm"'}))
    creds = find_credentials("reg.example", username="u", password=CANARY, settings=Settings.from_env({}))

    async def go(base):
        reg = OciRegistry(base, "a", make_client(2, RegistryAuth(creds), http2=False))
        try:
            return await reg.list_tags()
        finally:
            await reg.aclose()

    assert asyncio.run(go("https://reg.example")) == ["x"]
    with pytest.raises(AuthError) as info:
        asyncio.run(go("http://reg.example"))
    assert "plain HTTP" in str(info.value) and CANARY not in str(info.value)


@respx.mock
def test_token_endpoint_refusal_is_clear():
    respx.get("https://auth.example/token").mock(return_value=httpx.Response(401, json={"details": "bad"}))
    respx.get(url__regex=r"https://reg\.example/v2/a/tags/list.*").mock(return_value=httpx.Response(
        401, headers={"WWW-Authenticate": 'Bearer realm="https://auth.example/token",service="reg"'}))
    creds = find_credentials("reg.example", username="u", password=CANARY, settings=Settings.from_env({}))

    async def go():
        reg = OciRegistry("https://reg.example", "a", make_client(2, RegistryAuth(creds), http2=False))
        try:
            await reg.list_tags()
        finally:
            await reg.aclose()

    with pytest.raises(AuthError) as info:
        asyncio.run(go())
    assert "refused the credentials" in str(info.value) and CANARY not in str(info.value)


# --- tokens of any length and prefix (GitHub's 2026 installation tokens: `ghs_APPID_JWT`, ~520 chars) ---

@pytest.mark.parametrize("prefix", ["ghs_", "ghp_", "gho_", "ghu_", "ghr_", "github_pat_", ""])
def test_tokens_of_any_length_and_prefix_are_taken_as_they_are(tmp_path, prefix):
    token = long_token(prefix)
    assert len(token) == 520
    env = _write_config(tmp_path, {"auths": {"ghcr.io": {"auth": base64.b64encode(f"bot:{token}".encode()).decode()}}})
    for found in (find_credentials("ghcr.io", settings=Settings.from_env({**env, "GITHUB_TOKEN": token})),
                  find_credentials("ghcr.io", settings=Settings.from_env({**env, "GH_TOKEN": token})),
                  find_credentials("reg.example", settings=Settings.from_env({**env, "JANITOR_PASSWORD": token})),
                  find_credentials("ghcr.io", password=token, settings=Settings.from_env(env)),
                  find_credentials("ghcr.io", settings=Settings.from_env(env))):
        assert found.secret.reveal() == token                # not cut, not checked, not refused
        assert token not in repr(found) and token[:12] not in repr(found) and token not in str(found.secret)
    auth = RegistryAuth(find_credentials("ghcr.io", settings=Settings.from_env({**env, "GITHUB_TOKEN": token})))
    assert base64.b64decode(auth._basic_header().split(" ", 1)[1]).decode() == f"token:{token}"
    assert token[:12] not in repr(auth)


def test_an_error_that_echoes_the_token_never_prints_it():
    """A proxy or server that puts the Authorization header in its message: GitHub errors redact it,
    whole or cut short (the message is capped at 200 characters, a 2026 token is 520)."""
    from ghcr_janitor.net.github import _message

    token = long_token()
    request = httpx.Request("GET", "https://api.github.test/x", headers={"Authorization": f"Bearer {token}"})
    for echoed in (f"bad header: Bearer {token}", f"bad header: Bearer {token[:300]}", f"{token} and {token}"):
        text = _message(httpx.Response(400, json={"message": echoed}, request=request))
        assert token[:12] not in text and "********" in text, text
