"""report.html in a real browser (Playwright driving Debian's headless Chromium), at 800 and
1280 px: no horizontal scroll, the bottom line's failed check on the first screen, every image
within the page. Screenshots are saved in the test's tmp folder (path recorded as the
``screenshot`` property) to be looked at.

Needs ``/usr/bin/chromium`` and the ``playwright`` package (test extras); skipped without them
on a developer machine, failed in CI (``CI`` or ``ROI_REQUIRE_BROWSER`` set), like
tests/test_browser.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from roi.reports import write_reports
from tests.test_browser import chromium  # noqa: F401  (the module fixture)
from tests.test_reports import caveated_results

WIDTHS = (800, 1280)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    return write_reports(caveated_results(), tmp_path_factory.mktemp("browser-report"),
                         pdf=False)["html"]


@pytest.mark.parametrize("width", WIDTHS)
def test_report_fits_the_window_and_opens_with_the_bottom_line_caveat(
        chromium, report, width, tmp_path, record_property):  # noqa: F811
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(report.resolve().as_uri())
            page.wait_for_load_state("load")
            sizes = page.evaluate("() => [document.documentElement.scrollWidth, "
                                  "window.innerWidth]")
            top = page.evaluate("() => document.getElementById('bottom-line-caveat-0')"
                                ".getBoundingClientRect().top")
            images = page.evaluate("() => Array.from(document.images).map(i => "
                                   "[i.getBoundingClientRect().right, i.naturalWidth])")
            wide = page.evaluate("() => Array.from(document.querySelectorAll('.table-wrap'))"
                                 ".filter(w => w.scrollWidth > w.clientWidth).length")
            shot = tmp_path / f"report-{width}.png"
            page.screenshot(path=str(shot), full_page=False)
            page.screenshot(path=str(tmp_path / f"report-{width}-full.png"), full_page=True)
        finally:
            browser.close()
    record_property("screenshot", str(shot))
    print(f"screenshot: {shot}")
    scroll_width, inner_width = sizes
    assert scroll_width <= inner_width, sizes
    assert 0 <= top < 900   # the preferred DiD's failed pre-trend test, on the first screen
    assert len(images) >= 10 and all(right <= inner_width and natural > 0
                                     for right, natural in images)
    # Wide tables scroll inside their own box at 800 px, never the page.
    assert (wide > 0) if width == 800 else True
