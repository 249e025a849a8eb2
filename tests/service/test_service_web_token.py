"""Polling pages and a wrong stored token (headless Chromium): the study list and the study page stop asking after a
401 until the token changes, and say so. Polled every 2 s with a wrong token, the list tripped the service's
wrong-token limit (429 after 20 in 60 s) in about 40 s and locked the user's address out. Also: the study page lists
the result versions the PACS holds (``export.sent_versions``)."""

from __future__ import annotations

import json
import sqlite3
import time

import httpx
from browser_fixtures import pytestmark  # noqa: F401 (skip without Chromium)
from service_helpers import US_IMAGES

GOOD, WRONG = "right-token-0123456789", "wrong-token-0123456789"


def _requests_to(driver, fragment: str) -> int:
    """How many requests the page has made whose URL contains ``fragment`` (Resource Timing)."""
    return driver.execute_script(
        "return performance.getEntriesByType('resource').filter(e => e.name.includes(arguments[0])).length", fragment)


def _open_with_token(driver, url: str, token: str) -> None:
    driver.get(url)
    driver.execute_script("localStorage.setItem('lesiondx-token', arguments[0])", token)
    driver.get(url)


def _type_token(driver, token: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    field = driver.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token, Keys.TAB)  # leaving the field fires 'change'


def _upload(server) -> str:
    with httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {GOOD}"}) as http:
        with US_IMAGES[0].open("rb") as f:
            return http.post("/api/studies", files={"files": (US_IMAGES[0].name, f, "image/jpeg")}).json()["id"]


def test_study_list_stops_polling_after_a_refused_token(browser, live_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = live_server(env={"LESIONDX_TOKEN": GOOD}).start()
    study = _upload(server)
    _open_with_token(browser, server.url + "/", WRONG)
    wait = WebDriverWait(browser, 20, poll_frequency=0.2)
    wait.until(lambda d: "refused" in d.find_element(By.ID, "live").text)
    time.sleep(6.5)  # three more 2-s polls before the fix
    assert _requests_to(browser, "/api/studies?limit") == 1
    assert "not retried until it changes" in browser.find_element(By.ID, "live").text
    _type_token(browser, GOOD)
    wait.until(lambda d: d.find_element(By.ID, "live").text.startswith("updated"))
    assert browser.find_elements(By.CSS_SELECTOR, f'#studies tr[data-id="{study}"]')
    with httpx.Client(base_url=server.url, timeout=10, headers={"Authorization": f"Bearer {GOOD}"}) as http:
        assert http.get("/api/studies").status_code == 200  # the address was not locked out


def test_study_page_waits_for_a_new_token_and_lists_sent_versions(browser, live_server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = live_server(env={"LESIONDX_TOKEN": GOOD}).start()
    study = _upload(server)
    sent = [{"version": 1, "task": "us-liver", "sr": "Comprehensive3DSRStorage", "sent_at": "2026-12-06T04:00:00+00:00"},
            {"version": 2, "task": "us-liver", "sr": "Comprehensive3DSRStorage", "sent_at": "2026-12-06T05:00:00+00:00"}]
    export = {"state": "sent", "attempts": 1, "version": 2, "sent_versions": sent, "next_try_at": None,
              "skipped": ["1 Secondary Capture Image Storage object (the PACS does not take it)"]}
    with sqlite3.connect(tmp_path / "store" / "lesiondx.sqlite3") as db:  # as the exporter leaves a study sent twice
        db.execute("UPDATE studies SET export_state='sent', export_status=? WHERE id=?", (json.dumps(export), study))
    _open_with_token(browser, server.url + f"/studies/{study}", WRONG)
    wait = WebDriverWait(browser, 30, poll_frequency=0.2)
    wait.until(lambda d: "refused" in d.find_element(By.ID, "failure").text)
    time.sleep(6.5)  # two more 3-s polls before the fix
    assert _requests_to(browser, f"/api/studies/{study}") == 1
    _type_token(browser, GOOD)
    wait.until(lambda d: "PACS export: sent" in d.find_element(By.ID, "export").text)
    text = browser.find_element(By.ID, "export").text
    assert "(result v2)" in text and "the PACS holds v1 (sent " in text and ", v2 (sent " in text, text
    assert "read the highest" in text and "Secondary Capture" in text
    assert "refused" not in browser.find_element(By.ID, "failure").text
