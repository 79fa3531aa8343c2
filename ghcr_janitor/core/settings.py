"""The run's settings: every environment variable the janitor reads, read here, once.

`Settings.from_env()` takes a snapshot of the environment (the process's, or a mapping a test or a
library user passes) and parses what the janitor uses from it; the CLI builds one per command and
passes it down (`ConnectOptions.settings`), so nothing below reads the environment on its own. A
malformed number is a `UsageError` (exit 2) naming the variable, raised when the settings are
built, before any store is contacted.

What the janitor does not read itself: proxies (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY) are read by
httpx and the standard library (`urllib.request.getproxies`), and HOME by `os.path.expanduser`;
a docker credential helper runs with the snapshot as its environment.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Mapping

from ghcr_janitor.core.errors import UsageError

# The names, in one place (docs/cli.md "Environment" documents each).
HTTP_TIMEOUT = "JANITOR_HTTP_TIMEOUT"            # seconds per connect/read/write (default 30)
RETRY_ATTEMPTS = "JANITOR_RETRY_ATTEMPTS"        # attempts per request, first one included (default 6)
RETRY_DEADLINE = "JANITOR_RETRY_DEADLINE"        # seconds a request may spend retrying in total (default 120)
RETRY_WAIT = "JANITOR_RETRY_WAIT"                # first backoff in seconds (default 0.2; doubles, jitter 2.5x it)
GHCR_REGISTRY = "JANITOR_GHCR_REGISTRY"          # GHCR's OCI endpoint (tests point it at a local registry)
GHCR_DELETES_PER_MINUTE = "JANITOR_GHCR_DELETES_PER_MINUTE"
GHA_DELETES_PER_MINUTE = "JANITOR_GHA_DELETES_PER_MINUTE"
USERNAME, PASSWORD = "JANITOR_USERNAME", "JANITOR_PASSWORD"
GITHUB_TOKENS = ("GITHUB_TOKEN", "GH_TOKEN")     # in this order, for ghcr.io and the GitHub REST API
GITHUB_API_URL = "GITHUB_API_URL"
GITHUB_STEP_SUMMARY = "GITHUB_STEP_SUMMARY"
GITHUB_EVENT_NAME, GITHUB_EVENT_PATH, GITHUB_ACTOR = "GITHUB_EVENT_NAME", "GITHUB_EVENT_PATH", "GITHUB_ACTOR"
DOCKER_CONFIG = "DOCKER_CONFIG"
CACHE_DIR, XDG_CACHE_HOME = "JANITOR_CACHE_DIR", "XDG_CACHE_HOME"
STATE_DIR, XDG_STATE_HOME = "JANITOR_STATE_DIR", "XDG_STATE_HOME"
SETTINGS_FILE, XDG_CONFIG_HOME = "JANITOR_SETTINGS", "XDG_CONFIG_HOME"
# Vendor API credentials, as each vendor's CI documents them (README "Permissions" per registry).
DOCKERHUB_USERNAME, DOCKERHUB_TOKEN = "DOCKERHUB_USERNAME", "DOCKERHUB_TOKEN"
CI_JOB_TOKEN, GITLAB_TOKEN, CI_SERVER_URL = "CI_JOB_TOKEN", "GITLAB_TOKEN", "CI_SERVER_URL"
GOOGLE_OAUTH_ACCESS_TOKEN = "GOOGLE_OAUTH_ACCESS_TOKEN"
GOOGLE_APPLICATION_CREDENTIALS = "GOOGLE_APPLICATION_CREDENTIALS"
GCE_METADATA_HOST = "GCE_METADATA_HOST"
ACR_REFRESH_TOKEN = "ACR_REFRESH_TOKEN"            # `az acr login --expose-token`'s accessToken
AZURE_ACCESS_TOKEN = "AZURE_ACCESS_TOKEN"          # an Entra ID (AAD) access token, exchanged for an ACR one
VENDOR_VARIABLES = (DOCKERHUB_USERNAME, DOCKERHUB_TOKEN, CI_JOB_TOKEN, GITLAB_TOKEN, CI_SERVER_URL,
                    GOOGLE_OAUTH_ACCESS_TOKEN, GOOGLE_APPLICATION_CREDENTIALS, GCE_METADATA_HOST,
                    ACR_REFRESH_TOKEN, AZURE_ACCESS_TOKEN)
SETTINGS_KINDS = ("oci", "ghcr", "ecr", "dockerhub", "gitlab", "harbor", "acr", "gar")

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_GHCR_REGISTRY = "https://ghcr.io"
# Upper bounds (a user's cap) of the adaptive delete pacing (net/pacing.py), not a fixed pace: the
# default is GitHub's documented ceiling, a DELETE costing 5 of the 900 points a minute per REST
# endpoint (180 a minute); the pacer slows down below it on 429s. A larger value is clamped to it.
DEFAULT_GHCR_DELETES_PER_MINUTE = 180.0
DEFAULT_GHA_DELETES_PER_MINUTE = 180.0


@dataclass(frozen=True)
class HttpSettings:
    """Timeouts and the retry policy of every HTTP request (net/http.py)."""

    timeout: float = 30.0           # seconds per connect/read/write
    attempts: int = 6               # per request, the first one included
    deadline: float = 120.0         # seconds a request may spend retrying in total
    wait: float = 0.2               # first backoff (doubles; jitter 2.5x it)


def _number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    """A number >= `minimum` from `env`; a bad value is a usage error (exit 2) naming `name`."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not value >= minimum or math.isinf(value):
        raise UsageError(f"{name} must be a number >= {minimum:g}, got {raw[:40]!r}")
    return value


