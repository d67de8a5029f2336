"""A real browser: JupyterLab on localhost, notebook 10 run in headless Chromium, a slider moved, the
rendered output changes. Needs Debian's chromium and Playwright's Python package (no browser download);
skipped with the reason otherwise."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "10_interactive_demos.ipynb"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine (Debian: apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")
    work = tmp_path_factory.mktemp("lab")
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, work / NOTEBOOK)  # the browser may autosave: never the repo's copy
    port, token = _free_port(), "macos-lite-test"
    env = {**os.environ, "MACOS_LITE_PRESET": "smoke", "MACOS_LITE_RUNS": str(work / "runs"),
           "JUPYTER_CONFIG_DIR": str(work / "config"), "JUPYTER_RUNTIME_DIR": str(work / "runtime")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}", "--LabApp.expose_app_in_browser=True",
         "--ServerApp.open_browser=False"] + (["--allow-root"] if os.geteuid() == 0 else []),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=work)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail("JupyterLab exited: " + proc.stdout.read().decode(errors="replace")[-2000:])
            time.sleep(0.5)
    yield f"{url}/lab/tree/{NOTEBOOK}?token={token}"
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_slider_changes_the_rendered_warp(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(lab, timeout=120_000)
        page.wait_for_selector(".jp-Notebook", timeout=120_000)
        page.wait_for_function("window.jupyterapp !== undefined", timeout=60_000)
        # run-all before the kernel is up would open a kernel dialog instead of running anything
        page.wait_for_function("window.jupyterapp.shell.currentWidget?.sessionContext?.session?.kernel?.status"
                               " === 'idle'", timeout=180_000)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        # the first widget of the notebook is the affine warping demo; wait for its slider and its picture
        handle = page.locator(".jupyter-widgets .noUi-handle, .jupyter-widgets input[type=range]").first
        handle.wait_for(timeout=600_000)
        demo = handle.locator("xpath=ancestor::div[contains(@class,'jupyter-widgets')][last()]")
        picture = page.locator(".jupyter-widgets img, .jupyter-widgets canvas").first
        picture.wait_for(timeout=300_000)
        time.sleep(2)
        picture.scroll_into_view_if_needed()
        before = picture.screenshot()
        handle.scroll_into_view_if_needed()
        handle.focus()
        for _ in range(15):  # keyboard steps move noUiSlider handles and native range inputs alike
            page.keyboard.press("ArrowRight")
        deadline = time.time() + 120
        after = before
        while time.time() < deadline and after == before:
            time.sleep(1)
            after = picture.screenshot()
        browser.close()
    assert demo is not None
    assert after != before, "moving the slider did not change the rendered figure"
