"""The ECR store against the stand-in built from botocore's service model (tests/support/ecr_standin.py):
what moto does not do — pagination, filters, archived images, pull times, the 100-id caps, throttling —
plus the request counts the README gives."""

from __future__ import annotations

import asyncio
import os
import time
from types import SimpleNamespace

import pytest

from ghcr_janitor.core.errors import AuthError, ManifestError, NotFoundError, RegistryError, TagMovedError, UsageError
from ghcr_janitor.core.reference import parse_target
from ghcr_janitor.stores.ecr.registry import LastTagError, open_ecr
from tests.support.ecr_moto import aws_env, cache_manifest, dumps, image_manifest, index, sha
from tests.support.ecr_standin import HOST, EcrStandIn

DAY = 86400.0


@pytest.fixture
def standin(monkeypatch, tmp_path):
    with EcrStandIn() as server:
        aws_env(monkeypatch, server.url, tmp_path)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "4")
        yield server


def store(repo: str = "app"):
    return open_ecr(parse_target(f"{HOST}/{repo}"), SimpleNamespace(env=dict(os.environ), concurrency=16))


def run(coro):
    return asyncio.run(coro)


def listed(repo: str = "app"):
    """A fresh store's `list_versions()` and the requests it sent, by operation."""
    async def go():
        registry = store(repo)
        try:
            return await registry.list_versions(), dict(registry.requests)
        finally:
            await registry.aclose()

    return run(go())


def test_every_page_is_listed_with_archived_images_and_pull_times(standin):
    now = time.time()
    for i in range(2500):
        standin.put("app", cache_manifest(f"c{i}"), (f"cache-{i}",) if i % 2 else (), pushed=now - i * 60,
                    last_pulled=now - DAY if i == 1 else None, status="ARCHIVED" if i == 7 else "ACTIVE")

    versions, requests = listed()
    assert len(versions) == 2500                        # ECR's default (ACTIVE only) would drop the archived one
    assert requests == {"DescribeImages": 3}            # maxResults 1000: 3 pages
    by_tag = {t: v for v in versions for t in v.tags}
    assert by_tag["cache-1"].extra["last_pulled"].timestamp() == pytest.approx(now - DAY, abs=1)
    assert by_tag["cache-3"].extra["last_pulled"] is None            # never pulled
    assert by_tag["cache-3"].age_source == "ecr/pushed"
    assert by_tag["cache-7"].extra["archived"] is True
    assert by_tag["cache-9"].extra["archived"] is False
    assert all(body.get("filter") == {"tagStatus": "ANY", "imageStatus": "ANY"} and body["maxResults"] == 1000
               for op, body in standin.bodies if op == "DescribeImages")


def test_manifest_reads_go_100_at_a_time_verified_and_once(standin):
    digests = [standin.put("app", image_manifest(f"m{i}"), (f"t{i}",)) for i in range(250)]

    async def go():
        registry = store()
        try:
            first = await asyncio.gather(*(registry.get_manifest(d) for d in digests))
            again = await registry.get_manifest(digests[0])          # remembered: no request
            return first, again, dict(registry.requests)
        finally:
            await registry.aclose()

    first, again, requests = run(go())
    assert [raw.digest for raw in first] == digests
    assert again.body == first[0].body and again.media_type == "application/vnd.oci.image.manifest.v1+json"
    # Read without a listing first (as apply's last look does): the pull times are learnt (DescribeImages
    # is no pull) so that the reads can be told from pulls later.
    assert requests == {"BatchGetImage": 3, "DescribeImages": 3}
    sent = [body for op, body in standin.bodies if op == "BatchGetImage"]
    assert sorted(len(b["imageIds"]) for b in sent) == [50, 100, 100]
    assert "application/vnd.oci.image.index.v1+json" in sent[0]["acceptedMediaTypes"]
    assert "application/vnd.docker.distribution.manifest.list.v2+json" in sent[0]["acceptedMediaTypes"]


