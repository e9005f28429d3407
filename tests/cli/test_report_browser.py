"""The report in a real headless browser (the system's Chromium, driven by playwright): it
renders with no console error, no script error and no failed load, and shows what it says.

`make test` installs Chromium when /usr/bin/chromium is missing. Without a browser or playwright
the test skips on a developer's machine and fails under CI (CI=true): it must never pass by
not running."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Evo, LedgerDriver
from tests.cli.test_report_layout import three_windows

CHROMIUM = Path(os.environ.get("EVO_CHROMIUM", "/usr/bin/chromium"))


def _unavailable(why: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{why}: under CI the browser test must run (`make test` installs what it needs)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (the dev extra)")
    if not CHROMIUM.is_file():
        _unavailable(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield b
        finally:
            b.close()


def load(browser: Any, page_path: Path) -> tuple[Any, list[str]]:
    """Open ``page_path`` and collect every problem a reader's browser would meet."""
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed load: {r.url} ({r.failure})"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    page.goto(page_path.resolve().as_uri(), wait_until="load")
    return page, problems


def test_the_report_renders_in_chromium_without_an_error(
    browser: Any, evo: Evo, driver: LedgerDriver, tmp_path: Path
) -> None:
    three_windows(evo, driver)
    out = tmp_path / "report.html"
    assert evo("report", "--out", str(out)).code == 0
    page, problems = load(browser, out)
    try:
        assert problems == []
        assert page.title() == "evo report: Luna"
        sizes = page.eval_on_selector_all(
            "svg", "els => els.map(e => [e.getAttribute('class'), e.getBoundingClientRect().width, "
            "e.getBoundingClientRect().height])"
        )
        classes = [c for c, _, _ in sizes]
        assert classes.count("lineage") == 1 and classes.count("plot") == 4 and classes.count("loss") == 1
        assert all(w > 100 and h > 100 for _, w, h in sizes)  # every picture is laid out, none collapsed
        texts = page.eval_on_selector_all("svg.plot text", "els => els.map(e => e.textContent)")
        assert "recall per window (filled: passed; hollow: failed)" in texts and "HEAD baseline" in texts
        for cid in driver.candidates():
            assert page.get_by_text(cid, exact=True).count() >= 1
    finally:
        page.close()


def test_the_harness_sees_a_broken_page(browser: Any, tmp_path: Path) -> None:
    """The collector is not blind: a page with a script error, a console error and a missing
    image is caught on all three."""
    broken = tmp_path / "broken.html"
    broken.write_text(
        "<!DOCTYPE html><html><head><title>x</title></head><body><img src='missing.png'>"
        "<script>console.error('boom'); undefined_function();</script></body></html>"
    )
    page, problems = load(browser, broken)
    page.close()
    text = json.dumps(problems)
    assert "console error: boom" in text and "undefined_function" in text and "missing.png" in text
