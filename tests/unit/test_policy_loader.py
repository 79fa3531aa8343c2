"""Policy files: every kind of mistake is one PolicyError line naming the file and the key."""

from datetime import timedelta
from pathlib import Path

import pytest

from ghcr_janitor.cli.common import exit_code_for
from ghcr_janitor.core.errors import PolicyError
from ghcr_janitor.policy import Policy, load_default_policy, load_policy
from ghcr_janitor.policy.loader import default_policy_text

ROOT = Path(__file__).resolve().parents[2]
GOOD_RULE = '[[rule]]\nname = "r"\nselect = { tags = ["cache-*"] }\naction = "delete"\n'


def load_text(tmp_path, text: str) -> Policy:
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    return load_policy(path)


def error_of(tmp_path, text: str) -> str:
    with pytest.raises(PolicyError) as err:
        load_text(tmp_path, text)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(str(tmp_path / "p.toml") + ": ")
    assert exit_code_for(err.value) == 2
    return message


def rule(**fields: str) -> str:
    body = {"name": '"r"', "select": '{ tags = ["cache-*"] }', "action": '"delete"'}
    body.update(fields)
    return "[[rule]]\n" + "".join(f"{k} = {v}\n" for k, v in body.items() if v is not None)


def test_full_policy_loads(tmp_path):
    policy = load_text(tmp_path, """
protect = ["latest", "v*"]
[[rule]]
name = "stale"
select = { tags = ["cache-*-*"], regex = "cache-pr-[0-9]+", untagged = true }
older_than = "30d"
keep_newest = 2
max_total_size = "20GiB"
action = "delete"
[[rule]]
name = "archive"
select = { tags = ["cache-base"] }
action = "retag"
to = "archive-{tag}-{created:%Y}q{quarter}"
""")
    assert policy.protect == ("latest", "v*")
    first, second = policy.rules
    assert first.older_than == timedelta(days=30) and first.keep_newest == 2
    assert first.max_total_size == 20 * 1024**3 and first.selector.untagged
    assert first.selector.regex == "cache-pr-[0-9]+"
    assert second.action == "retag" and second.to.startswith("archive-")


def test_empty_file_is_an_empty_policy(tmp_path):
    assert load_text(tmp_path, "").rules == ()


def test_default_rule_name(tmp_path):
    assert load_text(tmp_path, rule(name=None)).rules[0].name == "rule 1"


def test_toml_syntax(tmp_path):
    assert "invalid TOML" in error_of(tmp_path, "protect = [\n")


def test_unknown_top_level_key(tmp_path):
    assert ": protekt: unknown key" in error_of(tmp_path, 'protekt = ["x"]\n')


def test_unknown_rule_key(tmp_path):
    assert ": rule[1].olderthan: unknown key" in error_of(tmp_path, rule(olderthan='"30d"'))


def test_unknown_select_key(tmp_path):
    assert ": rule[1].select.tag: unknown key" in error_of(tmp_path, rule(select='{ tag = ["x"] }'))


def test_second_rule_is_numbered_2(tmp_path):
    message = error_of(tmp_path, GOOD_RULE + rule(name='"s"', older_than='"30 days"'))
    assert message.endswith("rule[2].older_than: invalid duration '30 days' (use e.g. 30d, 12w, 6h, 90m, 1h30m)")


@pytest.mark.parametrize("text, key", [
    ('protect = "cache-base"\n', "protect"),
    ('protect = [1]\n', "protect[1]"),
    ('protect = [""]\n', "protect[1]"),
    ('rule = 3\n', "rule"),
    ('rule = [1]\n', "rule[1]"),
    (rule(name="5"), "rule[1].name"),
    (rule(select='"cache-*"'), "rule[1].select"),
    (rule(select='{ tags = "cache-*" }'), "rule[1].select.tags"),
    (rule(select='{ tags = [1] }'), "rule[1].select.tags[1]"),
    (rule(select='{ untagged = "yes" }'), "rule[1].select.untagged"),
    (rule(select='{ regex = 5 }'), "rule[1].select.regex"),
    (rule(keep_newest='"4"'), "rule[1].keep_newest"),
    (rule(keep_newest="true"), "rule[1].keep_newest"),
    (rule(keep_newest="4.5"), "rule[1].keep_newest"),
    (rule(older_than="30"), "rule[1].older_than"),
    (rule(max_total_size="1.5"), "rule[1].max_total_size"),
    (rule(action="1"), "rule[1].action"),
    (rule(action='"retag"', to="5"), "rule[1].to"),
])
def test_wrong_types(tmp_path, text, key):
    assert f": {key}: " in error_of(tmp_path, text)


def test_bad_duration(tmp_path):
    assert "rule[1].older_than: invalid duration '3 months'" in error_of(tmp_path, rule(older_than='"3 months"'))


def test_bad_size(tmp_path):
    assert "rule[1].max_total_size: invalid size '20 gigs'" in error_of(tmp_path, rule(max_total_size='"20 gigs"'))


def test_negative_size(tmp_path):
    assert "rule[1].max_total_size: " in error_of(tmp_path, rule(max_total_size="-1"))


def test_bad_regex(tmp_path):
    assert "rule[1].select.regex: invalid regex 'cache-(': " in error_of(tmp_path, rule(select='{ regex = "cache-(" }'))


