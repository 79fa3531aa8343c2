"""Find registry credentials: flags, environment, docker config, credential helpers.

Order: explicit `--username/--password-stdin`; `JANITOR_USERNAME`/`JANITOR_PASSWORD`;
for ghcr.io `GITHUB_TOKEN` then `GH_TOKEN`; `$DOCKER_CONFIG/config.json` (or
`~/.docker/config.json`): `credHelpers[host]`, then `credsStore`, then `auths[host]`.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ghcr_janitor.net.auth.secret import Secret
from ghcr_janitor.core.errors import AuthError, UsageError
from ghcr_janitor.core.files import UnreadableFile, read_regular
from ghcr_janitor.core.settings import PASSWORD, Settings

GHCR_HOSTS = ("ghcr.io",)
HELPER_TIMEOUT_SECONDS = 30
NOT_FOUND_MESSAGE = "credentials not found"
MAX_DOCKER_CONFIG_BYTES = 4 << 20     # config.json holds a few logins; megabytes of it are a mistake


@dataclass(frozen=True)
class Credentials:
    """A username and a secret; `identity_token` when the secret is an OAuth refresh token."""

    username: str
    secret: Secret
    source: str
    identity_token: bool = False


def docker_config_path(settings: Settings) -> Path:
    base = settings.docker_config or os.path.join(os.path.expanduser("~"), ".docker")
    return Path(base) / "config.json"


def _config_keys(host: str) -> list[str]:
    keys = [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/"]
    if host in ("docker.io", "registry-1.docker.io", "index.docker.io"):
        keys.insert(0, "https://index.docker.io/v1/")
    return keys


def _load_config(path: Path) -> dict:
    """The docker config as a dict ({} when there is none); read only as a bounded regular file."""
    if not path.exists():
        return {}
    try:
        raw = read_regular(path, MAX_DOCKER_CONFIG_BYTES)
    except UnreadableFile as exc:
        raise UsageError(f"{exc.path}: cannot read docker config (DOCKER_CONFIG names its directory): {exc.why}") from None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read docker config ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{path}: docker config is not a JSON object")
    return doc


def run_helper(helper: str, host: str, env: Mapping[str, str] | None = None) -> Credentials | None:
    """Ask `docker-credential-<helper> get` for `host`. Its output is never logged."""
    program = f"docker-credential-{helper}"
    try:
        proc = subprocess.run(
            [program, "get"], input=host, capture_output=True, text=True,
            timeout=HELPER_TIMEOUT_SECONDS, check=False, env=dict(env) if env is not None else None,
        )
    except FileNotFoundError:
        raise AuthError(f"credential helper {program} named in docker config is not on PATH") from None
    except subprocess.TimeoutExpired:
        raise AuthError(f"credential helper {program} did not answer within {HELPER_TIMEOUT_SECONDS}s") from None
    if proc.returncode != 0:
        if NOT_FOUND_MESSAGE in proc.stdout or NOT_FOUND_MESSAGE in proc.stderr:
            return None
        raise AuthError(f"credential helper {program} failed for {host} (exit {proc.returncode})")
    try:
        doc = json.loads(proc.stdout)
        username, secret = doc["Username"], doc["Secret"]
    except (ValueError, KeyError, TypeError):
        raise AuthError(f"credential helper {program} returned an unreadable answer for {host}") from None
    if not isinstance(username, str) or not isinstance(secret, str) or not secret:
        return None
    if username == "<token>":
        return Credentials("<token>", Secret(secret), f"helper {helper}", identity_token=True)
    return Credentials(username, Secret(secret), f"helper {helper}")


def _from_auths(auths: Mapping, host: str, path: Path) -> Credentials | None:
    for key in _config_keys(host):
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        if entry.get("identitytoken"):
            return Credentials("<token>", Secret(str(entry["identitytoken"])), f"{path}", identity_token=True)
        encoded = entry.get("auth")
        if encoded:
            try:
                user, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                raise UsageError(f"{path}: auths[{key!r}].auth is not base64 of user:password") from None
            return Credentials(user, Secret(password), str(path))
        if entry.get("username") and entry.get("password"):
            return Credentials(str(entry["username"]), Secret(str(entry["password"])), str(path))
    return None


def from_docker_config(host: str, settings: Settings) -> Credentials | None:
    path = docker_config_path(settings)
    config = _load_config(path)
    env = settings.env or None          # a helper runs in the environment the settings were read from
    helpers = config.get("credHelpers") or {}
    if isinstance(helpers, dict) and isinstance(helpers.get(host), str):
        return run_helper(helpers[host], host, env)
    found = _from_auths(config.get("auths") or {}, host, path)
    if found is not None:
        return found
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        return run_helper(store, host, env)
    return None


def find_credentials(
    host: str,
    username: str | None = None,
    password: str | None = None,
    settings: Settings | None = None,
) -> Credentials | None:
    """Credentials for `host`, or None for anonymous access (`settings`: what the environment says;
    None: nothing set, the default docker config)."""
    settings = Settings() if settings is None else settings
    if password is not None:
        if not password:
            raise UsageError("--password-stdin: no password on standard input")
        return Credentials(username or "token", Secret(password), "--password-stdin")
    if settings.password:
        return Credentials(settings.username or username or "token", Secret(settings.password), PASSWORD)
    if host in GHCR_HOSTS:
        for name, token in settings.github_tokens:
            return Credentials(username or "token", Secret(token), name)
    return from_docker_config(host, settings)