def test_a_manifest_that_does_not_match_its_digest_is_refused(standin):
    digest = standin.put("app", image_manifest("x"), ("t",))
    standin.repos["app"][digest].manifest = dumps(image_manifest("other"))

    async def go():
        registry = store()
        try:
            await registry.get_manifest(digest)
        finally:
            await registry.aclose()

    with pytest.raises(ManifestError, match="digest"):
        run(go())


def test_an_archived_image_ecr_will_not_serve_is_said_so(monkeypatch, tmp_path):
    with EcrStandIn(archived_readable=False) as server:
        aws_env(monkeypatch, server.url, tmp_path)
        digest = server.put("app", image_manifest("old"), ("v1",), status="ARCHIVED")

        async def go():
            registry = store()
            try:
                await registry.list_versions()
                await registry.get_manifest(digest)
            finally:
                await registry.aclose()

        with pytest.raises(ManifestError, match="archived"):
            run(go())


def test_deletes_go_100_per_call_and_each_failure_stays_with_its_own_id(standin):
    child = image_manifest("child")
    kept_child = standin.put("app", child)
    standin.put("app", index([(child, "amd64")]), ("release",))
    victims = [standin.put("app", cache_manifest(f"d{i}")) for i in range(150)]
    missing = sha("never pushed")

    async def go():
        registry = store()
        try:
            return await asyncio.gather(*(registry.delete_manifest(d) for d in [*victims, kept_child, missing]),
                                        return_exceptions=True), dict(registry.requests)
        finally:
            await registry.aclose()

    outcomes, requests = run(go())
    assert outcomes[:150] == [None] * 150
    assert isinstance(outcomes[150], RegistryError) and "ImageReferencedByManifestList" in str(outcomes[150])
    assert isinstance(outcomes[151], NotFoundError)
    assert requests == {"BatchDeleteImage": 2}
    assert all(len(b["imageIds"]) <= 100 for op, b in standin.bodies if op == "BatchDeleteImage")
    assert set(standin.repos["app"]) == {kept_child, sha(dumps(index([(child, "amd64")])))}


def test_untag_removes_one_tag_and_never_the_last_one(standin):
    shared = standin.put("app", cache_manifest("s"), ("cache-main-x", "keep"))
    alone = standin.put("app", cache_manifest("a"), ("cache-only",))

    async def go():
        registry = store()
        try:
            await registry.delete_tag("cache-main-x", shared)
            with pytest.raises(LastTagError, match="only tag"):
                await registry.delete_tag("cache-only", alone)
            with pytest.raises(TagMovedError, match="now points at"):
                await registry.delete_tag("cache-only", shared)
            with pytest.raises(NotFoundError):
                await registry.delete_tag("no-such-tag", shared)
        finally:
            await registry.aclose()

    run(go())
    assert standin.repos["app"][shared].tags == {"keep"}
    assert standin.repos["app"][alone].tags == {"cache-only"}       # still there, still tagged
    untags = [b for op, b in standin.bodies if op == "BatchDeleteImage"]
    assert untags == [{"registryId": "123456789012", "repositoryName": "app", "imageIds": [{"imageTag": "cache-main-x"}]}]


def test_current_tags_are_read_fresh_every_time(standin):
    first = standin.put("app", cache_manifest("1"), ("cache-a",))

    async def go():
        registry = store()
        try:
            before = await registry.current_tags()
            second = standin.put("app", cache_manifest("2"), ("cache-a", "cache-b"))
            after = await registry.current_tags()
            return before, after, second, dict(registry.requests)
        finally:
            await registry.aclose()

    before, after, second, requests = run(go())
    assert before == {"cache-a": first}
    assert after == {"cache-a": second, "cache-b": second}
    assert requests == {"ListImages": 2}


def test_throttling_is_backed_off_and_retried(standin):
    standin.put("app", cache_manifest("1"), ("cache-a",))
    standin.throttle(2)

    versions, requests = listed()
    assert [v.tags for v in versions] == [("cache-a",)]
    assert requests == {"DescribeImages": 3}            # two ThrottlingExceptions, then the answer