def _rate(env: Mapping[str, str], name: str, default: float) -> float:
    """A positive number of DELETEs a minute (the wording these two variables always had)."""
    raw = env.get(name) or ""
    try:
        rate = float(raw) if raw else default
    except ValueError:
        raise UsageError(f"{name} must be a number, got {raw[:40]!r}") from None
    if not rate > 0 or math.isinf(rate):
        raise UsageError(f"{name} must be positive, got {raw[:40]!r}")
    return rate


def cache_dir_in(env: Mapping[str, str]) -> Path:
    """The manifest cache's directory: $JANITOR_CACHE_DIR, else $XDG_CACHE_HOME/ghcr-janitor."""
    if env.get(CACHE_DIR):
        return Path(env[CACHE_DIR])
    base = env.get(XDG_CACHE_HOME) or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ghcr-janitor"


def state_dir_in(env: Mapping[str, str]) -> tuple[Path, str]:
    """The state directory and what chose it (a variable, or the default), unchecked."""
    if env.get(STATE_DIR):
        return Path(env[STATE_DIR]), STATE_DIR
    if env.get(XDG_STATE_HOME):
        return Path(env[XDG_STATE_HOME]) / "ghcr-janitor", XDG_STATE_HOME
    return (Path(os.path.expanduser("~"), ".local", "state", "ghcr-janitor"),
            f"the default state directory (set {STATE_DIR})")


@dataclass(frozen=True)
class HostSettings:
    """What the settings file says of one registry host (`[hosts."HOST"]`): its kind, where its
    vendor API and its `/v2` live, and whose credentials the vendor API takes. Every field is
    optional; `token_env` is the NAME of an environment variable, never the secret."""

    kind: str | None = None
    api_url: str | None = None
    registry_url: str | None = None
    username: str | None = None
    token_env: str | None = None
    token: str | None = field(default=None, repr=False)     # the value of $token_env, if set


_HOST_KEYS = {"kind", "api_url", "registry_url", "username", "token_env"}


def _file_error(path: Path, key: str, why: str) -> UsageError:
    return UsageError(f"settings file {path}: {key}: {why}")


def _url(path: Path, key: str, value: object) -> str:
    """An http(s) URL with a host and no user, password, query or fragment (the value is not echoed:
    a token pasted into the wrong key must not reach a CI log)."""
    from urllib.parse import urlsplit

    why = "must be an http:// or https:// URL with a host (no user, password, query or fragment)"
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise _file_error(path, key, why)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise _file_error(path, key, why) from None
    if not parts.hostname or "@" in parts.netloc or parts.query or parts.fragment or (port is not None and port < 1):
        raise _file_error(path, key, why)
    return value.rstrip("/")


