"""cron/ stays true: every file parses, and every `janitor` command line in it is one the CLI accepts.

Each file is parsed in its own format (crontab fields, `bash -n`, systemd units, workflow YAML,
Markdown code blocks). Every `janitor ...` line found in them (shell wrapper, `ExecStart=`, workflow
`run:` blocks, README code blocks), after substituting the file's own variables, is parsed by the
CLI's own click parser (unknown flags or bad values fail), and the read-only ones (`ls`, `plan`,
`prune --dry-run`, `gc`, `policy check`) and the workflow's `plan` -> `apply` chain are run for
real against the test registry or a generated BuildKit cache directory.
"""

from __future__ import annotations

import configparser
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import typer
import yaml

from ghcr_janitor.core.shard import shard_of

ROOT = Path(__file__).resolve().parents[2]
CRON = ROOT / "cron"
SEED_POLICY = ROOT / "policies" / "seed-stages.toml"
EXPECTED_FILES = {"janitor.crontab", "janitor-cron.sh", "ghcr-janitor.service", "ghcr-janitor.timer",
                  "github-actions.yml", "github-actions-long.yml", "github-actions-cache.yml", "README.md"}
# `${{ }}` expressions a workflow's janitor lines may use, as a runner would fill them in.
EXPRESSIONS = {"github.repository": "acme/app"}
QUARTERLY = {"minute": {0}, "hour": {3}, "dom": {1}, "month": {1, 4, 7, 10}, "dow": set(range(7))}
NOW = datetime.now(timezone.utc).replace(microsecond=0)
_counter = itertools.count()


def read(name: str) -> str:
    return (CRON / name).read_text(encoding="utf-8")


def test_cron_holds_exactly_the_files_these_tests_check():
    assert {p.name for p in CRON.iterdir()} == EXPECTED_FILES


# --- crontab -------------------------------------------------------------------------------------

MONTHS = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("dom", 1, 31, {}), ("month", 1, 12, MONTHS),
          ("dow", 0, 7, DAYS))


