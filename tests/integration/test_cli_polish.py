"""The CLI's manners (issue 20, point 8): a closed pipe ends a command quietly, help shows
metavars, never Python types."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from datetime import datetime, timezone

import pytest

NOW = datetime.now(timezone.utc).replace(microsecond=0)
COMMANDS = [("ls",), ("inspect",), ("plan",), ("prune",), ("apply",), ("gc",), ("report",), ("policy", "check"),
            ("history", "export"), ("history", "import"), ()]


def _janitor() -> list[str]:
    found = shutil.which("janitor")
    return [found] if found else [sys.executable, "-m", "ghcr_janitor"]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "janitor")
def test_help_shows_metavars_not_python_types(cli, command):
    result = cli(*command, "--help")
    assert result.exit_code == 0, result.output
    text = result.stdout
    # typer's defaults: `<list[str]>`, `<path>`, `<int range>`, `{plan_file}`
    assert not re.search(r"<[a-z]|list\[|\{", text), text
    usage = text.splitlines()[0]
    assert re.fullmatch(r"Usage: janitor[ a-z]* \[OPTIONS\]( \[?[A-Z_]+\]?(\.\.\.)?| COMMAND \[ARGS\]\.\.\.)?", usage), usage


def test_help_names_the_arguments():
    helps = {}
    for command in COMMANDS[:-1]:
        out = subprocess.run([*_janitor(), *command, "--help"], capture_output=True, text=True, check=True).stdout
        helps[command] = out.splitlines()[0]
    assert helps[("ls",)].endswith("[OPTIONS] [TARGET]...")
    assert helps[("inspect",)].endswith("[OPTIONS] TARGET")
    assert helps[("apply",)].endswith("[OPTIONS] PLAN_FILE")
    assert helps[("history", "import")].endswith("[OPTIONS] FILE")
    assert helps[("policy", "check")].endswith("[OPTIONS] [FILE]")


def _seed(repo, tags: int) -> None:
    for i in range(tags):
        repo.buildkit_cache(f"cache-{i:03d}", [f"layer-{i}".encode() * 20], NOW)


def test_a_closed_pipe_ends_ls_quietly(registry, repo, tmp_path):
    """The reader of standard output is gone before the janitor writes: no message, exit 141
    (128 + SIGPIPE, what a shell reports for `cat big | head -1`)."""
    _seed(repo, 3)
    env = {**os.environ, "JANITOR_CACHE_DIR": str(tmp_path / "c"), "JANITOR_STATE_DIR": str(tmp_path / "s")}
    for fmt in ("table", "json", "markdown"):
        read, write = os.pipe()
        os.close(read)
        try:
            done = subprocess.run([*_janitor(), "ls", f"{registry.host}/{repo.repo}", "-O", fmt], stdout=write,
                                  stderr=subprocess.PIPE, text=True, env=env, timeout=60)
        finally:
            os.close(write)
        assert (done.returncode, done.stderr) == (141, ""), fmt


def test_ls_into_head_through_bash_pipefail(registry, repo, tmp_path):
    """More output than a pipe holds (64 KiB), so the janitor is still writing when head leaves."""
    from tests.support.push import OCI_MANIFEST

    _, body = repo.buildkit_cache("cache-000", [b"layer" * 20], NOW)
    for i in range(1, 300):
        repo.manifest(f"cache-{i:03d}", body, OCI_MANIFEST)
    env = {**os.environ, "JANITOR_CACHE_DIR": str(tmp_path / "c"), "JANITOR_STATE_DIR": str(tmp_path / "s")}
    command = " ".join(shlex.quote(p) for p in _janitor())
    script = (f"set -o pipefail; {command} ls {registry.host}/{repo.repo} -O json | head -1; "
              f"echo \"status ${{PIPESTATUS[0]}}\" >&2")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.stdout == "{\n"
    assert done.stderr.strip().splitlines() == ["status 141"]


def test_a_closed_pipe_outside_a_network_command_is_quiet_too(tmp_path):
    env = {**os.environ, "JANITOR_STATE_DIR": str(tmp_path / "s")}
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([*_janitor(), "policy", "check"], stdout=write, stderr=subprocess.PIPE, text=True,
                              env=env, timeout=60)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")


def test_the_prune_question_counts_in_good_english(cli, registry, repo, monkeypatch, tmp_path):
    from datetime import timedelta

    from ghcr_janitor.cli import confirm

    asked = []
    monkeypatch.setattr(confirm, "refuse_unless_confirmable", lambda yes, hint: None)     # as on a terminal
    monkeypatch.setattr(confirm, "confirm_or_refuse", lambda question, yes, hint: asked.append(question))
    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\nselect = { tags = ["cache-old-*"] }\nolder_than = "30d"\naction = "delete"\n')
    repo.buildkit_cache("cache-old-1", [b"one" * 10], NOW - timedelta(days=90))
    repo.buildkit_cache("cache-new", [b"new" * 10], NOW)
    result = cli("prune", f"{registry.host}/{repo.repo}", "--policy", str(policy))
    assert result.exit_code == 0, result.output
    repo.buildkit_cache("cache-old-2", [b"two" * 10], NOW - timedelta(days=90))
    repo.buildkit_cache("cache-old-3", [b"three" * 10], NOW - timedelta(days=90))
    result = cli("prune", f"{registry.host}/{repo.repo}", "--policy", str(policy))
    assert result.exit_code == 0, result.output
    assert asked == ["Apply 1 action?", "Apply 2 actions?"]


def test_counted_nouns():
    from ghcr_janitor.core.words import count, noun

    assert [count(n, "action") for n in (0, 1, 2)] == ["0 actions", "1 action", "2 actions"]
    assert count(1, "entry", "entries") == "1 entry" and count(3, "entry", "entries") == "3 entries"
    assert (noun(1, "tag"), noun(2, "tag")) == ("tag", "tags")


def test_no_count_in_the_cli_says_x_s(cli, registry, repo, tmp_path):
    """`report` says what it wrote in human units with exact bytes, as every other output does."""
    from datetime import timedelta

    repo.buildkit_cache("cache-old-1", [b"one" * 500], NOW - timedelta(days=90))
    repo.buildkit_cache("cache-pr-1-x", [b"pr" * 500], NOW - timedelta(days=90))
    out = tmp_path / "r.html"
    result = cli("report", f"{registry.host}/{repo.repo}", "-o", str(out))
    assert result.exit_code == 0, result.output
    [line] = [l for l in result.stderr.splitlines() if l.startswith("wrote ")]
    found = re.fullmatch(rf"wrote {re.escape(str(out))}: 1 target, reclaimable (\d+(?:\.\d)? (?:B|KiB|MiB)) \((\d+) bytes\)",
                         line)
    assert found, line
    from ghcr_janitor.core.humanize import human_size

    assert found.group(1) == human_size(int(found.group(2)))
    assert "(s)" not in result.stderr + result.stdout
    # :TAG on report restricts it too (said on stderr)
    result = cli("report", f"{registry.host}/{repo.repo}:cache-old-1", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert f"{registry.host}/{repo.repo}:cache-old-1: only tag cache-old-1" in result.stderr


def test_inspect_names_platforms_as_docker_does_and_attestations_by_whose(cli, registry, repo):
    """A BuildKit multi-platform push: platforms `linux/amd64`, `linux/arm64/v8` (not `amd64/linux`),
    and its attestation manifests (platform unknown/unknown) named by the image they attest."""
    from ghcr_janitor.core.digests import short
    from tests.support.push import OCI_INDEX, OCI_MANIFEST, dumps

    created = NOW
    amd, amd_body = repo.image(None, [b"amd" * 9], created)
    arm, arm_body = repo.image(None, [b"arm" * 9], created, platform={"architecture": "arm64"})
    att, att_body = repo.image(None, [b'{"_type": "https://in-toto.io/Statement/v0.1"}'], created)
    unknown = {"architecture": "unknown", "os": "unknown"}
    index = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": amd, "size": len(amd_body),
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": OCI_MANIFEST, "digest": arm, "size": len(arm_body),
         "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        {"mediaType": OCI_MANIFEST, "digest": att, "size": len(att_body), "platform": unknown,
         "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                         "vnd.docker.reference.digest": amd}}]})
    repo.manifest("multi", index, OCI_INDEX)
    result = cli("inspect", f"{registry.host}/{repo.repo}:multi", "-O", "json")
    assert result.exit_code == 0, result.output
    described = [c["describes"] for c in json.loads(result.stdout)["children"]]
    assert described == ["linux/amd64", "linux/arm64/v8", f"attestation-manifest for linux/amd64 ({short(amd)})"]
    table = cli("inspect", f"{registry.host}/{repo.repo}:multi").stdout
    rows = {line.split()[1]: line for line in table.splitlines() if line.startswith(OCI_MANIFEST)}
    assert rows[amd].rstrip().endswith("linux/amd64")
    assert rows[arm].rstrip().endswith("linux/arm64/v8")
    assert rows[att].rstrip().endswith(f"attestation-manifest for linux/amd64 ({short(amd)})")
    assert "amd64/linux" not in table and "unknown/unknown" not in table


@pytest.mark.parametrize("fmt", ["table", "markdown", "json"])
def test_a_long_listing_into_head_ends_with_141_in_every_format(layout, tmp_path, fmt):
    """One write far larger than a pipe holds, cut short when head leaves: CPython's buffered writer
    drops that broken pipe (exit 0, the rest lost) unless standard output takes it in pieces."""
    index = json.loads((layout / "index.json").read_text())
    entry = index["manifests"][0]
    for i in range(1500):
        copy = json.loads(json.dumps(entry))
        copy.setdefault("annotations", {})["org.opencontainers.image.ref.name"] = f"cache-many-{i:04d}"
        index["manifests"].append(copy)
    (layout / "index.json").write_text(json.dumps(index))
    env = {**os.environ, "JANITOR_CACHE_DIR": str(tmp_path / "c"), "JANITOR_STATE_DIR": str(tmp_path / "s")}
    command = " ".join(shlex.quote(p) for p in _janitor())
    script = (f"set -o pipefail; {command} ls --all-tags -O {fmt} oci-layout:{shlex.quote(str(layout))} | head -1 "
              f">/dev/null; echo \"status ${{PIPESTATUS[0]}}\" >&2")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.stderr.strip().splitlines() == ["status 141"], done.stderr
