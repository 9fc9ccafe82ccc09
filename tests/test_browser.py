"""Notebooks 05 and 01 in a real JupyterLab, driven by headless Chromium through Playwright.

JupyterLab starts on a free localhost port with no token, in a temporary root holding copies of
the notebooks as shipped (default parameters), a link to the sample data and ``out`` linked to
the session run's folder (``sample_run``): the notebooks open it, as they open ``make demo``'s
``out/``, without fitting. In notebook 05 the browser ticks "keep total fixed", clicks Optimise
and checks that the total spend is unchanged and the expected revenue change is the Python
API's (the same panel driven without a browser), then moves a ``.roi-budget-slider`` with the
keyboard and checks ``.roi-expected-revenue`` changes and the total still holds. In notebook 01
it switches the lift explorer's community and checks the event study follows. Screenshots are
saved in the test's tmp dir (paths printed and recorded as ``screenshot`` properties).

Needs Debian's ``chromium`` (``/usr/bin/chromium``; Playwright's own browser download does not
work on these machines) and the ``playwright`` package (test extras). Without them the test is
skipped on a developer machine and fails in CI (``CI`` or ``ROI_REQUIRE_BROWSER`` set), like the
PostgreSQL tests under ``ROI_REQUIRE_POSTGRES``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

NOTEBOOK = "05_compare_and_budget.ipynb"
QUICKSTART = "01_quickstart.ipynb"
SLIDER = ".roi-budget-slider"
EXPECTED = ".roi-expected-revenue"
CAPTION = ".roi-lift-caption"
RUN_TIMEOUT_MS = 180_000  # the notebooks read a finished run: no model fits


def _required() -> bool:
    return any(os.environ.get(name) for name in ("CI", "ROI_REQUIRE_BROWSER",
                                                  "ROI_REQUIRE_POSTGRES"))


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return found or ("/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = _chromium()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        binary = None
    if binary is None:
        message = ("browser test needs Debian's chromium and the playwright package "
                   "(pip install -e '.[test]'; apt-get install chromium)")
        if _required():
            pytest.fail(f"CI/ROI_REQUIRE_BROWSER is set: {message}")
        pytest.skip(message)
    return binary


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_server(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"jupyter lab did not answer within 90 s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def jupyter_lab(chromium, tmp_path_factory, sample_run) -> Iterator[str]:
    """JupyterLab on 127.0.0.1 (no token, no browser) serving a temporary root where ``out``
    is the session run (what the notebooks open by default)."""
    root = tmp_path_factory.mktemp("lab")
    (root / "notebooks").mkdir()
    (root / "data").symlink_to(ROOT / "data", target_is_directory=True)
    (root / "out").symlink_to(sample_run.out, target_is_directory=True)
    for name in (NOTEBOOK, QUICKSTART):
        shutil.copy(ROOT / "notebooks" / name, root / "notebooks" / name)
    port, log = _free_port(), root / "jupyter.log"
    config = root / ".jupyter"
    # Every cell in the DOM: JupyterLab 4 leaves cells out of view unrendered ("full" windowing)
    tracker = config / "settings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config / "config"),
           "JUPYTER_RUNTIME_DIR": str(config / "runtime"), "IPYTHONDIR": str(config / "ipython"),
           "JUPYTERLAB_SETTINGS_DIR": str(config / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(config / "workspaces")}
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
               f"--port={port}", "--IdentityProvider.token=", "--ServerApp.password=",
               f"--ServerApp.root_dir={root}", "--allow-root"]
    with log.open("w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env,
                                   stdin=subprocess.DEVNULL, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_for_idle_kernel(url: str, name: str, timeout: float = 120.0) -> None:
    """Until the notebook's kernel has started and is idle (from the server's REST API)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/api/sessions", timeout=5) as response:
            sessions = json.loads(response.read())
        if any(s.get("kernel", {}).get("execution_state") == "idle"
               and str(s.get("path", "")).endswith(name) for s in sessions):
            return
        time.sleep(0.5)
    raise TimeoutError(f"no idle kernel within {timeout:.0f} s")


