"""GitLab's REST client and the store's small parts, against respx fixtures shaped as GitLab's docs
show them: pagination (Link, X-Next-Page, keyset with the 405 fallback), one-line errors without the
token, the project/repository split (longest project path first), tag rules, where the API lives and
which token goes there."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import respx

from ghcr_janitor.core.errors import AuthError, NotFoundError, UsageError
from ghcr_janitor.core.settings import HostSettings, Settings
from ghcr_janitor.net.auth.secret import Secret
from ghcr_janitor.net.http import RequestLog, make_client
from ghcr_janitor.stores.gitlab.api import GitLabApi, RestToken
from ghcr_janitor.stores.gitlab.locks import lock_reason, parse_rules
from ghcr_janitor.stores.gitlab.where import api_url, locate, prefixes, rest_token

GL = "https://gitlab.example.com"
TOKEN = "glpat-unit-secret-token"


def client(token: str | None = TOKEN) -> GitLabApi:
    return GitLabApi(GL, make_client(2, None, base_url=GL), RestToken("PRIVATE-TOKEN", Secret(token), "GITLAB_TOKEN")
                     if token else None, RequestLog())


def run(coro):
    return asyncio.run(coro)


class Options:
    def __init__(self, env: dict[str, str]):
        self.settings = Settings(env=env)


@respx.mock
def test_tag_names_follow_keyset_links_and_fall_back_to_offset_pages_on_405():
    base = f"{GL}/api/v4/projects/7/registry/repositories/3/tags"
    keyset = respx.get(base, params={"pagination": "keyset"}).mock(return_value=httpx.Response(405, json={"message": "405"}))
    page2 = f"{base}?per_page=100&page=2"
    respx.get(base, params={"page": "2"}).mock(return_value=httpx.Response(200, json=[{"name": "b"}]))
    first = respx.get(base).mock(return_value=httpx.Response(
        200, json=[{"name": "c"}, {"name": "a"}], headers={"Link": f'<{page2}>; rel="next"', "X-Next-Page": "2"}))
    names = run(client().tag_names(7, 3, "r.example/g/p"))
    assert names == ["a", "b", "c"]
    assert keyset.called and first.called
    sent = first.calls[0].request
    assert sent.headers["PRIVATE-TOKEN"] == TOKEN and "per_page=100" in str(sent.url)


@respx.mock
def test_keyset_pages_are_followed_by_their_link():
    base = f"{GL}/api/v4/projects/7/registry/repositories/3/tags"
    nxt = f"{base}?pagination=keyset&per_page=100&last=b"
    respx.get(base, params={"last": "b"}).mock(return_value=httpx.Response(200, json=[{"name": "c"}]))
    respx.get(base).mock(return_value=httpx.Response(200, json=[{"name": "a"}, {"name": "b"}],
                                                     headers={"Link": f'<{nxt}>; rel="next"'}))
    assert run(client().tag_names(7, 3, "x")) == ["a", "b", "c"]


@respx.mock
def test_errors_are_one_line_name_the_target_and_never_the_token():
    respx.delete(f"{GL}/api/v4/projects/7/registry/repositories/3/tags/release").mock(
        return_value=httpx.Response(403, json={"message": "403 Forbidden"}))
    with pytest.raises(AuthError) as refused:
        run(client().delete_tag(7, 3, "release", "r.example/g/p"))
    text = str(refused.value)
    assert "untagging r.example/g/p:release" in text and "403" in text and "\n" not in text
    assert TOKEN not in text and TOKEN not in repr(client())
    respx.get(f"{GL}/api/v4/projects/g%2Fp").mock(return_value=httpx.Response(401, json={"message": "401 Unauthorized"}))
    with pytest.raises(AuthError) as denied:
        run(client().project("g/p"))
    assert "GITLAB_TOKEN" in str(denied.value) and TOKEN not in str(denied.value)


@respx.mock
def test_the_longest_project_path_holding_the_repository_wins():
    respx.get(f"{GL}/api/v4/projects/g%2Fsub%2Fp%2Fimg").mock(return_value=httpx.Response(404, json={}))
    respx.get(f"{GL}/api/v4/projects/g%2Fsub%2Fp").mock(
        return_value=httpx.Response(200, json={"id": 9, "path_with_namespace": "g/sub/p"}))
    respx.get(f"{GL}/api/v4/projects/9/registry/repositories").mock(return_value=httpx.Response(
        200, json=[{"id": 1, "path": "g/sub/p"}, {"id": 2, "path": "g/sub/p/img"}]))
    found = run(locate(client(), "g/sub/p/img", "r/g/sub/p/img"))
    assert (found.project_id, found.repository_id, found.project_path) == (9, 2, "g/sub/p")
    assert prefixes("a/b/c/d") == ["a/b/c/d", "a/b/c", "a/b"]


@respx.mock
def test_a_repository_no_project_holds_is_not_found_with_what_was_tried():
    respx.get(url__regex=rf"{GL}/api/v4/projects/.*").mock(return_value=httpx.Response(404, json={}))
    with pytest.raises(NotFoundError) as missing:
        run(locate(client(None), "g/p/img", "r/g/p/img"))
    assert "tried g/p/img, g/p" in str(missing.value) and "GITLAB_TOKEN" in str(missing.value)


def test_tag_rules_lock_what_they_match_immutable_first():
    rules = parse_rules([{"tag_name_pattern": "^v", "minimum_access_level_for_push": "maintainer",
                          "minimum_access_level_for_delete": "owner"},
                         {"tag_name_pattern": "^v1$", "minimum_access_level_for_push": None,
                          "minimum_access_level_for_delete": None}])
    assert lock_reason(rules, "v1").startswith("immutable tag")
    assert lock_reason(rules, "v2") == "protected tag: deleting needs owner (GitLab tag rule '^v')"
    assert lock_reason(rules, "cache-main") is None
    unreadable = parse_rules([{"tag_name_pattern": "*-release"}])        # a glob: not a Python regex
    assert "every tag kept" in lock_reason(unreadable, "cache-main")


def test_where_the_api_lives_and_which_token_goes_there():
    none = HostSettings()
    assert api_url("registry.gitlab.com", Options({}), none) == "https://gitlab.com"
    assert api_url("gl.example.com:5050", Options({"CI_SERVER_URL": "https://gl.example.com/"}), none) == \
        "https://gl.example.com"
    with pytest.raises(UsageError, match="api_url"):
        api_url("gl.example.com:5050", Options({}), none)
    # A job token goes only to the GitLab that ran the job.
    job = {"CI_JOB_TOKEN": "job-secret", "CI_SERVER_URL": "https://gl.example.com"}
    assert rest_token("h", "https://gl.example.com", Options(job), none).header == "JOB-TOKEN"
    assert rest_token("h", "https://gitlab.com", Options(job), none) is None
    assert rest_token("h", "https://gitlab.com", Options({**job, "GITLAB_TOKEN": "pat"}), none).header == "PRIVATE-TOKEN"
    named = HostSettings(token_env="MY_GL", token="abc")
    assert rest_token("h", "https://gitlab.com", Options({"GITLAB_TOKEN": "pat"}), named).source == "MY_GL"
    with pytest.raises(UsageError, match="not set"):
        rest_token("h", "https://gitlab.com", Options({}), HostSettings(token_env="MY_GL"))
    with pytest.raises(UsageError, match="plain HTTP"):
        rest_token("h", "http://gl.example.com", Options({"GITLAB_TOKEN": "pat"}), none)
    assert rest_token("h", "http://127.0.0.1:8080", Options({"GITLAB_TOKEN": "pat"}), none) is not None


# --- review findings H2, H3, M1, M3 ---------------------------------------------------------------
LONG = "glpat-" + "S" * 514         # a 520-character token


@pytest.mark.parametrize("link", ["http://evil.example.net/steal?page=2", "https://other-gitlab.example.org/api/v4/x",
                                  "http://gitlab.example.com/api/v4/x?page=2", "//evil.example.net/x"])
@pytest.mark.parametrize("header", ["PRIVATE-TOKEN", "JOB-TOKEN"])
@respx.mock
def test_a_next_link_off_the_gitlab_is_not_followed_and_the_token_stays_home(link, header):
    from ghcr_janitor.core.errors import RegistryError

    api = GitLabApi(GL, make_client(2, None, base_url=GL), RestToken(header, Secret(LONG), "GITLAB_TOKEN"), RequestLog())
    elsewhere = [respx.route(host=h).mock(return_value=httpx.Response(200, json=[]))
                 for h in ("evil.example.net", "other-gitlab.example.org")]
    plain = respx.route(scheme="http").mock(return_value=httpx.Response(200, json=[]))
    respx.get(f"{GL}/api/v4/projects/7/registry/repositories").mock(return_value=httpx.Response(
        200, json=[{"id": 1, "path": "g/p"}], headers={"Link": f'<{link}>; rel="next"'}))
    with pytest.raises(RegistryError, match="another host") as caught:
        run(api.repositories(7))
    assert not any(r.called for r in elsewhere) and not plain.called and LONG[:12] not in str(caught.value)


@pytest.mark.parametrize("url", ["http://evil.example.net/api/v4/projects/1", "https://evil.example.net/api/v4/x",
                                 "https://gitlab.example.com:8443/api/v4/x", "http://gitlab.example.com/api/v4/x"])
@respx.mock
def test_every_request_is_checked_as_it_is_sent(url):
    from ghcr_janitor.core.errors import RegistryError

    anywhere = respx.route().mock(return_value=httpx.Response(200, json={}))
    with pytest.raises(RegistryError, match="not sent"):
        run(client(LONG)._send("GET", url, "reading"))
    assert not anywhere.called


@respx.mock
def test_a_token_never_goes_over_plain_http_to_a_host_that_is_not_loopback():
    evil = respx.route().mock(return_value=httpx.Response(404, json={}))
    api = GitLabApi("http://gitlab.example.net", make_client(2, None, base_url="http://gitlab.example.net"),
                    RestToken("PRIVATE-TOKEN", Secret(LONG), "GITLAB_TOKEN"), RequestLog())
    with pytest.raises(AuthError, match="in clear"):
        run(api.project("g/p"))
    assert not evil.called


@pytest.mark.parametrize("api", ["http://localhost:1@evil.example.net", "http://127.0.0.1@evil.example.net:80",
                                 "http://evil.example.net"])
def test_the_plain_http_check_looks_at_the_host_httpx_sends_to(api):
    options = Options({"GITLAB_TOKEN": LONG})
    with pytest.raises(UsageError) as caught:
        rest_token("registry.example.net", api, options, HostSettings(kind="gitlab", api_url=api))
    assert "evil" not in str(caught.value) or "user name or password" not in str(caught.value)
    assert "localhost:1@" not in str(caught.value) and LONG[:12] not in str(caught.value)


def test_plain_http_to_loopback_is_allowed():
    options = Options({"GITLAB_TOKEN": LONG})
    assert rest_token("r", "http://127.0.0.1:8929", options, HostSettings(kind="gitlab")) is not None
    assert rest_token("r", "http://localhost:8929", options, HostSettings(kind="gitlab")) is not None


def test_the_job_token_goes_only_to_the_gitlab_that_ran_the_job():
    env = {"CI_JOB_TOKEN": LONG, "CI_SERVER_URL": "https://gitlab.example.com"}
    assert rest_token("r", "https://gitlab.example.com:443/", Options(env), HostSettings()) is not None
    assert rest_token("r", "https://other.example.com", Options(env), HostSettings()) is None
    assert rest_token("r", "https://gitlab.example.com:8443", Options(env), HostSettings()) is None


@respx.mock
def test_an_echoed_token_is_scrubbed_before_the_message_is_cut():
    respx.get(url__startswith=GL).mock(return_value=httpx.Response(
        400, json={"message": f"bad token {LONG} given"}))
    with pytest.raises(Exception) as caught:
        run(client(LONG).project("g/p"))
    assert LONG[:12] not in str(caught.value) and "********" in str(caught.value)


@respx.mock
def test_an_answer_over_the_cap_is_one_line_not_read_whole():
    from ghcr_janitor.core.errors import RegistryError
    from ghcr_janitor.stores.gitlab.api import BODY_CAP

    respx.get(url__startswith=GL).mock(return_value=httpx.Response(
        200, content=b'[{"name": "' + b"x" * (BODY_CAP + 10) + b'"}]'))
    with pytest.raises(RegistryError, match="byte cap"):
        run(client().repositories(7))
