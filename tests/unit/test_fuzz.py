"""Bad input: hypothesis fuzzing of every parser that reads untrusted text, and CLI misuse.

Each parser may only raise its own clean error (ManifestError, PolicyError, PlanError,
UsageError) -- never another exception, never a hang (hypothesis deadline).
"""

from __future__ import annotations

import json
import math
import string
import sys
from datetime import date, datetime, time as dtime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ghcr_janitor.core import mediatypes as mt
from ghcr_janitor.core.digests import digest_of
from ghcr_janitor.core.errors import ManifestError, PlanError, PolicyError, UsageError
from ghcr_janitor.core.manifests import parse_manifest
from ghcr_janitor.plan.file import read_plan
from ghcr_janitor.policy.loader import parse_policy
from ghcr_janitor.core.reference import parse_target

FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])

# --- JSON values --------------------------------------------------------------------------

HUGE_INTS = st.sampled_from([2**53 + 1, 2**64, -(2**63), 10**400, -1])
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), HUGE_INTS,
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
    st.sampled_from([mt.OCI_MANIFEST, mt.OCI_INDEX, "application/vnd.buildkit.cacheconfig.v0",
                     "sha256:" + "a" * 64, "sha256:xyz", "2026-01-01T00:00:00Z", "9999-99-99T99:99:99Z"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=6)),
    max_leaves=40,
)
KEYS = ["schemaVersion", "mediaType", "config", "layers", "manifests", "subject", "annotations", "artifactType",
        "digest", "size", "platform", "urls", "blob", "parent", "records", "created"]
# Manifest-shaped objects: the real keys with arbitrary (often wrong) values, nested.
manifest_like = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(KEYS), inner, max_size=8)),
    max_leaves=50,
)


def _deep(depth: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    return b'{"manifests":' * depth + b"[]" + b"}" * depth


@FUZZ
@given(st.one_of(json_values, manifest_like), st.sampled_from([None, mt.OCI_MANIFEST, mt.OCI_INDEX, "text/plain"]))
def test_parse_manifest_json_values_only_raise_manifest_error(value, media_type):
    body = json.dumps(value).encode()
    try:
        parse_manifest(body, digest_of(body), media_type)
    except ManifestError:
        pass


@FUZZ
@given(st.binary(max_size=300))
def test_parse_manifest_random_bytes_only_raise_manifest_error(body):
    try:
        parse_manifest(body, digest_of(body))
    except ManifestError:
        pass


@pytest.mark.parametrize("depth", [100, 10_000, 200_000])
@pytest.mark.parametrize("kind", ["list", "object"])
def test_parse_manifest_deep_nesting(depth, kind):
    body = _deep(depth, kind)
    try:
        parse_manifest(body, digest_of(body), mt.OCI_INDEX)
    except ManifestError:
        pass


def test_parse_manifest_over_cap_is_refused():
    body = b'{"schemaVersion":2,"layers":[],"pad":"' + b"x" * mt.MAX_MANIFEST_BYTES + b'"}'
    with pytest.raises(ManifestError, match="cap"):
        parse_manifest(body, digest_of(body))


def test_huge_numbers_in_descriptors():
    for size in (2**64, 10**400, -1, 1.5, True, "12"):
        body = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
                           "config": {"mediaType": mt.OCI_IMAGE_CONFIG,
                                      "digest": "sha256:" + "a" * 64, "size": 1},
                           "layers": [{"mediaType": "x", "digest": "sha256:" + "b" * 64, "size": size}]}).encode()
        with pytest.raises(ManifestError):
            parse_manifest(body, digest_of(body))


# --- TOML ----------------------------------------------------------------------------------

