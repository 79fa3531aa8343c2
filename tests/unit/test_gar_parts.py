"""GAR/GCR pieces without a server: target names, the tags-list extension's shapes (AR numbers vs GCR
strings), and where credentials come from (order, helpers, key files, the metadata server)."""

from __future__ import annotations

import json
import os
import stat
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from ghcr_janitor.core.errors import AuthError, RegistryError, UsageError
from ghcr_janitor.core.reference import parse_target
from ghcr_janitor.core.settings import Settings
from ghcr_janitor.stores.gar import tokens
from ghcr_janitor.stores.gar.listing import Listing, merge_page
from ghcr_janitor.stores.gar.names import parse_name

TOKEN = "ya29.unit-test-token-never-printed"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def options(env: dict[str, str] | None = None, password: str | None = None):
    """Options over `env` alone, with conftest's empty DOCKER_CONFIG unless `env` names another."""
    base = {"DOCKER_CONFIG": os.environ["DOCKER_CONFIG"], "PATH": os.environ["PATH"]}
    return SimpleNamespace(settings=Settings.from_env({**base, **(env or {})}), username=None, password=password)


# --- names ------------------------------------------------------------------------------------
def test_names_of_artifact_registry_and_container_registry_targets():
    ar = parse_name(parse_target("europe-west1-docker.pkg.dev/acme/cache/team/app"))
    assert (ar.flavour, ar.location, ar.project, ar.repository, ar.image) == \
        ("ar", "europe-west1", "acme", "cache", "team/app")
    assert ar.repository_path == "projects/acme/locations/europe-west1/repositories/cache"
    gcr = parse_name(parse_target("eu.gcr.io/acme/app"))
    assert (gcr.flavour, gcr.project, gcr.image, gcr.repository) == ("gcr", "acme", "app", None)
    glob = parse_name(parse_target("us-docker.pkg.dev/acme/*"))
    assert (glob.project, glob.repository) == ("acme", None)


@pytest.mark.parametrize("text, hint", [
    ("us-docker.pkg.dev/acme/cache", "us-docker.pkg.dev/PROJECT/REPOSITORY/IMAGE"),
    ("gcr.io/acme", "gcr.io/PROJECT/IMAGE"),
])
def test_a_name_without_its_parts_is_a_usage_error_naming_the_form(text, hint):
    with pytest.raises(UsageError, match=hint):
        parse_name(parse_target(text))


