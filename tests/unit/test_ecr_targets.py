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
