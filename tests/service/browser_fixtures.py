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


# WCAG 2 contrast of every visible text on the page against its nearest opaque background (opacity included);
# text over the stack viewer's image is left out (it has shadows and is judged by eye), disabled controls too.
_LOW_CONTRAST_JS = """
const parse = c => { const m = /rgba?\\(([^)]+)\\)/.exec(c); if (!m) return null; const p = m[1].split(",").map(Number);
  return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 }; };
const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
const back = el => { for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor);
  if (c && c.a > 0.5) return c; } return { r: 255, g: 255, b: 255, a: 1 }; };
const low = [];
document.querySelectorAll("body *").forEach(el => {
  if (!Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim())) return;
  const cs = getComputedStyle(el);
  if (!el.getClientRects().length || cs.visibility === "hidden" || el.disabled || el.closest(".vstage")) return;
  let alpha = parse(cs.color).a; for (let e = el; e; e = e.parentElement) alpha *= +getComputedStyle(e).opacity;
  const fg = parse(cs.color), bg = back(el), mix = k => fg[k] * alpha + bg[k] * (1 - alpha);
  const a = lum({ r: mix("r"), g: mix("g"), b: mix("b") }), b = lum(bg);
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05), size = parseFloat(cs.fontSize);
  const large = size >= 24 || (+cs.fontWeight >= 700 && size >= 18.66);
  if (ratio < (large ? 3 : 4.5)) low.push(el.tagName + "." + el.className + " '" + el.textContent.trim().slice(0, 40) + "' " + ratio.toFixed(2));
});
return low;
"""


def low_contrast(driver) -> list[str]:
    """Texts on the page under WCAG AA contrast (4.5:1; 3:1 for large text), each as 'TAG.class 'text' ratio'."""
    return driver.execute_script(_LOW_CONTRAST_JS)
