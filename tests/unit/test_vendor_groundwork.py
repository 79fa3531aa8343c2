"""Issue 22's groundwork: SaaS hosts and `NS/REPO`, the settings file, a host's kind (settings, SaaS,
Harbor's ping), locked tags kept by the planner, and a store that refuses deletes planning nothing."""

from __future__ import annotations

import http.server
import threading

import pytest

from ghcr_janitor.core.errors import UsageError
from ghcr_janitor.core.reference import (
    ACR, DOCKERHUB, ECR, GAR, GHCR, GITLAB, OCI, parse_run_target, parse_target,
)
from ghcr_janitor.core.settings import Settings
from ghcr_janitor.plan.planner import plan_inventory
from ghcr_janitor.stores import connect
from tests.unit.test_plan import art, inventory
from tests.unit.test_planner import NOW, STALE, actions


@pytest.mark.parametrize("text, kind, host, name", [
    ("acme/app", DOCKERHUB, "docker.io", "acme/app"),
    ("docker.io/acme/app:cache", DOCKERHUB, "docker.io", "acme/app"),
    ("index.docker.io/acme/app", DOCKERHUB, "docker.io", "acme/app"),
    ("registry-1.docker.io/acme/app", DOCKERHUB, "docker.io", "acme/app"),
    ("registry.gitlab.com/group/sub/project/image", GITLAB, "registry.gitlab.com", "group/sub/project/image"),
    ("Myreg1.azurecr.io/team/app", ACR, "myreg1.azurecr.io", "team/app"),
    ("europe-west1-docker.pkg.dev/proj/repo/img", GAR, "europe-west1-docker.pkg.dev", "proj/repo/img"),
    ("gcr.io/proj/img", GAR, "gcr.io", "proj/img"),
    ("eu.gcr.io/proj/img", GAR, "eu.gcr.io", "proj/img"),
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com/app", ECR, "123456789012.dkr.ecr.us-east-1.amazonaws.com", "app"),
    ("ghcr.io/acme/app", GHCR, "ghcr.io", "acme/app"),
    ("harbor.example.com/proj/app", OCI, "harbor.example.com", "proj/app"),
    ("notazurecr.io.example.com/x/y", OCI, "notazurecr.io.example.com", "x/y"),
])
def test_saas_hosts_are_recognised_without_settings(text, kind, host, name):
    target = parse_target(text)
    assert (target.kind, target.host, target.name) == (kind, host, name)


@pytest.mark.parametrize("text, message", [
    ("docker.io/acme", "two parts"),
    ("acme", "expected HOST"),
    ("docker.io/*", "NAMESPACE/GLOB"),
    ("Acme/App", "invalid repository name"),
])
def test_docker_hub_names_that_are_not_names_are_usage_errors(text, message):
    with pytest.raises(UsageError, match=message):
        parse_run_target(text)


def write(tmp_path, text: str):
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return {"JANITOR_SETTINGS": str(path)}


def test_the_settings_file_names_hosts_kinds_urls_and_a_token_variable(tmp_path):
    env = write(tmp_path, '[hosts."Harbor.Example.com"]\nkind = "harbor"\napi_url = "https://harbor.example.com/"\n'
                          '[hosts."docker.io"]\nregistry_url = "http://127.0.0.1:5001"\ntoken_env = "HUB_PAT"\n'
                          '[prices.ghcr]\nper_gib_month = 0.25\n')
    settings = Settings.from_env({**env, "HUB_PAT": "dckr_pat_" + "x" * 40})
    harbor = settings.host("harbor.example.com")
    assert (harbor.kind, harbor.api_url) == ("harbor", "https://harbor.example.com")
    hub = settings.host("docker.io")
    assert (hub.registry_url, hub.token) == ("http://127.0.0.1:5001", "dckr_pat_" + "x" * 40)
    assert "dckr_pat" not in repr(settings) and "dckr_pat" not in repr(hub)
    assert settings.prices == {"ghcr": {"per_gib_month": 0.25}}
    assert settings.host("elsewhere.example").kind is None


def test_the_default_settings_file_is_read_from_the_config_dir_and_may_be_absent(tmp_path):
    assert Settings.from_env({"XDG_CONFIG_HOME": str(tmp_path)}).hosts == {}
    (tmp_path / "ghcr-janitor").mkdir()
    (tmp_path / "ghcr-janitor" / "settings.toml").write_text('[hosts."r.example"]\nkind = "gitlab"\n')
    assert Settings.from_env({"XDG_CONFIG_HOME": str(tmp_path)}).host("r.example").kind == "gitlab"


@pytest.mark.parametrize("text, message", [
    ('[hosts."h"]\nkind = "quay"\n', r"hosts\.'h'\.kind: 'quay' is not one of"),
    ('[hosts."h"]\napi_url = "ftp://x"\n', r"hosts\.'h'\.api_url: must be an http"),
    ('[hosts."h"]\napi_url = "http://localhost:1@s3cr3t-value.example"\n', r"api_url: must be an http.*no user"),
    ('[hosts."h"]\nregistry_url = "https://s3cr3t-value"\nkind = "oci"\n[hosts."g"]\napi_url = "ghp_s3cr3t"\n',
     r"api_url: must be an http"),
    ('[hosts."h"]\napi_url = "https://h.example/?token=s3cr3t-value"\n', r"no user, password, query"),
    ('[hosts."h"]\ntoken = "s3cr3t-value"\n', r"hosts\.'h'\.token: unknown key"),
    ('[hosts."h"]\ntoken_env = "s3cr3t-value xyz"\n', r"token_env: must be the NAME"),
    ('[host."h"]\nkind = "oci"\n', r"host: unknown table"),
    ('hosts = [1]\n', r"hosts: must be a table"),
    ('[hosts\n', r"not valid TOML"),
])
def test_a_bad_settings_file_is_one_usage_error_naming_file_and_key(tmp_path, text, message):
    env = write(tmp_path, text)
    with pytest.raises(UsageError, match=message) as caught:
        Settings.from_env(env)
    assert str(tmp_path) in str(caught.value) and "\n" not in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