def _host_settings(path: Path, host: str, table: object, env: Mapping[str, str]) -> HostSettings:
    where = f"hosts.{host!r}"
    if not isinstance(table, dict):
        raise _file_error(path, where, "must be a table")
    unknown = sorted(set(table) - _HOST_KEYS)
    if unknown:
        raise _file_error(path, f"{where}.{unknown[0]}", f"unknown key (known: {', '.join(sorted(_HOST_KEYS))})")
    kind = table.get("kind")
    if kind is not None and kind not in SETTINGS_KINDS:
        raise _file_error(path, f"{where}.kind", f"{kind!r} is not one of {', '.join(SETTINGS_KINDS)}")
    for key in ("username", "token_env"):
        if key in table and (not isinstance(table[key], str) or not table[key]):
            raise _file_error(path, f"{where}.{key}", "must be a non-empty string")
    token_env = table.get("token_env")
    if token_env is not None and (len(token_env) > 100 or not token_env.replace("_", "A").isalnum()):
        raise _file_error(path, f"{where}.token_env", "must be the NAME of an environment variable (never the secret)")
    return HostSettings(
        kind=kind,
        api_url=_url(path, f"{where}.api_url", table["api_url"]) if "api_url" in table else None,
        registry_url=_url(path, f"{where}.registry_url", table["registry_url"]) if "registry_url" in table else None,
        username=table.get("username"), token_env=token_env,
        token=(env.get(token_env) or None) if token_env else None)


def settings_file_in(env: Mapping[str, str]) -> tuple[Path, bool]:
    """The settings file and whether it was named ($JANITOR_SETTINGS: it must exist) or is the default
    (`$XDG_CONFIG_HOME/ghcr-janitor/settings.toml`, else `~/.config/...`: read if present)."""
    if env.get(SETTINGS_FILE):
        return Path(env[SETTINGS_FILE]), True
    base = Path(env[XDG_CONFIG_HOME]) if env.get(XDG_CONFIG_HOME) else Path(os.path.expanduser("~"), ".config")
    return base / "ghcr-janitor" / "settings.toml", False


MAX_SETTINGS_BYTES = 1 << 20


def read_settings_file(env: Mapping[str, str]) -> tuple[dict[str, HostSettings], dict[str, dict], Path | None]:
    """(hosts, prices, the file read or None). UsageError naming the file and the key for anything
    wrong: a named file that is missing, not a regular file, too large, not TOML, or a bad value."""
    import stat
    import tomllib

    path, named = settings_file_in(env)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if named:
            raise UsageError(f"{SETTINGS_FILE}={path}: no such file") from None
        return {}, {}, None
    except OSError as exc:
        raise UsageError(f"settings file {path}: cannot read it ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        raise UsageError(f"settings file {path}: not a regular file")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SETTINGS_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"settings file {path}: cannot read it ({exc.strerror})") from None
    if len(data) > MAX_SETTINGS_BYTES:
        raise UsageError(f"settings file {path}: larger than 1 MiB; not a settings file?")
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"settings file {path}: not valid TOML ({exc})") from None
    unknown = sorted(set(doc) - {"hosts", "prices"})
    if unknown:
        raise _file_error(path, unknown[0], "unknown table (known: hosts, prices)")
    hosts_table = doc.get("hosts", {})
    prices = doc.get("prices", {})
    if not isinstance(hosts_table, dict):
        raise _file_error(path, "hosts", "must be a table of [hosts.\"HOST\"] tables")
    if not isinstance(prices, dict) or not all(isinstance(v, dict) for v in prices.values()):
        raise _file_error(path, "prices", "must be a table of [prices.STORE] tables")
    hosts = {h.lower(): _host_settings(path, h, t, env) for h, t in hosts_table.items()}
    return hosts, {store: _price_table(path, store, table) for store, table in prices.items()}, path


