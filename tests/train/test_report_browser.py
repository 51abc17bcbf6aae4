"""The report page in a real browser (headless Chromium via chromedriver + selenium): every
image loads and the console stays free of errors. Slow; skipped without Chromium.

Needs: Debian packages ``chromium`` and ``chromium-driver``, and ``pip install selenium``.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import List, Tuple

import pytest

from tinyrun import run_cli

pytestmark = pytest.mark.slow

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")


def _browser(tmp_path: Path):
    chromium = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                     if shutil.which(b)), None)
    driver_bin = shutil.which("chromedriver")
    if chromium is None or driver_bin is None:
        pytest.skip("needs chromium and chromedriver (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver_bin), options=options)


def _load(driver, page: Path) -> Tuple[int, List[str], List[str]]:
    """-> (images, broken image sources, console errors)."""
    driver.get(page.resolve().as_uri())
    driver.execute_script("return document.readyState")
    images = driver.execute_script("return document.images.length")
    broken = driver.execute_script(
        "return Array.from(document.images)"
        ".filter(i => !(i.complete && i.naturalWidth > 0 && i.naturalHeight > 0))"
        ".map(i => i.getAttribute('src').slice(0, 80));")
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return images, broken, errors


def test_report_loads_without_broken_images_or_console_errors(tiny_run_copy, tmp_path):
    run = tiny_run_copy
    assert run_cli(["-q", "report", run]).rc == 0
    embedded = tmp_path / "embedded"
    shutil.copytree(run, embedded)
    assert run_cli(["-q", "report", embedded, "--embed"]).rc == 0
    shutil.rmtree(embedded / "report")  # the embedded page must not need the PNG files
    bad = run / "broken.html"  # negative control: the checks do see a missing image
    bad.write_text('<!DOCTYPE html><html><body><img src="report/missing.png"></body></html>')

    driver = _browser(tmp_path)
    try:
        images, broken, errors = _load(driver, run / "report.html")
        assert images == 6 and broken == [] and errors == [], (broken, errors)
        images, broken, errors = _load(driver, embedded / "report.html")
        assert images == 6 and broken == [] and errors == [], (broken, errors)
        images, broken, errors = _load(driver, bad)
        assert images == 1 and broken == ["report/missing.png"]
        assert any("missing.png" in e for e in errors), errors
    finally:
        driver.quit()
