"""A local OCI layout as a store: the `Registry` over its index and blobs (`registry.py`), and the
power to collect what deletes left behind (`gc.py`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from ghcr_janitor.stores.layout.gc import GcReport, run_gc
from ghcr_janitor.stores.layout.registry import LayoutRegistry


class LayoutStore(LayoutRegistry):
    """`oci-layout:PATH`: deletes drop index entries and manifests; blobs stay until gc
    (`CollectsGarbage`), which `prune` runs after applying, unless --no-gc."""

    def collect_garbage(self, grace: timedelta, now: datetime) -> GcReport:
        """Delete blobs no tag reaches that are older than `grace` (`janitor gc` on this layout)."""
        return run_gc(self.root, grace, now, dry_run=False)
