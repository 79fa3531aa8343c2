"""The GAR store against its stand-in, in-process: the listing (one GET, `Link` pages merged), the
refusals GAR sends for a digest DELETE (still tagged, still in an index) mapped to one-line skips,
the tag HEAD before every untag (a guard shown to be load-bearing), REST pagination for globs."""

from __future__ import annotations

import asyncio
import itertools
import os
from datetime import datetime, timezone

import pytest

from ghcr_janitor.core.errors import AuthError, NotFoundError, TagMovedError
from ghcr_janitor.core.reference import parse_target
from ghcr_janitor.core.settings import Settings
from ghcr_janitor.stores.connect import ConnectOptions, open_registry
from ghcr_janitor.stores.gar import api as gar_api
from ghcr_janitor.stores.gar.registry import GarRegistry, StillReferenced, repository_names
from tests.support.gar_standin import GarStandIn
from tests.support.push import Pusher

TOKEN = "ya29.store-test-token-never-printed"
READER = "ya29.reader-token-never-printed"
WHEN = datetime(2026, 1, 1, tzinfo=timezone.utc)


_projects = itertools.count()


@pytest.fixture
def project() -> str:
    """A project of this test's own on the shared registry."""
    return f"p{next(_projects)}-{os.getpid()}"


@pytest.fixture
def NAME(project) -> str:
    return f"{project}/cache/app"


@pytest.fixture
def standin(registry, tmp_path, monkeypatch):
    with GarStandIn(registry.url, token=TOKEN, readonly=(READER,)) as server:
        settings = tmp_path / "settings.toml"
        settings.write_text(f'[hosts."us-docker.pkg.dev"]\nregistry_url = "{server.url}"\napi_url = "{server.url}"\n'
                            f'[hosts."gcr.io"]\nregistry_url = "{server.url}"\n')
        monkeypatch.setenv("JANITOR_SETTINGS", str(settings))
        yield server


def connect(token: str = TOKEN) -> ConnectOptions:
    return ConnectOptions(settings=Settings.from_env({**os.environ, "GOOGLE_OAUTH_ACCESS_TOKEN": token}))


def store(name: str, token: str = TOKEN) -> GarRegistry:
    opened = open_registry(parse_target(f"us-docker.pkg.dev/{name}"), connect(token))
    assert isinstance(opened, GarRegistry)
    return opened


def pusher(standin: GarStandIn, name: str) -> Pusher:
    standin.token = None            # pushes go round the auth (tests build the world)
    return Pusher(standin.url, name)


def run(coro):
    return asyncio.run(coro)


def test_one_get_lists_every_manifest_and_link_pages_are_merged(standin, NAME):
    p = pusher(standin, NAME)
    tagged = {f"cache-{i}": p.buildkit_cache(f"cache-{i}", [b"l%d" % i], WHEN)[0] for i in range(5)}
    loose = p.image(None, [b"loose"], WHEN)[0]
    standin.token = TOKEN

    async def listed():
        s = store(NAME)
        try:
            return await s.list_versions(), await s.current_tags()
        finally:
            await s.aclose()

    before = standin.count("GET", f"/v2/{NAME}/tags/list")
    versions, current = run(listed())
    assert current == tagged
    assert {v.digest: v.tags for v in versions} == {**{d: (t,) for t, d in tagged.items()}, loose: ()}
    assert all(v.age_source == "gar/uploaded" and v.extra["pushed"] for v in versions)
    # One listing for the inventory and one fresh for the look (each after one 401 challenge at most).
    assert standin.count("GET", f"/v2/{NAME}/tags/list") - before <= 3
    standin.list_page = 2
    paged_versions, paged_current = run(listed())
    assert paged_current == tagged and {v.digest for v in paged_versions} == {v.digest for v in versions}


def test_untag_keeps_the_manifest_and_a_moved_or_missing_tag_is_left_alone(standin, NAME):
    p = pusher(standin, NAME)
    digest = p.buildkit_cache("cache-a", [b"a"], WHEN)[0]
    p.manifest("cache-b", standin.manifest(NAME, digest)[0], "application/vnd.oci.image.manifest.v1+json")
    other = p.buildkit_cache("cache-c", [b"c"], WHEN)[0]
    standin.token = TOKEN

    async def go():
        s = store(NAME)
        try:
            await s.delete_tag("cache-a", digest)
            with pytest.raises(TagMovedError):
                await s.delete_tag("cache-c", digest)
            with pytest.raises(NotFoundError):
                await s.delete_tag("cache-a", digest)
        finally:
            await s.aclose()

    run(go())
    assert standin.tags(NAME) == {"cache-b": digest, "cache-c": other}


