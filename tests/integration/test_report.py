"""`janitor report` end to end: a real registry with four stage caches sharing layers and their
branch variants, 60 days of history, the Actions-cache stand-in; the HTML opened in a real
headless chromium (tests/support/browser.py)."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone

from ghcr_janitor.core.humanize import human_size
from tests.support.browser import open_page

KIB = 1024
STAGES = {      # tag: (layers, age in days); the first two layers are every stage's base
    "cache-base": (["os", "tools"], 1),
    "cache-python-deps": (["os", "tools", "py"], 2),
    "cache-node-deps": (["os", "tools", "node"], 1),
    "cache-builder": (["os", "tools", "py", "node", "build"], 0),
    "cache-base-main": (["os", "tools-main"], 3),
    "cache-python-deps-pr-12": (["os", "tools", "py-pr-12"], 45),
    "cache-node-deps-pr-7": (["os", "node-pr-7"], 10),
    "cache-builder-feature-x": (["os", "tools", "py", "build-x"], 40),
}
LAYER_KIB = {"os": 60, "tools": 12, "py": 30, "node": 24, "build": 8, "tools-main": 12, "py-pr-12": 33,
             "node-pr-7": 26, "build-x": 9}
CHARTS = {"breakdown", "families", "sharing", "history"}


def seed_stages(repo) -> None:
    now = datetime.now(timezone.utc)
    for tag, (layers, days) in STAGES.items():
        data = [(name.encode() + b"\n") * (LAYER_KIB[name] * KIB // (len(name) + 1)) for name in layers]
        repo.buildkit_cache(tag, data, now - timedelta(days=days))
    repo.image("latest", [b"app" * 3000], now - timedelta(days=5))


def write_history(cli, tmp_path, target: str, backend: str, latest: int, per_day: int, days: int = 60) -> None:
    """`days` daily rows ending a day ago on the line that reaches `latest` now."""
    now = datetime.now(timezone.utc)
    lines = []
    for k in range(days, 0, -1):
        size = latest - per_day * k
        lines.append(json.dumps({"time": (now - timedelta(days=k)).strftime("%Y-%m-%dT%H:%M:%SZ"), "command": "prune",
                                 "target": target, "backend": backend, "items": 8, "bytes": size,
                                 "unique_bytes": size // 2, "reclaimable": size // 5, "reclaimed": 0}))
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = cli("history", "import", path)
    assert result.exit_code == 0, result.stderr


def plan_of(cli, *targets) -> dict:
    result = cli("plan", *targets, "-O", "json")
    assert result.exit_code == 0, result.stderr
    return {t["target"]: t for t in json.loads(result.stdout)["targets"]}


def repository_size(cli, target) -> int:
    result = cli("ls", target, "-O", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["targets"][0]["totals"]["repository_size"]


def assert_renders_cleanly(seen, path) -> None:
    assert seen.console_errors == []
    assert seen.requests == [path.resolve().as_uri()], "the report fetched something"
    for chart in seen.charts:
        assert chart["width"] > 0 and chart["height"] > 0, chart


def test_the_report_of_a_registry_renders_in_a_real_browser(cli, registry, repo, tmp_path):
    seed_stages(repo)
    target = f"{registry.host}/{repo.repo}"
    size = repository_size(cli, target)
    per_day = 2 * KIB
    write_history(cli, tmp_path, target, "oci", size, per_day)
    expected = plan_of(cli, target)[target]
    assert expected["reclaim_size"] > 0
    out = tmp_path / "report.html"
    result = cli("report", target, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert f"wrote {out}" in result.stderr

    seen = open_page(out, tmp_path / "report.png", pdf=tmp_path / "report.pdf")
    assert_renders_cleanly(seen, out)
    assert CHARTS <= {c["name"] for c in seen.charts}
    pdf = (tmp_path / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages") >= 2
    [figure] = [f for f in seen.figures if f["figure"] == "reclaimable"]
    assert int(figure["bytes"]) == expected["reclaim_size"] and figure["text"] == human_size(expected["reclaim_size"])
    # The stale branch caches are what the default policy deletes, and the plan section says so.
    deleted = {a["tag"] for a in expected["actions"] if a["action"] == "delete"}
    assert deleted == {"cache-python-deps-pr-12", "cache-builder-feature-x"}
    assert all(tag in seen.text for tag in deleted)
    # Branch variants are counted in their stage's family; the largest family comes first.
    assert "cache-base-main" in seen.text and "(other tags)" in seen.text
    # History: 60 days growing 2 KiB a day, plus this run's row.
    assert f"grows {human_size(7 * per_day)} a week" in seen.text
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_the_figures_in_the_html_are_the_plans_and_the_tables_carry_exact_bytes(cli, registry, repo, tmp_path):
    seed_stages(repo)
    target = f"{registry.host}/{repo.repo}"
    expected = plan_of(cli, target)[target]
    out = tmp_path / "r.html"
    assert cli("report", target, "-o", out).exit_code == 0
    html = out.read_text()
    assert f'data-bytes="{expected["reclaim_size"]}"' in html
    assert f'{expected["reclaim_size"]:,} bytes'.replace(",", "\u202f") in html
    # Self-contained: nothing refers outside the file.
    for needle in ('src="http', "href=\"http", "@import", "url(", "<script"):
        assert needle not in html


def test_several_targets_get_a_summary_with_the_total_reclaimable(cli, registry, repo, layout, tmp_path):
    seed_stages(repo)
    target = f"{registry.host}/{repo.repo}"
    local = f"oci-layout:{layout}"
    plans = plan_of(cli, target, local)
    out = tmp_path / "all.html"
    result = cli("report", target, local, "-o", out)
    assert result.exit_code == 0, result.stderr
    seen = open_page(out, tmp_path / "all.png", pdf=tmp_path / "all.pdf")
    assert_renders_cleanly(seen, out)
    pdf = (tmp_path / "all.pdf").read_bytes()
    assert pdf.count(b"/Type /Page") - pdf.count(b"/Type /Pages") >= 3     # the summary, then a page per target
    [total] = [f for f in seen.figures if f["figure"] == "reclaimable-total"]
    assert int(total["bytes"]) == sum(p["reclaim_size"] for p in plans.values())
    per_target = {f["target"]: int(f["bytes"]) for f in seen.figures if f["figure"] == "reclaimable"}
    assert per_target == {t: p["reclaim_size"] for t, p in plans.items()}
    assert "summary" in {c["name"] for c in seen.charts}


def test_the_report_of_the_actions_cache_projects_its_limit(cli, gha, tmp_path, monkeypatch):
    target = "gha:acme/app"
    gha.limit_gb = 2                               # the repository's storage limit, set by an admin
    size = sum(e["size_in_bytes"] for e in gha.entries.values())
    limit = 2 * 1024 ** 3
    per_day = (limit - size) // 12                 # 12 days to the limit at this rate
    write_history(cli, tmp_path, target, "gha", size, per_day, days=30)
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    out = tmp_path / "gha.html"
    result = cli("report", target, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert not any(m != "GET" for m, _, _ in gha.requests)
    seen = open_page(out, tmp_path / "gha.png")
    assert_renders_cleanly(seen, out)
    assert {"breakdown", "families", "kinds", "history"} <= {c["name"] for c in seen.charts}
    assert "the actions cache grows" in seen.text.lower() and "reaches its 2.0 GiB limit in about 12 days" in seen.text
    assert "buildkit-blob · closed" in seen.text
    text = summary.read_text()
    assert "where the bytes are" in text and "limit in about 12 days" in text and "`gha.html`" in text


def test_without_jinja2_the_report_says_how_to_install_it_and_contacts_nothing(cli, registry, repo, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "jinja2", None)
    out = tmp_path / "r.html"
    result = cli("report", "127.0.0.1:9/nothing/here", "-o", out)
    assert result.exit_code == 1
    assert result.stderr.strip() == ("error: janitor report needs Jinja2, a dependency of ghcr-janitor missing from "
                                     "this Python: pip install 'Jinja2>=3.1'")
    assert not out.exists()


def test_a_corrupt_history_warns_once_and_the_report_is_still_written(cli, layout, tmp_path):
    broken = tmp_path / "history.sqlite"
    broken.write_bytes(b"this is not a database" * 100)
    out = tmp_path / "r.html"
    result = cli("report", f"oci-layout:{layout}", "-o", out, "--history", broken)
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and all(str(broken) in w for w in warnings)   # not recorded, not read
    assert out.exists() and "ot enough history yet (no run recorded;" in out.read_text()


def test_an_output_in_a_missing_directory_is_a_usage_error_before_any_contact(cli, tmp_path):
    out = tmp_path / "missing-dir" / "r.html"
    result = cli("report", "127.0.0.1:9/nothing/here", "-o", out)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: -o {out}: no such directory {out.parent}"


def test_a_report_that_cannot_be_written_is_one_line_and_exit_1(cli, layout, tmp_path):
    out = tmp_path / "a-directory"
    out.mkdir()
    result = cli("report", f"oci-layout:{layout}", "-o", out)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {out}: cannot write: ")


def test_notes_show_code_and_the_summary_names_failed_targets(cli, layout, tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    out = tmp_path / "r.html"
    result = cli("report", f"oci-layout:{layout}", "127.0.0.1:9/gone", "-o", out)
    assert result.exit_code == 1
    html = out.read_text()
    assert "<code>janitor gc</code>" in html and "`janitor gc`" not in html
    assert "127.0.0.1:9/gone" in html
    text = summary.read_text()
    assert "`127.0.0.1:9/gone`" in text and "**error**" in text and f"`oci-layout:{layout}`" in text


def test_history_rows_dated_after_the_run_are_left_out_and_said(cli, layout, tmp_path):
    from ghcr_janitor.report.history import History, Row

    target = f"oci-layout:{layout}"
    store = tmp_path / "h.sqlite"
    now = datetime.now(timezone.utc)
    rows = [Row((now - timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ"), "ls", target, "layout", 6, 10_000 + 100 * (30 - d),
                5_000, None, None) for d in range(30, 0, -1)]
    rows.append(Row("2036-01-01T00:00:00Z", "ls", target, "layout", 6, 10 ** 12, 5_000, None, None))   # a wrong clock
    History(store).append(rows)
    out = tmp_path / "r.html"
    assert cli("report", target, "-o", out, "--history", store).exit_code == 0
    html = out.read_text()
    assert "1 row dated after this run (a wrong clock?) is left out" in html and "2036" not in html


def test_a_cache_dir_report_names_the_blobs_gc_would_free(cli, layout, tmp_path):
    gc = cli("gc", f"oci-layout:{layout}", "--dry-run", "--keep-recent", "0", "-O", "json")
    assert gc.exit_code == 0, gc.stderr
    freed = json.loads(gc.stdout)["bytes_freed"]
    assert freed > 0
    out = tmp_path / "r.html"
    assert cli("report", f"oci-layout:{layout}", "-o", out).exit_code == 0
    html = out.read_text()
    assert f'data-figure="unreachable" data-bytes="{freed}"' in html and "<code>janitor gc</code> frees them" in html
