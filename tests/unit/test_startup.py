"""Start-up stays light: lazy imports on the way to the first request, no TLS for plain HTTP."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "; print(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_version_answers_without_typer():
    code = ("import sys; sys.argv = ['janitor', '--version']; from ghcr_janitor.cli.app import main; main()")
    out = subprocess.run([sys.executable, "-c", code + "; print('typer' in sys.modules, 'httpx' in sys.modules)"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "janitor" and out[2:] == ["False", "False"]


def test_registering_the_commands_imports_no_network_or_event_loop():
    loaded = _modules_after("import sys, ghcr_janitor.cli.commands")
    assert not {"httpx", "asyncio", "ssl", "sqlite3", "stamina", "http.client"} & loaded


def test_app_is_still_importable_by_name():
    from ghcr_janitor.cli import app as entry
    from ghcr_janitor.cli.commands import app

    assert entry.app is app


def test_plain_http_client_builds_no_tls_context(monkeypatch):
    import httpx

    from ghcr_janitor.net.http import make_client

    def refuse(*args, **kwargs):
        raise AssertionError("TLS context built for plain HTTP")

    monkeypatch.setattr(httpx, "create_ssl_context", refuse)
    client = make_client(8, None, base_url="http://127.0.0.1:5000")
    assert client.client._transport._ssl_context is None
    client.client.close()


def test_cli_process_tunes_the_garbage_collector():
    code = ("import gc, sys; sys.argv = ['janitor', '--help']\n"
            "from ghcr_janitor.cli import app\n"
            "try:\n    app.main()\nexcept SystemExit:\n    pass\n"
            "print(gc.get_threshold(), gc.get_freeze_count() > 1000)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "(50000, 50, 1000) True"