def expand_field(text: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    """The values one crontab time field selects; ValueError when it is not valid cron syntax."""
    values: set[int] = set()

    def number(word: str) -> int:
        value = names.get(word.lower()) if not word.isdigit() else int(word)
        if value is None or not low <= value <= high:
            raise ValueError(f"{word!r} out of range {low}-{high}")
        return value

    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step_text and (not step_text.isdigit() or step < 1):
            raise ValueError(f"bad step in {part!r}")
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, b = base.split("-", 1)
            first, last = number(a), number(b)
            if first > last:
                raise ValueError(f"reversed range {part!r}")
        else:
            first = number(base)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return values


def cron_schedule(fields: list[str]) -> dict[str, set[int]]:
    assert len(fields) == 5, fields
    out = {name: expand_field(text, low, high, names) for text, (name, low, high, names) in zip(fields, FIELDS)}
    out["dow"] = {d % 7 for d in out["dow"]}
    return out


def crontab_entries(text: str) -> list[tuple[list[str], str, str]]:
    """(5 time fields, user, command) per job line of an /etc/cron.d file."""
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=", line):
            continue
        parts = line.split(None, 6)
        assert len(parts) == 7, f"not `m h dom mon dow user command`: {line!r}"
        entries.append((parts[:5], parts[5], parts[6]))
    return entries


def test_expand_field_rejects_what_cron_rejects():
    assert expand_field("*/15", 0, 59, {}) == {0, 15, 30, 45}
    assert expand_field("jan,apr", 1, 12, MONTHS) == {1, 4}
    for bad in ("60", "5-2", "*/0", "x", "1-"):
        with pytest.raises(ValueError):
            expand_field(bad, 0, 59, {})


def test_crontab_is_quarterly_and_runs_the_wrapper():
    entries = crontab_entries(read("janitor.crontab"))
    assert len(entries) == 1
    fields, user, command = entries[0]
    assert cron_schedule(fields) == QUARTERLY
    assert user == "ghcr-janitor"
    assert "%" not in command                          # cron turns % into newlines
    program = shlex.split(command)[0]
    assert Path(program).name == "janitor-cron.sh" and (CRON / "janitor-cron.sh").is_file()


# --- shell wrapper -------------------------------------------------------------------------------

def test_wrapper_is_valid_bash_and_executable():
    subprocess.run(["bash", "-n", str(CRON / "janitor-cron.sh")], check=True)
    assert os.access(CRON / "janitor-cron.sh", os.X_OK)
    text = read("janitor-cron.sh")
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "flock -n" in text and "--metrics-file" in text and "--targets-file" in text


@pytest.mark.skipif(shutil.which("shellcheck") is None and not os.environ.get("CI"),
                    reason="shellcheck not installed (.ci/run installs it; in CI this test never skips)")
def test_wrapper_passes_shellcheck():
    subprocess.run(["shellcheck", str(CRON / "janitor-cron.sh")], check=True)


# --- systemd -------------------------------------------------------------------------------------

def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",), comment_prefixes=("#", ";"))
    parser.optionxform = str                           # systemd keys are case-sensitive
    parser.read_string(read(name))
    return parser


def unit_values(name: str, section: str, key: str) -> list[str]:
    """Every value of a key that may repeat (configparser keeps only the last)."""
    values, current = [], None
    for line in read(name).splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
        elif current == section and line.startswith(key + "="):
            values.append(line[len(key) + 1:])
    return values


def test_service_is_hardened_oneshot_with_state_cache_and_env_file():
    service = unit("ghcr-janitor.service")
    assert set(service.sections()) >= {"Unit", "Service"}
    s = service["Service"]
    assert service["Unit"]["Description"]
    assert s["Type"] == "oneshot"
    assert s.get("DynamicUser") == "yes" or s.get("User") not in (None, "", "root")
    assert s["ProtectSystem"] == "strict"
    assert s["NoNewPrivileges"] == "yes" and s["ProtectHome"] in ("yes", "read-only", "tmpfs")
    assert s["EnvironmentFile"].lstrip("-").startswith("/")
    env = dict(item.split("=", 1) for value in unit_values("ghcr-janitor.service", "Service", "Environment")
               for item in shlex.split(value))
    assert env["JANITOR_STATE_DIR"] == f"/var/lib/{s['StateDirectory']}"
    assert env["JANITOR_CACHE_DIR"] == f"/var/cache/{s['CacheDirectory']}"
    assert len(unit_values("ghcr-janitor.service", "Service", "ExecStart")) == 1
    metrics = janitor_commands_of("ghcr-janitor.service")[0].args
    metrics_dir = str(Path(metrics[metrics.index("--metrics-file") + 1]).parent)
    assert metrics_dir in s["ReadWritePaths"].split()  # ProtectSystem=strict: must be opened up


def test_timer_is_quarterly_and_persistent():
    timer = unit("ghcr-janitor.timer")
    t = timer["Timer"]
    assert t["Persistent"] == "true"
    assert t.get("Unit", "ghcr-janitor.service") == "ghcr-janitor.service"
    assert timer["Install"]["WantedBy"] == "timers.target"
    calendar = t["OnCalendar"]
    match = re.fullmatch(r"\*-([\d,]+)-(\d+) (\d+):(\d+):(\d+)", calendar)
    assert match, calendar
    assert {int(m) for m in match[1].split(",")} == {1, 4, 7, 10}
    assert (int(match[2]), int(match[3]), int(match[4]), int(match[5])) == (1, 3, 0, 0)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_agrees_with_the_calendar_and_the_units():
    calendar = unit("ghcr-janitor.timer")["Timer"]["OnCalendar"]
    out = subprocess.run(["systemd-analyze", "calendar", "--iterations=4", calendar],
                         capture_output=True, text=True, check=True).stdout
    months = {int(m) for m in re.findall(r"\d{4}-(\d\d)-01 03:00:00", out)}
    assert months == {1, 4, 7, 10}, out
    verify = subprocess.run(["systemd-analyze", "verify", str(CRON / "ghcr-janitor.service"),
                             str(CRON / "ghcr-janitor.timer")], capture_output=True, text=True)
    problems = [line for line in verify.stderr.splitlines()
                if line.strip() and "is not executable" not in line]   # janitor is not installed in /opt here
    assert problems == [], verify.stderr


# --- GitHub Actions workflow ---------------------------------------------------------------------

def workflow() -> dict:
    return yaml.safe_load(read("github-actions-long.yml"))


def all_runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_workflow_triggers_permissions_and_dry_run_input():
    wf = workflow()
    on = wf[True]                                     # YAML 1.1: the key `on` parses as True
    assert cron_schedule(on["schedule"][0]["cron"].split()) == QUARTERLY
    dry_run = on["workflow_dispatch"]["inputs"]["dry_run"]
    assert dry_run["type"] == "boolean" and dry_run["default"] is True
    assert wf["permissions"] == {"contents": "read", "packages": "write"}


def test_workflow_shards_plans_uploads_and_applies_only_when_not_dry():
    wf = workflow()
    job = wf["jobs"]["prune"]
    shards = job["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, len(shards) + 1))
    runs = all_runs(job)
    assert f"--shard ${{{{ matrix.shard }}}}/{len(shards)}" in runs
    assert "--targets-file" in runs
    steps = job["steps"]
    plan_i = next(i for i, s in enumerate(steps) if re.search(r"janitor plan .*-o plan\.json", " ".join(s.get("run", "").split())))
    upload_i = next(i for i, s in enumerate(steps) if s.get("uses", "").startswith("actions/upload-artifact@")
                    and "plan.json" in s["with"]["path"])
    apply_i = next(i for i, s in enumerate(steps) if "janitor apply plan.json" in s.get("run", ""))
    assert plan_i < upload_i < apply_i
    apply = steps[apply_i]
    assert "--yes" in apply["run"] and "DRY_RUN" in apply["if"]
    assert "inputs.dry_run" in wf["env"]["DRY_RUN"]
    text = read("github-actions-long.yml")
    assert not re.search(r"pip install\s+['\"]?ghcr-janitor(?!\[report\] @ )", text)    # not on PyPI: from git
    assert wf["env"]["JANITOR_SOURCE"] == "git+https://github.com/OWNER/ghcr-janitor@REF"   # the janitor's, not ours


def test_short_workflow_uses_the_action_with_inputs_it_declares():
    wf = yaml.safe_load(read("github-actions.yml"))
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    step = next(s for s in wf["jobs"]["prune"]["steps"] if s.get("uses") == "OWNER/ghcr-janitor@REF")
    assert set(step["with"]) <= set(action["inputs"]) and "targets" in step["with"]
    assert "'true'" in step["with"]["dry-run"]                # a dry run unless the variable says otherwise
    assert "policy" not in step["with"]                       # the packaged default: no file of ours needed
    assert not any(s.get("uses", "").startswith("actions/checkout") for s in wf["jobs"]["prune"]["steps"])
    assert cron_schedule(wf[True]["schedule"][0]["cron"].split()) == QUARTERLY
    upload = next(s for s in wf["jobs"]["prune"]["steps"] if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert "steps.janitor.outputs.plan" in upload["with"]["path"] and set(action["outputs"]) >= {"plan"}


def test_actions_cache_workflow_is_fork_safe_and_least_privileged():
    wf = yaml.safe_load(read("github-actions-cache.yml"))
    on = wf[True]
    assert on["pull_request_target"] == {"types": ["closed"]} and "schedule" in on
    assert on["workflow_dispatch"]["inputs"]["dry_run"]["default"] is True
    assert wf["permissions"] == {"actions": "write"}
    steps = wf["jobs"]["cleanup"]["steps"]
    assert not any(s.get("uses", "").startswith("actions/checkout") for s in steps)   # never the PR's code
    assert [s["uses"] for s in steps] == ["OWNER/ghcr-janitor@REF"]                   # the pinned janitor only
    text = read("github-actions-cache.yml")
    for pr_code in ("head_ref", "pull_request.head", "github.sha", "github.ref"):
        assert pr_code not in text
    assert not any("run" in s for s in steps)
    step = steps[0]
    assert step["with"]["targets"] == "gha:${{ github.repository }}"
    assert step["with"]["dry-run"] == "${{ github.event_name == 'workflow_dispatch' && inputs.dry_run }}"
    assert janitor_commands_of("github-actions-cache.yml") == []


COPYABLE = sorted(name for name in EXPECTED_FILES if name.startswith("github-actions"))


@pytest.mark.parametrize("name", COPYABLE)
def test_a_copyable_workflow_has_one_marked_placeholder_for_the_janitors_source(name):
    """Copied into another repository, it installs the janitor from the janitor's repository: one
    placeholder (`OWNER/ghcr-janitor@REF`), next to a comment saying to pin a tag or a commit SHA;
    never this repository's code by `github.repository`, `uses: ./` or a path of ours."""
    text = read(name)
    code = "\n".join(line.split(" #", 1)[0] for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert code.count("OWNER/ghcr-janitor@REF") == 1, name
    line_no = next(i for i, line in enumerate(text.splitlines()) if "OWNER/ghcr-janitor@REF" in line.split(" #")[0]
                   and not line.lstrip().startswith("#"))
    above = "\n".join(text.splitlines()[max(0, line_no - 4):line_no])
    assert "EDIT" in above and "release tag" in above and "commit SHA" in above, above
    assert re.search(r"^# EDIT", text, flags=re.M), "the header says what to edit"
    assert not re.search(r"git\+https://github\.com/\$\{\{", code) and "uses: ./" not in code
    for path in ("policies/", "action/", "ghcr_janitor/", "examples/", "cron/"):
        assert not re.search(r"(?<![\w/.-])(\./)?" + re.escape(path), code), f"{name} refers to {path} of this repository"


def test_local_cache_job_replaces_the_rm_mv_hack_with_gc():
    job = workflow()["jobs"]["local-cache"]
    runs = all_runs(job)
    assert "rm -rf /tmp/.buildx-cache" not in runs and "mv /tmp/.buildx-cache-new" not in runs
    gc = [c for c in janitor_commands_of("github-actions-long.yml") if c.args[0] == "gc" and "--dry-run" not in c.args]
    assert gc and gc[0].args[1] == "oci-layout:/tmp/.buildx-cache" and "--keep-recent" in gc[0].args
    build = next(s for s in job["steps"] if s.get("uses", "").startswith("docker/build-push-action@"))
    assert build["with"]["cache-to"].startswith("type=local,dest=/tmp/.buildx-cache,")
    assert build["with"]["cache-from"] == "type=local,src=/tmp/.buildx-cache"


# --- extracting janitor command lines ------------------------------------------------------------

class Command:
    def __init__(self, source: str, line: str, args: list[str]):
        self.source, self.line, self.args = source, line, args

    def __repr__(self) -> str:
        return f"{self.source}: janitor {' '.join(self.args)}"


EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
VAR = re.compile(r"\$(?:\{(\w+)(?::?-([^}]*))?\}|([A-Za-z_]\w*))")
OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<", "2>&1", "1>&2", ">&2"}


def logical_lines(text: str) -> list[str]:
    """Shell lines with backslash continuations joined."""
    out, buf = [], ""
    for raw in text.splitlines():
        stripped = raw.rstrip()
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        out.append(buf + raw)
        buf = ""
    if buf:
        out.append(buf)
    return out


def substitute(line: str, variables: dict[str, str], expressions: dict[str, str]) -> str:
    line = line.replace('"$@"', "").replace("$@", "")
    for _ in range(3):                                  # values may hold references themselves
        line = VAR.sub(lambda m: variables.get(m[1] or m[3], m[2] if m[2] is not None else m[0]), line)
        line = EXPR.sub(lambda m: expressions.get(m[1], m[0]), line)
    return line


def command_args(line: str) -> list[str] | None:
    """The arguments after `janitor`, if this shell line runs janitor; None otherwise."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:
        return None
    for i, token in enumerate(tokens):
        if token in OPERATORS or re.match(r"^\d?>", token):
            tokens = tokens[:i]
            break
    while tokens:
        head = tokens[0]
        if head in ("$", "exec", "env", "command", "time"):
            tokens = tokens[1:]
        elif head == "sudo":
            tokens = tokens[1:]
            while tokens and tokens[0].startswith("-"):
                tokens = tokens[2:] if tokens[0] in ("-u", "-g") else tokens[1:]
        elif re.match(r"^[A-Za-z_]\w*=", head):
            tokens = tokens[1:]
        else:
            break
    if not tokens or Path(tokens[0]).name != "janitor":
        return None
    return tokens[1:]


def shell_variables(text: str) -> dict[str, str]:
    """The wrapper's own settings: `NAME=${NAME:-default}` -> default, `NAME=value` -> value (first wins)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^\s*([A-Za-z_]\w*)=(\S*)\s*$", line)
        if m and m[1] not in found:
            default = re.fullmatch(r"\$\{\w+:?-(.*)\}", m[2])
            found[m[1]] = default[1] if default else m[2]
    return found


def shell_texts(name: str) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """(shell text, variables, ${{ }} expressions) for every place of a cron/ file that holds commands."""
    text = read(name)
    if name.endswith(".sh"):
        return [(text, shell_variables(text), {})]
    if name.endswith(".service"):
        lines = [v.lstrip("-@+!:") for v in unit_values(name, "Service", "ExecStart")]
        return [("\n".join(lines), {}, {})]
    if name.endswith(".yml"):
        wf = yaml.safe_load(text)
        out = []
        for job in wf["jobs"].values():
            variables = {**wf.get("env", {}), **job.get("env", {})}
            matrix = job.get("strategy", {}).get("matrix", {})
            expressions = {**EXPRESSIONS, **{f"matrix.{k}": str(v[0]) for k, v in matrix.items() if isinstance(v, list)}}
            variables = {k: substitute(str(v), {}, expressions) for k, v in variables.items()}
            for step in job["steps"]:
                if "run" in step:
                    out.append((step["run"], variables, expressions))
        return out
    if name.endswith(".md"):
        blocks = re.findall(r"^[ \t]*```(?:sh|bash|shell|console)\n(.*?)^[ \t]*```", text, flags=re.S | re.M)
        return [(block, {}, {}) for block in blocks]
    return []


def janitor_commands_of(name: str) -> list[Command]:
    commands = []
    for text, variables, expressions in shell_texts(name):
        for line in logical_lines(text):
            resolved = substitute(line, variables, expressions)
            args = command_args(resolved)
            if args is None:
                continue
            assert "$" not in " ".join(args), f"{name}: unresolved variable in {line.strip()!r}"
            commands.append(Command(name, line.strip(), args))
    return commands


ALL_COMMANDS = [c for name in sorted(EXPECTED_FILES) for c in janitor_commands_of(name)]


def test_extraction_finds_the_commands_each_file_runs():
    by_file = {}
    for c in ALL_COMMANDS:
        by_file.setdefault(c.source, []).append(c.args[0])
    assert by_file["janitor-cron.sh"] == ["prune"]
    assert by_file["ghcr-janitor.service"] == ["prune"]
    assert by_file["github-actions-long.yml"] == ["plan", "apply", "report", "gc"]
    assert "github-actions-cache.yml" not in by_file and "github-actions.yml" not in by_file   # the action runs it
    assert {"prune", "gc", "policy"} <= set(by_file["README.md"])


def test_substitution_and_extraction_helpers():
    assert command_args('sudo -u x FOO=1 /opt/v/bin/janitor ls a --tag "c d" 2>&1 | tee log') == ["ls", "a", "--tag", "c d"]
    assert command_args("janitor-cron.sh -v") is None and command_args("echo janitor ls") is None
    assert substitute('"$B" x ${Y:-d} ${{ matrix.s }}/4 "$@"', {"B": "janitor"}, {"matrix.s": "1"}) == '"janitor" x d 1/4 '


def _usage_errors() -> tuple[type, ...]:
    classes = []
    try:
        import click

        classes.append(click.UsageError)
    except ImportError:  # pragma: no cover
        pass
    try:
        from typer._click.exceptions import UsageError   # typer >= 0.2x vendors click

        classes.append(UsageError)
    except ImportError:
        pass
    return tuple(classes)


def parse_with_cli(args: list[str]) -> tuple[str, dict]:
    """Parse like `janitor ARGS` would, without running: (subcommand path, parsed params).

    Uses click's own make_context on the resolved subcommand, so an unknown flag, a missing
    argument or a bad value raises click's UsageError.
    """
    from ghcr_janitor.cli.app import app

    group = typer.main.get_command(app)
    ctx = group.make_context("janitor", list(args))
    command, path = group, []
    while hasattr(command, "resolve_command"):
        rest = [*(getattr(ctx, "_protected_args", None) or []), *ctx.args]
        name, command, rest = command.resolve_command(ctx, rest)
        path.append(name)
        ctx = command.make_context(name, rest, parent=ctx)
    return " ".join(path), ctx.params


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=repr)
def test_every_command_line_parses_with_the_cli(command):
    try:
        path, params = parse_with_cli(command.args)
    except _usage_errors() as exc:
        pytest.fail(f"{command}: the CLI rejects it: {exc}")
    # Values click takes as plain strings, checked by the CLI's own validators.
    if params.get("shard"):
        from ghcr_janitor.core.shard import parse_shard

        parse_shard(params["shard"])
    if params.get("keep_recent"):
        from ghcr_janitor.cli.gc import parse_keep_recent

        parse_keep_recent(params["keep_recent"])
    if path == "prune":
        assert params["yes"] != params["dry_run"], f"{command}: prune needs exactly one of --yes/--dry-run"


def test_the_parser_check_catches_drift():
    with pytest.raises(_usage_errors()):
        parse_with_cli(["prune", "--dry-run", "--no-such-flag", "x"])
    with pytest.raises(_usage_errors()):
        parse_with_cli(["gc", "oci-layout:/x", "--keep-recent"])
    with pytest.raises(_usage_errors()):
        parse_with_cli(["apply"])


# --- running the commands for real ---------------------------------------------------------------

def seed(repo) -> None:
    """A fresh stage cache, kept, and a branch cache 45 days old, which seed-stages.toml deletes."""
    shared = b"shared-os-layer" * 20
    repo.buildkit_cache("cache-base", [shared, f"{repo.repo}-base".encode()], NOW - timedelta(days=1))
    repo.buildkit_cache("cache-builder-feature-x", [shared, f"{repo.repo}-fx".encode()], NOW - timedelta(days=45))


@pytest.fixture
def targets_file(registry, tmp_path):
    """Seeded repositories, at least one in each of 4 shards, listed in a targets file."""
    from tests.support.push import Pusher

    chosen: dict[int, str] = {}
    while len(chosen) < 4:
        name = f"test/cron{next(_counter)}-{os.getpid()}"
        shard = shard_of(f"{registry.host}/{name}", 4)
        if shard not in chosen:
            chosen[shard] = name
    for name in chosen.values():
        seed(Pusher(registry.url, name))
    path = tmp_path / "targets.txt"
    path.write_text("# seeded for the cron/ tests\n" + "".join(f"{registry.host}/{n}\n" for n in chosen.values()))
    return path


def runnable(args: list[str], targets: Path, layout_dir: Path, tmp: Path) -> list[str] | None:
    """The command with its machine-specific paths pointed at test fixtures; None if not safe to run."""
    sub = args[0]
    if sub not in ("ls", "plan", "prune", "gc", "apply", "policy", "report"):
        return None
    out: list[str] = []
    it = iter(args)
    for token in it:
        name, eq, inline = token.partition("=")
        takes_value = name in ("--targets-file", "--policy", "-p", "--metrics-file")
        value = (inline if eq else next(it)) if takes_value else None
        if name == "--targets-file":
            out += [name, str(targets)]
        elif name in ("--policy", "-p"):
            out += [name, str(SEED_POLICY)]
        elif name == "--metrics-file":
            out += [name, str(tmp / Path(value).name)]
        elif sub == "prune" and token in ("--yes", "-y"):
            out.append("--dry-run")                   # run every prune as its dry run
        elif token.startswith("oci-layout:"):
            out.append(f"oci-layout:{layout_dir}")
        else:
            out.append(token)
    if sub == "policy":
        out[-1] = str(SEED_POLICY) if out[1] == "check" else out[-1]
    return out


@pytest.mark.parametrize("source", sorted({c.source for c in ALL_COMMANDS}))
def test_commands_run_against_the_test_registry(source, cli, targets_file, layout, tmp_path, monkeypatch, gha):
    commands = [c for c in ALL_COMMANDS if c.source == source]
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)                             # relative paths (plan.json) as in a CI workspace
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    ran = []
    for command in commands:
        args = runnable(command.args, targets_file, layout, tmp_path)
        if args is None:
            continue
        if args[0] == "apply" and not Path(args[1]).exists():
            continue                                    # apply of a plan this file never writes
        result = cli(*args)
        assert result.exit_code == 0, (command, args, result.output)
        ran.append(args[0])
        if "--metrics-file" in args:
            from prometheus_client.parser import text_string_to_metric_families

            text = Path(args[args.index("--metrics-file") + 1]).read_text()
            names = {f.name for f in text_string_to_metric_families(text)}
            assert "ghcr_janitor_last_run_timestamp_seconds" in names
        if "-o" in args and args[0] == "plan":
            doc = json.loads(Path(args[args.index("-o") + 1]).read_text())
            assert doc["plan_version"] == 1 and doc["targets"]
        if args[0] == "report":
            assert "Storage breakdown" in Path(args[args.index("-o") + 1]).read_text()
    assert ran, f"no command of {source} was run"
    if source == "github-actions-long.yml":
        assert ran == ["plan", "apply", "report", "gc"]
        assert "ghcr-janitor" in summary.read_text()    # the step summary the workflow relies on


# --- the wrapper, end to end ---------------------------------------------------------------------

def wrapper_env(tmp_path: Path, targets: Path, **extra: str) -> dict[str, str]:
    shim = tmp_path / "bin" / "janitor"
    shim.parent.mkdir(exist_ok=True)
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ghcr_janitor "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ)
    env.update(JANITOR_ENV_FILE=str(tmp_path / "no-env-file"), JANITOR_BIN=str(shim),
               JANITOR_POLICY=str(SEED_POLICY), JANITOR_TARGETS_FILE=str(targets),
               JANITOR_METRICS_FILE=str(tmp_path / "textfile" / "ghcr_janitor.prom"),
               JANITOR_LOG_FILE=str(tmp_path / "log" / "janitor.log"),
               JANITOR_LOCK_FILE=str(tmp_path / "janitor.lock"), PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


@pytest.mark.skipif(shutil.which("flock") is None, reason="flock (util-linux) not installed")
def test_wrapper_runs_logs_writes_metrics_and_prunes(registry, targets_file, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    env = wrapper_env(tmp_path, targets_file, JANITOR_DRY_RUN="1")
    done = subprocess.run(["bash", str(CRON / "janitor-cron.sh"), "-v"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    log = (tmp_path / "log" / "janitor.log").read_text()
    lines = log.splitlines()
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} ", line) for line in lines), log
    assert "prune --dry-run" in lines[0] and "cache-builder-feature-x" in log and lines[-1].endswith("done: exit 0")
    metrics = (tmp_path / "textfile" / "ghcr_janitor.prom").read_text()
    samples = {(s.name, s.labels.get("status"), s.labels.get("action")): s.value
               for f in text_string_to_metric_families(metrics) for s in f.samples}
    assert samples[("ghcr_janitor_repositories", None, None)] == 4
    assert samples[("ghcr_janitor_errors", None, None)] == 0

    # For real, as cron runs it: the stale branch caches go, the stage caches stay.
    env = wrapper_env(tmp_path, targets_file)
    done = subprocess.run(["bash", str(CRON / "janitor-cron.sh")], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, (done.stderr, (tmp_path / "log" / "janitor.log").read_text())
    from tests.support.push import Pusher

    targets = [line for line in targets_file.read_text().splitlines() if line and not line.startswith("#")]
    assert len(targets) == 4
    for target in targets:
        name = target.split("/", 1)[1]
        assert set(Pusher(registry.url, name).tags()) == {"cache-base"}


@pytest.mark.skipif(shutil.which("flock") is None, reason="flock (util-linux) not installed")
def test_wrapper_never_overlaps_a_running_janitor(tmp_path):
    lock = tmp_path / "janitor.lock"
    holder = subprocess.Popen(["flock", str(lock), "sleep", "60"])
    try:
        for _ in range(100):                          # wait until the holder has the lock
            if subprocess.run(["flock", "-n", str(lock), "true"]).returncode != 0:
                break
            time.sleep(0.05)
        env = wrapper_env(tmp_path, tmp_path / "targets.txt", JANITOR_BIN=str(tmp_path / "must-not-run"))
        done = subprocess.run(["bash", str(CRON / "janitor-cron.sh")], env=env, capture_output=True, text=True,
                              timeout=30)
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 0, done.stderr
    log = (tmp_path / "log" / "janitor.log").read_text()
    assert "another janitor run holds" in log and "start:" not in log
