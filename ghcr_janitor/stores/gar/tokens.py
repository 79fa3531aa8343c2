"""Where Google credentials come from, in this order (the first found is used):

1. `--username/--password-stdin`, `JANITOR_USERNAME`/`JANITOR_PASSWORD` (as for every registry);
2. `GOOGLE_OAUTH_ACCESS_TOKEN` (e.g. `gcloud auth print-access-token`): user `oauth2accesstoken`;
3. the settings file's `[hosts."HOST"] token_env` (an access token in that variable);
4. docker config for the target's host: `credHelpers` (`gcloud auth configure-docker` writes
   `docker-credential-gcloud`), `auths` (`docker login -u oauth2accesstoken`), `credsStore`;
5. `GOOGLE_APPLICATION_CREDENTIALS` (a service-account key file): exchanged through `google-auth`
   when it is installed (signing the key's JWT needs its crypto), else a usage error with the hint;
6. the metadata server (`GCE_METADATA_HOST`, or `metadata.google.internal` when this machine says it
   is a Compute Engine VM): the default service account's token, with a short timeout.

A `/v2` registry takes any of these (basic auth, exchanged at its token endpoint); the Artifact
Registry REST API takes an OAuth access token as a Bearer, which every source but a docker login
with a JSON key (`_json_key`) is.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

from ghcr_janitor.core.errors import AuthError, UsageError
from ghcr_janitor.core.settings import (
    GCE_METADATA_HOST, GOOGLE_APPLICATION_CREDENTIALS, GOOGLE_OAUTH_ACCESS_TOKEN, Settings,
)
from ghcr_janitor.net.auth.credentials import Credentials, docker_config_path, find_credentials, from_docker_config
from ghcr_janitor.net.auth.secret import Secret

log = logging.getLogger("ghcr_janitor.gar")

TOKEN_USER = "oauth2accesstoken"
KEY_USERS = ("_json_key", "_json_key_base64")      # a service-account key, not a token
DEFAULT_METADATA_HOST = "metadata.google.internal"
METADATA_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"
METADATA_TIMEOUT = 3.0
GCE_PRODUCT_FILE = Path("/sys/class/dmi/id/product_name")
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
INSTALL_HINT = ("GOOGLE_APPLICATION_CREDENTIALS names a service-account key; exchanging it for a token needs "
                "google-auth: pip install google-auth requests (or use GOOGLE_OAUTH_ACCESS_TOKEN or "
                "gcloud auth configure-docker)")


def is_access_token(credentials: Credentials | None) -> bool:
    """Whether the secret is an OAuth access token (usable as a REST Bearer), not a key or a password."""
    return credentials is not None and credentials.username not in KEY_USERS and not credentials.identity_token


def has_google_auth() -> bool:
    return importlib.util.find_spec("google") is not None and importlib.util.find_spec("google.auth") is not None


def _explicit(host: str, options: Any, token: str | None) -> Credentials | None:
    """Sources 1-3: flags and JANITOR_*, GOOGLE_OAUTH_ACCESS_TOKEN, the settings' token_env."""
    settings: Settings = options.settings
    if options.password is not None or settings.password:
        return find_credentials(host, options.username, options.password, settings)
    oauth = settings.variable(GOOGLE_OAUTH_ACCESS_TOKEN)
    if oauth:
        return Credentials(TOKEN_USER, Secret(oauth), GOOGLE_OAUTH_ACCESS_TOKEN)
    if token:
        return Credentials(TOKEN_USER, Secret(token), "the settings file's token_env")
    return None


def _docker_config_names(settings: Settings) -> bool:
    """Whether docker config has anything for a Google host (read, no helper run): a usage error
    about google-auth must not stop a run that docker's own credentials would serve."""
    from ghcr_janitor.core.reference import GAR, known_kind

    path = docker_config_path(settings)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(doc, dict):
        return False
    helpers, auths = doc.get("credHelpers") or {}, doc.get("auths") or {}
    keys = [*(helpers if isinstance(helpers, dict) else ()), *(auths if isinstance(auths, dict) else ())]
    hosts = {k.split("://", 1)[-1].split("/", 1)[0] for k in keys if isinstance(k, str)}
    return bool(doc.get("credsStore")) or any(known_kind(h) == GAR for h in hosts)


