"""The shared base of the vendor stand-ins forwards /v2 to the real registry, records push times,
and untags on it without losing the manifest."""

from __future__ import annotations

from datetime import datetime, timezone

from tests.support.push import Pusher
from tests.support.vendor_standin import Fault, Reply, VendorStandIn


def test_the_base_forwards_records_pushes_and_untags(registry):
    with VendorStandIn(registry.url) as standin:
        pusher = Pusher(standin.url, "standin/base")
        when = datetime(2026, 1, 1, tzinfo=timezone.utc)
        digest, body = pusher.buildkit_cache("cache-a", [b"one", b"two"], when)
        pusher.manifest("cache-b", body, "application/vnd.oci.image.manifest.v1+json")
        assert standin.tags("standin/base") == {"cache-a": digest, "cache-b": digest}
        assert ("standin/base", digest) in standin.pushed and ("standin/base", "cache-b") in standin.tag_pushed
        standin.untag("standin/base", "cache-a")
        assert standin.tags("standin/base") == {"cache-b": digest}
        assert standin.resolve("standin/base", digest) == digest
        standin.faults.append(Fault("GET /v2/standin/base/tags", Reply(503, b"busy")))
        assert pusher.client.get(f"{standin.url}/v2/standin/base/tags/list").status_code == 503
        assert pusher.client.get(f"{standin.url}/v2/standin/base/tags/list").json()["tags"] == ["cache-b"]
        assert standin.count("GET", "/v2/standin/base/tags") == 2