def _toml_key(key: str) -> str:
    if key and all(c in string.ascii_letters + string.digits + "_-" for c in key):
        return key
    return json.dumps(key)          # a TOML basic string is JSON-compatible for these


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (datetime, date, dtime)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def to_toml(doc: dict) -> str:
    """A tiny TOML writer: top-level scalars and inline tables, then [[rule]] arrays of tables."""
    lines = []
    tables = []
    for key, value in doc.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value) and key == "rule":
            tables.append((key, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, items in tables:
        for item in items:
            lines.append(f"\n[[{_toml_key(key)}]]")
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in item.items()]
    return "\n".join(lines) + "\n"


toml_scalars = st.one_of(
    st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats(), st.text(max_size=20),
    st.sampled_from(["30d", "1h30m", "0d", "99999999999999999999d", "20GiB", "-1B", "1e999", "cache-*", "[",
                     "(a+)+$", "archive-{tag}-{created:%Y}q{quarter}", "{nope}", "{created:%", "delete", "retag"]),
    st.datetimes(timezones=st.just(timezone.utc)), st.dates(),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(["tags", "regex", "untagged", "x"]), inner, max_size=3)),
    max_leaves=15,
)
RULE_KEYS = ["name", "select", "older_than", "keep_newest", "max_total_size", "action", "to", "extra"]
rules = st.lists(st.dictionaries(st.sampled_from(RULE_KEYS), toml_values, max_size=7), max_size=4)
policies = st.fixed_dictionaries({}, optional={"protect": toml_values, "rule": rules,
                                                "version": toml_values, "unknown": toml_values})


def _policy_only_raises_policy_error(text: str) -> None:
    try:
        parse_policy(text, "fuzz.toml")
    except PolicyError as exc:
        assert str(exc).startswith("fuzz.toml"), str(exc)
        assert "\n" not in str(exc)


@FUZZ
@given(policies)
def test_parse_policy_generated_documents(doc):
    _policy_only_raises_policy_error(to_toml(doc))


@FUZZ
@given(st.text(max_size=300))
def test_parse_policy_random_text(text):
    _policy_only_raises_policy_error(text)


@FUZZ
@given(st.sampled_from(["30d", "1d", "0d"]), st.integers(min_value=-10, max_value=10**30),
       st.sampled_from(["20GiB", "0B", "1", "1 TB", "1e5MiB", "18446744073709551616EiB"]))
def test_parse_policy_numbers_at_the_edges(older, keep, size):
    text = f'[[rule]]\nname = "r"\nselect = {{ tags = ["cache-*"] }}\nolder_than = "{older}"\n' \
           f'keep_newest = {keep if abs(keep) < 2**63 else 2**63 - 1}\nmax_total_size = "{size}"\naction = "delete"\n'
    _policy_only_raises_policy_error(text)


def test_parse_policy_deeply_nested_and_huge():
    _policy_only_raises_policy_error("protect = " + "[" * 5000 + "]" * 5000)
    _policy_only_raises_policy_error('[[rule]]\nname = "r"\nselect = { regex = "' + "(a*)*" * 200 + '" }\naction = "delete"\n')
    _policy_only_raises_policy_error("x = 1\n" * 20000)


# --- plan files ----------------------------------------------------------------------------

ACTION_KEYS = ["action", "tag", "digest", "to", "reclaim_size", "rule", "reason", "kind", "size", "created",
               "age_source", "version_id"]
plan_like = st.fixed_dictionaries(
    {"plan_version": st.one_of(st.just(1), json_scalars), "created": st.one_of(st.just("2026-01-01T00:00:00Z"), json_scalars)},
    optional={"policy": json_scalars,
              "targets": st.lists(st.fixed_dictionaries(
                  {"target": st.one_of(st.just("127.0.0.1:5000/a"), json_scalars),
                   "reclaim_size": st.one_of(st.just(0), json_scalars),
                   "kept": st.one_of(st.just([]), json_values),
                   "actions": st.one_of(json_values, st.lists(st.dictionaries(st.sampled_from(ACTION_KEYS),
                                                                              json_scalars, max_size=12), max_size=3))}),
                  max_size=3)})


