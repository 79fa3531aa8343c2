"""The `/v2` side every vendor store shares: a plain `OciRegistry` opened with the target host's
docker credentials (`open_oci`), and `OciSide`, the `Registry` methods a vendor store answers from
it unchanged (manifests, blobs, pushes, every tag's digest now). A vendor store keeps what its own
API does better: listing with the vendor's times, untagging, deleting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ghcr_janitor.core.errors import NotFoundError
from ghcr_janitor.stores.base import RawManifest
from ghcr_janitor.stores.oci.registry import OciRegistry

if TYPE_CHECKING:
    from ghcr_janitor.core.reference import Target


def open_oci(base_url: str, target: "Target", options: Any, credential_host: str, *, remember: bool = False) -> OciRegistry:
    """An `OciRegistry` for `target` at `base_url`, authenticated as `docker login` stored it for
    `credential_host` (--username/--password-stdin and JANITOR_* first); `remember`: keep the
    digests of earlier runs' tags (plain OCI, GitLab without the metadata API)."""
    from ghcr_janitor.net.auth.credentials import find_credentials
    from ghcr_janitor.net.auth.flow import RegistryAuth
    from ghcr_janitor.net.http import make_client
    from ghcr_janitor.stores.oci.memory import memory_in

    credentials = find_credentials(credential_host, options.username, options.password, options.settings)
    client = make_client(options.concurrency, RegistryAuth(credentials), base_url=base_url,
                         policy=options.settings.http)
    return OciRegistry(base_url, target.name, client, options.log, memory=memory_in(options.env) if remember else None)


class OciSide:
    """Mixin for a vendor store with an `oci` attribute (its `/v2`): reads and pushes go there."""

    oci: OciRegistry

    async def get_manifest(self, reference: str) -> RawManifest:
        return await self.oci.get_manifest(reference)

    async def get_blob(self, digest: str, max_size: int) -> bytes:
        return await self.oci.get_blob(digest, max_size)

    async def put_manifest(self, tag: str, body: bytes, media_type: str) -> str:
        return await self.oci.put_manifest(tag, body, media_type)

    async def tag_names(self) -> list[str]:
        """Every tag name now, from `/v2` (no vendor API budget); a repository without tags: none."""
        try:
            return await self.oci.list_tags()
        except NotFoundError:
            return []

    async def current_tags(self, names: list[str] | None = None) -> dict[str, str]:
        """Every tag (or each of `names`) -> its digest now, from `/v2`."""
        return await self.oci.current_tags(await self.tag_names() if names is None else names)
