"""Scale (issue 23, items 1, 2 and 4): a 100,000-version GHCR package, a 100,000-tag repository, and an
organisation of 2,000 packages sharded over a matrix, each against stand-ins, side by side with the
theoretical minimum.

Stand-ins, not GitHub or a registry (tests/support/scale_standin.py): the GitHub REST stand-in
(tests/support/github_standin.py: GitHub's rate-limit headers, primary and secondary limits, a
100 ms round trip per request) holding a synthetic package, and a synthetic in-memory OCI `/v2` server
(manifests generated from the version list, deterministic; threaded, HTTP/1.1 keep-alive; 100 ms per
request). Both run in this process; the janitor runs as its own process (`janitor plan`), start-up
included, with a fresh cache (cold) and then the same cache again (warm).

    python benchmarks/scale.py                              # every scenario at full size
    python benchmarks/scale.py --scenario ghcr --versions 10000 --repeat 1
    python benchmarks/scale.py --scenario tags --tags 10000 30000 100000
    python benchmarks/scale.py --scenario shard --packages 2000 --shards 4

Per run: wall (spawn to exit), the janitor's CPU and peak RSS (GNU time), the stand-ins' CPU (this
process meanwhile), REST pages and requests, OCI requests by kind, manifest GETs and how many digests
were fetched more than once. Minimums: REST pages = ceil(versions/100); pages are sequential (each
page's Link names the next): pages x RTT; manifest GETs: one per version cold (every manifest must be
read once), none warm; GETs x RTT / concurrency. Results: benchmarks/results_scale.md and .json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.github_standin import Limits  # noqa: E402
from tests.support.scale_standin import (  # noqa: E402
    ScaleGitHub, ScaleServer, SyntheticOci, package, small_package, tag_repo,
)

RESULTS = ROOT / "benchmarks" / "results_scale.md"
STATE = ROOT / "benchmarks" / ".state" / "scale"
TIME = shutil.which("time") and "/usr/bin/time"
POLICY = ROOT / "policies" / "seed-stages.toml"
CONCURRENCY = 64


JANITOR_SRC: Path | None = None        # --janitor-src: run a patched copy (to measure before/after)


def janitor_cmd() -> list[str]:
    exe = shutil.which("janitor")
    return [exe] if exe and JANITOR_SRC is None else [sys.executable, "-m", "ghcr_janitor"]


def env_for(gh_url: str | None, oci_url: str, cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(STATE / "pycache")
    for name in ("GH_TOKEN", "DOCKER_CONFIG", "JANITOR_USERNAME", "JANITOR_PASSWORD"):
        env.pop(name, None)
    home = cache.parent / "home"
    home.mkdir(parents=True, exist_ok=True)
    env.update({"GITHUB_TOKEN": "ghs_benchmark", "JANITOR_GHCR_REGISTRY": oci_url, "HOME": str(home),
                "JANITOR_CACHE_DIR": str(cache), "JANITOR_STATE_DIR": str(cache.parent / "state"),
                "XDG_CONFIG_HOME": str(home / ".config"), "DOCKER_CONFIG": str(home / ".docker")})
    if gh_url:
        env["GITHUB_API_URL"] = gh_url
    if JANITOR_SRC is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(JANITOR_SRC), env.get("PYTHONPATH")]))
    return env


def run(cmd: list[str], env: dict[str, str]) -> dict:
    """One janitor process: wall, its CPU and peak RSS (GNU time), this process's CPU meanwhile (the stand-ins)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as stats, tempfile.TemporaryFile() as err:
        full = [TIME, "-f", "%M %U %S", "-o", stats.name, *cmd] if TIME else cmd
        cpu0, started = time.process_time(), time.perf_counter()
        # Not from the source tree: `python -m` puts the working directory first on sys.path, which
        # would shadow --janitor-src.
        proc = subprocess.run(full, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=STATE)
        wall = time.perf_counter() - started
        standin_cpu = time.process_time() - cpu0
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        rss = cpu = None
        try:
            fields = stats.read().strip().splitlines()[-1].split()
            rss, cpu = int(fields[0]) / 1024.0, float(fields[1]) + float(fields[2])
        except (IndexError, ValueError):
            pass
    return {"wall": wall, "cpu": cpu, "rss_mb": rss, "standin_cpu": standin_cpu, "rc": proc.returncode,
            "stderr": stderr[-2000:]}