# --- the tags-list extension --------------------------------------------------------------------
def test_upload_times_as_artifact_registry_numbers_and_container_registry_strings():
    listing = Listing()
    merge_page(listing, {"tags": ["a", "b"], "child": ["sub"], "manifest": {
        DIGEST_A: {"imageSizeBytes": "1024", "mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "tag": ["a"], "timeCreatedMs": "0", "timeUploadedMs": 1767225600000},
        DIGEST_B: {"imageSizeBytes": "7", "tag": [], "timeCreatedMs": "1767225600000",
                   "timeUploadedMs": "1767312000000"},
        "not-a-digest": {"tag": ["x"]}}}, "listing")
    a, b = listing.entries[DIGEST_A], listing.entries[DIGEST_B]
    assert a.uploaded.isoformat() == "2026-01-01T00:00:00+00:00" and a.created is None and a.size == 1024
    assert b.uploaded.isoformat() == "2026-01-02T00:00:00+00:00" and b.tags == () and b.media_type is None
    assert listing.children == {"sub"} and set(listing.entries) == {DIGEST_A, DIGEST_B}
    assert listing.tag_map() == {"a": DIGEST_A}
    assert listing.missing_tags() == ["b"]          # on tags[] but on no manifest entry


@pytest.mark.parametrize("doc", [[], {"tags": "x"}, {"child": [1]}, {"manifest": []}])
def test_a_listing_of_another_shape_is_a_registry_error(doc):
    with pytest.raises(RegistryError):
        merge_page(Listing(), doc, "listing x")


# --- credentials ---------------------------------------------------------------------------------
def write_docker_config(tmp_path, doc: dict) -> dict[str, str]:
    (tmp_path / "docker").mkdir(exist_ok=True)
    (tmp_path / "docker" / "config.json").write_text(json.dumps(doc))
    return {"DOCKER_CONFIG": str(tmp_path / "docker")}


def gcloud_helper(tmp_path, secret: str) -> dict[str, str]:
    """A `docker-credential-gcloud` on PATH answering as gcloud's does."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    helper = bin_dir / "docker-credential-gcloud"
    helper.write_text(f"#!/bin/sh\ncat >/dev/null\necho '{{\"Username\": \"_dcgcloud_token\", \"Secret\": \"{secret}\"}}'\n")
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_the_access_token_variable_wins_over_docker_config(tmp_path):
    env = {**write_docker_config(tmp_path, {"credHelpers": {"us-docker.pkg.dev": "gcloud"}}),
           **gcloud_helper(tmp_path, "from-helper"), "GOOGLE_OAUTH_ACCESS_TOKEN": TOKEN}
    found = tokens.find("us-docker.pkg.dev", options(env), None)
    assert (found.username, found.secret.reveal(), found.source) == ("oauth2accesstoken", TOKEN,
                                                                   "GOOGLE_OAUTH_ACCESS_TOKEN")
    assert TOKEN not in repr(found)


def test_the_gcloud_helper_gives_a_token_the_rest_api_takes(tmp_path):
    env = {**write_docker_config(tmp_path, {"credHelpers": {"us-docker.pkg.dev": "gcloud"}}),
           **gcloud_helper(tmp_path, "helper-token")}
    found = tokens.find("us-docker.pkg.dev", options(env), None)
    assert (found.username, found.secret.reveal()) == ("_dcgcloud_token", "helper-token")
    assert tokens.is_access_token(found)


def test_a_json_key_login_serves_v2_but_is_no_rest_token(tmp_path):
    import base64
    auth = base64.b64encode(b'_json_key:{"type": "service_account"}').decode()
    env = write_docker_config(tmp_path, {"auths": {"gcr.io": {"auth": auth}}})
    found = tokens.find("gcr.io", options(env), None)
    assert found.username == "_json_key" and not tokens.is_access_token(found)


def test_a_key_file_without_google_auth_is_one_usage_error_with_the_install_hint(tmp_path, monkeypatch):
    monkeypatch.setattr(tokens, "has_google_auth", lambda: False)
    env = {"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "key.json")}
    with pytest.raises(UsageError, match="pip install google-auth"):
        tokens.check(options(env), None)
    with pytest.raises(UsageError, match="pip install google-auth"):
        tokens.find("gcr.io", options(env), None)
    tokens.check(options({**env, "GOOGLE_OAUTH_ACCESS_TOKEN": TOKEN}), None)     # another source: no error
    tokens.check(options({**env, **write_docker_config(tmp_path, {"credHelpers": {"gcr.io": "gcloud"}})}), None)


def test_a_key_file_is_exchanged_through_google_auth_when_installed(tmp_path, monkeypatch):
    """google-auth's API as the janitor calls it (a stub: google-auth is not a dependency)."""
    calls = []

    class Creds:
        token = None

        def refresh(self, request):
            calls.append(type(request).__name__)
            self.token = "from-key-file"

    google = SimpleNamespace(__path__=[])
    auth = SimpleNamespace(load_credentials_from_file=lambda path, scopes: (calls.append((path, scopes)) or Creds(), "p"))
    transport = SimpleNamespace(requests=SimpleNamespace(Request=type("Request", (), {})))
    google.auth = auth
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.auth", auth)
    monkeypatch.setitem(sys.modules, "google.auth.transport", transport)
    monkeypatch.setitem(sys.modules, "google.auth.transport.requests", transport.requests)
    monkeypatch.setattr(tokens, "has_google_auth", lambda: True)
    found = tokens.find("gcr.io", options({"GOOGLE_APPLICATION_CREDENTIALS": "/keys/sa.json"}), None)
    assert found.secret.reveal() == "from-key-file" and found.source == "GOOGLE_APPLICATION_CREDENTIALS"
    assert calls == [("/keys/sa.json", [tokens.SCOPE]), "Request"]


class Metadata:
    """A metadata server: the token path with `Metadata-Flavor: Google` only."""

    def __init__(self):
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.requests.append((self.path, self.headers.get("Metadata-Flavor")))
                ok = self.path == tokens.METADATA_PATH and self.headers.get("Metadata-Flavor") == "Google"
                body = json.dumps({"access_token": "from-metadata", "expires_in": 3599, "token_type": "Bearer"}
                                  if ok else {"error": "no"}).encode()
                self.send_response(200 if ok else 403)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.host = f"127.0.0.1:{self.server.server_address[1]}"


def test_the_metadata_server_named_by_gce_metadata_host(monkeypatch, tmp_path):
    server = Metadata()
    try:
        found = tokens.find("gcr.io", options({"GCE_METADATA_HOST": server.host}), None)
    finally:
        server.server.shutdown()
    assert found.secret.reveal() == "from-metadata" and tokens.is_access_token(found)
    assert server.requests == [(tokens.METADATA_PATH, "Google")]


def test_off_compute_engine_no_metadata_server_is_asked(monkeypatch, tmp_path):
    product = tmp_path / "product_name"
    product.write_text("Standard PC (Q35 + ICH9, 2009)\n")
    monkeypatch.setattr(tokens, "GCE_PRODUCT_FILE", product)
    assert tokens.find("gcr.io", options({}), None) is None
    product.write_text("Google Compute Engine\n")
    assert tokens.metadata_host(Settings.from_env({})) == "metadata.google.internal"


def test_a_metadata_server_that_does_not_answer_is_one_auth_error(monkeypatch):
    from tests.support.registry import free_port

    with pytest.raises(AuthError, match="did not answer"):
        tokens.find("gcr.io", options({"GCE_METADATA_HOST": f"127.0.0.1:{free_port()}"}), None)
