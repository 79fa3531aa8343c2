"""Exception hierarchy; each error carries the exit code the CLI uses."""

from __future__ import annotations


class JanitorError(Exception):
    """Base error: a clear one-line message for the user; exit code 1."""

    exit_code = 1


class UsageError(JanitorError):
    """Bad flags, targets, policy or plan files: exit code 2."""

    exit_code = 2


class PolicyError(UsageError):
    """An invalid policy file; message names the file and key."""


class PlanError(UsageError):
    """An invalid or unreadable plan file."""


class RegistryError(JanitorError):
    """The registry answered something we cannot use."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class NotFoundError(RegistryError):
    """Repository, tag or manifest not found (404)."""


class TagMovedError(RegistryError):
    """A tag no longer points at the digest an action was pinned to: the action is skipped."""


class AuthError(RegistryError):
    """Authentication or authorisation failed (401/403)."""


class ManifestError(JanitorError):
    """A manifest that cannot be parsed, is too large or does not match its digest."""


class LayoutError(JanitorError):
    """A local OCI layout directory that is missing or corrupt."""