def oci_counts(oci: SyntheticOci) -> dict:
    gets = sum(oci.gets.values())
    return {"oci_requests": sum(oci.counts.values()), "manifest_gets": gets,
            "manifest_heads": oci.counts.get("manifest HEAD", 0), "tag_pages": oci.counts.get("tags", 0),
            "refetched": sum(1 for c in oci.gets.values() if c > 1), "oci_in_flight": oci.max_in_flight}


def median(runs: list[dict]) -> dict:
    middle = sorted(runs, key=lambda r: r["wall"])[len(runs) // 2]
    out = dict(middle)
    for key in ("wall", "cpu", "rss_mb", "standin_cpu"):
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = statistics.median(values) if values else None
    out["walls"] = [round(r["wall"], 1) for r in runs]
    return out


# --- scenario 1: a GHCR package of N versions ------------------------------------------------------

def ghcr(n: int, repeat: int, rtt: float, concurrency: int, warm_repeat: int | None = None) -> list[dict]:
    pkg = package(n)
    github = ScaleGitHub(Limits(round_trip=rtt, package_per_minute=None))
    github.add_package("acme", "app", pkg.versions)
    oci = SyntheticOci({"acme/app": pkg}, delay=rtt)
    rows = []
    with ScaleServer(github) as gh, oci:
        cmd = [*janitor_cmd(), "plan", "ghcr.io/acme/app", "--owner-type", "org", "--policy", str(POLICY),
               "--concurrency", str(concurrency), "-q"]
        for state in ("cold", "warm"):
            runs = []
            for i in range(repeat if state == "cold" or warm_repeat is None else warm_repeat):
                cache = STATE / f"ghcr-{n}-{i}" / "cache"
                if state == "cold":
                    shutil.rmtree(cache.parent, ignore_errors=True)
                github.reset()
                oci.reset()
                result = run([*cmd, "-o", str(cache.parent / "plan.json")], env_for(gh.url, oci.url, cache))
                result.update(oci_counts(oci))
                result.update(rest_pages=github.pages, rest_requests=github.stats.requests,
                              secondary=github.stats.secondary, primary=github.stats.primary)
                result["planned"] = planned(cache.parent / "plan.json")
                runs.append(result)
                print(f"  ghcr {n} {state} #{i + 1}: {fmt_run(result)}", flush=True)
            row = median(runs)
            pages = math.ceil(n / 100)
            gets = n if state == "cold" else 0
            row.update(scenario="ghcr", size=n, state=state, rtt=rtt, concurrency=concurrency,
                       min_pages=pages, min_gets=gets, min_rest=pages + 1,
                       min_seconds_serial=pages * rtt + gets * rtt / concurrency,
                       min_seconds=max(pages * rtt, gets * rtt / concurrency))
            rows.append(row)
    return rows


def planned(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    targets = doc.get("targets") or [doc]
    actions = [a for t in targets for a in (t.get("actions") or [])]
    return {"actions": len(actions), "deletes": sum(1 for a in actions if a.get("action") == "delete")}


# --- scenario 2: a registry repository of N tags -----------------------------------------------------

def tags(sizes: list[int], repeat: int, rtt: float, concurrency: int, big_repeat: int) -> list[dict]:
    rows = []
    for n in sizes:
        repo = tag_repo(n)
        oci = SyntheticOci({"acme/cache": repo}, delay=rtt)
        with oci:
            host = oci.url.removeprefix("http://")
            cmd = [*janitor_cmd(), "plan", f"{host}/acme/cache", "--all-tags", "--concurrency", str(concurrency), "-q"]
            reps = repeat if n < 100_000 else big_repeat
            for state in ("cold", "warm"):
                runs = []
                for i in range(reps):
                    cache = STATE / f"tags-{n}-{i}" / "cache"
                    if state == "cold":
                        shutil.rmtree(cache.parent, ignore_errors=True)
                    oci.reset()
                    result = run([*cmd, "-o", str(cache.parent / "plan.json")], env_for(None, oci.url, cache))
                    result.update(oci_counts(oci))
                    runs.append(result)
                    print(f"  tags {n} {state} #{i + 1}: {fmt_run(result)}", flush=True)
                row = median(runs)
                tag_pages = math.ceil(n / 1000)
                # cold: one GET per tag; warm: one HEAD per tag (a tag's digest is unknown until asked)
                row.update(scenario="tags", size=n, state=state, rtt=rtt, concurrency=concurrency,
                           min_gets=n if state == "cold" else 0, min_requests=tag_pages + n,
                           min_seconds=tag_pages * rtt + n * rtt / concurrency, repeats=reps)
                rows.append(row)
        del repo
    return rows


# --- scenario 3: an organisation of N packages, sharded -----------------------------------------------

def shard(packages: int, shards: int, rtt: float, concurrency: int, budget: int) -> list[dict]:
    github = ScaleGitHub(Limits(round_trip=rtt, package_per_minute=None))
    names = [f"svc-{i:04d}" for i in range(packages)]
    repos = {}
    for name in names:
        repo = small_package(f"acme/{name}")
        github.add_package("acme", name, repo.versions)
        repos[f"acme/{name}"] = repo
    oci = SyntheticOci(repos, delay=rtt)
    rows = []
    seen: dict[str, int] = {}
    with ScaleServer(github) as gh, oci:
        for i in range(1, shards + 1):
            cache = STATE / f"shard-{i}" / "cache"
            shutil.rmtree(cache.parent, ignore_errors=True)
            github.reset()
            oci.reset()
            cmd = [*janitor_cmd(), "plan", "ghcr.io/acme/*", "--owner-type", "org", "--shard", f"{i}/{shards}",
                   "--max-requests", str(budget), "--policy", str(POLICY), "--concurrency", str(concurrency),
                   "-q", "-o", str(cache.parent / "plan.json")]
            result = run(cmd, env_for(gh.url, oci.url, cache))
            listed = sorted(package for (_, package) in github.listed)      # versions listed by this shard
            for r in listed:
                seen[r] = seen.get(r, 0) + 1
            result.update(oci_counts(oci))
            result.update(scenario="shard", size=packages, state=f"shard {i}/{shards}", rtt=rtt,
                          concurrency=concurrency, rest_requests=github.stats.requests, rest_pages=github.pages,
                          budget=budget, targets=len(listed), secondary=github.stats.secondary)
            result["planned"] = planned(cache.parent / "plan.json")
            rows.append(result)
            print(f"  shard {i}/{shards}: {fmt_run(result)}", flush=True)
    coverage = {"packages": packages, "covered": len(seen), "twice": sum(1 for c in seen.values() if c > 1),
                "missed": packages - len(seen)}
    rows.append({"scenario": "shard-coverage", **coverage})
    print(f"  coverage: {coverage}", flush=True)
    return rows


def fmt_run(r: dict) -> str:
    rest = f" REST {r['rest_requests']} req/{r['rest_pages']} pages" if "rest_requests" in r else ""
    return (f"{r['wall']:.1f} s wall, CPU {r['cpu']}, RSS {r['rss_mb']} MB, stand-ins CPU {r['standin_cpu']:.1f} s,"
            f"{rest} OCI {r['oci_requests']} req, GETs {r['manifest_gets']} (refetched {r['refetched']}),"
            f" HEADs {r['manifest_heads']}, rc {r['rc']}" + (f"\n{r['stderr']}" if r["rc"] else ""))


# --- output ------------------------------------------------------------------------------------------

def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def render(rows: list[dict], info: dict) -> str:
    lines = ["# Scale: a 100,000-version GHCR package, a 100,000-tag repository, 2,000 packages sharded", "",
             f"`{info['command']}` ({info['date']}, load average before/after {info['load_before']} / "
             f"{info['load_after']}; 2-core VM shared with other sessions). Stand-ins, not GitHub or a registry: "
             "tests/support/github_standin.py (GitHub's rate-limit headers and limits) and "
             "tests/support/scale_standin.py (a synthetic in-memory OCI `/v2` server, threaded, keep-alive), "
             "both in the benchmark's process (their CPU: *stand-ins CPU*), each request delayed by the round trip. "
             "The janitor runs `janitor plan` as its own process; wall/CPU/RSS are medians of the runs listed.", ""]
    ghcr_rows = [r for r in rows if r.get("scenario") == "ghcr"]
    if ghcr_rows:
        lines += ["## GHCR package (REST listing + OCI manifests)", "",
                  "| versions | cache | wall s (runs) | min s | wall / min | janitor CPU s | peak RSS MB | stand-ins CPU s "
                  "| REST pages (min) | REST requests | OCI requests | manifest GETs (min) | fetched twice | 403/429 |",
                  "|---:|---|---|---:|---:|---:|---:|---:|---|---:|---:|---|---:|---:|"]
        for r in ghcr_rows:
            lines.append(f"| {fmt(r['size'])} | {r['state']} | {fmt(r['wall'])} ({', '.join(map(str, r['walls']))}) "
                         f"| {fmt(r['min_seconds'])} | {r['wall'] / r['min_seconds']:.2f} | {fmt(r['cpu'])} "
                         f"| {fmt(r['rss_mb'], 0)} | {fmt(r['standin_cpu'])} | {fmt(r['rest_pages'])} ({fmt(r['min_pages'])}) "
                         f"| {fmt(r['rest_requests'])} | {fmt(r['oci_requests'])} | {fmt(r['manifest_gets'])} "
                         f"({fmt(r['min_gets'])}) | {fmt(r['refetched'])} | {r['secondary'] + r['primary']} |")
        lines += ["", "*min s*: REST pages x RTT (sequential: each page's Link names the next) overlapped with "
                  "manifest GETs x RTT / concurrency (one GET per version cold, none warm); "
                  f"RTT {ghcr_rows[0]['rtt'] * 1000:.0f} ms, concurrency {ghcr_rows[0]['concurrency']}. With the "
                  "listing and the GETs one after the other (as the janitor ran them before issue 23) the minimum is "
                  + ", ".join(f"{fmt(r['min_seconds_serial'])} s ({r['state']} {fmt(r['size'])})" for r in ghcr_rows)
                  + ".", ""]
    tag_rows = [r for r in rows if r.get("scenario") == "tags"]
    if tag_rows:
        lines += ["## Registry repository of N tags (OCI only)", "",
                  "| tags | cache | runs | wall s | min s | wall / min | s per 1,000 tags | janitor CPU s | peak RSS MB "
                  "| stand-in CPU s | requests (min) | manifest GETs | HEADs | fetched twice |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
        for r in tag_rows:
            lines.append(f"| {fmt(r['size'])} | {r['state']} | {', '.join(map(str, r['walls']))} | {fmt(r['wall'])} "
                         f"| {fmt(r['min_seconds'])} | {r['wall'] / r['min_seconds']:.2f} | {r['wall'] / r['size'] * 1000:.2f} "
                         f"| {fmt(r['cpu'])} | {fmt(r['rss_mb'], 0)} | {fmt(r['standin_cpu'])} "
                         f"| {fmt(r['oci_requests'])} ({fmt(r['min_requests'])}) | {fmt(r['manifest_gets'])} "
                         f"| {fmt(r['manifest_heads'])} | {fmt(r['refetched'])} |")
        lines += ["", "*min s*: tag pages (1,000 tags each) x RTT + one request per tag x RTT / concurrency "
                  "(cold: a GET per tag; warm: a HEAD per tag, the manifests come from the cache).", ""]
    shard_rows = [r for r in rows if r.get("scenario") == "shard"]
    if shard_rows:
        cov = next(r for r in rows if r.get("scenario") == "shard-coverage")
        lines += ["## An organisation of packages over a matrix (`ghcr.io/acme/* --shard I/N --max-requests B`)", "",
                  "| shard | packages planned | REST requests (budget) | within budget | wall s | janitor CPU s "
                  "| peak RSS MB | OCI requests | manifest GETs | 403/429 |",
                  "|---|---:|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in shard_rows:
            lines.append(f"| {r['state']} | {fmt(r['targets'])} | {fmt(r['rest_requests'])} ({fmt(r['budget'])}) "
                         f"| {'yes' if r['rest_requests'] <= r['budget'] and r['rc'] == 0 else 'NO'} | {fmt(r['wall'])} "
                         f"| {fmt(r['cpu'])} | {fmt(r['rss_mb'], 0)} | {fmt(r['oci_requests'])} "
                         f"| {fmt(r['manifest_gets'])} | {r['secondary']} |")
        lines += ["", f"Coverage: {fmt(cov['covered'])} of {fmt(cov['packages'])} packages planned by a shard, "
                  f"{cov['twice']} by two, {cov['missed']} by none. Each shard lists the owner's packages "
                  "(1 REST page per 100; the owner type is given, so no lookup) and lists each of its packages' versions "
                  f"(1 page each): the minimum per shard is ceil(packages/100) + its packages. RTT {shard_rows[0]['rtt'] * 1000:.0f} ms.", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", nargs="+", default=["ghcr", "tags", "shard"], choices=["ghcr", "tags", "shard"])
    parser.add_argument("--versions", type=int, nargs="+", default=[100_000])
    parser.add_argument("--tags", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    parser.add_argument("--packages", type=int, default=2_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--budget", type=int, default=600, help="--max-requests per shard job")
    parser.add_argument("--rtt-ms", type=float, default=100.0)
    parser.add_argument("--tags-rtt-ms", type=float, default=None, help="round trip of the tags scenario (default --rtt-ms)")
    parser.add_argument("--shard-rtt-ms", type=float, default=None, help="round trip of the shard scenario (default --rtt-ms)")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--big-repeat", type=int, default=1, help="runs of the 100,000-tag size")
    parser.add_argument("--warm-repeat", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--render", type=Path, help="re-print a results .json without measuring")
    parser.add_argument("--janitor-src", type=Path, help="run `python -m ghcr_janitor` from this source tree")
    args = parser.parse_args(argv)
    global JANITOR_SRC
    JANITOR_SRC = args.janitor_src
    if args.render:
        doc = json.loads(args.render.read_text())
        args.out.write_text(render(doc["rows"], doc["info"]))
        print(args.out.read_text())
        return 0
    STATE.mkdir(parents=True, exist_ok=True)
    info = {"command": "python benchmarks/scale.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d %H:%M"), "load_before": f"{os.getloadavg()[0]:.1f}"}
    rtt = args.rtt_ms / 1000
    rows: list[dict] = []
    if "ghcr" in args.scenario:
        for n in args.versions:
            rows += ghcr(n, args.repeat, rtt, args.concurrency, args.warm_repeat)
    if "tags" in args.scenario:
        rows += tags(args.tags, args.repeat, (args.tags_rtt_ms or args.rtt_ms) / 1000, args.concurrency, args.big_repeat)
    if "shard" in args.scenario:
        rows += shard(args.packages, args.shards, (args.shard_rtt_ms or args.rtt_ms) / 1000, args.concurrency,
                      args.budget)
    info["load_after"] = f"{os.getloadavg()[0]:.1f}"
    text = render(rows, info)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps({"info": info, "rows": rows}, indent=1, default=str))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
