"""What a GAR or GCR target names: registry flavour, location, project, repository, image."""

from __future__ import annotations

from dataclasses import dataclass

from ghcr_janitor.core.errors import UsageError
from ghcr_janitor.core.reference import GLOB_CHARS, Target

AR_SUFFIX = "-docker.pkg.dev"
DEFAULT_API_URL = "https://artifactregistry.googleapis.com"


@dataclass(frozen=True)
class GarName:
    """`ar`: LOCATION-docker.pkg.dev/PROJECT/REPOSITORY/IMAGE; `gcr`: [REGION.]gcr.io/PROJECT/IMAGE."""

    flavour: str                # "ar" | "gcr"
    host: str
    project: str
    location: str | None = None     # Artifact Registry only
    repository: str | None = None   # Artifact Registry only
    image: str = ""                 # the package (may hold "/"); "" for a glob above the image level

    @property
    def repository_path(self) -> str:
        """`projects/P/locations/L/repositories/R` (Artifact Registry REST resource name)."""
        return f"projects/{self.project}/locations/{self.location}/repositories/{self.repository}"


def is_ar(host: str) -> bool:
    return host.lower().endswith(AR_SUFFIX)


def _fixed_parts(target: Target) -> list[str]:
    """The name's parts before the first one holding a glob character (all of them for a repository)."""
    parts = target.name.split("/")
    if target.glob:
        for i, part in enumerate(parts):
            if any(c in part for c in GLOB_CHARS):
                return parts[:i]
    return parts


def parse_name(target: Target) -> GarName:
    """The GAR/GCR parts of `target`; UsageError naming the expected form when parts are missing."""
    host = target.host.lower()
    parts = _fixed_parts(target)
    if is_ar(host):
        location = host[: -len(AR_SUFFIX)]
        need = 1 if target.glob else 3
        if len(parts) < need:
            raise UsageError(f"target {target}: expected {host}/PROJECT/REPOSITORY/IMAGE (Artifact Registry), "
                             f"or a glob such as {host}/PROJECT/REPOSITORY/*")
        return GarName("ar", host, parts[0], location, parts[1] if len(parts) > 1 else None,
                       "/".join(parts[2:]))
    need = 1 if target.glob else 2
    if len(parts) < need:
        raise UsageError(f"target {target}: expected {host}/PROJECT/IMAGE (Container Registry), "
                         f"or a glob such as {host}/PROJECT/*")
    return GarName("gcr", host, parts[0], image="/".join(parts[1:]))
