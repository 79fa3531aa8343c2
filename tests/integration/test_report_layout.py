"""Issue 20 point 15: the report's layout as a reader sees it, measured in a real headless chromium.

A report with long cache tags and long reasons, two targets (so the multi-target summary shows)
and history of a few hours: no cell of a tag column is taller than three lines, the outlook column
is not one word per line, and the history axis labels are distinct.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest

from ghcr_janitor.core.models import Artifact, Inventory
from ghcr_janitor.plan.model import Action, Kept, TargetPlan
from ghcr_janitor.report import html
from ghcr_janitor.report.history import Row
from tests.support.browser import ARGS, INSTALL_HINT, chromium

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
MIB = 1024 ** 2
TAGS = ["cache-python-deps-feature-rework-the-build-pipeline-for-arm64",
        "cache-builder-pr-12345-dependabot-npm-and-yarn-frontend-webpack-5.99.1",
        "cache-node-deps-renovate-configure-lockfile-maintenance",
        "cache-base", "cache-builder-x"]
REASON = ("older than 30d: created 2026-10-01T10:00:00Z (buildkit/createdat), 67 days ago; rule 'stale branch caches' "
          "selects cache-*-* and keeps the newest 4 per stage, this one is the 9th newest of its stage")


def dg(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def _target(name: str, history: list[tuple[datetime, int]]) -> html.TargetReport:
    arts, tags = {}, {}
    for i, tag in enumerate(TAGS):
        d = dg(name + tag)
        arts[d] = Artifact(d, "application/vnd.oci.image.index.v1+json", "buildkit-cache",
                           closure={d: 900, dg(f"layer{i}"): (i + 1) * MIB, dg("base"): 30 * MIB}, tags=[tag])
        tags[tag] = d
    inv = Inventory(target=name, tags=tags, artifacts=arts, listed=sorted(tags), backend="oci")
    doomed = TAGS[:3]
    plan = TargetPlan(name, backend="oci", reclaim_size=sum((TAGS.index(t) + 1) * MIB + 900 for t in doomed),
                      actions=[Action("delete", t, tags[t], reclaim_size=(TAGS.index(t) + 1) * MIB + 900,
                                      rule="stale branch caches", reason=REASON, kind="buildkit-cache") for t in doomed],
                      kept=[Kept(t, tags[t], "protected") for t in TAGS[3:]],
                      reclaim_note="no longer referenced by any tag in this repository; freed by the registry's GC")
    rows = [Row(t.strftime("%Y-%m-%dT%H:%M:%SZ"), "ls", name, "oci", 5, v, v // 2, 3 * MIB, None) for t, v in history]
    return html.target_report(inv, plan, rows, NOW)


def measure(path, width: int = 1100) -> dict:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(INSTALL_HINT, pytrace=False)
    script = """() => {
      // How many lines a cell's content takes: its height over the line height (the content's own
      // height: a cell stretches to its row, which a neighbour may make taller).
      const lines = el => {
        const cs = getComputedStyle(el);
        const lh = parseFloat(cs.lineHeight) || parseFloat(cs.fontSize) * 1.45;
        const range = document.createRange();
        range.selectNodeContents(el);
        return Math.round(range.getBoundingClientRect().height / lh);
      };
      // The cells under header n (a row spanning columns, as an action's reason, is not one of them).
      const column = (table, n) => [...table.querySelectorAll('tbody tr')]
        .filter(tr => tr.children.length === table.querySelectorAll('thead th').length).map(tr => tr.children[n]);
      const out = {tagCells: [], targetCells: [], outlook: [], axis: {}};
      for (const table of document.querySelectorAll('table.actions')) {
        const n = [...table.querySelectorAll('thead th')].findIndex(th => ['tag', 'key'].includes(th.textContent.trim()));
        for (const td of column(table, n)) out.tagCells.push({text: td.textContent.trim(), lines: lines(td)});
      }
      for (const table of document.querySelectorAll('#summary table')) {
        const t = [...table.querySelectorAll('thead th')].findIndex(th => th.textContent.trim() === 'target');
        for (const td of column(table, t)) out.targetCells.push({text: td.textContent.trim(), lines: lines(td)});
        const n = [...table.querySelectorAll('thead th')].findIndex(th => th.textContent.trim() === 'outlook');
        for (const td of column(table, n)) {
          out.outlook.push({text: td.textContent.trim(), lines: lines(td), width: td.getBoundingClientRect().width,
                            words: td.textContent.trim().split(/\\s+/).length});
        }
      }
      for (const svg of document.querySelectorAll('svg[data-chart=history]')) {
        const h = svg.viewBox.baseVal.height;
        out.axis[svg.closest('section').id] = [...svg.querySelectorAll('text')]
          .filter(t => parseFloat(t.getAttribute('y')) > h - 20).map(t => t.textContent);
      }
      return out;
    }"""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(path.resolve().as_uri(), wait_until="networkidle")
            page.screenshot(path=str(path.with_suffix(f".{width}.png")), full_page=True)
            return page.evaluate(script)
        finally:
            browser.close()


def _render(tmp_path, histories: dict[str, list[tuple[datetime, int]]]):
    reports = [_target(name, history) for name, history in histories.items()]
    out = tmp_path / "layout.html"
    out.write_text(html.render(reports, NOW, "default", []))
    return out


@pytest.mark.parametrize("width", [1100, 800])
def test_tags_stay_within_three_lines_and_the_outlook_is_not_one_word_per_line(tmp_path, width):
    hours = [(NOW - timedelta(hours=5 - h), 100 * MIB + h * MIB) for h in range(6)]
    out = _render(tmp_path, {"127.0.0.1:5000/acme/a-rather-long-repository-name/app": hours,
                             "oci-layout:/home/runner/work/app/app/.buildx-cache": hours[:2]})
    seen = measure(out, width)
    assert len(seen["tagCells"]) == 6
    tall = [c for c in seen["tagCells"] + seen["targetCells"] if c["lines"] > 3]
    assert len(seen["targetCells"]) == 2 and not tall, tall
    assert len(seen["outlook"]) == 2
    for cell in seen["outlook"]:
        assert cell["text"].startswith("not enough history yet")
        assert cell["lines"] <= cell["words"] / 3, cell      # several words to a line, not one
        assert cell["width"] >= 200, cell


def test_the_history_axis_labels_are_distinct_and_fewer_for_a_short_span(tmp_path):
    """One chart per span (three minutes to ninety days) in one report, each axis read in the browser."""
    spans = [timedelta(minutes=3), timedelta(hours=5), timedelta(days=2), timedelta(days=90)]
    out = _render(tmp_path, {f"oci-layout:/c{i}": [(NOW - span + span * k / 6, 100 * MIB + k * MIB) for k in range(7)]
                             for i, span in enumerate(spans)})
    axes = measure(out)["axis"]
    assert len(axes) == len(spans)
    for labels in axes.values():
        assert labels and len(labels) == len(set(labels)) and len(labels) <= 5, labels
    assert axes["target-1"] == ["11:57", "11:58", "11:59", "12:00"]          # three minutes: times of day
    assert axes["target-4"][-1] == "2026-11-23" and all(len(label) == 10 for label in axes["target-4"])