def test_gar_refusals_are_one_line_skips_and_nothing_else_goes(standin, NAME):
    p = pusher(standin, NAME)
    tagged = p.buildkit_cache("cache-a", [b"a"], WHEN)[0]
    child, body = p.image(None, [b"child"], WHEN)
    index = p.index("multi", [(child, body, {"os": "linux", "architecture": "amd64"})])[0]
    standin.token = TOKEN

    async def go():
        s = store(NAME)
        try:
            with pytest.raises(StillReferenced) as dangling_tag:
                await s.delete_manifest(tagged)          # no look saw its tag: GAR refuses, nothing untagged
            with pytest.raises(StillReferenced) as dangling_parent:
                await s.delete_manifest(child)
            return str(dangling_tag.value), str(dangling_parent.value)
        finally:
            await s.aclose()

    tag_line, parent_line = run(go())
    assert "GOOGLE_MANIFEST_DANGLING_TAG" in tag_line and "\n" not in tag_line
    assert "GOOGLE_MANIFEST_DANGLING_PARENT_IMAGE" in parent_line and index in parent_line and "\n" not in parent_line
    assert standin.tags(NAME) == {"cache-a": tagged, "multi": index}
    assert set(standin.present(NAME)) == {tagged, child, index}


def test_delete_removes_the_looked_at_tags_first_then_the_digest(standin, NAME):
    p = pusher(standin, NAME)
    digest = p.buildkit_cache("cache-a", [b"a"], WHEN)[0]
    p.manifest("cache-b", standin.manifest(NAME, digest)[0], "application/vnd.oci.image.manifest.v1+json")
    standin.token = TOKEN

    async def go():
        s = store(NAME)
        try:
            await s.current_tags()                       # the last look
            await s.delete_manifest(digest)
        finally:
            await s.aclose()

    run(go())
    assert standin.tags(NAME) == {} and standin.present(NAME) == set()


@pytest.mark.parametrize("guarded", [True, False])
def test_a_tag_moved_after_the_look_is_never_removed_and_the_head_is_what_stops_it(standin, NAME, monkeypatch, guarded):
    """The HEAD before each tag DELETE is the guard: without it the moved tag is removed from the
    foreign actor's new image (the damage this test would catch)."""
    p = pusher(standin, NAME)
    digest = p.buildkit_cache("cache-a", [b"a"], WHEN)[0]
    standin.token = TOKEN
    if not guarded:
        from ghcr_janitor.stores.oci.registry import OciRegistry

        async def no_look(self, tag, digest):
            return None
        monkeypatch.setattr(OciRegistry, "expect_tag", no_look)

    async def go():
        s = store(NAME)
        try:
            await s.current_tags()                       # the last look: cache-a -> digest
            standin.token = None
            moved = pusher(standin, NAME).buildkit_cache("cache-a", [b"new"], WHEN)[0]   # a foreign push
            standin.token = TOKEN
            try:
                await s.delete_manifest(digest)
            except StillReferenced as exc:
                return moved, str(exc)
            return moved, None
        finally:
            await s.aclose()

    moved, refused = run(go())
    if guarded:
        assert refused and "now points at" in refused
        assert standin.tags(NAME) == {"cache-a": moved}
    else:
        assert standin.tags(NAME) == {}             # the mutant removed the foreign actor's tag


def test_a_reader_token_is_refused_deletes_in_one_line_with_the_role(standin, NAME):
    p = pusher(standin, NAME)
    digest = p.image(None, [b"loose"], WHEN)[0]
    standin.token = TOKEN

    async def go():
        s = store(NAME, token=READER)
        try:
            await s.delete_manifest(digest)
        finally:
            await s.aclose()

    with pytest.raises(AuthError) as refused:
        run(go())
    assert "roles/artifactregistry.repoAdmin" in str(refused.value) and READER not in str(refused.value)
    assert digest in standin.present(NAME)


def test_globs_list_artifact_registry_packages_page_by_page_and_walk_gcr_children(standin, project, monkeypatch):
    for name in ("cache/app", "cache/team/api", "other/web", "app", "app/sub/x"):
        pusher(standin, f"{project}/{name}").buildkit_cache("cache", [name.encode()], WHEN)
    standin.token = TOKEN
    monkeypatch.setattr(gar_api, "PAGE_SIZE", 1)
    options = connect()
    host = options.settings.host("us-docker.pkg.dev")
    before = standin.count("GET", "/v1/")
    assert run(repository_names(parse_target(f"us-docker.pkg.dev/{project}/cache/*"), options, host)) == \
        [f"{project}/cache/app", f"{project}/cache/team/api"]
    assert standin.count("GET", "/v1/") - before == 2        # one package a page: two pages
    assert run(repository_names(parse_target(f"us-docker.pkg.dev/{project}/*"), options, host)) == \
        [f"{project}/{n}" for n in ("app/sub/x", "cache/app", "cache/team/api", "other/web")]   # `app`: a repository
    gcr = options.settings.host("gcr.io")
    assert run(repository_names(parse_target(f"gcr.io/{project}/*"), options, gcr)) == \
        [f"{project}/{n}" for n in ("app", "app/sub/x", "cache/app", "cache/team/api", "other/web")]