def test_negative_keep_newest(tmp_path):
    assert "rule[1].keep_newest: must be 0 or more, got -1" in error_of(tmp_path, rule(keep_newest="-1"))


def test_retag_without_to(tmp_path):
    assert "rule[1].to: missing" in error_of(tmp_path, rule(action='"retag"'))


def test_to_on_delete(tmp_path):
    assert "rule[1].to: only a retag rule" in error_of(tmp_path, rule(to='"x-{tag}"'))


def test_template_unknown_field(tmp_path):
    message = error_of(tmp_path, rule(action='"retag"', to='"archive-{branch}"'))
    assert "rule[1].to: unknown field {branch}" in message


def test_template_renders_invalid_tag(tmp_path):
    assert "rule[1].to: " in error_of(tmp_path, rule(action='"retag"', to='"archive/{tag}"'))


def test_template_spec_on_wrong_field(tmp_path):
    assert "rule[1].to: " in error_of(tmp_path, rule(action='"retag"', to='"a-{tag:>20}"'))


def test_retag_of_untagged(tmp_path):
    message = error_of(tmp_path, rule(action='"retag"', to='"a-{digest}"', select="{ untagged = true }"))
    assert "rule[1].select.untagged: " in message


def test_empty_selection(tmp_path):
    assert "rule[1].select: selects nothing" in error_of(tmp_path, rule(select="{}"))


def test_untagged_false_alone_is_empty(tmp_path):
    assert "rule[1].select: selects nothing" in error_of(tmp_path, rule(select="{ untagged = false }"))


def test_empty_tag_glob_list(tmp_path):
    assert "rule[1].select.tags: empty list" in error_of(tmp_path, rule(select="{ tags = [] }"))


def test_unknown_action(tmp_path):
    assert "rule[1].action: unknown action 'purge'" in error_of(tmp_path, rule(action='"purge"'))


def test_missing_action(tmp_path):
    assert "rule[1].action: missing" in error_of(tmp_path, rule(action=None))


def test_missing_select(tmp_path):
    assert "rule[1].select: missing" in error_of(tmp_path, rule(select=None))


def test_duplicate_rule_name(tmp_path):
    assert "rule[2].name: duplicate rule name 'r'" in error_of(tmp_path, GOOD_RULE + GOOD_RULE)


def test_missing_file(tmp_path):
    with pytest.raises(PolicyError, match=r"nope\.toml: cannot read policy file"):
        load_policy(tmp_path / "nope.toml")


def test_directory(tmp_path):
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(tmp_path)


def test_not_utf8(tmp_path):
    path = tmp_path / "p.toml"
    path.write_bytes(b'protect = ["\xff"]\n')
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy(path)


def test_deep_nesting_and_huge_numbers(tmp_path):
    error_of(tmp_path, "protect = " + "[" * 5000 + "]" * 5000 + "\n")
    error_of(tmp_path, rule(keep_newest="9" * 5000))  # beyond Python's int-string limit
    assert load_text(tmp_path, rule(keep_newest="9" * 30)).rules[0].keep_newest == int("9" * 30)
    error_of(tmp_path, rule(older_than='"' + "9" * 40 + 'd"'))


@pytest.mark.parametrize("name", ["default.toml", "seed-stages.toml"])
def test_shipped_policies_load(name):
    policy = load_policy(ROOT / "policies" / name)
    assert set(policy.protect) == {"cache-base", "cache-python-deps", "cache-node-deps", "cache-builder"}
    assert policy.rules[0].older_than == timedelta(days=30)
    for r in policy.rules:
        assert all(g.startswith("cache-") for g in r.selector.tags)


def test_seed_stages_budget():
    policy = load_policy(ROOT / "policies" / "seed-stages.toml")
    assert any(r.max_total_size == 20 * 1024**3 and "cache-*" in r.selector.tags for r in policy.rules)


def test_packaged_default_is_identical():
    shipped = (ROOT / "policies" / "default.toml").read_bytes()
    packaged = (ROOT / "ghcr_janitor" / "policies" / "default.toml").read_bytes()
    assert shipped == packaged
    assert default_policy_text().encode("utf-8") == shipped


def test_load_default_policy():
    policy = load_default_policy()
    assert policy.rules == load_policy(ROOT / "policies" / "default.toml").rules
    assert policy.protect == load_policy(ROOT / "policies" / "default.toml").protect


def test_broken_selector_loads_and_is_checked(tmp_path):
    policy = load_text(tmp_path, rule(select="{ broken = true }"))
    assert policy.rules[0].selector.broken and not policy.rules[0].selector.by_tag
    assert "select.broken: expected true or false" in error_of(tmp_path, rule(select='{ broken = "yes" }'))
    assert "select.broken: a retag rule cannot" in error_of(
        tmp_path, rule(select="{ broken = true }", action='"retag"', to='"x-{tag}"'))
    assert "broken = true" in error_of(tmp_path, rule(select="{ broken = false }"))


def test_policy_check_describes_broken_and_untagged_selections(tmp_path, cli):
    path = tmp_path / "p.toml"
    path.write_text(rule(select="{ broken = true }") + rule(name='"u"', select="{ untagged = true, broken = true }"))
    result = cli("policy", "check", path)
    assert result.exit_code == 0, result.output
    assert "broken images (indexes with children known to be gone), tagged or untagged" in result.stdout
    assert "broken images among untagged images" in result.stdout