def _run_all_cells(page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def _move_slider(page) -> str:
    """Press the right arrow on the handle of the first slider that moves (a disabled one, e.g.
    a paid channel of an unconverged model, does not); returns the slider's readout after."""
    sliders = page.locator(SLIDER)
    readouts = page.locator(".roi-budget-readout")
    for index in range(sliders.count()):
        before = readouts.nth(index).inner_text()
        handle = sliders.nth(index).locator(".noUi-handle").first
        handle.focus()
        for _ in range(5):
            handle.press("ArrowRight")
        try:
            page.wait_for_function(
                "([i, before]) => document.querySelectorAll('.roi-budget-readout')[i]"
                ".innerText !== before", arg=[index, before], timeout=10_000)
        except Exception:  # noqa: BLE001 - playwright's TimeoutError: try the next slider
            continue
        return readouts.nth(index).inner_text()
    raise AssertionError(f"none of the {sliders.count()} budget sliders moved")


def _plain(html_text: str) -> str:
    import html
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", html_text)).strip()


def _total(text: str) -> str:
    return text.split("total spend ")[1].split(" (")[0]


def _open_and_run(page, url: str, name: str) -> None:
    page.goto(f"{url}/lab/tree/notebooks/{name}")
    page.locator(".jp-Notebook").first.wait_for(timeout=60_000)
    _wait_for_idle_kernel(url, name)
    _run_all_cells(page)


def _launch(playwright, chromium: str):
    browser = playwright.chromium.launch(executable_path=chromium,
                                         args=["--no-sandbox", "--disable-gpu"])
    return browser, browser.new_page(viewport={"width": 1400, "height": 1000})


def test_budget_panel_optimise_and_slider_in_jupyterlab(jupyter_lab, chromium, sample_run,
                                                        tmp_path, record_property):
    from playwright.sync_api import sync_playwright

    from roi.widgets import budget_panel

    reference = budget_panel(sample_run.out)  # the same call in plain Python
    initial = _plain(reference.expected.value)
    reference.keep_total.value = True
    reference.optimise.click()
    optimised = _plain(reference.expected.value)
    screenshots = [tmp_path / "budget-optimised.png", tmp_path / "budget-moved.png"]
    with sync_playwright() as playwright:
        browser, page = _launch(playwright, chromium)
        try:
            _open_and_run(page, jupyter_lab, NOTEBOOK)
            page.locator(SLIDER).first.wait_for(timeout=RUN_TIMEOUT_MS)
            expected = page.locator(EXPECTED).first
            expected.scroll_into_view_if_needed()
            shown_initial = expected.inner_text().strip()
            optimise = page.locator("button", has_text="Optimise").first
            assert optimise.is_enabled() == (not reference.optimise.disabled)
            if optimise.is_enabled():
                page.locator(".widget-checkbox", has_text="keep total fixed").locator(
                    "input").first.check()
                optimise.click()
                page.locator(".roi-warn", has_text="Optimised").first.wait_for(timeout=30_000)
                page.wait_for_timeout(2_000)  # let any echo from the sliders come back
                shown_optimised = expected.inner_text().strip()
                notes = page.locator(".roi-warn", has_text="Optimised").count()
                page.screenshot(path=str(screenshots[0]))
            else:
                page.locator(".widget-checkbox", has_text="keep total fixed").locator(
                    "input").first.check()
                shown_optimised, notes = optimised, 1
            readout = _move_slider(page)
            page.wait_for_function(
                "([selector, before]) => document.querySelector(selector).innerText.trim()"
                " !== before", arg=[EXPECTED, shown_optimised], timeout=30_000)
            moved = expected.inner_text().strip()
        finally:
            page.screenshot(path=str(screenshots[1]), full_page=False)
            browser.close()
    for screenshot in screenshots:
        if screenshot.exists():
            print(f"screenshot: {screenshot}")
            record_property("screenshot", str(screenshot))
    assert shown_initial == initial
    assert shown_optimised == optimised and notes >= 1  # total unchanged, the API's gain
    assert _total(optimised) == _total(initial)
    assert "$" in readout and "%" in readout
    assert moved != shown_optimised and _total(moved) == _total(initial)  # keep total holds
    assert screenshots[1].stat().st_size > 10_000


def test_lift_explorer_community_switch_in_jupyterlab(jupyter_lab, chromium, tmp_path,
                                                      record_property):
    from playwright.sync_api import sync_playwright

    screenshot = tmp_path / "lift-explorer-discord.png"
    with sync_playwright() as playwright:
        browser, page = _launch(playwright, chromium)
        try:
            _open_and_run(page, jupyter_lab, QUICKSTART)
            caption = page.locator(CAPTION).first
            caption.wait_for(timeout=RUN_TIMEOUT_MS)
            caption.scroll_into_view_if_needed()
            before = caption.inner_text()
            image = page.locator(".jp-OutputArea-output img").first
            image_before = image.get_attribute("src")
            page.locator(".widget-dropdown", has_text="Community").locator(
                "select").first.select_option(label="discord")
            page.wait_for_function(
                "([selector, before]) => document.querySelector(selector).innerText !== before",
                arg=[CAPTION, before], timeout=30_000)
            after = caption.inner_text()
            image_after = page.locator(".jp-OutputArea-output img").first.get_attribute("src")
        finally:
            page.screenshot(path=str(screenshot), full_page=False)
            browser.close()
    print(f"screenshot: {screenshot}")
    record_property("screenshot", str(screenshot))
    assert "All communities" in before
    assert "Event study (" in after and "discord)" in after
    assert image_after != image_before  # the plot (and its title) was redrawn for discord
