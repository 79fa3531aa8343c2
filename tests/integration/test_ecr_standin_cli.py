"""ECR through the CLI against the stand-in (tests/support/ecr_standin.py): pull times and the
not_pulled_for selector, archived images, one-line errors, no secret in any output, the install hint
without boto3, and the request counts per 1,000 images listed and per 100 deleted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.support.ecr_moto import aws_env, cache_manifest, image_manifest
from tests.support.ecr_standin import HOST, EcrStandIn

DAY = 86400.0
TARGET = f"{HOST}/app"
SECRET = "janitor-test-secret-never-printed"


@pytest.fixture
def standin(monkeypatch, tmp_path):
    with EcrStandIn() as server:
        aws_env(monkeypatch, server.url, tmp_path)
        yield server


def test_ls_shows_push_and_pull_times_and_archived_images(cli, standin):
    now = time.time()
    standin.put("app", cache_manifest("cold"), ("cache-cold",), pushed=now - 90 * DAY, last_pulled=now - 40 * DAY)
    standin.put("app", cache_manifest("never"), ("cache-never",), pushed=now - 10 * DAY)
    archived = standin.put("app", image_manifest("old"), (), pushed=now - 200 * DAY, status="ARCHIVED")
    result = cli("ls", TARGET, "--all-tags", "--output", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    target = json.loads(result.stdout)["targets"][0]
    tags = {t["tag"]: t for t in target["tags"]}
    assert tags["cache-cold"]["last_pulled"].startswith(time.strftime("%Y-%m-%d", time.gmtime(now - 40 * DAY)))
    assert tags["cache-cold"]["pushed"] == tags["cache-cold"]["created"]
    assert tags["cache-never"]["last_pulled"] is None
    assert tags["cache-never"]["archived"] is False
    (untagged,) = target["untagged"]
    assert untagged["digest"] == archived and untagged["archived"] is True


def test_prune_by_pull_time(cli, standin, tmp_path):
    now = time.time()
    cold = standin.put("app", cache_manifest("cold"), ("cache-cold",), pushed=now - 90 * DAY, last_pulled=now - 40 * DAY)
    warm = standin.put("app", cache_manifest("warm"), ("cache-warm",), pushed=now - 90 * DAY, last_pulled=now - 2 * DAY)
    never = standin.put("app", cache_manifest("never"), ("cache-never",), pushed=now - 45 * DAY)
    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\nname = "unpulled"\nselect = { tags = ["cache-*"], not_pulled_for = "30d" }\n'
                      'action = "delete"\n')
    dry = cli("prune", TARGET, "--policy", str(policy), "--dry-run", "--output", "json")
    assert dry.exit_code == 0, dry.stdout + dry.stderr
    actions = {a["tag"]: a["reason"] for a in json.loads(dry.stdout)["targets"][0]["actions"]}
    assert set(actions) == {"cache-cold", "cache-never"}
    assert actions["cache-never"].startswith("not pulled for 30d: never pulled, pushed")
    assert standin.requests["BatchDeleteImage"] == 0
    # ECR records the janitor's own manifest reads (BatchGetImage) as pulls (unless its role is in the
    # registry's pull-time update exclusions); the janitor remembers its reads and sees through them.
    assert standin.repos["app"][cold].last_pulled > now and standin.repos["app"][never].last_pulled > now
    done = cli("prune", TARGET, "--policy", str(policy), "--yes")
    assert done.exit_code == 0, done.stdout + done.stderr
    assert set(standin.repos["app"]) == {warm}


def test_a_real_pull_after_the_janitors_read_counts(cli, standin, tmp_path):
    now = time.time()
    digest = standin.put("app", cache_manifest("cold"), ("cache-cold",), pushed=now - 90 * DAY,
                         last_pulled=now - 40 * DAY)
    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\nselect = { tags = ["cache-*"], not_pulled_for = "30d" }\naction = "delete"\n')
    first = cli("prune", TARGET, "--policy", str(policy), "--dry-run", "--output", "json")
    assert [a["tag"] for a in json.loads(first.stdout)["targets"][0]["actions"]] == ["cache-cold"]
    standin.repos["app"][digest].last_pulled = time.time() + 3600      # a deploy pulled it after the read
    second = cli("prune", TARGET, "--policy", str(policy), "--dry-run", "--output", "json")
    assert json.loads(second.stdout)["targets"][0]["actions"] == []


def test_errors_are_one_line_and_no_secret_is_printed(cli, standin, monkeypatch):
    monkeypatch.setenv("AWS_SESSION_TOKEN", "janitor-test-session-token-never-printed")
    result = cli("-vv", "ls", f"{HOST}/missing-repo")      # DEBUG: every logger the CLI lets through
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "RepositoryNotFoundException" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert "session-token-never-printed" not in result.stdout + result.stderr
    assert "AKIAJANITORTESTKEY00" not in result.stdout + result.stderr
    sent = sum(standin.requests.values())
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECR", "http://ecr.example.com")
    refused = cli("ls", TARGET)
    assert refused.exit_code == 2
    assert "AWS_ENDPOINT_URL_ECR: plain HTTP to ecr.example.com" in refused.stderr
    assert sum(standin.requests.values()) == sent


BLOCK_BOTO3 = """
import builtins, sys
real = builtins.__import__
def guard(name, *args, **kwargs):
    if name.split(".")[0] in ("boto3", "botocore"):
        raise ImportError("No module named " + repr(name))
    return real(name, *args, **kwargs)
