"""Tokens up to ~520 characters (GitHub App installation tokens and GITHUB_TOKEN since 2026:
`ghs_APPID_JWT`, variable length; gha-cache.md U.1) are sent as they are and never printed, even
at -vv, even when an answer echoes them (issue 20, point 13)."""

from __future__ import annotations

import json

from tests.support.tokens import long_token

TARGET = "gha:acme/app"


def assert_never_shown(token: str, *texts: str) -> None:
    for text in texts:
        assert token not in text and token[:12] not in text and token[-40:] not in text


def test_a_520_character_token_is_sent_whole_and_never_printed(gha, cli, monkeypatch, tmp_path):
    token = long_token("ghs_")
    gha.token = token                                   # the stand-in answers 401 to anything else
    monkeypatch.setenv("GITHUB_TOKEN", token)
    listed = cli("ls", TARGET, "-O", "json", "-vv")
    assert listed.exit_code == 0, listed.stderr[-2000:]
    assert json.loads(listed.stdout)["targets"][0]["totals"]["entries"] == len(gha.entries)
    pruned = cli("prune", TARGET, "--yes", "-vv")
    assert pruned.exit_code == 0, pruned.stderr[-2000:]
    assert any(m == "DELETE" and status == 204 for m, _, status in gha.requests)
    assert_never_shown(token, listed.stdout, listed.stderr, pruned.stdout, pruned.stderr)


def test_an_answer_that_echoes_the_token_is_redacted_in_the_error(gha, cli, monkeypatch):
    token = long_token("ghs_")
    gha.token = token
    monkeypatch.setenv("GITHUB_TOKEN", token)
    gha.fail("GET", 403, {"message": f"Resource not accessible by integration (Authorization: Bearer {token})"})
    result = cli("ls", TARGET, "-vv")
    assert result.exit_code == 1
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "access denied (403: Resource not accessible by integration (Authorization: Bearer ********)" in error
    assert_never_shown(token, result.stdout, result.stderr)
