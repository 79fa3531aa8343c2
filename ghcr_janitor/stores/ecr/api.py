"""The Amazon ECR API through boto3 (the `ecr` extra), run in threads, with every botocore error
mapped to `core.errors` here: nothing above this module sees botocore.

- boto3 is synchronous: each call runs on this store's own thread pool (at most `MAX_WORKERS`
  threads, and botocore's connection pool is sized to match), so the engine's asyncio loop stays
  free and concurrency stays bounded.
- Credentials: boto3's standard chain (environment, shared profile files and `AWS_PROFILE`, web
  identity as in a GitHub OIDC job: `AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`, SSO, container
  and instance roles). Static keys and a profile named in the run's environment are passed on
  explicitly, so a library caller's `env` is honoured.
- Endpoint: `AWS_ENDPOINT_URL_ECR`, else `AWS_ENDPOINT_URL` (unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`
  is true), else botocore's own resolution (the config file's `services` section, then the
  regional endpoint of the region the registry host names). A plain-HTTP endpoint must be a
  loopback host: the request would carry the session token in clear.
- Retries: botocore's `adaptive` retry mode with 5 attempts: the `standard` mode's retries
  (exponential backoff with jitter on `ThrottlingException`, 5xx and connection errors) plus its
  client-side rate limiter, which sends at full speed until ECR throttles, then cuts the send rate
  and grows it back (CUBIC) while answers are clean: the same adaptive pacing as the GitHub deletes
  (net/pacing.py), one limiter per client (one per store), shared by its threads. Unless the
  environment sets `AWS_RETRY_MODE` or `AWS_MAX_ATTEMPTS` (then those win, e.g. `standard`).
- Every HTTP request sent (retries included) is counted per operation (`EcrApi.requests`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Mapping
from urllib.parse import urlsplit

from ghcr_janitor.core.errors import AuthError, JanitorError, NotFoundError, RegistryError, UsageError
from ghcr_janitor.core.reference import EcrHost, is_loopback

INSTALL_HINT = "ECR targets need boto3, which the `ecr` extra installs: pip install 'ghcr-janitor[ecr]'"
MAX_WORKERS = 16                 # threads per store (botocore's connection pool is sized to match)
DEFAULT_MAX_ATTEMPTS = 5         # botocore standard retry mode: jittered backoff of at most 1, 2, 4, 8 s
PAGE_SIZE = 1000                 # DescribeImages / ListImages / DescribeRepositories maxResults (the API's maximum)
MAX_PAGES = 10_000

# Error codes that mean "who you are / what you may do" rather than "what you asked for".
_AUTH_CODES = {"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
               "ExpiredTokenException", "ExpiredToken", "InvalidClientTokenId", "UnauthorizedOperation",
               "AccessDenied", "MissingAuthenticationToken", "SignatureDoesNotMatch", "IncompleteSignature"}
_NOT_FOUND_CODES = {"RepositoryNotFoundException", "ImageNotFoundException", "RegistryNotFoundException"}


def require_boto3() -> None:
    """UsageError with the install hint when boto3 is missing (checked before any contact)."""
    try:
        import boto3  # noqa: F401
        import botocore  # noqa: F401
    except ImportError:
        raise UsageError(INSTALL_HINT) from None


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def map_error(exc: BaseException, what: str) -> JanitorError | None:
    """The `core.errors` exception for a botocore/boto3 exception (None: not one of theirs)."""
    from botocore import exceptions as bx

    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {}) if isinstance(exc.response, dict) else {}
        code = str(error.get("Code") or "Unknown")
        message = _one_line(error.get("Message") or "")
        status = (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        text = f"{what}: {code}" + (f": {message}" if message else "")
        if code in _NOT_FOUND_CODES:
            return NotFoundError(text, status=status or 404, code=code)
        if code in _AUTH_CODES or status in (401, 403):
            return AuthError(text + " (check the AWS credentials and the IAM actions the README lists)",
                             status=status, code=code)
        if code in ("ThrottlingException", "Throttling", "TooManyRequestsException"):
            return RegistryError(f"{what}: ECR kept throttling the requests (ThrottlingException) after the retries;"
                                 " run again later or with a lower --concurrency", status=status, code=code)
        return RegistryError(text, status=status, code=code)
    if isinstance(exc, bx.NoCredentialsError):
        return AuthError(f"{what}: no AWS credentials found (environment, AWS_PROFILE and its files, web identity, "
                         "container or instance role)")
    if isinstance(exc, bx.PartialCredentialsError):
        return AuthError(f"{what}: incomplete AWS credentials: {_one_line(exc)}")
    if isinstance(exc, bx.ProfileNotFound):
        return UsageError(f"{what}: {_one_line(exc)} (AWS_PROFILE)")
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectionClosedError, bx.ConnectTimeoutError,
                        bx.ReadTimeoutError)):
        return RegistryError(f"{what}: connection failed ({_one_line(exc)})")
    if isinstance(exc, bx.ParamValidationError):
        return RegistryError(f"{what}: invalid request: {_one_line(exc)}")
    if isinstance(exc, bx.BotoCoreError):
        return RegistryError(f"{what}: {_one_line(exc)}")
    return None


def endpoint_url(env: Mapping[str, str]) -> str | None:
    """The ECR endpoint the standard AWS settings name (None: botocore resolves it).

    UsageError for a URL that is not http(s), or plain HTTP to a host that is not loopback."""
    if str(env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "")).lower() == "true":
        return None
    for name in ("AWS_ENDPOINT_URL_ECR", "AWS_ENDPOINT_URL"):
        url = (env.get(name) or "").strip()
        if not url:
            continue
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None:
            raise UsageError(f"{name} must not carry a user or password (AWS signs its requests): give "
                             "scheme://host[:port] only")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"{name} must be an http(s) URL, got {url[:200]!r}")
        if parts.scheme == "http" and not is_loopback(parts.netloc):
            raise UsageError(f"{name}: plain HTTP to {parts.netloc} would send AWS credentials (the session token) "
                             "in clear; use https:// (plain HTTP is allowed to loopback hosts only)")
        return url.rstrip("/")
    return None


def _session_kwargs(env: Mapping[str, str]) -> dict[str, Any]:
    """What of the standard credential settings the run's environment names, passed on explicitly
    (boto3 reads the process environment itself; a library caller may pass another `env`)."""
    if env is os.environ:
        return {}
    kwargs: dict[str, Any] = {}
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        kwargs.update(aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                      aws_session_token=env.get("AWS_SESSION_TOKEN") or None)
    elif env.get("AWS_PROFILE"):
        kwargs["profile_name"] = env["AWS_PROFILE"]
    return kwargs


def check_retry_settings(env: Mapping[str, str]) -> None:
    """UsageError naming the variable for an AWS retry setting botocore would crash on."""
    attempts = (env.get("AWS_MAX_ATTEMPTS") or "").strip()
    if attempts and not (attempts.isdigit() and int(attempts) >= 1):
        raise UsageError(f"AWS_MAX_ATTEMPTS must be a whole number of attempts, 1 or more; got {attempts[:40]!r}")
    mode = (env.get("AWS_RETRY_MODE") or "").strip()
    if mode and mode not in ("legacy", "standard", "adaptive"):
        raise UsageError(f"AWS_RETRY_MODE must be legacy, standard or adaptive; got {mode[:40]!r}")


def make_client(host: EcrHost, env: Mapping[str, str], workers: int):
    """A botocore ECR client for the registry `host` names (region, FIPS), nothing contacted."""
    import boto3
    from botocore.config import Config

    for noisy in ("botocore", "boto3", "urllib3"):
        # Their DEBUG lines carry request headers (the session token among them): never shown.
        logging.getLogger(noisy).setLevel(max(logging.getLogger(noisy).level, logging.WARNING))
    check_retry_settings(env)
    retries = {} if env.get("AWS_RETRY_MODE") or env.get("AWS_MAX_ATTEMPTS") else {
        "retries": {"mode": "adaptive", "max_attempts": DEFAULT_MAX_ATTEMPTS}}
    config = Config(region_name=host.region, use_fips_endpoint=host.fips or None, max_pool_connections=workers,
                    connect_timeout=10, read_timeout=60, user_agent_extra="ghcr-janitor", **retries)
    url = endpoint_url(env)
    try:
        session = boto3.session.Session(**_session_kwargs(env))
        return session.client("ecr", endpoint_url=url, config=config)
    except Exception as exc:
        mapped = map_error(exc, f"opening ECR in {host.region}")
        if mapped is None:          # a setting botocore cannot use (a malformed ~/.aws/config value, ...)
            raise UsageError(f"opening ECR in {host.region}: the AWS settings cannot be used: "
                             f"{type(exc).__name__}: {str(exc)[:200]}") from None
        raise mapped from None


class EcrApi:
    """The few ECR operations the janitor uses, awaitable, bounded, counted, errors mapped."""

    def __init__(self, client, registry_id: str, workers: int = MAX_WORKERS):
        self.client = client
        self.registry_id = registry_id
        self.workers = max(1, workers)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="ecr")
        self.requests: Counter[str] = Counter()      # operation -> HTTP requests sent (retries included)
        client.meta.events.register("before-send.ecr", self._count)

    def __repr__(self) -> str:
        return f"EcrApi(registry={self.registry_id}, endpoint={self.client.meta.endpoint_url})"

    def _count(self, event_name: str = "", **_: Any) -> None:
        self.requests[event_name.rsplit(".", 1)[-1]] += 1

    async def call(self, operation: str, what: str, **params: Any) -> dict[str, Any]:
        """One API call (`operation` as boto3 names it, e.g. "describe_images") in a worker thread."""
        method = getattr(self.client, operation)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, partial(method, registryId=self.registry_id, **params))
        except Exception as exc:
            mapped = map_error(exc, what)
            if mapped is None:
                raise
            raise mapped from None

    async def pages(self, operation: str, what: str, key: str, **params: Any) -> list[dict[str, Any]]:
        """Every item under `key` of a `nextToken`-paginated operation, page after page."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            page = await self.call(operation, what, maxResults=PAGE_SIZE, **params,
                                   **({"nextToken": token} if token else {}))
            items += page.get(key) or []
            token = page.get("nextToken")
            if not token:
                return items
            if token in seen:
                raise RegistryError(f"{what}: ECR sent the same nextToken twice (a pagination loop)")
            seen.add(token)
        raise RegistryError(f"{what}: more than {MAX_PAGES} pages")

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        try:
            self.client.close()
        except Exception:           # closing is best effort
            pass
