"""Headless Chromium for the web-page tests (Selenium): the ``browser`` and ``offline_browser`` fixtures and the
``pytestmark`` that skips without Debian's chromium and chromium-driver. Import them into a test module."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                       reason="needs Debian chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver)"),
]


def _chromium(*extra_flags: str):
    """Headless Chromium (a generator: yields the driver, quits at the end)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="lesiondx-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console, CSP violations included
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1280,1000", *extra_flags):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser():
    yield from _chromium()


@pytest.fixture
def offline_browser():
    """Chromium that can resolve no name but the loopback test server: any CDN request fails."""
    yield from _chromium("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--proxy-server=http://0.0.0.0:9",
                         "--proxy-bypass-list=127.0.0.1")


def upload(driver, paths, task=""):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    field = driver.find_element(By.ID, "files")
    driver.execute_script("arguments[0].hidden = false;", field)
    field.send_keys("\n".join(str(p) for p in paths))
    if task:
        Select(driver.find_element(By.ID, "task")).select_by_value(task)
    driver.find_element(By.ID, "send").click()
