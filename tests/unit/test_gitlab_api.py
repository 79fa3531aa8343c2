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
