"""ECR registry hosts are recognised as ECR targets, with their account, region and repository."""

from __future__ import annotations

import pytest

from ghcr_janitor.core.errors import UsageError
from ghcr_janitor.core.reference import ECR, OCI, ecr_host, parse_target


@pytest.mark.parametrize("text, host, name, tag", [
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com/app", "123456789012.dkr.ecr.us-east-1.amazonaws.com", "app", None),
    ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/team/app:cache-x",
     "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "team/app", "cache-x"),
    ("123456789012.DKR.ECR.eu-west-1.amazonaws.com/app", "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "app", None),
])
def test_ecr_targets(text, host, name, tag):
    target = parse_target(text)
    assert (target.kind, target.host, target.name, target.tag) == (ECR, host, name, tag)


def test_account_region_and_fips_come_from_the_host():
    assert ecr_host("123456789012.dkr.ecr.us-gov-west-1.amazonaws.com").region == "us-gov-west-1"
    fips = ecr_host("123456789012.dkr.ecr-fips.us-east-2.amazonaws.com")
    assert (fips.account, fips.region, fips.fips) == ("123456789012", "us-east-2", True)
    assert ecr_host("12345.dkr.ecr.us-east-1.amazonaws.com") is None          # not a 12-digit account
    assert ecr_host("123456789012.dkr.ecr.us-east-1.amazonaws.com:443") is None
    assert parse_target("registry.example.com/123456789012/app").kind == OCI


@pytest.mark.parametrize("text, name", [
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com/*", "*"),
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/*", "team/*"),
])
def test_ecr_globs(text, name):
    target = parse_target(text)
    assert (target.kind, target.name, target.glob) == (ECR, name, True)


@pytest.mark.parametrize("name", ["a", "team__x/app", "App"])
def test_names_ecr_refuses_are_refused_before_contact(name):
    with pytest.raises(UsageError, match="repository name"):
        parse_target(f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{name}")


@pytest.mark.parametrize("host", ["12345.dkr.ecr.us-east-1.amazonaws.com", "abcdefghijkl.dkr.ecr.us-east-1.amazonaws.com",
                                  "123456789012.dkr.ecr.us-east-1.amazonaws.com:443",
                                  "123456789012.dkr.ecr.nowhere-9.amazonaws.com"])
def test_a_near_miss_of_an_ecr_host_is_a_usage_error_not_a_plain_registry(host):
    """Else it would be contacted over /v2 with docker-config credentials, and fail on DNS."""
    with pytest.raises(UsageError, match="looks like an Amazon ECR host"):
        parse_target(f"{host}/app")


@pytest.mark.parametrize("env, named", [
    ({"AWS_MAX_ATTEMPTS": "abc"}, "AWS_MAX_ATTEMPTS"),
    ({"AWS_MAX_ATTEMPTS": "0"}, "AWS_MAX_ATTEMPTS"),
    ({"AWS_RETRY_MODE": "bogus"}, "AWS_RETRY_MODE"),
    ({"AWS_ENDPOINT_URL_ECR": "http://user:hunter2@127.0.0.1:1"}, "AWS_ENDPOINT_URL_ECR"),
])
def test_aws_settings_botocore_cannot_use_are_one_usage_error_before_contact(env, named):
    from types import SimpleNamespace

    pytest.importorskip("boto3")
    from ghcr_janitor.stores.connect import preflight

    with pytest.raises(UsageError) as caught:
        preflight([parse_target("123456789012.dkr.ecr.us-east-1.amazonaws.com/app")], SimpleNamespace(env=env))
    assert named in str(caught.value) and "hunter2" not in str(caught.value)


def test_without_boto3_no_target_of_the_run_is_contacted(monkeypatch):
    """The install hint comes before any target is read, also when a registry target comes first."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['boto3'] = None\n"
            "sys.argv = ['janitor', 'ls', '127.0.0.1:9/acme/a', '123456789012.dkr.ecr.us-east-1.amazonaws.com/*']\n"
            "from ghcr_janitor.cli.app import main; main()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: ECR targets need boto3, which the `ecr` extra installs: pip install 'ghcr-janitor[ecr]'"
