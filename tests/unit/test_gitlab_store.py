"""The GitLab store's own guards, called directly against the stand-in: an untag re-checks the
tag's digest immediately before the vendor delete; a digest is deleted only after its tags were
removed through the tag API (a locked one refuses it); while applying, a digest this store untagged
and kept is never taken for gone."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from ghcr_janitor.core.errors import RegistryError, TagMovedError
from ghcr_janitor.core.reference import parse_target
from ghcr_janitor.core.settings import Settings
from ghcr_janitor.stores.connect import ConnectOptions
from ghcr_janitor.stores.gitlab.registry import open_store
from tests.support.gitlab_standin import GitLabStandIn
from tests.support.push import OCI_MANIFEST, Pusher

OLD = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def setup(registry, tmp_path):
    with GitLabStandIn(registry.url) as standin:
        path = f"unit/gl{id(tmp_path) % 100000}"
        standin.project(path, images=("cache",))
        settings = tmp_path / "s.toml"
        settings.write_text(f'[hosts."registry.gitlab.com"]\nregistry_url = "{standin.url}"\napi_url = "{standin.url}"\n')
        env = {"JANITOR_SETTINGS": str(settings), "GITLAB_TOKEN": standin.token,
               "JANITOR_STATE_DIR": str(tmp_path / "state"), "DOCKER_CONFIG": str(tmp_path / "dc")}
        options = ConnectOptions(settings=Settings.from_env(env))
        target = parse_target(f"registry.gitlab.com/{path}/cache")
        yield standin, Pusher(standin.url, f"{path}/cache"), lambda: open_store(target, options,
                                                                               options.settings.host(target.host))


def run(coro):
    return asyncio.run(coro)


def test_an_untag_of_a_moved_tag_sends_no_delete(setup):
    standin, repo, store = setup
    old, _ = repo.buildkit_cache("cache-a", [b"old" * 20], OLD)
    new, _ = repo.buildkit_cache("cache-a", [b"new" * 20], OLD)

    async def go():
        s = store()
        try:
            await s.delete_tag("cache-a", old)
        finally:
            await s.aclose()

    with pytest.raises(TagMovedError):
        run(go())
    assert [c for c in standin.calls if c[0] == "DELETE"] == []
    assert repo.tags() == {"cache-a": new}


def test_a_digest_delete_untags_first_and_a_locked_tag_refuses_it(setup):
    standin, repo, store = setup
    digest, body = repo.buildkit_cache("cache-a", [b"x" * 20], OLD)
    repo.manifest("release-1", body, OCI_MANIFEST)

    async def go():
        s = store()
        try:
            await s.current_tags()                  # the last look
            await s.delete_manifest(digest)
        finally:
            await s.aclose()

    standin.protect(repo.repo.rsplit("/", 1)[0], "^release-")
    with pytest.raises(RegistryError, match="release-1 is locked"):
        run(go())
    assert [c for c in standin.calls if c[0] == "DELETE"] == []
    standin.rules.clear()
    run(go())
    deletes = [p for m, p, _ in standin.calls if m == "DELETE"]
    assert [p.rsplit("/", 1)[-1] for p in deletes] == ["cache-a", "release-1", digest] or \
        [p.rsplit("/", 1)[-1] for p in deletes] == ["release-1", "cache-a", digest]
    assert repo.tags() == {}


def test_while_applying_an_untagged_kept_digest_is_still_listed(setup):
    standin, repo, store = setup
    digest, body = repo.buildkit_cache("cache-a", [b"k" * 20], OLD)

    async def go():
        s = store()
        try:
            await s.current_tags()
            await s.delete_tag("cache-a", digest)
            return {v.digest: v.tags for v in await s.list_versions()}
        finally:
            await s.aclose()

    assert run(go()) == {digest: ()}
