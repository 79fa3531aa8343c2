"""Canary secrets: a password/token that must never show up anywhere a person or a log sees.

The registry sits behind the fault proxy in an auth mode (Basic, or Bearer with a token
endpoint served by the proxy). The canary password is given through each credential
source; every command runs at -vv; the canary (and the Bearer token the proxy issues)
must not appear in stdout, stderr, log records, the plan file, the journal, or any
exception text/repr.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import respx
from typer.testing import CliRunner

from tests.support.fault_proxy import FaultProxy
from tests.support.push import Pusher

CANARY = "canary-Pw-7f3e9b1c4d"              # the password / token
ISSUED = "canary-Tk-91ab22"                  # Bearer tokens the proxy issues start with this
SECRETS = (CANARY, ISSUED, base64.b64encode(f"canary-user:{CANARY}".encode()).decode(),
           base64.b64encode(f"token:{CANARY}".encode()).decode())
OLD = datetime.now(timezone.utc) - timedelta(days=40)
LOGGERS = ("ghcr_janitor", "httpx", "httpcore", "stamina", "hpack", "h2", "asyncio")
SOURCES = ("password-stdin", "JANITOR_PASSWORD", "docker-auth", "helper")
_repos = iter(range(10_000))


def assert_clean(where: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"secret leaked into {where}"


class Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)

    def text(self) -> str:
        out = []
        for r in self.records:
            out.append(r.getMessage())
            if r.exc_info:
                out.append(logging.Formatter().formatException(r.exc_info))
            out.append(repr(r.args))
        return "\n".join(out)


@pytest.fixture
def capture():
    """Every log record of the janitor and its HTTP stack at DEBUG (named loggers, so the
    CLI's logging.basicConfig(force=True) cannot detach it)."""
    handler = Capture()
    saved = {}
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    yield handler
    for name in LOGGERS:
        logging.getLogger(name).removeHandler(handler)
        logging.getLogger(name).setLevel(saved[name])


def make_helper(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def credential_setup(source: str, host: str, tmp: Path) -> tuple[dict, list[str], str | None]:
    """(env, extra CLI args, stdin) that hand the canary to the janitor via `source`."""
    docker = tmp / "docker"
    docker.mkdir(exist_ok=True)
    env = {"DOCKER_CONFIG": str(docker)}
    if source == "password-stdin":
        return env, ["--username", "canary-user", "--password-stdin"], CANARY + "\n"
    if source == "JANITOR_PASSWORD":
        return {**env, "JANITOR_USERNAME": "canary-user", "JANITOR_PASSWORD": CANARY}, [], None
    if source == "docker-auth":
        auth = base64.b64encode(f"canary-user:{CANARY}".encode()).decode()
        (docker / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
        return env, [], None
    if source == "helper":
        make_helper(tmp / "bin", "canary",
                    'read host\nprintf \'{"ServerURL":"%s","Username":"canary-user","Secret":"%s"}\' "$host" '
                    f'"{CANARY}"\n')
        (docker / "config.json").write_text(json.dumps({"credHelpers": {host: "canary"}}))
        return {**env, "PATH": f"{tmp / 'bin'}:{os.environ['PATH']}"}, [], None
    raise AssertionError(source)


def make_layout(root: Path) -> Path:
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (root / "index.json").write_text('{"schemaVersion":2,"manifests":[]}')
    return root


@pytest.fixture(params=["basic", "bearer"])
def auth_proxy(request, registry):
    with FaultProxy(registry.host, auth=request.param, password=CANARY, token_secret=ISSUED) as proxy:
        yield proxy


def seed(registry) -> Pusher:
    pusher = Pusher(registry.url, f"secrets/repo{next(_repos)}-{os.getpid()}")
    pusher.buildkit_cache("cache-base", [b"base" * 20], OLD)
    for i in (1, 2, 3):
        pusher.buildkit_cache(f"cache-x-feat{i}", [b"feat%d" % i * 9], OLD)
    return pusher


@pytest.mark.parametrize("source", SOURCES)
def test_canary_never_leaks_from_any_command(source, auth_proxy, registry, tmp_path, capture):
    from ghcr_janitor.cli.app import app

    pusher = seed(registry)
    target = f"{auth_proxy.host}/{pusher.repo}"
    env, cred_args, stdin = credential_setup(source, auth_proxy.host, tmp_path)
    env.update({"JANITOR_CACHE_DIR": str(tmp_path / "cache"), "JANITOR_STATE_DIR": str(tmp_path / "state"),
                "JANITOR_RETRY_WAIT": "0.02"})
    plan = tmp_path / "plan.json"
    layout = make_layout(tmp_path / "layout")
    runner = CliRunner()
    commands = [
        ("ls", ["ls", target, "-O", "json", *cred_args], True),
        ("inspect", ["inspect", f"{target}:cache-x-feat1", *cred_args], True),
        ("plan", ["plan", target, "-o", str(plan), *cred_args], True),
        ("prune --dry-run", ["prune", target, "--dry-run", *cred_args], True),
        ("prune --yes", ["prune", target, "--yes", *cred_args], True),
        ("apply", ["apply", str(plan), "--yes", *cred_args], True),
        ("policy check", ["policy", "check"], False),
        ("gc", ["gc", f"oci-layout:{layout}", "--dry-run"], False),
    ]
    for name, args, takes_credentials in commands:
        auth_proxy.token_requests.clear()
        result = runner.invoke(app, ["-vv", *args], env=env, input=stdin if takes_credentials else None,
                               catch_exceptions=True)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            assert_clean(f"{name}: exception", repr(result.exception) + str(result.exception))
            raise AssertionError(f"{name} crashed: {result.exception!r}")
        assert result.exit_code in (0, 4), (name, result.exit_code, result.output)
        assert_clean(f"{name}: stdout/stderr", result.output)
        if name in ("plan", "prune --dry-run") and auth_proxy.auth == "bearer":
            # A dry run asks the token endpoint for pull scope only.
            scopes = [s for t in auth_proxy.token_requests for s in t.scopes]
            assert scopes and all(s.endswith(":pull") for s in scopes), scopes
        if name == "prune --yes" and auth_proxy.auth == "bearer":
            # Deleting needs (and gets) a delete-scoped token.
            assert any("delete" in s for t in auth_proxy.token_requests for s in t.scopes), auth_proxy.token_requests
    assert pusher.tags() == {"cache-base": pusher.tags()["cache-base"]}, "prune --yes should have pruned"
    assert_clean("log records", capture.text())
    assert capture.records, "no log records captured at -vv"
    assert_clean("plan file", plan.read_text())
    journal = plan.with_name(plan.name + ".journal")
    assert journal.exists()
    assert_clean("journal", journal.read_text())
    # The proxy really demanded (and got) credentials.
    assert any(e.auth for e in auth_proxy.log())


def test_wrong_canary_password_fails_cleanly(registry, tmp_path, capture):
    from ghcr_janitor.cli.app import app

    pusher = seed(registry)
    for mode in ("basic", "bearer"):
        with FaultProxy(registry.host, auth=mode, password="the-right-one", token_secret=ISSUED) as proxy:
            result = CliRunner().invoke(app, ["-vv", "ls", f"{proxy.host}/{pusher.repo}"],
                                        env={"JANITOR_PASSWORD": CANARY, "JANITOR_RETRY_WAIT": "0.02"},
                                        catch_exceptions=True)
        assert result.exit_code == 1, result.output
        assert "error:" in result.output and "Traceback" not in result.output
        assert_clean(f"{mode} refusal", result.output)
    assert_clean("log records", capture.text())


def test_failing_credential_helper_output_is_never_shown(registry, tmp_path, capture):
    from ghcr_janitor.cli.app import app

    make_helper(tmp_path / "bin", "leaky", f'echo "internal error near {CANARY}"\nexit 1\n')
    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "config.json").write_text(json.dumps({"credHelpers": {registry.host: "leaky"}}))
    result = CliRunner().invoke(app, ["-vv", "ls", f"{registry.host}/secrets/none"],
                                env={"DOCKER_CONFIG": str(docker), "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"},
                                catch_exceptions=True)
    assert result.exit_code != 0
    assert "docker-credential-leaky" in result.output
    assert_clean("helper failure", result.output + capture.text())


def test_github_token_never_leaks(tmp_path, capture, registry):
    """GITHUB_TOKEN goes to ghcr.io targets (REST and OCI); here both answer 401 through an
    auth proxy, so the error paths are exercised with the token in hand."""
    from ghcr_janitor.cli.app import app
    from ghcr_janitor.core.settings import Settings
    from ghcr_janitor.net.auth.credentials import find_credentials

    creds = find_credentials("ghcr.io", settings=Settings.from_env({"GITHUB_TOKEN": CANARY}))
    assert creds is not None and creds.secret.reveal() == CANARY
    assert_clean("Credentials repr", repr(creds) + str(creds))
    with FaultProxy(registry.host, auth="basic", password="not-the-canary") as proxy:
        env = {"GITHUB_TOKEN": CANARY, "GITHUB_API_URL": proxy.url, "JANITOR_GHCR_REGISTRY": proxy.url,
               "JANITOR_RETRY_WAIT": "0.02", "DOCKER_CONFIG": str(tmp_path)}
        for args in (["ls", "ghcr.io/acme/app"], ["plan", "ghcr.io/acme/app", "-o", str(tmp_path / "p.json")],
                     ["prune", "ghcr.io/acme/app", "--dry-run"], ["inspect", "ghcr.io/acme/app:cache-x"]):
            result = CliRunner().invoke(app, ["-vv", *args], env=env, catch_exceptions=True)
            assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
            assert result.exit_code != 0
            assert_clean(f"ghcr {args[0]}", result.output)
    assert_clean("log records", capture.text())


def test_reprs_hide_secrets():
    from ghcr_janitor.net.auth.credentials import Credentials
    from ghcr_janitor.net.auth.flow import RegistryAuth
    from ghcr_janitor.net.auth.secret import Secret
    from ghcr_janitor.net.http import make_client
    from ghcr_janitor.stores.oci.registry import OciRegistry

    creds = Credentials("canary-user", Secret(CANARY), "test")
    auth = RegistryAuth(creds)
    registry = OciRegistry("https://reg.example", "a/b", make_client(2, auth, http2=False))
    for thing in (creds, creds.secret, auth, registry, registry.client):
        assert_clean(type(thing).__name__, repr(thing) + str(thing))


def test_connect_options_repr_hides_password():
    from ghcr_janitor.core.settings import Settings
    from ghcr_janitor.stores.connect import ConnectOptions

    settings = Settings.from_env({"GITHUB_TOKEN": CANARY, "JANITOR_PASSWORD": CANARY})
    options = ConnectOptions(password=CANARY, settings=settings)
    assert_clean("ConnectOptions repr", repr(options))
    assert_clean("Settings repr", repr(settings) + str(settings))


# --- transport rules ------------------------------------------------------------------------

def test_https_is_the_default_for_non_loopback_hosts():
    from ghcr_janitor.stores.connect import base_url_for

    assert base_url_for("registry.example.com", False) == "https://registry.example.com"
    assert base_url_for("registry.example.com:5000", False) == "https://registry.example.com:5000"
    assert base_url_for("10.0.0.5:5000", False) == "https://10.0.0.5:5000"
    assert base_url_for("127.0.0.1:5000", False) == "http://127.0.0.1:5000"
    assert base_url_for("localhost:5000", False) == "http://localhost:5000"
    assert base_url_for("[::1]:5000", False) == "http://[::1]:5000"
    assert base_url_for("registry.example.com", True) == "http://registry.example.com"


@pytest.mark.parametrize("challenge", ['Basic realm="r"',
                                       'Bearer realm="http://auth.example/token",service="reg"'])
def test_no_credentials_over_plain_http_to_a_non_loopback_host(challenge, tmp_path):
    from ghcr_janitor.cli.app import app

    with respx.mock(assert_all_called=False) as mock:
        route = mock.route(host__in=["registry.example", "auth.example"]).mock(
            return_value=httpx.Response(401, headers={"WWW-Authenticate": challenge}))
        result = CliRunner().invoke(app, ["ls", "registry.example:5000/a/b", "--insecure"],
                                    env={"JANITOR_PASSWORD": CANARY, "JANITOR_RETRY_WAIT": "0.02",
                                         "JANITOR_CACHE_DIR": str(tmp_path / "c"),
                                         "JANITOR_STATE_DIR": str(tmp_path / "s")},
                                    catch_exceptions=True)
    assert result.exit_code == 1, result.output
    assert "plain HTTP" in result.output and "Traceback" not in result.output
    assert route.calls, "the registry was never asked"
    for call in route.calls:
        assert "authorization" not in {k.lower() for k in call.request.headers.keys()}, call.request.url
    assert_clean("refusal", result.output)


def test_bearer_token_endpoint_over_https_carries_credentials():
    """Control for the test above: over HTTPS the same flow does send Basic to the token realm."""
    from ghcr_janitor.net.auth.credentials import Credentials
    from ghcr_janitor.net.auth.flow import RegistryAuth
    from ghcr_janitor.net.auth.secret import Secret
    import asyncio

    from ghcr_janitor.net.http import make_client
    from ghcr_janitor.stores.oci.registry import OciRegistry

    with respx.mock() as mock:
        mock.get("https://registry.example/v2/a/b/tags/list").mock(side_effect=[
            httpx.Response(401, headers={"WWW-Authenticate": 'Bearer realm="https://auth.example/token",service="reg"'}),
            httpx.Response(200, json={"tags": ["x"]})])
        token = mock.get(url__startswith="https://auth.example/token").mock(
            return_value=httpx.Response(200, json={"token": ISSUED}))
        auth = RegistryAuth(Credentials("u", Secret(CANARY), "test"))
        registry = OciRegistry("https://registry.example", "a/b", make_client(2, auth, http2=False))

        async def go():
            try:
                return await registry.list_tags()
            finally:
                await registry.aclose()

        assert asyncio.run(go()) == ["x"]
        assert token.calls[0].request.headers["authorization"].startswith("Basic ")
