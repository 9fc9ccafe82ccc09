"""Notebook 05 in a real JupyterLab, driven by headless Chromium through Playwright.

JupyterLab starts on a free localhost port with no token, in a temporary root holding a copy of
the notebook (its ``tune``/``chains`` cut like the other notebook tests) and a link to the
sample data. The browser opens the notebook, runs all cells from the Run menu, waits for the
budget panel, moves a ``.roi-budget-slider`` with the keyboard and checks that the text of
``.roi-expected-revenue`` changes. A screenshot is saved (its path is printed and recorded as the
test's ``screenshot`` property).

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

from tests.conftest import ROOT, SAMPLE_RUN

NOTEBOOK = "05_compare_and_budget.ipynb"
SLIDER = ".roi-budget-slider"
EXPECTED = ".roi-expected-revenue"
RUN_TIMEOUT_MS = 420_000  # every model fits once in the kernel


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


def _fast_copy(source: Path, target: Path) -> None:
    """The notebook with its parameters cut like the other notebook tests (tune, chains)."""
    notebook = json.loads(source.read_text())
    cell = notebook["cells"][0]
    lines = "".join(cell["source"]) + "".join(
        f"\n{k} = {SAMPLE_RUN[k]}  # test: faster" for k in ("tune", "chains"))
    cell["source"] = lines
    target.write_text(json.dumps(notebook))


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
def jupyter_lab(chromium, tmp_path_factory) -> Iterator[str]:
    """JupyterLab on 127.0.0.1 (no token, no browser) serving a temporary root."""
    root = tmp_path_factory.mktemp("lab")
    (root / "notebooks").mkdir()
    (root / "data").symlink_to(ROOT / "data", target_is_directory=True)
    _fast_copy(ROOT / "notebooks" / NOTEBOOK, root / "notebooks" / NOTEBOOK)
    port, log = _free_port(), root / "jupyter.log"
    config = root / ".jupyter"
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


def _wait_for_idle_kernel(url: str, timeout: float = 120.0) -> None:
    """Until the notebook's kernel has started and is idle (from the server's REST API)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/api/sessions", timeout=5) as response:
            sessions = json.loads(response.read())
        if any(s.get("kernel", {}).get("execution_state") == "idle" for s in sessions):
            return
        time.sleep(0.5)
    raise TimeoutError(f"no idle kernel within {timeout:.0f} s")


def _run_all_cells(page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def _move_slider(page) -> str:
    """Press the right arrow on the handle of the first slider that moves (a disabled one, e.g.
    a paid channel of an unconverged model, does not); returns the slider's name."""
    sliders = page.locator(SLIDER)
    for index in range(sliders.count()):
        slider = sliders.nth(index)
        readout = slider.locator(".widget-readout").first
        before = readout.inner_text()
        handle = slider.locator(".noUi-handle").first
        handle.focus()
        for _ in range(5):
            handle.press("ArrowRight")
        if readout.inner_text() != before:
            return slider.locator(".widget-label").first.inner_text()
    raise AssertionError(f"none of the {sliders.count()} budget sliders moved")


def test_budget_slider_moves_the_expected_revenue_in_jupyterlab(jupyter_lab, chromium,
                                                                 tmp_path, record_property):
    from playwright.sync_api import sync_playwright

    screenshot = tmp_path / "budget-panel.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium,
                                             args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{jupyter_lab}/lab/tree/notebooks/{NOTEBOOK}")
            page.locator(".jp-Notebook").first.wait_for(timeout=60_000)
            _wait_for_idle_kernel(jupyter_lab)
            _run_all_cells(page)
            page.locator(SLIDER).first.wait_for(timeout=RUN_TIMEOUT_MS)
            expected = page.locator(EXPECTED).first
            expected.scroll_into_view_if_needed()
            before = expected.inner_text()
            name = _move_slider(page)
            page.wait_for_function(
                "([selector, before]) => document.querySelector(selector).innerText !== before",
                arg=[EXPECTED, before], timeout=30_000)
            after = expected.inner_text()
        finally:
            page.screenshot(path=str(screenshot), full_page=False)
            browser.close()
    print(f"screenshot: {screenshot}")
    record_property("screenshot", str(screenshot))
    assert name and after != before
    assert "$" in after
    assert screenshot.stat().st_size > 10_000