_PRICE_NUMBERS = ("per_gib_month", "included_gib", "archive_per_gib_month")
_PRICE_KEYS = (*_PRICE_NUMBERS, "archive_minimum_days", "currency", "price_date", "source")


def _price_number(path: Path, key: str, value: object) -> Decimal:
    """A finite amount >= 0 (TOML integer or float), as an exact Decimal of what was written."""
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = Decimal(str(value))        # the float's shortest repr: 0.1 is 0.1, not 0.1000000000000000055
    if number is None or not number.is_finite() or number < 0 or number > 10**9:
        raise _file_error(path, key, f"must be a number >= 0 (an amount per GiB-month or GiB), got {value!r}"[:200])
    return number


def _price_table(path: Path, store: str, table: dict) -> dict:
    """One `[prices.STORE]` table, checked; values normalised (amounts Decimal, the date ISO text)."""
    from ghcr_janitor.core.money import DEFAULT_PRICES, PRICE_STORES

    where = f"prices.{store}"
    if store not in PRICE_STORES:
        raise _file_error(path, where, f"unknown store (known: {', '.join(PRICE_STORES)})")
    unknown = sorted(set(table) - set(_PRICE_KEYS))
    if unknown:
        raise _file_error(path, f"{where}.{unknown[0]}", f"unknown key (known: {', '.join(_PRICE_KEYS)})")
    out: dict = {k: _price_number(path, f"{where}.{k}", table[k]) for k in _PRICE_NUMBERS if k in table}
    if "archive_minimum_days" in table:
        days = table["archive_minimum_days"]
        if not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= 3650:
            raise _file_error(path, f"{where}.archive_minimum_days", f"must be a whole number of days 0-3650, got {days!r}")
        out["archive_minimum_days"] = days
    if "currency" in table:
        currency = table["currency"]
        if not isinstance(currency, str) or len(currency) != 3 or not currency.isascii() or not currency.isupper():
            raise _file_error(path, f"{where}.currency", f"must be a three-letter currency code (USD, EUR), got {currency!r}")
        if "per_gib_month" not in table:
            raise _file_error(path, f"{where}.currency", "needs per_gib_month beside it (a currency alone would relabel the default price)")
        out["currency"] = currency
    if "price_date" in table:
        out["price_date"] = _price_date(path, f"{where}.price_date", table["price_date"])
    if "source" in table:
        if not isinstance(table["source"], str) or not table["source"].strip():
            raise _file_error(path, f"{where}.source", "must be a non-empty string (a URL, a contract)")
        out["source"] = " ".join(table["source"].split())[:300]
    if store not in DEFAULT_PRICES and "per_gib_month" not in out:
        raise _file_error(path, f"{where}.per_gib_month", f"missing: {store} has no default price to adjust")
    return out


def _price_date(path: Path, key: str, value: object) -> str:
    """A TOML date (2026-12-01) or the same as a string, as ISO text."""
    from datetime import date, datetime

    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise _file_error(path, key, f"must be a date (2026-12-01), got {value!r}"[:200])


def file_date(path: Path | None) -> str | None:
    """The day the settings file was last written (UTC): the date of a price it sets without one."""
    from datetime import datetime, timezone

    if path is None:
        return None
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).date().isoformat()
    except OSError:
        return None


