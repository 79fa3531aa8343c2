"""Policy regexes (`regex` for tags, `key_regex` for cache keys) run in linear time (RE2): a tag or a
cache key, which a fork's pull request can choose, cannot hang a run; a pattern RE2 cannot run
(backreferences, lookaround) is refused when the policy is loaded, naming file, rule and key.

Anything that could hang under a backtracking engine runs in a child process with a timeout, so a
regression fails the test instead of blocking the test run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ghcr_janitor.stores.gha.store import CacheStore
from ghcr_janitor.cli.common import exit_code_for
from ghcr_janitor.core.errors import PolicyError
from ghcr_janitor.policy.loader import parse_policy

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60            # seconds; the cases below take well under one in linear time
EVIL = "(a+)+$"         # exponential under backtracking on "aaa...ab"


def _policy(select: str, name: str = "evil") -> str:
    return f'[[rule]]\nname = "{name}"\nselect = {select}\naction = "delete"\n'


UNSUPPORTED = [
    r"(cache)-\\1",                     # backreference
    r"(?P<x>a)(?P=x)",                  # named backreference
    r"cache-(?=pr)pr-[0-9]+",           # lookahead
    r"cache-(?!main).*",                # negative lookahead
    r"(?<=cache-)pr",                   # lookbehind
    r"(?<!x)cache-.*",                  # negative lookbehind
    r"(?>cache)-.*",                    # atomic group
    r"cache-a++",                       # possessive quantifier
]


@pytest.mark.parametrize("key", ["regex", "key_regex"])
@pytest.mark.parametrize("pattern", UNSUPPORTED)
def test_policy_refuses_a_regex_re2_cannot_run_naming_file_rule_and_key(pattern, key):
    with pytest.raises(PolicyError) as err:
        parse_policy(_policy(f'{{ {key} = "{pattern}" }}', name="fork keys"), "p.toml")
    message = str(err.value)
    assert "\n" not in message and exit_code_for(err.value) == 2
    assert message.startswith(f"p.toml: rule[1].select.{key}: "), message
    assert "'fork keys'" in message and "RE2" in message, message


def test_policy_check_refuses_a_lookahead_in_one_line(tmp_path, cli):
    path = tmp_path / "p.toml"
    path.write_text(_policy('{ regex = "cache-(?!main).*" }'))
    result = cli("policy", "check", path)
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "rule[1].select.regex" in lines[0], result.stderr
    assert "E0000" not in result.stderr and "re2.cc" not in result.stderr     # RE2's own log stays quiet


def test_a_syntax_error_is_still_an_invalid_regex():
    with pytest.raises(PolicyError, match=r"p.toml: rule\[1\].select.regex: invalid regex 'cache-\(': "):
        parse_policy(_policy('{ regex = "cache-(" }'), "p.toml")


def test_nested_quantifiers_pass_policy_check(tmp_path, cli):
    path = tmp_path / "p.toml"
    path.write_text(_policy(f'{{ regex = "{EVIL}" }}'))
    result = cli("policy", "check", path)
    assert result.exit_code == 0, result.stderr


def test_regex_semantics_are_a_whole_text_match():
    """Unchanged by the engine: the regex must match the whole tag or key (fullmatch)."""
    from ghcr_janitor.policy.regex import fullmatch

    assert fullmatch(r"cache-pr-[0-9]+", "cache-pr-12")
    assert not fullmatch(r"cache-pr-[0-9]+", "cache-pr-12x")
    assert not fullmatch(r"cache-pr-[0-9]+", "xcache-pr-1")
    assert fullmatch(r"a|ab", "ab")                   # alternation tried for the whole text
    assert fullmatch(r"(?i)CACHE-.*", "cache-x")
    assert fullmatch(r"k-.*", "k-\ud800")              # a lone surrogate (JSON allows it) is no crash
    assert not fullmatch(EVIL, "a" * 40 + "b")


def _layout_with_adversarial_tags(root: Path) -> None:
    from tests.layout_factory import LayoutFactory

    factory = LayoutFactory(root)
    factory.tag("a" * 41, factory.image("match"))
    factory.tag("a" * 40 + "b", factory.image("evil"))


def test_prune_dry_run_with_nested_quantifiers_on_a_41_character_tag_finishes(tmp_path):
    _layout_with_adversarial_tags(tmp_path / "layout")
    policy = tmp_path / "p.toml"
    policy.write_text(_policy(f'{{ regex = "{EVIL}" }}'))
    proc = subprocess.run([sys.executable, "-m", "ghcr_janitor", "prune", f"oci-layout:{tmp_path / 'layout'}",
                           "--policy", str(policy), "--all-tags", "--dry-run", "-O", "json"],
                          capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT, env=os.environ)
    assert proc.returncode == 0, proc.stderr
    (target,) = json.loads(proc.stdout)["targets"]
    assert [a["tag"] for a in target["actions"]] == ["a" * 41]
    assert {k["tag"] for k in target["kept"]} == {"a" * 40 + "b"}


def evaluate_adversarial_keys() -> None:
    """Run in a child process: `key_regex = EVIL` over 512-character cache keys; prints what goes."""
    from datetime import datetime, timezone

    from ghcr_janitor.core.models import Artifact, Inventory, cache_item_id
    from ghcr_janitor.policy import evaluate

    now = datetime(2026, 11, 20, tzinfo=timezone.utc)
    keys = {1: "a" * 512, 2: "a" * 511 + "b", 3: "a" * 255 + "b" + "a" * 256}
    items = {cache_item_id(i): Artifact(digest=cache_item_id(i), media_type="x", kind="actions-cache",
                                        closure={cache_item_id(i): 1}, created=now, age_source="created",
                                        labels={"cache_id": i, "key": key, "ref": "refs/pull/1/merge",
                                                "ref_state": "live"})
             for i, key in keys.items()}
    inv = Inventory(target="gha:acme/app", tags={}, artifacts=items, untagged=sorted(items), backend="gha",
                     traits=CacheStore.traits)
    policy = parse_policy(_policy(f'{{ key_regex = "{EVIL}" }}'), "p.toml")
    print(json.dumps(sorted(d.digest for d in evaluate(inv, policy, now) if d.action == "delete")))


def test_key_regex_with_nested_quantifiers_on_512_character_keys_finishes():
    from ghcr_janitor.core.models import cache_item_id

    code = "import tests.unit.test_input_regex as t; t.evaluate_adversarial_keys()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [cache_item_id(1)]


def test_google_re2_is_a_declared_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(dep.replace(" ", "").startswith("google-re2>=1.1") for dep in project["dependencies"])
