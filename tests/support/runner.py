"""A small model of the GitHub Actions runner: enough to run `action.yml` and the copyable workflows of
cron/ the way GitHub runs them for a user, so that what only breaks outside this repository breaks here.

What it models (each from the runner's or the action's documentation):
- Layout: the user's repository is GITHUB_WORKSPACE (`work/REPO/REPO`); a `uses: OWNER/NAME@REF` action
  is a COPY of the action's repository at `work/_actions/OWNER/NAME/REF`, outside the workspace (the
  runner downloads it there); RUNNER_TEMP is `work/_temp`.
- Expressions `${{ }}`: literals, contexts (github, env, inputs, vars, secrets, matrix, steps, runner,
  job), `! == != < <= > >= && ||` with GitHub's loose equality and value-returning `&&`/`||`, and the
  functions success(), failure(), always(), cancelled(), format(), contains(), startsWith(), endsWith(),
  join(), toJSON(), fromJSON(), hashFiles(). `if:` defaults to success().
- `run:` steps: a script file run by `bash -e {0}` (no `shell:`) or `bash --noprofile --norc -eo
  pipefail {0}` (`shell: bash`), in GITHUB_WORKSPACE; a fresh GITHUB_OUTPUT, GITHUB_ENV, GITHUB_PATH and
  GITHUB_STEP_SUMMARY file per step, read after it (`name=value` and `name<<DELIMITER` forms).
- Composite actions: their `inputs` (defaults are expressions), steps with `github.action_path` and
  GITHUB_ACTION_PATH, `outputs.*.value`; a failing inner step fails the `uses:` step.
- Known `uses:` actions by their documented checks that matter here:
  * actions/checkout: the user's repository is already in GITHUB_WORKSPACE; checking out another
    repository or ref is refused (the copied workflows must not need it).
  * actions/setup-python: with `cache:`, every `cache-dependency-path` pattern must match files INSIDE
    GITHUB_WORKSPACE (it hashes with @actions/glob's hashFiles, which skips everything else:
    actions/setup-python#361), else the step fails; it puts a Python (this machine's, in a venv made
    once per runner) first on PATH.
  * hashFiles(): files outside GITHUB_WORKSPACE are never hashed; here a pattern that names a path
    outside it is an error (on GitHub the hash is silently '' and a cache key stops changing).
  * actions/cache (restore, save, both): `key` required, at most 512 characters, no comma; an exact
    key or the newest entry with a `restore-keys` prefix is restored; `save` refuses an existing key.
  * actions/upload-artifact@v4: `name` unique within the run unless `overwrite: true` (409
    Conflict otherwise), `if-no-files-found` warn/error/ignore; outputs artifact-id and artifact-url.
  Any other `uses:` is an error (no model).
- Installing the janitor from git: `git+https://github.com/OWNER/ghcr-janitor@REF` (the placeholder of
  the copyable workflows) installs the action copy; any other `git+https://github.com/...` URL fails
  like pip would for a repository that is not the janitor.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER_REPO = "OWNER/ghcr-janitor"     # the one placeholder the copyable workflows carry
PLACEHOLDER_REF = "REF"
PLACEHOLDER_URL = f"git+https://github.com/{PLACEHOLDER_REPO}@{PLACEHOLDER_REF}"


# `Runner(shim_install=True)`: the action's install step replaced by a `janitor` that runs the action
# copy's package with this Python (seconds instead of a pip install; one test keeps the real one).
SHIM_INSTALL = f"""shim="$RUNNER_TEMP/janitor-shim"
mkdir -p "$shim"
printf '#!/bin/sh\\nPYTHONPATH="%s" exec "%s" -m ghcr_janitor "$@"\\n' "$GITHUB_ACTION_PATH" "{sys.executable}" > "$shim/janitor"
chmod +x "$shim/janitor"
echo "$shim" >> "$GITHUB_PATH"
"""


class HarnessError(Exception):
    """Something the real runner would refuse (or something this model does not know)."""


# --- expressions -----------------------------------------------------------------------------------

TOKEN = re.compile(r"""\s*(?:
    (?P<str>'(?:[^']|'')*')
  | (?P<num>-?\d+(?:\.\d+)?)
  | (?P<op>==|!=|<=|>=|&&|\|\||[!<>()\[\],.])
  | (?P<name>[A-Za-z_][\w-]*)
)""", re.X)


class _Null:
    def __repr__(self) -> str:
        return "null"


NULL = _Null()


def to_str(value) -> str:
    if value is NULL or value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value, indent=2)
    return str(value)


def truthy(value) -> bool:
    return not (value is NULL or value is None or value is False or value == "" or
                (isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0))


def _number(value) -> float:
    if value is NULL or value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return 0.0
        try:
            return float(int(text, 0)) if text.lower().startswith("0x") else float(text)
        except ValueError:
            return float("nan")
    return float("nan")


def loose_equal(a, b) -> bool:
    """GitHub's `==`: same types compare directly (strings ignoring case); else both become numbers."""
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    if type(a) is type(b) and not isinstance(a, (dict, list)):
        return a == b
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return a is b
    return _number(a) == _number(b)