@dataclass(frozen=True)
class Settings:
    """What the environment says, parsed once. Secrets are kept out of `repr`."""

    http: HttpSettings = field(default_factory=HttpSettings)
    github_api_url: str = DEFAULT_API_URL
    ghcr_registry: str = DEFAULT_GHCR_REGISTRY
    ghcr_deletes_per_minute: float = DEFAULT_GHCR_DELETES_PER_MINUTE
    gha_deletes_per_minute: float = DEFAULT_GHA_DELETES_PER_MINUTE
    username: str | None = None                                     # JANITOR_USERNAME
    password: str | None = field(default=None, repr=False)          # JANITOR_PASSWORD
    # (variable, token) for GITHUB_TOKEN then GH_TOKEN, those set.
    github_tokens: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    docker_config: Path | None = None                               # $DOCKER_CONFIG (a directory)
    step_summary: str | None = None                                 # $GITHUB_STEP_SUMMARY (a file)
    event_name: str | None = None
    event_path: str | None = None
    actor: str | None = None
    cache_dir: Path = field(default_factory=lambda: cache_dir_in({}))
    state_dir_chosen: tuple[Path, str] = field(default_factory=lambda: state_dir_in({}))
    # The settings file's `[hosts."HOST"]` (keys lowercased) and `[prices.STORE]` tables, and the file.
    hosts: Mapping[str, HostSettings] = field(default_factory=dict)
    prices: Mapping[str, Mapping] = field(default_factory=dict)     # validated: amounts are Decimal
    settings_file: Path | None = None
    prices_date: str | None = None          # the settings file's date: that of a price set without one
    # The snapshot these were parsed from: the environment a credential helper runs with, and
    # what the run history's path is chosen from (report/history.py takes a mapping).
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def host(self, host: str) -> HostSettings:
        """What the settings file says of `host` (HOST[:PORT] as the target names it; empty if nothing)."""
        return self.hosts.get(host.lower()) or HostSettings()

    def variable(self, name: str) -> str | None:
        """A vendor variable of the snapshot (`VENDOR_VARIABLES`), None when unset or empty."""
        assert name in VENDOR_VARIABLES, name
        return self.env.get(name) or None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Parse `env` (default: this process's environment, copied now)."""
        env = dict(os.environ if env is None else env)
        http = HttpSettings(
            timeout=_number(env, HTTP_TIMEOUT, HttpSettings.timeout, 0.01),
            attempts=int(_number(env, RETRY_ATTEMPTS, HttpSettings.attempts, 1)),
            deadline=_number(env, RETRY_DEADLINE, HttpSettings.deadline, 0.01),
            wait=_number(env, RETRY_WAIT, HttpSettings.wait, 0.0),
        )
        hosts, prices, settings_file = read_settings_file(env)
        return cls(
            hosts=hosts, prices=prices, settings_file=settings_file, prices_date=file_date(settings_file),
            http=http,
            github_api_url=env.get(GITHUB_API_URL) or DEFAULT_API_URL,
            ghcr_registry=(env.get(GHCR_REGISTRY) or DEFAULT_GHCR_REGISTRY).rstrip("/"),
            ghcr_deletes_per_minute=_rate(env, GHCR_DELETES_PER_MINUTE, DEFAULT_GHCR_DELETES_PER_MINUTE),
            gha_deletes_per_minute=_rate(env, GHA_DELETES_PER_MINUTE, DEFAULT_GHA_DELETES_PER_MINUTE),
            username=env.get(USERNAME) or None,
            password=env.get(PASSWORD) or None,
            github_tokens=tuple((name, env[name]) for name in GITHUB_TOKENS if env.get(name)),
            docker_config=Path(env[DOCKER_CONFIG]) if env.get(DOCKER_CONFIG) else None,
            step_summary=env.get(GITHUB_STEP_SUMMARY) or None,
            event_name=env.get(GITHUB_EVENT_NAME) or None,
            event_path=env.get(GITHUB_EVENT_PATH) or None,
            actor=env.get(GITHUB_ACTOR) or None,
            cache_dir=cache_dir_in(env),
            state_dir_chosen=state_dir_in(env),
            env=env,
        )

    def state_dir(self) -> Path:
        """The state directory (first-seen ledger, run history), checked: UsageError (exit 2) naming
        what chose it when it is not, or cannot become, a writable directory."""
        path, source = self.state_dir_chosen
        check_directory(path, source)
        return path


def check_directory(path: Path, source: str) -> None:
    """`path` is a writable directory, or can be made one (its nearest existing ancestor is)."""
    where = f"{source} {path}: must be a directory (it holds the first-seen ledger and the run history)"
    existing = path
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():           # a dangling symlink: mkdir would fail on it
            raise UsageError(f"{where}, but {existing} is a dangling symlink")
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{where}, but {'it' if existing == path else existing} is "
                         f"{'a file' if existing.is_file() else 'not a directory'}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{source} {path}: must be a writable directory, but {existing} is not writable")
