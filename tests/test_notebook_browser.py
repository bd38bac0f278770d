"""The Jupyter inspector in a real JupyterLab, in headless Chromium: run the notebook, move
the step slider with the keyboard, and check that the 3D panel (the interactive vtk.js
view, or the image) shows a different picture. Screenshots go to ``artifacts/``.

Needs JupyterLab, chromium + chromium-driver and selenium; skipped with the reason when
they are missing.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.test_studio_browser import headless_chromium
from tests.test_studio_support import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
TOKEN = "hmr-studio-test"

CELLS = [
    f"import sys\nsys.path.insert(0, {str(ROOT)!r})",
    "import numpy as np\nfrom studio.notebook import TraceInspector\nfrom tests.test_studio_support import body_trace\n"
    "tr = body_trace(n_steps=4)\n"
    "for k, s in enumerate(tr.steps):   # a body that turns 40° a step\n"
    "    a = np.deg2rad(40 * k); c = s.vertices.mean(0)\n"
    "    R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])\n"
    "    s.vertices = (s.vertices - c) @ R.T + c\n"
    "ins = TraceInspector(tr, size=240)\nprint('MODE', ins.view3d_mode)",
    "ins",
]


def _notebook(path: Path) -> None:
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                          "language": "python"}},
          "cells": [{"cell_type": "code", "metadata": {}, "source": c, "outputs": [], "execution_count": None,
                     "id": f"c{k}"} for k, c in enumerate(CELLS)]}
    path.write_text(json.dumps(nb))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    pytest.importorskip("jupyterlab")
    root = tmp_path_factory.mktemp("lab")
    _notebook(root / "inspector.ipynb")
    port = free_port()
    log = open(root / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
         "--ServerApp.disable_check_xsrf=True", "--allow-root"],
        stdout=log, stderr=subprocess.STDOUT, cwd=root, env={**os.environ, "JUPYTER_PLATFORM_DIRS": "1"})
    import urllib.request

    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2):
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"JupyterLab did not start:\n{(root / 'lab.log').read_text()[-3000:]}")
    yield url, root
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    d = headless_chromium(tmp_path_factory.mktemp("chrome-profile"), window="1400,1600",
                          extra=("--enable-webgl", "--ignore-gpu-blocklist"))
    yield d
    d.quit()


def _wait(cond, timeout: float, what: str):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            v = cond()
            if v:
                return v
        except Exception:  # noqa: BLE001 - the page is still building
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _png(element) -> np.ndarray:
    import cv2

    return cv2.imdecode(np.frombuffer(element.screenshot_as_png, np.uint8), cv2.IMREAD_COLOR)


def test_the_3d_panel_follows_the_step_slider_in_jupyterlab(lab, driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, root = lab
    driver.get(f"{url}/lab/tree/inspector.ipynb?token={TOKEN}")
    _wait(lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"), 120, "the notebook")
    time.sleep(3)
    for button in driver.find_elements(By.CSS_SELECTOR, ".jp-Dialog .jp-mod-reject"):  # e.g. "Build recommended"
        button.click()
    driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell")[0].click()
    _wait(lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator[data-status=idle]"),
          120, "the notebook's kernel")
    driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    import re

    mode = _wait(lambda: next((m.group(1) for e in driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output")
                               for m in [re.search(r"MODE (\w+)", e.text)] if m), None), 180, "the inspector cell")
    sliders = _wait(lambda: [s for s in driver.find_elements(By.CSS_SELECTOR, ".widget-slider")
                             if s.find_element(By.CSS_SELECTOR, "label").text.strip() == "Step"], 120,
                    "the step slider")
    if mode == "interactive":
        panel = _wait(lambda: driver.find_element(By.CSS_SELECTOR, "iframe.pyvista"), 60, "the vtk.js view")
        time.sleep(8)                                  # vtk.js loads the scene inside the iframe
        srcdoc = lambda: driver.execute_script("return arguments[0].srcdoc.length + ':' + "  # noqa: E731
                                               "arguments[0].srcdoc.slice(-400)", panel)
    else:
        panel = [i for i in driver.find_elements(By.CSS_SELECTOR, ".widget-image")][2]
        srcdoc = lambda: panel.get_attribute("src")  # noqa: E731
    ARTIFACTS.mkdir(exist_ok=True)
    before_doc, before = srcdoc(), _png(panel)
    driver.save_screenshot(str(ARTIFACTS / "notebook_before.png"))
    handle = sliders[0].find_element(By.CSS_SELECTOR, ".noUi-handle, .slider-handle, [role=slider]")
    handle.click()
    for _ in range(3):
        handle.send_keys(Keys.ARROW_LEFT)
        time.sleep(0.3)
    _wait(lambda: srcdoc() != before_doc, 60, "the 3D panel to receive the new step")
    time.sleep(8)
    after = _png(panel)
    driver.save_screenshot(str(ARTIFACTS / "notebook_after.png"))
    assert before.shape == after.shape and before.std() > 3, "the 3D panel shows nothing"
    import cv2

    cv2.imwrite(str(ARTIFACTS / "notebook_3d_panel.png"), np.concatenate([before, after], axis=1))
    assert after.std() > 3, "the 3D panel shows nothing after the step changed"
    assert np.abs(before.astype(int) - after.astype(int)).mean() > 0.5, "the 3D panel did not change"