def test_throttling_that_outlasts_the_retries_is_one_clear_error(standin, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    standin.throttle(100)

    async def go():
        registry = store()
        try:
            await registry.list_versions()
        finally:
            await registry.aclose()

    with pytest.raises(RegistryError, match="ThrottlingException") as caught:
        run(go())
    assert "\n" not in str(caught.value)


def test_a_missing_repository_is_not_found(standin):
    with pytest.raises(NotFoundError, match="RepositoryNotFoundException"):
        listed("nothing-here")


def test_plain_http_endpoints_must_be_loopback(monkeypatch, tmp_path):
    aws_env(monkeypatch, "http://ecr.example.com", tmp_path)
    with pytest.raises(UsageError, match="AWS_ENDPOINT_URL_ECR: plain HTTP to ecr.example.com"):
        store()


def test_no_credentials_is_one_auth_error(standin, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    with pytest.raises(AuthError, match="no AWS credentials found"):
        listed()
    assert standin.requests == {}                       # nothing was sent unsigned


def test_without_boto3_the_install_hint_comes_before_any_contact(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_boto3(name, *args, **kwargs):
        if name.split(".")[0] in ("boto3", "botocore"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_boto3)
    with pytest.raises(UsageError) as caught:
        store()
    assert str(caught.value) == "ECR targets need boto3, which the `ecr` extra installs: pip install 'ghcr-janitor[ecr]'"


def test_the_janitors_own_read_is_told_from_a_pull(standin, tmp_path):
    from ghcr_janitor.stores.reads import OwnReads

    now = time.time()
    read_then_pulled = standin.put("app", cache_manifest("a"), ("a",), pushed=now - 90 * DAY, last_pulled=now - 40 * DAY)
    only_read = standin.put("app", cache_manifest("b"), ("b",), pushed=now - 90 * DAY)

    async def go():
        registry = store()
        registry.reads = OwnReads(tmp_path / "reads.sqlite")
        try:
            await registry.list_versions()
            await asyncio.gather(registry.get_manifest(read_then_pulled), registry.get_manifest(only_read))
            assert standin.repos["app"][only_read].last_pulled >= now        # ECR recorded the read as a pull
            standin.repos["app"][read_then_pulled].last_pulled = time.time() + 3600    # then a real pull
            return {v.digest: v.extra for v in await store_listing(tmp_path)}
        finally:
            await registry.aclose()

    async def store_listing(path):
        again = store()
        again.reads = OwnReads(path / "reads.sqlite")
        try:
            return await again.list_versions()
        finally:
            await again.aclose()

    extra = run(go())
    assert extra[only_read]["last_pulled"] is None and extra[only_read]["own_read"] is True
    assert extra[read_then_pulled]["last_pulled"].timestamp() > now + 3000


def test_an_endpoint_without_the_image_status_filter_is_asked_without_it(monkeypatch, tmp_path):
    with EcrStandIn(knows_image_status=False) as server:
        aws_env(monkeypatch, server.url, tmp_path)
        digest = server.put("app", cache_manifest("a"), ("cache-a",))

        async def go():
            registry = store()
            try:
                return await registry.list_versions(), await registry.current_tags()
            finally:
                await registry.aclose()

        versions, tags = run(go())
        assert [v.digest for v in versions] == [digest] and tags == {"cache-a": digest}
        assert server.requests == {"DescribeImages": 2, "ListImages": 2}


def test_an_untag_ecr_cannot_do_is_skipped_with_its_reason_not_as_moved(standin):
    """The applier reports the store's own reason (the only tag), not 'moved since planning'."""
    from ghcr_janitor.apply.applier import Applier
    from ghcr_janitor.apply.journal import Journal
    from ghcr_janitor.plan.model import Action

    alone = standin.put("app", cache_manifest("a"), ("cache-only",))

    async def go():
        registry = store()
        try:
            return await Applier(registry, "app", Journal(None)).run([Action("untag", "cache-only", alone)])
        finally:
            await registry.aclose()

    [result] = run(go()).results
    assert result.status == "skipped" and "only tag" in result.reason, result.reason
    assert "moved since planning" not in result.reason
    assert alone in standin.repos["app"]                    # the image and its one tag stay