builtins.__import__ = guard
from ghcr_janitor.cli.app import main
sys.argv = ["janitor", *sys.argv[1:]]
main()
"""


def test_without_boto3_one_line_with_the_install_hint_and_exit_2(standin):
    result = subprocess.run([sys.executable, "-c", BLOCK_BOTO3, "ls", TARGET], capture_output=True, text=True,
                            timeout=60, env=dict(os.environ))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: ECR targets need boto3, which the `ecr` extra installs: pip install 'ghcr-janitor[ecr]'"]
    assert sum(standin.requests.values()) == 0


def test_requests_per_thousand_images_listed_and_per_hundred_deleted(cli, standin, tmp_path, capsys):
    now = time.time()
    for i in range(1000):
        standin.put("app", cache_manifest(f"c{i}"), (f"cache-{i}",) if i < 900 else (), pushed=now - 100 * DAY)
    listed = cli("ls", TARGET, "--all-tags", "--output", "json")
    assert listed.exit_code == 0, listed.stderr
    assert len(json.loads(listed.stdout)["targets"][0]["untagged"]) == 100
    per_listing = dict(standin.requests)
    # One DescribeImages (1,000 a page); BatchGetImage takes up to 100 manifests a call, as many as the
    # inventory asks for at once (its in-flight bound, 64 by default): 16 calls.
    assert per_listing["DescribeImages"] == 1 and per_listing["BatchGetImage"] <= 16
    assert set(per_listing) == {"DescribeImages", "BatchGetImage"}

    standin.requests.clear()
    policy = tmp_path / "p.toml"
    policy.write_text('[[rule]]\nselect = { untagged = true }\naction = "delete"\n')
    pruned = cli("prune", TARGET, "--all-tags", "--policy", str(policy), "--yes")
    assert pruned.exit_code == 0, pruned.stdout + pruned.stderr
    assert len(standin.repos["app"]) == 900
    per_delete = dict(standin.requests)
    # The listing, then one last look (DescribeImages for the untagged, ListImages twice for the tags)
    # covers all 100 deletes, sent as one BatchDeleteImage.
    assert per_delete == {"DescribeImages": 2, "ListImages": 2, "BatchDeleteImage": 1}
    with capsys.disabled():
        print(f"\nECR requests, 1,000 images listed: {per_listing}; prune deleting 100 untagged: {per_delete}")
