"""Open an HTML file in a real headless browser (Debian's chromium, driven by Playwright) and
report what a reader would see: console errors, every request made, the size of every chart,
the figures marked with `data-figure`, and a full-page screenshot."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

INSTALL_HINT = ("the report tests need Debian's chromium: apt-get install -y chromium "
                "(bash .ci/run installs it), and playwright (pip install -e '.[test]')")
# As the machine's probe starts it: no sandbox as root, no GPU, and none of the background
# connections a closed network refuses.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions"]


@dataclass
class Seen:
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    charts: list[dict] = field(default_factory=list)      # {"name", "width", "height"}
    figures: list[dict] = field(default_factory=list)     # {"figure", "bytes", "text", "target"}
    text: str = ""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return found


def open_page(path: Path, screenshot: Path, width: int = 1100, pdf: Path | None = None) -> Seen:
    """Load `path` from disk, wait until it has settled, and look at it (and print it to `pdf`)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(INSTALL_HINT, pytrace=False)
    seen = Seen()
    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=chromium(), args=ARGS)
        except Exception as exc:        # noqa: BLE001 - any launch failure is an install problem here
            pytest.fail(f"{INSTALL_HINT}; launching it failed: {str(exc).splitlines()[0]}", pytrace=False)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.on("console", lambda m: seen.console_errors.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: seen.console_errors.append(str(e)))
            page.on("request", lambda r: seen.requests.append(r.url))
            page.goto(path.resolve().as_uri(), wait_until="networkidle")
            seen.charts = page.eval_on_selector_all(
                ".chart", "els => els.map(e => { const r = e.getBoundingClientRect();"
                          " return {name: e.dataset.chart, width: r.width, height: r.height}; })")
            seen.figures = page.eval_on_selector_all(
                "[data-figure]", "els => els.map(e => ({figure: e.dataset.figure, bytes: e.dataset.bytes,"
                                 " target: e.dataset.target, text: e.textContent.trim()}))")
            seen.text = page.inner_text("body")
            page.screenshot(path=str(screenshot), full_page=True)
            if pdf is not None:
                page.emulate_media(media="print")
                page.pdf(path=str(pdf), format="A4", print_background=True)
        finally:
            browser.close()
    return seen