@FUZZ
@given(st.one_of(json_values, plan_like))
def test_read_plan_only_raises_plan_error(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("plan") / "plan.json"
    path.write_text(json.dumps(value))
    try:
        read_plan(path)
    except PlanError as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(st.binary(max_size=200))
def test_read_plan_random_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("plan") / "plan.json"
    path.write_bytes(data)
    try:
        read_plan(path)
    except PlanError:
        pass


# --- targets -------------------------------------------------------------------------------

def _usable(target) -> None:
    """What parse_target accepts is something the janitor can address: a registry target builds a
    valid httpx URL on the same host (no exception from httpx, ever); a path has no NUL byte."""
    import httpx

    from ghcr_janitor.core.reference import GHA, GHCR, LAYOUT, OCI, REGISTRY_KINDS, TAG_PATTERN  # noqa: F401

    assert target.kind in (*REGISTRY_KINDS, LAYOUT, GHA)
    assert not any(ord(c) < 32 or ord(c) == 127 for c in target.name + target.host), target
    if target.kind in (OCI, GHCR):
        url = httpx.URL(f"https://{target.host}/v2/{target.name}/tags/list")
        assert url.host and url.path.startswith("/v2/"), target
        assert target.tag is None or TAG_PATTERN.match(target.tag)


def _refused_or_usable(text: str) -> None:
    """parse_target either refuses `text` with UsageError (one line) or returns a usable target;
    no other exception escapes."""
    try:
        target = parse_target(text)
    except UsageError as exc:
        assert "\n" not in str(exc), str(exc)
        return
    _usable(target)


_CONTROL = st.sampled_from(["\x00", "\x01", "\t", "\n", "\r", "\x1b", "\x7f", " ", "\u00a0", "\u2028"])
_BRACKETS = st.sampled_from(["[", "]", "[::1", "::1]", "[::1]", "[[::1]]", "[]", "[:", "[fe80::1%eth0]", "[::1]x"])
_target_parts = st.one_of(st.text(alphabet="abc019:./@-_", max_size=6), _CONTROL, _BRACKETS,
                          st.sampled_from(["localhost", "127.0.0.1", "ghcr.io", "oci-layout:", "gha:", ":5000",
                                           "999.999.999.999", "1.2.3.4", "sha256:" + "a" * 64, "*", "acme/app"]))


@FUZZ
@given(st.one_of(st.text(max_size=80),
                 st.text(alphabet="abc:/@.[]-_0123456789sha", max_size=60),
                 st.builds(lambda h, n: f"{h}/{n}", st.text(max_size=20), st.text(max_size=40)),
                 st.lists(_target_parts, min_size=1, max_size=8).map("".join),
                 st.builds(lambda parts: "/".join(parts), st.lists(_target_parts, min_size=2, max_size=4))))
def test_parse_target_only_raises_usage_error_and_accepts_only_usable_targets(text):
    _refused_or_usable(text)


@pytest.mark.parametrize("text", [
    "\x00", "a\x00b/c", "oci-layout:\x00", "oci-layout:/tmp/x\x00y", "gha:acme/\x00", "[::1/x", "[::1", "[::1]x/y",
    "[::1]:/x", "[/x", "]/x", "[]/x", "localhost:99999999999999999999/a", "ghcr.io/", "x" * 100_000,
    "999.999.999.999/x", "256.1.1.1:5000/x", "local host/x", "localhost/a b", "localhost/a\tb", "127.0.0.1/a\x1b[31m",
    "localhost:5000/a:ta g", "localhost:5000/a@sha256:" + "g" * 64, "\x7f/x",
])
def test_parse_target_refuses_odd_inputs_with_a_usage_error(text):
    with pytest.raises(UsageError):
        parse_target(text)


@pytest.mark.parametrize("text", ["ghcr.io/" + "a/" * 5000 + "b", "[::1]/x", "[::1]:5000/a/b:cache-1",
                                  "127.0.0.1:5000/a@sha256:" + "a" * 64, " localhost:5000/a ", "1.2.3.4/x"])
def test_parse_target_accepts_odd_but_valid_inputs(text):
    _usable(parse_target(text))


# --- CLI misuse ----------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["ls", "--no-such-flag", "127.0.0.1:5000/a"],
    ["plan", "--policy"],
    ["inspect"],
    ["apply"],
    ["ls", "127.0.0.1:5000/a", "--shard", "0/2"],
    ["ls", "127.0.0.1:5000/a", "--shard", "3/2"],
    ["ls", "127.0.0.1:5000/a", "--shard", "x"],
    ["plan", "127.0.0.1:5000/a", "--shard", "1/0"],
    ["ls", "127.0.0.1:5000/a", "--concurrency", "0"],
    ["ls", "127.0.0.1:5000/a", "--concurrency", "lots"],
    ["prune", "127.0.0.1:5000/a", "--concurrency", "-3", "--dry-run"],
    ["ls", "not a target"],
    ["ls"],
    ["gc"],
    ["policy", "check", "--bogus"],
    ["no-such-command"],
    ["ls", "-O", "yaml", "127.0.0.1:5000/a"],
])
def test_cli_misuse_exits_2_with_usage(args, tmp_path, monkeypatch):
    from ghcr_janitor.cli.app import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, (args, result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    text = result.output.lower()
    assert "usage" in text or "error" in text, result.output
    assert "traceback" not in text


def test_cli_misuse_as_a_process_prints_usage():
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "ghcr_janitor", "ls", "--bogus"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "Usage:" in proc.stderr and "Traceback" not in proc.stderr


# --- targets through the whole CLI ---------------------------------------------------------

_HOSTISH = st.one_of(
    st.sampled_from(["foo:bar", "localhost:99999", "xyz:owner", "gha:acme", ":5000", "[::1]:0", "[zz]", "a..b",
                     "127.0.0.1:65536", "localhost:1", "127.0.0.1:1", "ghcr.io", "[::1]", "ex_ample.com"]),
    st.text(alphabet="abcxyz019:.[]-_@", max_size=16))


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Name lookups fail at once (nothing leaves the machine); retries are cut short."""
    import socket

    monkeypatch.chdir(tmp_path)             # relative "paths" among the targets resolve in here
    real = socket.getaddrinfo

    def lookup(host, *args, **kwargs):
        if host in ("127.0.0.1", "::1", "localhost"):
            return real(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, "offline test")

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setenv("JANITOR_RETRY_ATTEMPTS", "1")
    monkeypatch.setenv("JANITOR_HTTP_TIMEOUT", "2")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(max_size=40),
                 st.builds(lambda h, n: f"{h}/{n}", _HOSTISH, st.text(alphabet="abc/-_.:@", max_size=12))))
def test_ls_on_any_target_string_never_raises(offline, text):
    """`janitor ls TARGET` in-process: a usage error (2) or a clean failure (1), never a traceback."""
    from ghcr_janitor.cli.app import app

    result = CliRunner().invoke(app, ["ls", "--", text])
    assert result.exception is None or isinstance(result.exception, SystemExit), (text, result.exception)
    assert result.exit_code in (0, 1, 2), (text, result.exit_code, result.output)
    assert "Traceback" not in result.output


@pytest.mark.parametrize("text", ["foo:bar/x", "localhost:99999/x", "xyz:owner/repo", ":5000/x", "[zz]/x",
                                  "127.0.0.1:0/x", "a..b/x", "[::1/x", "[::1:5000/x", "999.999.999.999/x"])
def test_bad_host_targets_are_usage_errors_before_any_contact(text, offline):
    from ghcr_janitor.cli.app import app

    result = CliRunner().invoke(app, ["ls", text])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "HOST[:PORT]" in result.output
