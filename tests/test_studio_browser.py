"""End to end in headless Chromium: open the studio, upload a photo, run SMPLify, move the
step slider, download the step's .glb — and a bad upload that must leave the page working.
A screenshot goes to ``artifacts/studio_browser.png``.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (and selenium); skipped
with the reason when they are missing.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.test_studio_support import TEST_METHOD, LiveServer, astronaut_bytes

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("headless browser test needs chromium and chromedriver "
                    "(apt-get install -y chromium chromium-driver)")
    return browser, driver


def headless_chromium(profile, window: str = "1500,2000", extra: tuple = (), prefs: dict | None = None):
    """A selenium Chrome driver on the system's headless Chromium (WebGL through SwiftShader);
    skips the test when chromium, chromedriver or selenium are missing."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = _chromium()
    opts = Options()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-unsafe-swiftshader",
                "--use-angle=swiftshader", f"--user-data-dir={profile}", f"--window-size={window}", *extra):
        opts.add_argument(arg)
    if prefs:
        opts.add_experimental_option("prefs", prefs)
    return webdriver.Chrome(service=Service(driver_path), options=opts)


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    downloads = tmp_path_factory.mktemp("downloads")
    d = headless_chromium(tmp_path_factory.mktemp("chrome-profile"), extra=("--disable-gpu",),
                          prefs={"download.default_directory": str(downloads), "download.prompt_for_download": False})
    d.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    d.downloads = downloads
    yield d
    d.quit()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LiveServer(tmp_path_factory.mktemp("server"), methods=("smplify", TEST_METHOD), iterations=10,
                    preview=4) as s:
        yield s


_LATENCY_JS = """
const done = arguments[arguments.length - 1];
const target = arguments[0];
const info = document.getElementById('step-info');
const t0 = performance.now();
const obs = new MutationObserver(() => {
  if (info.innerText.includes(target)) { obs.disconnect(); done(performance.now() - t0); }
});
obs.observe(info, {subtree: true, childList: true, characterData: true});
const r = document.querySelector('#step-slider input[type=range]');
r.stepUp();
r.dispatchEvent(new Event('input', {bubbles: true}));
r.dispatchEvent(new Event('change', {bubbles: true}));
"""


def _wait(cond, timeout: float, what: str):
    t0 = time.time()
    last = None
    while time.time() - t0 < timeout:
        try:
            last = cond()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - elements come and go while Svelte re-renders
            last = e
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def _text(d, elem_id: str) -> str:
    from selenium.webdriver.common.by import By

    return d.find_element(By.ID, elem_id).text


def test_upload_run_slide_download(driver, server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d = driver
    photo = tmp_path / "astronaut.jpg"
    photo.write_bytes(astronaut_bytes())
    d.get(server.url)
    _wait(lambda: d.find_elements(By.CSS_SELECTOR, "#photo-upload input[type=file]"), 60, "the upload box")
    assert "HMR Studio" in d.page_source

    # 1 · photo → detection
    d.find_element(By.CSS_SELECTOR, "#photo-upload input[type=file]").send_keys(str(photo))
    _wait(lambda: "Found 1 person" in _text(d, "detect-status"), 60, "detection")

    # 2 · run SMPLify (the default method), preview first — on a laptop-sized window, where the
    # result is below the fold
    d.set_window_size(1280, 800)
    t0 = time.time()
    d.find_element(By.ID, "run-button").click()
    _wait(lambda: "Done" in _text(d, "run-status"), 240, "the SMPLify run")
    run_s = time.time() - t0
    assert "smplify" in _text(d, "trace-badge")
    # the result is brought into view: the page scrolled so the Inspect section is near the top
    _wait(lambda: d.execute_script("return document.getElementById('trace-badge').getBoundingClientRect().top")
          < 200 and d.execute_script("return window.scrollY") > 100, 10, "the result scrolled into view")
    d.set_window_size(1500, 2000)
    import re

    info = _text(d, "step-info")
    m = re.search(r"Step (\d+) of (\d+)", info)
    assert m and m.group(1) == m.group(2) and int(m.group(2)) >= 5, info  # the last step is shown
    n = int(m.group(2))
    # the 3D view draws the result without the slider being touched
    _wait(lambda: d.find_elements(By.CSS_SELECTOR, "#model3d canvas"), 30, "the 3D view's canvas after the run")

    # 3 · move the slider with the keyboard
    slider = _wait(lambda: d.find_element(By.CSS_SELECTOR, "#step-slider input[type=range]"), 10, "the slider")
    slider.click()
    slider.send_keys(Keys.HOME)
    _wait(lambda: f"Step 0 of {n}" in _text(d, "step-info"), 20, "step 0 after HOME")
    for k in range(1, 4):
        slider.send_keys(Keys.ARROW_RIGHT)
        _wait(lambda: f"Step {k} of {n}" in _text(d, "step-info"), 20, f"step {k} after →")
    time.sleep(1.5)  # let the release handler refresh the 3D view
    ARTIFACTS.mkdir(exist_ok=True)
    d.save_screenshot(str(ARTIFACTS / "studio_browser.png"))

    # 4 · download the glb of this step from the Export tab
    d.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Export')]").click()
    btn = _wait(lambda: d.find_element(By.ID, "download-glb"), 10, "the glb button")
    _wait(lambda: btn.is_enabled(), 20, "an enabled glb button")

    def download_step3():
        # the 3D/export listener may still be writing this step's files: retry until it serves them
        for old in d.downloads.glob("*"):
            old.unlink()
        btn.click()
        got = _wait(lambda: [p for p in d.downloads.glob("*.glb")], 30, "a downloaded .glb")[0]
        return got if "step003" in got.name else None

    glb = _wait(download_step3, 60, "the .glb of step 3")
    import trimesh

    # slider latency measured in the page: input event → new step text in the DOM
    d.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Steps')]").click()
    d.set_script_timeout(30)
    lat = []
    for k in range(4, min(n, 9) + 1):
        lat.append(d.execute_async_script(_LATENCY_JS, f"Step {k} of {n}"))
        time.sleep(0.5)
    assert max(lat) < 3000, lat

    scene = trimesh.load(glb)
    mesh = scene.geometry["mesh_0"]
    assert len(mesh.vertices) > 1000 and "step003" in glb.name
    print(f"SMPLify run (preview + num_iters=10) in the browser: {run_s:.1f} s; slider step → new step shown "
          f"in the page: " + ", ".join(f"{x:.0f}" for x in lat) + " ms")


def test_bad_upload_in_the_browser_keeps_the_page_working(driver, server, tmp_path):
    from selenium.webdriver.common.by import By

    d = driver
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    d.get(server.url)
    _wait(lambda: d.find_elements(By.CSS_SELECTOR, "#photo-upload input[type=file]"), 60, "the upload box")
    d.find_element(By.CSS_SELECTOR, "#photo-upload input[type=file]").send_keys(str(bad))
    _wait(lambda: "not an image" in _text(d, "detect-status"), 60, "the error message")
    assert server.alive()
    good = tmp_path / "ok.jpg"
    good.write_bytes(astronaut_bytes())
    d.get(server.url)
    _wait(lambda: d.find_elements(By.CSS_SELECTOR, "#photo-upload input[type=file]"), 60, "the upload box")
    d.find_element(By.CSS_SELECTOR, "#photo-upload input[type=file]").send_keys(str(good))
    _wait(lambda: "Found 1 person" in _text(d, "detect-status"), 60, "detection after the bad upload")