class Evaluator:
    """Evaluates one expression against contexts; `functions` supplies status and hashFiles."""

    def __init__(self, contexts: dict, functions: dict):
        self.contexts, self.functions = contexts, functions

    def evaluate(self, text: str):
        self.tokens, self.i = [], 0
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = TOKEN.match(text, pos)
            if not m:
                raise HarnessError(f"expression {text!r}: cannot read at {text[pos:]!r}")
            kind = m.lastgroup
            self.tokens.append((kind, m[kind]))
            pos = m.end()
        value = self._or()
        if self.i != len(self.tokens):
            raise HarnessError(f"expression {text!r}: unexpected {self.tokens[self.i][1]!r}")
        return value

    def _peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else (None, None)

    def _take(self, op: str | None = None):
        kind, value = self._peek()
        if op is not None and value != op:
            raise HarnessError(f"expected {op!r}, got {value!r}")
        self.i += 1
        return kind, value

    def _or(self):
        left = self._and()
        while self._peek()[1] == "||":
            self._take()
            right = self._and()
            left = left if truthy(left) else right
        return left

    def _and(self):
        left = self._cmp()
        while self._peek()[1] == "&&":
            self._take()
            right = self._cmp()
            left = right if truthy(left) else left
        return left

    def _cmp(self):
        left = self._unary()
        while self._peek()[1] in ("==", "!=", "<", "<=", ">", ">="):
            op = self._take()[1]
            right = self._unary()
            if op in ("==", "!="):
                left = loose_equal(left, right) == (op == "==")
            else:
                a, b = _number(left), _number(right)
                left = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        return left

    def _unary(self):
        if self._peek()[1] == "!":
            self._take()
            return not truthy(self._unary())
        return self._postfix(self._primary())

    def _primary(self):
        kind, value = self._take()
        if kind == "str":
            return value[1:-1].replace("''", "'")
        if kind == "num":
            return float(value)
        if value == "(":
            inner = self._or()
            self._take(")")
            return inner
        if kind == "name":
            low = value.lower()
            if low in ("true", "false"):
                return low == "true"
            if low == "null":
                return NULL
            if self._peek()[1] == "(":
                self._take("(")
                args = []
                while self._peek()[1] != ")":
                    args.append(self._or())
                    if self._peek()[1] == ",":
                        self._take(",")
                self._take(")")
                return self._call(low, args)
            if low not in self.contexts:
                raise HarnessError(f"unknown context {value!r}")
            return self.contexts[low]
        raise HarnessError(f"unexpected {value!r}")

    def _postfix(self, value):
        while self._peek()[1] in (".", "["):
            if self._take()[1] == ".":
                key = self._take()[1]
            else:
                key = to_str(self._or())
                self._take("]")
            if isinstance(value, dict):
                match = next((k for k in value if k.lower() == str(key).lower()), None)
                value = value[match] if match is not None else NULL
            else:
                value = NULL
        return value

    def _call(self, name: str, args: list):
        if name in self.functions:
            return self.functions[name](*args)
        if name == "format":
            fmt = to_str(args[0])
            return re.sub(r"\{(\d+)\}", lambda m: to_str(args[int(m[1]) + 1]), fmt.replace("{{", "\0").replace("}}", "\1")
                          ).replace("\0", "{").replace("\1", "}")
        if name == "contains":
            hay, needle = args
            if isinstance(hay, list):
                return any(loose_equal(x, needle) for x in hay)
            return to_str(needle).lower() in to_str(hay).lower()
        if name == "startswith":
            return to_str(args[0]).lower().startswith(to_str(args[1]).lower())
        if name == "endswith":
            return to_str(args[0]).lower().endswith(to_str(args[1]).lower())
        if name == "join":
            sep = to_str(args[1]) if len(args) > 1 else ","
            return sep.join(to_str(x) for x in args[0]) if isinstance(args[0], list) else to_str(args[0])
        if name == "tojson":
            return json.dumps(None if args[0] is NULL else args[0], indent=2)
        if name == "fromjson":
            return json.loads(to_str(args[0]))
        raise HarnessError(f"unknown function {name}()")


EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def interpolate(text: str, ev: Evaluator) -> str:
    return EXPR.sub(lambda m: to_str(ev.evaluate(m[1])), text)


def condition(text, ev: Evaluator, status_functions: set[str]) -> bool:
    """An `if:`: `${{ }}` optional; without a status function it means `success() && (...)`."""
    if text is None:
        return truthy(ev.evaluate("success()"))
    if isinstance(text, bool):
        return text
    body = str(text).strip()
    whole = re.fullmatch(r"\$\{\{(.*)\}\}", body, re.S)
    if whole:
        body = whole[1]
    if not re.search(r"\b(" + "|".join(status_functions) + r")\s*\(", body):
        body = f"success() && ({body})"
    return truthy(ev.evaluate(body))


# --- runner ----------------------------------------------------------------------------------------

def read_file_commands(path: Path) -> dict[str, str]:
    """GITHUB_OUTPUT / GITHUB_ENV syntax: `name=value` lines and `name<<DELIMITER` blocks."""
    values: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            block = []
            while i < len(lines) and lines[i] != delimiter:
                block.append(lines[i])
                i += 1
            if i >= len(lines):
                raise HarnessError(f"{path.name}: matching delimiter {delimiter!r} not found")
            i += 1
            values[name] = "\n".join(block)
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
        elif line.strip():
            raise HarnessError(f"{path.name}: invalid line {line!r}")
    return values


@dataclass
class Step:
    """What one step (or one step inside a composite action) did."""

    name: str
    id: str | None
    outcome: str                    # success | failure | skipped
    code: int | None = None
    log: str = ""
    outputs: dict = field(default_factory=dict)
    summary: str = ""
    inner: list = field(default_factory=list)   # a composite action's steps
    continue_on_error: bool = False


@dataclass
class Job:
    steps: list[Step]
    summary: str
    env: dict
    annotations: list[str]

    @property
    def status(self) -> str:
        return "failure" if any(s.outcome == "failure" for s in self.steps) else "success"

    def step(self, id_or_name: str) -> Step:
        return next(s for s in self.steps if id_or_name in (s.id, s.name))

    @property
    def log(self) -> str:
        return "\n".join(s.log + "".join(i.log for i in s.inner) for s in self.steps)


