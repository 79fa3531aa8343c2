"""The one exception tree: every store maps what its backend raises (httpx errors, OS errors of a
layout, API answers) into these, so nothing above `stores/` sees a backend's own exceptions.

Each message is the one line the user reads (no traceback, no secret). Which exit code an error
ends a command with is the CLI's business (`cli.common.exit_code_for`): usage errors 2, others 1.
"""

from __future__ import annotations


class JanitorError(Exception):
    """Base error: a clear one-line message for the user (a command ends with exit code 1)."""


class UsageError(JanitorError):
    """Bad flags, targets, environment, policy or plan files (a command ends with exit code 2)."""


class PolicyError(UsageError):
    """An invalid policy file; message names the file and key."""


class PlanError(UsageError):
    """An invalid or unreadable plan file."""


class TargetsFailed(JanitorError):
    """Some targets of a library call could not be read (one line each in the message); the
    inventories of the others are in `inventories`, each failure's reason in `failures`."""

    def __init__(self, failures: dict[str, str], inventories: list | None = None):
        super().__init__("\n".join(f"{target}: {why}" for target, why in failures.items()))
        self.failures = failures
        self.inventories = inventories or []


class RegistryError(JanitorError):
    """The registry answered something we cannot use."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class NetworkError(RegistryError):
    """A backend could not be reached, or the connection broke, after the retries: its message is
    the one-line description ("connection failed (HOST: connection refused)", "timed out ...")."""


class NotFoundError(RegistryError):
    """Repository, tag or manifest not found (404)."""


class TagMovedError(RegistryError):
    """A tag no longer points at the digest an action was pinned to: the action is skipped."""


class CannotUntag(RegistryError):
    """The store cannot remove this tag without deleting more (ECR deletes an image with its last
    tag): the untag is skipped with this reason."""


class TargetStopped(RegistryError):
    """The store accepts no more changes to this target in this run (GitHub's secondary rate limit:
    continuing may get an integration banned). Apply fails the target's remaining actions with this
    message, sending nothing more; a rerun continues."""


class AuthError(RegistryError):
    """Authentication or authorisation failed (401/403)."""


class ManifestError(JanitorError):
    """A manifest that cannot be parsed, is too large or does not match its digest."""


class LayoutError(JanitorError):
    """A local OCI layout directory that is missing or corrupt."""


def describe(exc: BaseException) -> str:
    """One line for an error met while talking to a store (never a traceback): a JanitorError says
    itself (network trouble included: the stores map it into `NetworkError`)."""
    if isinstance(exc, JanitorError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