def check(options: Any, token: str | None) -> None:
    """Preflight: the one usage error the chain can tell before any contact (a key file to exchange,
    no google-auth, nothing earlier in the chain)."""
    settings: Settings = options.settings
    if not settings.variable(GOOGLE_APPLICATION_CREDENTIALS) or has_google_auth():
        return
    if _explicit("", options, token) is None and not _docker_config_names(settings):
        raise UsageError(INSTALL_HINT)


def find(host: str, options: Any, token: str | None) -> Credentials | None:
    """The credentials for `host`, from the first source that has them (module docstring); None: anonymous."""
    settings: Settings = options.settings
    found = _explicit(host, options, token) or from_docker_config(host, settings)
    if found is not None:
        return found
    keyfile = settings.variable(GOOGLE_APPLICATION_CREDENTIALS)
    if keyfile:
        return Credentials(TOKEN_USER, Secret(_from_key_file(keyfile)), GOOGLE_APPLICATION_CREDENTIALS)
    metadata = metadata_host(settings)
    if metadata:
        return Credentials(TOKEN_USER, Secret(_from_metadata(metadata, settings)), f"the metadata server {metadata}")
    return None


def _from_key_file(path: str) -> str:
    """An access token for the service-account key at `path`, through google-auth."""
    if not has_google_auth():
        raise UsageError(INSTALL_HINT)
    try:
        import google.auth
        from google.auth.transport.requests import Request
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    try:
        credentials, _ = google.auth.load_credentials_from_file(path, scopes=[SCOPE])
        credentials.refresh(Request())
    except Exception as exc:            # google-auth's own errors: one line, never the key
        raise AuthError(f"{GOOGLE_APPLICATION_CREDENTIALS}={path}: no access token from it "
                        f"({type(exc).__name__})") from None
    token = getattr(credentials, "token", None)
    if not isinstance(token, str) or not token:
        raise AuthError(f"{GOOGLE_APPLICATION_CREDENTIALS}={path}: google-auth returned no access token")
    return token


def on_gce() -> bool:
    """What google-auth also reads first: the DMI product name of a Compute Engine VM (no network)."""
    try:
        return "Google" in GCE_PRODUCT_FILE.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def metadata_host(settings: Settings) -> str | None:
    """`GCE_METADATA_HOST`, else the default host on a Compute Engine VM, else None (never probed)."""
    named = settings.variable(GCE_METADATA_HOST)
    if named:
        return named
    return DEFAULT_METADATA_HOST if on_gce() else None


def _from_metadata(host: str, settings: Settings) -> str:
    """The default service account's access token from the metadata server (short timeout, no retries)."""
    import httpx

    url = f"http://{host}{METADATA_PATH}"
    try:
        with httpx.Client(timeout=min(METADATA_TIMEOUT, settings.http.timeout), follow_redirects=False,
                          trust_env=False) as client:
            response = client.get(url, headers={"Metadata-Flavor": "Google", "User-Agent": "ghcr-janitor"})
    except httpx.HTTPError as exc:
        raise AuthError(f"the metadata server {host} did not answer ({type(exc).__name__}); "
                        f"unset {GCE_METADATA_HOST} off Compute Engine") from None
    if response.status_code != 200:
        raise AuthError(f"the metadata server {host} refused a token ({response.status_code})",
                        status=response.status_code)
    try:
        token = response.json().get("access_token")
    except (ValueError, AttributeError):
        token = None
    if not isinstance(token, str) or not token:
        raise AuthError(f"the metadata server {host} sent no access_token")
    return token