def tracked_files(root: Path = ROOT) -> list[str]:
    """The files a `git archive` of this repository would hold now: tracked ones, plus new files not
    ignored (so that work not yet committed is what is tested)."""
    out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, check=True).stdout.decode()
    return [p for p in out.split("\0") if p and (root / p).is_file()]


class Runner:
    """One runner machine: a user's repository `user_repo` ("OWNER/NAME") in its workspace, and the
    janitor's repository available as the action `OWNER/ghcr-janitor@REF` (a copy, outside it)."""

    STATUS = {"success", "failure", "always", "cancelled"}

    def __init__(self, tmp: Path, user_repo: str = "someone/their-app", source: Path = ROOT,
                 action_files: dict[str, str] | None = None, path_first: Path | None = None,
                 shim_install: bool = False):
        self.tmp = Path(tmp)
        self.user_repo = user_repo
        self.work = self.tmp / "work"
        self.workspace = self.work / user_repo.split("/")[1] / user_repo.split("/")[1]
        self.temp = self.work / "_temp"
        self.toolcache = self.tmp / "toolcache"
        self.cache_store = self.tmp / "actions-cache"
        self.artifacts: dict[str, list[Path]] = {}
        self.caches: dict[str, Path] = {}
        self.path_first = path_first
        self.shim_install = shim_install
        for d in (self.workspace, self.temp, self.cache_store):
            d.mkdir(parents=True, exist_ok=True)
        self.action_dir = self.work / "_actions" / PLACEHOLDER_REPO / PLACEHOLDER_REF
        self._copy_action(source, action_files or {})
        self.run_id = 7

    def _copy_action(self, source: Path, overrides: dict[str, str]) -> None:
        for rel in tracked_files(source):
            dest = self.action_dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / rel, dest)
        for rel, text in overrides.items():
            (self.action_dir / rel).write_text(text)
        assert not str(self.action_dir).startswith(str(self.workspace) + os.sep)

    # --- a job --------------------------------------------------------------------------------------
    def run_job(self, job: dict, *, workflow: dict | None = None, event: str = "workflow_dispatch",
                inputs: dict | None = None, vars: dict | None = None, secrets: dict | None = None,
                matrix: dict | None = None, token: str = "ghs_job_token", env: dict | None = None) -> Job:
        workflow = workflow or {}
        self.github = {"repository": self.user_repo, "repository_owner": self.user_repo.split("/")[0],
                       "event_name": event, "sha": "0" * 40, "ref": "refs/heads/main", "token": token,
                       "workspace": str(self.workspace), "run_id": str(self.run_id), "job": "job",
                       "server_url": "https://github.com", "api_url": os.environ.get("GITHUB_API_URL", "https://api.github.com")}
        self.contexts = {"github": self.github, "inputs": dict(inputs or {}), "vars": dict(vars or {}),
                         "secrets": {"GITHUB_TOKEN": token, **(secrets or {})}, "matrix": dict(matrix or {}),
                         "runner": {"temp": str(self.temp), "os": "Linux", "arch": "X64",
                                    "tool_cache": str(self.toolcache)},
                         "job": {"status": "success"}, "steps": {}, "env": {}}
        self.path_added: list[str] = []
        self.annotations: list[str] = []
        self.summaries: list[str] = []
        base_env = {k: v for k, v in os.environ.items()
                    if k not in ("GITHUB_TOKEN", "GH_TOKEN", "GITHUB_STEP_SUMMARY", "PYTHONPATH", "VIRTUAL_ENV")}
        base_env.update({"CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(self.workspace),
                         "GITHUB_REPOSITORY": self.user_repo, "GITHUB_EVENT_NAME": event,
                         "GITHUB_RUN_ID": str(self.run_id), "GITHUB_JOB": "job", "RUNNER_TEMP": str(self.temp),
                         "RUNNER_WORKSPACE": str(self.workspace.parent), "RUNNER_OS": "Linux",
                         "RUNNER_TOOL_CACHE": str(self.toolcache), "HOME": os.environ.get("HOME", "/root"),
                         "PIP_DISABLE_PIP_VERSION_CHECK": "1", **(env or {})})
        self.base_env = base_env
        job_env: dict[str, str] = {}
        for key, value in {**(workflow.get("env") or {}), **(job.get("env") or {})}.items():
            self.contexts["env"] = dict(job_env)
            job_env[key] = interpolate(to_str(value), self._evaluator(self.contexts))
        self.contexts["env"] = dict(job_env)
        self.set_env: dict[str, str] = {}           # GITHUB_ENV, for the steps after
        steps = self._run_steps(job["steps"], self.contexts, job_env, action_path=None, scope="job")
        return Job(steps, "".join(self.summaries), job_env, self.annotations)

    def run_workflow(self, workflow: dict, *, event: str, only_jobs: set[str] | None = None, **kwargs) -> dict:
        """Every job of a workflow (its `if:` evaluated; a matrix of lists run one combination after the
        other on this machine): {job id: [Job per matrix combination]}; a skipped job maps to []."""
        import itertools

        on = workflow.get("on", workflow.get(True)) or {}
        if event not in (on if isinstance(on, (dict, list)) else [on]):
            raise HarnessError(f"the workflow is not triggered by {event}")
        out: dict[str, list[Job]] = {}
        for name, job in workflow["jobs"].items():
            out[name] = []
            if only_jobs is not None and name not in only_jobs:
                continue
            self.github = {"event_name": event, "repository": self.user_repo}
            contexts = {"github": {"event_name": event, "repository": self.user_repo},
                        "inputs": dict(kwargs.get("inputs") or {}), "vars": dict(kwargs.get("vars") or {}),
                        "needs": {}, "env": {}}
            if not condition(job.get("if"), self._evaluator(contexts), self.STATUS):
                continue
            matrix = (job.get("strategy") or {}).get("matrix") or {}
            keys = [k for k, v in matrix.items() if isinstance(v, list)]
            for combo in itertools.product(*(matrix[k] for k in keys)):
                out[name].append(self.run_job(job, workflow=workflow, event=event,
                                              matrix=dict(zip(keys, combo)), **kwargs))
        return out

    def _evaluator(self, contexts: dict, scope_steps: list | None = None) -> Evaluator:
        def status(failed: bool) -> dict:
            return {"success": lambda: not failed, "failure": lambda: failed,
                    "always": lambda: True, "cancelled": lambda: False}

        failed = any(s.outcome == "failure" and not s.continue_on_error for s in scope_steps or [])
        return Evaluator(contexts, {**status(failed), "hashfiles": self._hash_files})

    def _hash_files(self, *patterns) -> str:
        digest = hashlib.sha256()
        found = 0
        for pattern in patterns:
            text = to_str(pattern)
            absolute = Path(text) if os.path.isabs(text) else self.workspace / text
            if not str(absolute).startswith(str(self.workspace) + os.sep):
                raise HarnessError(f"hashFiles('{text}'): only files under GITHUB_WORKSPACE ({self.workspace}) are "
                                   "hashed; this pattern names a path outside it (the runner would hash nothing: '')")
            for match in sorted(glob.glob(str(absolute), recursive=True)):
                if os.path.isfile(match):
                    digest.update(hashlib.sha256(Path(match).read_bytes()).digest())
                    found += 1
        return digest.hexdigest() if found else ""

    def _run_steps(self, steps: list, contexts: dict, env: dict, action_path: Path | None, scope: str) -> list[Step]:
        done: list[Step] = []
        for index, spec in enumerate(steps):
            name = spec.get("name") or spec.get("uses") or spec.get("run", "").splitlines()[0]
            step_id = spec.get("id")
            contexts["env"] = dict(env)
            ev = self._evaluator(contexts, done)
            if not condition(spec.get("if"), ev, self.STATUS):
                record = Step(name, step_id, "skipped")
                done.append(record)
                if step_id:
                    contexts["steps"][step_id] = {"outputs": {}, "outcome": "skipped", "conclusion": "skipped"}
                continue
            step_env = dict(env)
            for key, value in (spec.get("env") or {}).items():
                step_env[key] = interpolate(to_str(value), ev)
            contexts["env"] = dict(step_env)
            ev = self._evaluator(contexts, done)
            if self.shim_install and scope == "action" and spec.get("name") == "Install ghcr-janitor":
                spec = {**spec, "run": SHIM_INSTALL}
            if "run" in spec:
                record = self._run_script(spec, name, step_id, ev, step_env, action_path, scope)
            elif "uses" in spec:
                record = self._uses(spec, name, step_id, ev, step_env, contexts)
            else:
                raise HarnessError(f"step {name!r}: neither run nor uses")
            record.continue_on_error = truthy(spec.get("continue-on-error", False))
            done.append(record)
            if step_id:
                contexts["steps"][step_id] = {"outputs": dict(record.outputs), "outcome": record.outcome,
                                              "conclusion": "success" if record.continue_on_error else record.outcome}
        return done

    def _step_files(self) -> dict[str, Path]:
        d = self.temp / "_runner_file_commands"
        d.mkdir(exist_ok=True)
        files = {}
        for name in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STEP_SUMMARY"):
            files[name] = d / f"{name.lower()}_{uuid.uuid4().hex}"
            files[name].write_text("")
        return files

    def _process_files(self, files: dict[str, Path], record: Step) -> None:
        record.outputs = read_file_commands(files["GITHUB_OUTPUT"])
        self.set_env.update(read_file_commands(files["GITHUB_ENV"]))
        self.path_added += [p for p in files["GITHUB_PATH"].read_text().splitlines() if p.strip()]
        record.summary = files["GITHUB_STEP_SUMMARY"].read_text()
        self.summaries.append(record.summary)

    def _path(self) -> str:
        first = [str(self.path_first)] if self.path_first else []
        return os.pathsep.join([*first, *reversed(self.path_added), self.base_env["PATH"]])

    def _run_script(self, spec, name, step_id, ev, step_env, action_path, scope) -> Step:
        script_text = interpolate(spec["run"], ev)
        shell = spec.get("shell")
        if scope == "action" and not shell:
            raise HarnessError(f"composite step {name!r}: `shell` is required")
        if shell in (None, "bash"):
            argv = ["bash", "-e"] if shell is None else ["bash", "--noprofile", "--norc", "-eo", "pipefail"]
        elif shell == "sh":
            argv = ["sh", "-e"]
        else:
            raise HarnessError(f"step {name!r}: shell {shell!r} not modelled")
        script_text = script_text.replace(PLACEHOLDER_URL, f"file://{self.action_dir}")
        bad = re.search(r"git\+https://github\.com/[^\s\"']+", script_text)
        if bad:
            raise HarnessError(f"step {name!r} installs {bad[0]}: that is not the janitor's repository "
                               f"(the copy of {PLACEHOLDER_URL} is the janitor)")
        script = self.temp / f"step_{uuid.uuid4().hex}.sh"
        script.write_text(script_text)
        files = self._step_files()
        env = {**self.base_env, **step_env, **self.set_env, **{k: str(v) for k, v in files.items()}}
        for key, value in list(env.items()):
            env[key] = value.replace(PLACEHOLDER_URL, f"file://{self.action_dir}")
            if re.search(r"git\+https://github\.com/", env[key]):
                raise HarnessError(f"step {name!r}: env {key}={value}: not the janitor's repository "
                                   f"(the copy of {PLACEHOLDER_URL} is the janitor)")
        env["PATH"] = self._path()
        if action_path is not None:
            env["GITHUB_ACTION_PATH"] = str(action_path)
        cwd = self.workspace / spec["working-directory"] if spec.get("working-directory") else self.workspace
        proc = subprocess.run([*argv, str(script)], env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
        record = Step(name, step_id, "success" if proc.returncode == 0 else "failure", proc.returncode,
                      proc.stdout + proc.stderr)
        self.annotations += [line for line in record.log.splitlines() if line.startswith(("::error", "::warning"))]
        self._process_files(files, record)
        return record

    # --- uses: -------------------------------------------------------------------------------------
    def _uses(self, spec, name, step_id, ev, step_env, contexts) -> Step:
        uses = spec["uses"]
        with_ = {k: interpolate(to_str(v), ev) for k, v in (spec.get("with") or {}).items()}
        if uses.startswith("./") or uses == ".":
            path = self.workspace / uses
            if not (path / "action.yml").is_file() and not (path / "action.yaml").is_file():
                raise HarnessError(f"uses: {uses}: no action.yml in GITHUB_WORKSPACE ({self.workspace}): a local "
                                   "action is read from the user's own repository")
            return self._composite(path, with_, name, step_id, step_env)
        if uses == f"{PLACEHOLDER_REPO}@{PLACEHOLDER_REF}":
            return self._composite(self.action_dir, with_, name, step_id, step_env)
        action, _, version = uses.partition("@")
        models = {"actions/checkout": self._checkout, "actions/setup-python": self._setup_python,
                  "actions/cache": self._cache, "actions/cache/restore": self._cache,
                  "actions/cache/save": self._cache, "actions/upload-artifact": self._upload}
        if action not in models:
            raise HarnessError(f"uses: {uses}: no model of this action")
        record = Step(name, step_id, "success")
        try:
            record.outputs = models[action](action, with_) or {}
        except StepFailed as exc:
            record.outcome, record.code, record.log = "failure", 1, f"::error::{exc}"
            self.annotations.append(record.log)
        return record

    def _composite(self, path: Path, with_: dict, name, step_id, step_env) -> Step:
        import yaml

        meta = yaml.safe_load((path / "action.yml").read_text())
        if meta["runs"]["using"] != "composite":
            raise HarnessError(f"{path}: only composite actions are modelled")
        unknown = set(with_) - set(meta.get("inputs") or {})
        if unknown:
            raise HarnessError(f"{name}: unexpected inputs {sorted(unknown)}")
        github = {**self.github, "action_path": str(path)}
        contexts = {**self.contexts, "github": github, "steps": {}, "inputs": {}, "env": dict(step_env)}
        ev = self._evaluator(contexts)
        for key, spec in (meta.get("inputs") or {}).items():
            if key in with_:
                contexts["inputs"][key] = with_[key]
            elif spec.get("required") and "default" not in spec:
                pass                                  # the runner warns only
            else:
                contexts["inputs"][key] = interpolate(to_str(spec.get("default", "")), ev)
        inner = self._run_steps(meta["runs"]["steps"], contexts, dict(step_env), action_path=path, scope="action")
        ev = self._evaluator(contexts)
        outputs = {k: interpolate(to_str(v.get("value", "")), ev) for k, v in (meta.get("outputs") or {}).items()}
        failed = any(s.outcome == "failure" for s in inner)
        code = next((s.code for s in inner if s.outcome == "failure"), 0)
        return Step(name, step_id, "failure" if failed else "success", code, "", outputs, "", inner)

    def _checkout(self, action, with_) -> dict:
        if with_.get("repository") not in (None, "", self.user_repo) or with_.get("ref") not in (None, ""):
            raise HarnessError(f"actions/checkout of {with_}: the copied workflows must not need another repository or ref")
        return {}

    def _setup_python(self, action, with_) -> dict:
        cache = with_.get("cache", "")
        if cache:
            if cache not in ("pip", "pipenv", "poetry"):
                raise StepFailed(f"Caching for '{cache}' is not supported")
            patterns = [p.strip() for p in (with_.get("cache-dependency-path") or "**/requirements.txt").splitlines()
                        if p.strip()]
            matched = []
            for pattern in patterns:
                absolute = pattern if os.path.isabs(pattern) else str(self.workspace / pattern)
                matched += [m for m in glob.glob(absolute, recursive=True)
                            if os.path.isfile(m) and os.path.realpath(m).startswith(str(self.workspace) + os.sep)]
            if not matched:
                raise StepFailed(f"No file in {self.workspace} matched to [{','.join(patterns)}], make sure you have "
                                 "checked out the target repository")
        venv = self.toolcache / "Python" / "x64"
        if not (venv / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True,
                           capture_output=True)
        self.path_added.append(str(venv / "bin"))
        self.set_env["pythonLocation"] = str(venv)
        return {"python-version": ".".join(map(str, sys.version_info[:3])), "python-path": str(venv / "bin" / "python"),
                "cache-hit": "false"}

    def _cache(self, action, with_) -> dict:
        key = with_.get("key", "")
        if not key:
            raise StepFailed("Input required and not supplied: key")
        if len(key) > 512 or "," in key:
            raise StepFailed(f"Key Validation Error: {key} cannot be larger than 512 characters or contain commas.")
        paths = [p.strip() for p in with_.get("path", "").splitlines() if p.strip()]
        if not paths:
            raise StepFailed("Input required and not supplied: path")
        outputs = {}
        if action in ("actions/cache", "actions/cache/restore"):
            hit = self.caches.get(key)
            matched = key if hit else None
            if hit is None:
                for prefix in [p.strip() for p in with_.get("restore-keys", "").splitlines() if p.strip()]:
                    found = sorted((k for k in self.caches if k.startswith(prefix)), reverse=True)
                    if found:
                        hit, matched = self.caches[found[0]], found[0]
                        break
            if hit is not None:
                for p in paths:
                    src = hit / hashlib.sha256(p.encode()).hexdigest()
                    dest = Path(p) if os.path.isabs(p) else self.workspace / p
                    if src.exists():
                        shutil.copytree(src, dest, dirs_exist_ok=True)
            outputs = {"cache-hit": "true" if matched == key else "false", "cache-matched-key": matched or ""}
        if action == "actions/cache/save":
            if key in self.caches:
                return {"note": f"Cache already exists for key {key}: not saved"}
            entry = self.cache_store / hashlib.sha256(key.encode()).hexdigest()
            for p in paths:
                src = Path(p) if os.path.isabs(p) else self.workspace / p
                if src.is_dir():
                    shutil.copytree(src, entry / hashlib.sha256(p.encode()).hexdigest(), dirs_exist_ok=True)
            self.caches[key] = entry
        return outputs

    def _upload(self, action, with_) -> dict:
        name = with_.get("name") or "artifact"
        if name in self.artifacts and with_.get("overwrite", "false") != "true":
            raise StepFailed(f"Failed to CreateArtifact: (409) Conflict: an artifact with this name already exists "
                             f"on the workflow run: {name}")
        files = []
        for line in with_.get("path", "").splitlines():
            line = line.strip()
            if not line:
                continue
            absolute = line if os.path.isabs(line) else str(self.workspace / line)
            files += [Path(m) for m in glob.glob(absolute, recursive=True) if os.path.isfile(m)]
        if not files:
            mode = with_.get("if-no-files-found", "warn")
            if mode == "error":
                raise StepFailed(f"No files were found with the provided path: {with_.get('path')}. No artifacts will be uploaded.")
            return {}
        self.artifacts[name] = files
        artifact_id = str(100 + len(self.artifacts))
        return {"artifact-id": artifact_id,
                "artifact-url": f"https://github.com/{self.user_repo}/actions/runs/{self.run_id}/artifacts/{artifact_id}"}


class StepFailed(Exception):
    """A modelled action failed the step (its message is the annotation)."""
