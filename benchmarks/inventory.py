"""Inventory speed, request economy and memory: `janitor ls` against a bare loop, oras-py and skopeo.

    python benchmarks/inventory.py --tags 10000            # loopback 10,000 tags + WAN 300 tags
    python benchmarks/inventory.py --tags 2000 10000 --repeat 3

Starts Debian's docker-registry on 127.0.0.1 with its storage in benchmarks/.state/registry (or
uses --registry HOST:PORT), seeds BuildKit cache tags once (reused on later runs: see seed.py), then
runs every tool as its own process (process start counts) and measures wall time, peak RSS
(os.wait4 rusage of that process) and the HTTP requests the registry logged while it ran (the
registry's access log: the same counter for every tool). Two conditions: loopback, and WAN through
benchmarks/wan_proxy.py (default 40 ms round trip) on a separate 300-tag repository.
Prints the tables and writes them as Markdown to benchmarks/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import seed  # noqa: E402  (benchmarks/seed.py)
from ghcr_janitor.core.defaults import DEFAULT_CONCURRENCY  # noqa: E402

PY = sys.executable
FLOOR = "registry-CPU floor"
TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


@dataclass
class Run:
    wall: float
    rss_mb: float
    cpu: float              # the process's own user+sys seconds
    registry_cpu: float | None
    rc: int
    stdout: str
    stderr: str
    requests: Counter | None


@dataclass
class Row:
    condition: str
    tool: str
    tags: int
    wall: float
    rss_mb: float
    requests: Counter | None
    note: str = ""
    runs: list[float] = field(default_factory=list)
    ok: bool = True
    cpu: float | None = None
    registry_cpu: float | None = None

    @property
    def rate(self) -> float:
        return self.tags / self.wall if self.wall else 0.0


class Bench:
    def __init__(self, args: argparse.Namespace, counter: seed.AccessLogCounter | None,
                 registry_pid: int | None = None):
        self.args = args
        self.counter = counter
        self.registry_pid = registry_pid
        self.rows: list[Row] = []
        self.scratch = Path(tempfile.mkdtemp(prefix="janitor-bench-"))
        self.janitor = self._janitor_cmd()

    # ------------------------------------------------------------------ processes
    def _janitor_cmd(self) -> list[str]:
        if self.args.janitor_src:
            return [PY, "-m", "ghcr_janitor"]
        exe = shutil.which("janitor")
        return [exe] if exe else [PY, "-m", "ghcr_janitor"]

    def _env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        # Byte-compiled modules, as an installed tool has them: this sandbox sets PYTHONDONTWRITEBYTECODE,
        # which would make every run recompile the (editable) package. Kept out of the source tree.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(self.args.state_dir / "pycache")
        if self.args.janitor_src:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.args.janitor_src), env.get("PYTHONPATH")]))
        env.update(extra or {})
        return env

    def run(self, cmd: list[str], env: dict[str, str] | None = None) -> Run:
        """One process: wall time from spawn to exit, its own peak RSS and CPU, the requests logged meanwhile.

        Peak RSS comes from GNU time (/usr/bin/time -f %M), which forks the tool from its own tiny
        process: os.wait4 on a child of this (large) Python process would report max(this process's
        RSS at fork, the child's), because Linux carries the pre-exec high-water mark over exec.
        """
        if self.counter:
            self.counter.mark()
        reg0 = self.registry_cpu()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
                tempfile.NamedTemporaryFile("r", suffix=".time") as stats:
            full = ([TIME, "-f", "%M %U %S", "-o", stats.name, *cmd] if TIME else cmd)
            started = time.perf_counter()
            proc = subprocess.Popen(full, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env or self._env())
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - started
            proc.returncode = os.waitstatus_to_exitcode(status)
            rss_mb, cpu = usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime
            if TIME:
                try:
                    fields = stats.read().strip().splitlines()[-1].split()
                    rss_mb, cpu = int(fields[0]) / 1024.0, float(fields[1]) + float(fields[2])
                except (IndexError, ValueError):
                    pass
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        requests = self.counter.count() if self.counter else None
        reg1 = self.registry_cpu()
        registry_cpu = reg1 - reg0 if reg0 is not None and reg1 is not None else None
        return Run(wall, rss_mb, cpu, registry_cpu, proc.returncode, stdout, stderr, requests)

    def registry_cpu(self) -> float | None:
        """Seconds of CPU the registry process (ours) has used so far."""
        if self.registry_pid is None:
            return None
        try:
            fields = Path(f"/proc/{self.registry_pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None

    # ------------------------------------------------------------------ tools
    def janitor_ls(self, host: str, repo: str, cache: Path, concurrency: int | None) -> Run:
        cmd = [*self.janitor, "ls", f"{host}/{repo}", "-O", "json", "--all-tags"]
        if concurrency is not None:
            cmd += ["--concurrency", str(concurrency)]
        return self.run(cmd, self._env({"JANITOR_CACHE_DIR": str(cache / "cache"),
                                        "JANITOR_STATE_DIR": str(cache / "state")}))

    def check_janitor(self, run: Run, n: int, what: str) -> bool:
        if run.rc != 0:
            print(f"  ! {what}: exit {run.rc}: {run.stderr.strip()[-800:]}")
            return False
        try:
            doc = json.loads(run.stdout)
            inv = doc["targets"][0]
            got = inv["totals"]["repository_tags"]
            errors = (inv.get("errors") or []) + (doc.get("errors") or [])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            print(f"  ! {what}: unexpected JSON ({type(exc).__name__}: {exc}): {run.stdout[:300]}")
            return False
        if got != n or errors:
            print(f"  ! {what}: {got} tags, {len(errors)} errors, expected {n} and none: {errors[:3]}")
            return False
        return True

    def check_client(self, run: Run, n: int, what: str) -> bool:
        try:
            result = json.loads(run.stdout.strip().splitlines()[-1])
            if run.rc == 0 and result["tags"] == n and result["manifests"] == n:
                return True
        except (ValueError, KeyError, IndexError):
            pass
        print(f"  ! {what}: exit {run.rc}: {run.stdout[-300:]} {run.stderr.strip()[-800:]}")
        return False

    def client(self, mode: str, host: str, repo: str, concurrency: int) -> Run:
        return self.run([PY, str(HERE / "clients.py"), mode, host, repo, "--concurrency", str(concurrency)])

    # ------------------------------------------------------------------ one condition
    def measure(self, condition: str, host: str, repo: str, n: int, janitor_concurrency: list[int | None],
                bare_concurrency: int | list[int], repeat: int) -> None:
        tools = set(self.args.tools)
        bare_list = bare_concurrency if isinstance(bare_concurrency, list) else [bare_concurrency]
        print(f"\n== {condition}: {repo}, {n} tags, via {host}")
        if self.args.warmup and "bare-threads" in tools:
            self.client("bare-threads", host, repo, bare_list[0])      # page cache, registry warm-up
        samples: dict[str, list[Run]] = {}
        oks: dict[str, bool] = {}

        def add(name: str, run: Run, ok: bool) -> None:
            samples.setdefault(name, []).append(run)
            oks[name] = oks.get(name, True) and ok
            reqs = run.requests["total"] if run.requests else "?"
            print(f"  {name:<48} {run.wall:8.2f}s  cpu {run.cpu:6.2f}s  {reqs:>6} requests  {run.rss_mb:6.1f} MB"
                  + ("" if ok else "  FAILED"))

        for _ in range(repeat):
            if "janitor" in tools:
                for conc in janitor_concurrency:
                    label = "default" if conc is None else str(conc)
                    cache = Path(tempfile.mkdtemp(dir=self.scratch))
                    cold = self.janitor_ls(host, repo, cache, conc)
                    add(f"janitor ls cold (concurrency {label})", cold, self.check_janitor(cold, n, "janitor cold"))
                    if conc is None:
                        warm = self.janitor_ls(host, repo, cache, conc)
                        add("janitor ls warm (same cache dir)", warm, self.check_janitor(warm, n, "janitor warm"))
                    shutil.rmtree(cache, ignore_errors=True)
            for mode, label in (("bare-async", "bare asyncio+httpx loop"), ("bare-threads", "bare httpx.Client+threads loop")):
                if mode in tools:
                    for conc in bare_list:
                        run = self.client(mode, host, repo, conc)
                        add(f"{label} (concurrency {conc})", run, self.check_client(run, n, mode))

        for name, runs in samples.items():
            walls = [r.wall for r in runs]
            mid = sorted(runs, key=lambda r: r.wall)[len(runs) // 2]
            note = f"median of {len(runs)}" if len(runs) > 1 else ""
            self.rows.append(Row(condition, name, n, mid.wall, max(r.rss_mb for r in runs), mid.requests,
                                 note, walls, oks[name], mid.cpu, mid.registry_cpu))
        floor = [r.registry_cpu for name, runs in samples.items() if name.startswith("bare httpx.Client")
                 for r in runs if r.registry_cpu is not None]
        if floor and condition.startswith("loopback"):
            # The registry's CPU to serve the minimal request set (one tag list, one GET per tag), as
            # it served the bare threads loop: no client can finish faster on this 2-core machine.
            value = statistics.median(floor)
            self.rows.append(Row(condition, FLOOR, n, value, 0.0, None,
                                 f"registry CPU s serving the bare threads loop, median of {len(floor)}",
                                 [value], True, None, value))

        if "oras" in tools:
            run = self.run([PY, str(HERE / "clients.py"), "oras", host, repo])
            ok = self.check_client(run, n, "oras")
            add("oras-py Registry (serial)", run, ok)
            self.rows.append(Row(condition, "oras-py Registry (serial)", n, run.wall, run.rss_mb, run.requests, "",
                                 [run.wall], ok, run.cpu, run.registry_cpu))
        if "skopeo" in tools:
            self.skopeo(condition, host, repo, n)

    def skopeo(self, condition: str, host: str, repo: str, n: int) -> None:
        name = "skopeo list-tags + inspect --raw per tag"
        exe = shutil.which("skopeo")
        if exe is None:
            print(f"  {name}: not installed (apt-get install -y skopeo)")
            self.rows.append(Row(condition, name, n, 0.0, 0.0, None, "not installed", ok=False))
            return
        listing = self.run([exe, "list-tags", "--tls-verify=false", f"docker://{host}/{repo}"])
        try:
            tags = json.loads(listing.stdout)["Tags"]
        except (ValueError, KeyError):
            print(f"  ! skopeo list-tags failed: {listing.stderr.strip()[-500:]}")
            self.rows.append(Row(condition, name, n, 0.0, 0.0, None, "list-tags failed", ok=False))
            return
        k = max(1, min(self.args.skopeo_sample, len(tags)))
        sample = [tags[i * len(tags) // k] for i in range(k)]
        runs = []
        for tag in sample:
            run = self.run([exe, "inspect", "--raw", "--tls-verify=false", f"docker://{host}/{repo}:{tag}"])
            if run.rc != 0:
                print(f"  ! skopeo inspect {tag}: {run.stderr.strip()[-500:]}")
                self.rows.append(Row(condition, name, n, 0.0, 0.0, None, "inspect failed", ok=False))
                return
            runs.append(run)
        per_tag = statistics.mean(r.wall for r in runs)
        wall = listing.wall + per_tag * len(tags)
        requests: Counter = Counter()
        if listing.requests is not None:
            requests.update(listing.requests)
            sampled: Counter = Counter()
            for r in runs:
                sampled.update(r.requests or {})
            for key, value in sampled.items():
                requests[key] += round(value * len(tags) / k)
        rss = max([listing.rss_mb] + [r.rss_mb for r in runs])
        cpu = listing.cpu + statistics.mean(r.cpu for r in runs) * len(tags)
        reg_cpu = None
        if listing.registry_cpu is not None and all(r.registry_cpu is not None for r in runs):
            reg_cpu = listing.registry_cpu + statistics.mean(r.registry_cpu for r in runs) * len(tags)
        note = (f"extrapolated: list-tags {listing.wall:.2f}s + {len(tags)} x {per_tag * 1000:.0f} ms "
                f"(mean of inspect on {k} sampled tags)")
        print(f"  {name:<48} {wall:8.2f}s  cpu {cpu:6.2f}s  {requests['total'] if listing.requests is not None else '?':>6} "
              f"requests  {rss:6.1f} MB  ({note})")
        self.rows.append(Row(condition, name, n, wall, rss, requests if listing.requests is not None else None,
                             note, [wall], len(tags) == n, cpu, reg_cpu))

    # ------------------------------------------------------------------ start-up
    def startup(self) -> list[list]:
        table = []
        closed = "127.0.0.1:9"      # the discard port: nothing listens on loopback here
        env = self._env({"JANITOR_RETRY_ATTEMPTS": "1", "JANITOR_CACHE_DIR": str(self.scratch / "startup-cache"),
                         "JANITOR_STATE_DIR": str(self.scratch / "startup-state")})
        for label, cmd in (("python -c pass", [PY, "-c", "pass"]),
                           ("python -c 'import httpx'", [PY, "-c", "import httpx"]),
                           ("janitor --version", [*self.janitor, "--version"]),
                           ("janitor ls --help", [*self.janitor, "ls", "--help"]),
                           # up to its first request: a refused connection, no retry
                           ("janitor ls (to the first request)", [*self.janitor, "ls", f"{closed}/none/repo", "-O", "json"])):
            runs = [self.run(cmd, env) for _ in range(5)]
            table.append([label, f"{statistics.median(r.wall for r in runs) * 1000:.0f}", f"{runs[-1].rss_mb:.1f}",
                          f"{statistics.median(r.cpu for r in runs) * 1000:.0f}"])
        return table


# ---------------------------------------------------------------------- reporting
def fmt_requests(req: Counter | None) -> tuple[str, str, str]:
    if req is None:
        return "n/a", "n/a", "n/a"
    gets = req.get("GET manifest", 0)
    heads = req.get("HEAD manifest", 0)
    return f"{req.get('total', 0):,}", f"{gets:,}", f"{heads:,}"


def table_rows(rows: list[Row]) -> list[list]:
    out = []
    by_condition: dict[str, float] = {}
    for row in rows:
        if row.tool.startswith("janitor ls cold (concurrency default") and row.ok:
            by_condition[row.condition] = row.wall
    for row in rows:
        base = by_condition.get(row.condition)
        if row.tool == FLOOR:
            out.append([row.condition, row.tool, row.tags, f"{row.wall:.2f}", f"{row.rate:,.0f}", "-",
                        f"{row.registry_cpu:.2f}", "-", "-", "-", "-",
                        f"{row.wall / base:.2f}x" if base else "-", row.note])
            continue
        if row.note in ("not installed", "list-tags failed", "inspect failed"):
            out.append([row.condition, row.tool, row.tags] + ["-"] * 10 + [row.note])
            continue
        total, gets, heads = fmt_requests(row.requests)
        ratio = f"{row.wall / base:.2f}x" if base else "-"
        cpu = f"{row.cpu:.2f}" if row.cpu is not None else "-"
        reg = f"{row.registry_cpu:.2f}" if row.registry_cpu is not None else "-"
        out.append([row.condition, row.tool + ("" if row.ok else " (FAILED)"), row.tags, f"{row.wall:.2f}",
                    f"{row.rate:,.0f}", cpu, reg, total, gets, heads, f"{row.rss_mb:.0f}", ratio, row.note])
    return out


HEADERS = ["condition", "tool", "tags", "wall s", "tags/s", "tool CPU s", "registry CPU s", "requests", "manifest GETs", "manifest HEADs",
           "peak RSS MB", "wall / janitor cold", "note"]


def find(rows: list[Row], condition: str, prefix: str) -> Row | None:
    for row in rows:
        if row.condition == condition and row.tool.startswith(prefix) and row.ok:
            return row
    return None


def goals(rows: list[Row], conditions: list[tuple[str, int, int]], startup: list[list] | None = None) -> list[list]:
    """[goal, measured, verdict] lines for issue 15's targets (and issue 8's request economy)."""
    out = []

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "NOT met")

    for condition, n, unique in conditions:
        cold = find(rows, condition, "janitor ls cold (concurrency default")
        warm = find(rows, condition, "janitor ls warm")
        floor = find(rows, condition, FLOOR)
        oras = find(rows, condition, "oras-py")
        if condition.startswith("loopback") and cold and floor:
            ratio = cold.wall / floor.wall
            out.append([f"{condition}: cold wall <= 1.3x the registry-CPU floor", f"{cold.wall:.2f}s vs {floor.wall:.2f}s: "
                        f"{ratio:.2f}x", verdict(ratio <= 1.3)])
        if condition.startswith("loopback") and cold and oras and n <= 2000:
            out.append([f"{condition}: >= 1.5x faster than oras-py", f"{oras.wall / cold.wall:.2f}x",
                        verdict(oras.wall / cold.wall >= 1.5)])
        if cold and warm and cold.cpu and warm.cpu is not None:
            out.append([f"{condition}: warm CPU <= 0.5x cold CPU", f"{warm.cpu:.2f}s vs {cold.cpu:.2f}s: "
                        f"{warm.cpu / cold.cpu:.2f}x", verdict(warm.cpu / cold.cpu <= 0.5)])
        bare = [r for r in rows if r.condition == condition and r.tool.startswith("bare httpx.Client") and r.ok]
        if condition.startswith("WAN") and cold and bare:
            best = min(bare, key=lambda r: r.wall)
            ratio = cold.wall / best.wall
            target = 1.0 if condition.startswith("WAN 100") else None
            out.append([f"{condition}: cold vs the bare threads loop at its best ({best.tool.split('(')[1][:-1]})",
                        f"{cold.wall:.2f}s vs {best.wall:.2f}s: {ratio:.2f}x",
                        verdict(ratio <= target) if target else "info"])
        if condition.startswith("WAN") and cold and oras:
            factor = 15 if condition.startswith("WAN 40") else None
            speedup = oras.wall / cold.wall
            out.append([f"{condition}: faster than oras-py" + (f" (>= {factor}x)" if factor else ""),
                        f"{speedup:.1f}x", verdict(speedup >= factor) if factor else "info"])
        if condition.startswith("WAN"):
            for row in rows:
                if row.condition == condition and row.tool.startswith("janitor ls cold (concurrency") and row.ok:
                    out.append([f"{condition}: {row.tool}", f"{row.wall:.2f}s, CPU {row.cpu:.2f}s"
                                + (f": {oras.wall / row.wall:.1f}x oras-py" if oras else ""), "info"])
        if cold and n >= 10000:
            out.append([f"{condition}: peak RSS < 150 MB", f"{cold.rss_mb:.0f} MB cold"
                        + (f", {warm.rss_mb:.0f} MB warm" if warm else ""),
                        verdict(max(cold.rss_mb, warm.rss_mb if warm else 0) < 150)])
        if cold and cold.requests is not None:
            gets = cold.requests.get("GET manifest", 0)
            out.append([f"{condition}: cold manifest GETs (one per tag: {n:,}; unique digests: {unique:,})",
                        f"{gets:,}", verdict(gets <= n)])
        if warm and warm.requests is not None:
            gets = warm.requests.get("GET manifest", 0)
            out.append([f"{condition}: warm manifest GETs = 0", f"{gets:,} GETs, "
                        f"{warm.requests.get('HEAD manifest', 0):,} HEADs", verdict(gets == 0)])
    for label, _, _, cpu in (r for r in startup or [] if len(r) >= 4):
        if label.startswith("janitor"):
            out.append([f"start-up: {label} under 150 ms CPU", f"{cpu} ms", verdict(float(cpu) < 150)])
    return out


def versions(bench: Bench) -> dict[str, str]:
    def out(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "not installed"

    info = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "janitor": out([*bench.janitor, "--version"]) + (f" (from {bench.args.janitor_src})" if bench.args.janitor_src else ""),
        "janitor commit": out(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"])
        + (" + uncommitted changes" if out(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "ghcr_janitor"]) not in ("", "not installed") else ""),
        "registry": out([shutil.which("docker-registry") or "docker-registry", "--version"]),
        "skopeo": out(["skopeo", "--version"]),
    }
    for module in ("httpx", "oras"):
        try:
            from importlib.metadata import version

            info[module] = version(module)
        except Exception:
            info[module] = "not installed"
    return info


def write_markdown(path: Path, rows: list[Row], goal_lines: list[list], startup: list[list], info: dict,
                   command: str, seeded: dict) -> None:
    from tabulate import tabulate

    lines = [
        "# Inventory benchmark results",
        "",
        f"Generated {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by `{command}`.",
        "",
        "Every tool ran as its own process (process start included). Requests are what the registry's",
        "access log recorded while that process ran (the same counter for every tool). Tool CPU is the",
        "process's user+sys time, registry CPU what the registry spent meanwhile; peak RSS is the process's",
        "own maximum resident set (GNU time). skopeo rows are extrapolated from a sample of tags (see the",
        "note column). WAN = the same registry behind `benchmarks/wan_proxy.py`. The machine is a shared",
        "2-core VM: wall times move with other processes' load (see Environment); CPU times much less.",
        "",
        tabulate(table_rows(rows), HEADERS, tablefmt="github"),
        "",
        "## Targets (issue 15)",
        "",
        tabulate(goal_lines, ["goal", "measured", "verdict"], tablefmt="github"),
        "",
        "## Start-up (median of 5, ms)",
        "",
        tabulate(startup, ["command", "wall ms", "peak RSS MB", "CPU ms"], tablefmt="github"),
        "",
        "## Seeded repositories",
        "",
        tabulate([[repo, e["tags"], e["unique_digests"]] for repo, e in seeded.items()],
                 ["repository", "tags", "unique manifests"], tablefmt="github"),
        "",
        "## Environment",
        "",
        *[f"- {k}: {v}" for k, v in info.items()],
        "",
    ]
    path.write_text("\n".join(lines))


# ---------------------------------------------------------------------- main
def start_proxy(upstream: str, rtt_ms: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([PY, str(HERE / "wan_proxy.py"), "--upstream", upstream, "--rtt-ms", str(rtt_ms)],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    line = proc.stdout.readline().strip() if proc.stdout else ""
    if not line.startswith("LISTENING "):
        proc.kill()
        raise RuntimeError(f"wan_proxy did not start: {line!r}")
    return proc, line.split()[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tags", type=int, nargs="+", default=[10000], help="loopback tag counts (default 10000)")
    parser.add_argument("--wan-tags", type=int, default=300, help="tags in the WAN repository (0: skip WAN)")
    parser.add_argument("--rtt-ms", type=float, nargs="+", default=[40.0, 100.0],
                        help="WAN round trips added by the proxy, one condition each (default 40 100)")
    parser.add_argument("--skopeo-sample", type=int, default=30, help="skopeo inspects this many tags, extrapolated")
    parser.add_argument("--concurrency", type=int, default=32,
                        help=f"bare loops' concurrency on loopback (default 32; janitor's default is {DEFAULT_CONCURRENCY})")
    parser.add_argument("--wan-concurrency", type=int, nargs="*", default=[16, 32],
                        help="extra janitor --concurrency values measured on WAN (default 16 32)")
    parser.add_argument("--wan-bare-concurrency", type=int, nargs="+", default=[16, 32, 64],
                        help="the bare loops' concurrencies on WAN (the best one is the target; default 16 32 64)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of janitor and the bare loops (median reported)")
    parser.add_argument("--tools", nargs="+", default=["janitor", "bare-async", "bare-threads", "oras", "skopeo"],
                        choices=["janitor", "bare-async", "bare-threads", "oras", "skopeo"])
    parser.add_argument("--state-dir", type=Path, default=seed.STATE_DIR, help="seeded storage (git-ignored)")
    parser.add_argument("--registry", help="HOST:PORT of a running registry instead of our own")
    parser.add_argument("--access-log", type=Path, help="with --registry: its access log, to count requests")
    parser.add_argument("--janitor-src", type=Path,
                        help="run `python -m ghcr_janitor` with PYTHONPATH=DIR (compare a patched copy)")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false",
                        help="skip the unreported bare-loop pass that warms the registry before each condition")
    parser.add_argument("--output", type=Path, default=HERE / "results.md",
                        help="Markdown results file (raw numbers go next to it as .json)")
    parser.add_argument("--render", type=Path, metavar="RESULTS_JSON",
                        help="only re-print and re-write the Markdown from an earlier run's .json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        return render(args.render, args.output)
    command = "python benchmarks/inventory.py " + " ".join(sys.argv[1:] if argv is None else argv)
    wants = [(seed.repo_name("buildkit", n), n) for n in args.tags]
    if args.wan_tags:
        wants.append((seed.repo_name("wan", args.wan_tags), args.wan_tags))

    registry = None
    proxy = None
    started = time.monotonic()
    print("seeding:")
    if args.registry:
        host = args.registry
        seeded = seed.ensure_seeded_external(host, wants)
        counter = seed.AccessLogCounter(args.access_log) if args.access_log else None
    else:
        root = args.state_dir / "registry"
        seeded = seed.ensure_seeded(root, wants)
        registry = seed.BenchRegistry(root).start()
        host = registry.host
        counter = seed.AccessLogCounter(registry.access_log)
    print(f"  ready in {time.monotonic() - started:.1f}s; registry {host}")

    bench = Bench(args, counter, registry.process.pid if registry and registry.process else None)
    load = os.getloadavg()
    try:
        if args.warmup:      # byte-compile every tool's modules into the pycache prefix, unreported
            small = min(wants, key=lambda w: w[1])[0]
            scratch = Path(tempfile.mkdtemp(dir=bench.scratch))
            bench.janitor_ls(host, small, scratch, None)
            for mode in ("bare-async", "bare-threads", "oras"):
                bench.client(mode, host, small, args.concurrency)
        for n in args.tags:
            bench.measure(f"loopback {n:,}", host, seed.repo_name("buildkit", n), n, [None], args.concurrency,
                          args.repeat)
        for rtt in (args.rtt_ms if args.wan_tags else []):
            proxy, proxy_host = start_proxy(host, rtt)
            conc = [None] + [c for c in args.wan_concurrency]
            bench.measure(f"WAN {rtt:g} ms, {args.wan_tags:,}", proxy_host, seed.repo_name("wan", args.wan_tags),
                          args.wan_tags, conc, list(args.wan_bare_concurrency), args.repeat)
            proxy.terminate()
            proxy.wait()
            proxy = None
        startup = bench.startup()
        info = versions(bench)
        info["load average (1 min) at start / end"] = f"{load[0]:.2f} / {os.getloadavg()[0]:.2f}"
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait()
        if registry is not None:
            registry.stop()
        shutil.rmtree(bench.scratch, ignore_errors=True)

    elapsed = time.monotonic() - started
    raw = {"command": command, "info": info, "startup": startup, "seeded": seeded, "elapsed": elapsed,
           "conditions": [], "rows": [dict(r.__dict__, requests=dict(r.requests) if r.requests else None)
                                      for r in bench.rows]}
    conditions = [(f"loopback {n:,}", n, seeded[seed.repo_name("buildkit", n)]["unique_digests"]) for n in args.tags]
    for rtt in (args.rtt_ms if args.wan_tags else []):
        conditions.append((f"WAN {rtt:g} ms, {args.wan_tags:,}", args.wan_tags,
                           seeded[seed.repo_name("wan", args.wan_tags)]["unique_digests"]))
    raw["conditions"] = conditions
    args.output.with_suffix(".json").write_text(json.dumps(raw, indent=1) + "\n")
    print(f"\nall measurements took {elapsed / 60:.1f} min")
    return report(bench.rows, conditions, startup, info, command, seeded, args.output)


def report(rows: list[Row], conditions: list, startup: list[list], info: dict, command: str, seeded: dict,
           output: Path) -> int:
    from tabulate import tabulate

    goal_lines = goals(rows, [tuple(c) for c in conditions], startup)
    print()
    print(tabulate(table_rows(rows), HEADERS, tablefmt="simple"))
    print()
    print(tabulate(goal_lines, ["goal", "measured", "verdict"], tablefmt="simple"))
    print()
    print(tabulate(startup, ["start-up", "wall ms (median of 5)", "peak RSS MB", "CPU ms"], tablefmt="simple"))
    write_markdown(output, rows, goal_lines, startup, info, command, seeded)
    print(f"\nwrote {output}")
    return 0 if all(r.ok for r in rows if r.note != "not installed") else 1


def render(path: Path, output: Path) -> int:
    """Re-print and re-write the Markdown from a results .json (no measuring)."""
    raw = json.loads(path.read_text())
    rows = [Row(**dict(r, requests=Counter(r["requests"]) if r["requests"] else None)) for r in raw["rows"]]
    return report(rows, raw["conditions"], raw["startup"], raw["info"], raw["command"], raw["seeded"], output)


if __name__ == "__main__":
    sys.exit(main())