def test_a_named_settings_file_must_exist_and_be_a_regular_file(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        Settings.from_env({"JANITOR_SETTINGS": str(tmp_path / "missing.toml")})
    with pytest.raises(UsageError, match="not a regular file"):
        Settings.from_env({"JANITOR_SETTINGS": str(tmp_path)})


class _Ping(http.server.BaseHTTPRequestHandler):
    answer = b"Pong"
    seen: list[str] = []

    def do_GET(self):
        self.seen.append(self.path)
        body = self.answer if self.path == "/api/v2.0/ping" else b"404 page not found"
        self.send_response(200 if self.path == "/api/v2.0/ping" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def pinged():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ping)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Ping.seen = []
    connect._pinged.clear()
    try:
        yield server
    finally:
        server.shutdown()
        connect._pinged.clear()


def test_a_host_answering_harbors_ping_is_harbor_once_per_process_and_settings_win(pinged, tmp_path):
    host = f"127.0.0.1:{pinged.server_address[1]}"
    target = parse_target(f"{host}/proj/app")
    options = connect.ConnectOptions(settings=Settings.from_env({}))
    assert connect.kind_of(target, options) == "harbor"
    assert connect.kind_of(target, options) == "harbor"
    assert _Ping.seen == ["/api/v2.0/ping"]                          # asked once
    assert connect.kind_of(target, options, probe=False) == OCI        # preflight never contacts
    settings = Settings.from_env(write(tmp_path, f'[hosts."{host}"]\nkind = "oci"\n'))
    assert connect.kind_of(target, connect.ConnectOptions(settings=settings)) == OCI


def test_a_host_that_does_not_pong_is_plain_oci(pinged):
    _Ping.answer = b"nope"
    try:
        target = parse_target(f"127.0.0.1:{pinged.server_address[1]}/proj/app")
        assert connect.kind_of(target, connect.ConnectOptions(settings=Settings.from_env({}))) == OCI
        closed = parse_target("127.0.0.1:9/proj/app")               # nothing listens: plain OCI, no error
        assert connect.kind_of(closed, connect.ConnectOptions(settings=Settings.from_env({}))) == OCI
    finally:
        _Ping.answer = b"Pong"


def test_a_locked_tag_is_kept_with_the_lock_as_its_reason_and_its_digest_stays():
    locked = art("old", {"l": 5})
    locked.extra["locked_tags"] = {"cache-old": "ACR deleteEnabled = false"}
    inv = inventory({"cache-old": "old", "cache-older": "old", "cache-gone": "gone"}, [locked, art("gone", {"g": 3})])
    tp = plan_inventory(inv, STALE, NOW)
    assert actions(tp) == [("delete", "cache-gone"), ("untag", "cache-older")]
    assert [(k.tag, k.reason) for k in tp.kept if k.tag == "cache-old"] == [
        ("cache-old", "locked: ACR deleteEnabled = false")]


def test_a_locked_artifact_is_never_deleted():
    locked = art("old", {"l": 5})
    locked.extra["locked"] = "Harbor tag immutability rule"
    tp = plan_inventory(inventory({"cache-old": "old"}, [locked]), STALE, NOW)
    assert actions(tp) == []


def test_a_store_that_refuses_deletes_plans_nothing_destructive_and_says_why_once():
    inv = inventory({"cache-a": "a", "cache-b": "b", "keep": "b"}, [art("a", {"x": 1}), art("b", {"y": 1})])
    assert actions(plan_inventory(inv, STALE, NOW)) == [("delete", "cache-a"), ("untag", "cache-b")]
    inv.facts["deletes_refused"] = "Docker Hub refuses deletes for these credentials"
    tp = plan_inventory(inv, STALE, NOW)
    assert actions(tp) == [] and tp.reclaim_size == 0
    assert tp.errors == ["not changed: Docker Hub refuses deletes for these credentials"]


class _Trickle(threading.Thread):
    """A raw HTTP server that trickles a 200 answer a byte at a time, or declares a huge one."""

    def __init__(self, mode: str):
        super().__init__(daemon=True)
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.mode = mode

    def run(self):
        import time

        conn, _ = self.sock.accept()
        conn.recv(65536)
        try:
            if self.mode == "trickle":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n")
                for _ in range(40):
                    conn.sendall(b" ")
                    time.sleep(0.2)
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n")
                for _ in range(64):
                    conn.sendall(b"Pong" * (1 << 18))
        except OSError:
            pass
        conn.close()


@pytest.mark.parametrize("mode", ["trickle", "huge"])
def test_the_harbor_ping_is_bounded_in_time_and_size(monkeypatch, mode):
    import time

    monkeypatch.setattr(connect, "PING_TIMEOUT", 0.5)
    connect._pinged.clear()
    server = _Trickle(mode)
    server.start()
    started = time.monotonic()
    harbor = connect._answers_as_harbor(f"http://127.0.0.1:{server.port}", connect.ConnectOptions(settings=Settings()))
    assert time.monotonic() - started < 2.0 and harbor is False
    connect._pinged.clear()
