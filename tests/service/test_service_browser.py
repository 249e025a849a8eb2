"""Web UI in headless Chromium (Selenium): upload, live status, study page with overlays; screenshots
go to test-artifacts/."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from service_helpers import ARTIFACTS, CT_SERIES, US_IMAGES

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


def _upload(driver, paths, task=""):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    field = driver.find_element(By.ID, "files")
    driver.execute_script("arguments[0].hidden = false;", field)
    field.send_keys("\n".join(str(p) for p in paths))
    if task:
        Select(driver.find_element(By.ID, "task")).select_by_value(task)
    driver.find_element(By.ID, "send").click()


def test_upload_watch_status_and_read_the_result(browser, live_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    server = live_server().start()
    ARTIFACTS.mkdir(exist_ok=True)
    browser.get(server.url + "/")
    assert "not a diagnosis" in browser.find_element(By.ID, "disclaimer").text
    _upload(browser, [US_IMAGES[3], US_IMAGES[0]])  # two PNG/JPG → two studies
    wait = WebDriverWait(browser, 40, poll_frequency=0.2)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#studies tr[data-status=done]")) == 2)
    _upload(browser, CT_SERIES)  # a DICOM series → one chest-CT study
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#studies tr[data-status=done]")) == 3)
    rows = browser.find_elements(By.CSS_SELECTOR, "#studies tbody tr")
    assert [r.find_elements(By.TAG_NAME, "td")[2].text for r in rows] == ["ct-covid", "us-liver", "us-liver"]
    browser.save_screenshot(str(ARTIFACTS / "service-index.png"))

    rows[-1].find_element(By.CSS_SELECTOR, "a").click()  # the first (oldest) ultrasound study
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".result-card img.overlay")))
    wait.until(lambda d: d.execute_script(
        "return Array.from(document.querySelectorAll('.result-card img')).every(i => i.complete && i.naturalWidth > 0)"))
    card = browser.find_element(By.CSS_SELECTOR, ".result-card")
    probability = card.find_element(By.CSS_SELECTOR, ".probability").text
    assert probability.endswith("%") and 0 <= float(probability.split()[0]) <= 100
    assert card.find_element(By.CSS_SELECTOR, ".label").text in ("benign", "malignant")
    assert "TEST DOUBLE" in card.text and "not a diagnosis" in browser.page_source
    assert len(card.find_elements(By.TAG_NAME, "img")) == 2  # the image and its heat-map overlay
    assert "boxes\n[" in card.find_element(By.CSS_SELECTOR, "dl.kv").text
    browser.save_screenshot(str(ARTIFACTS / "service-study.png"))
    assert (ARTIFACTS / "service-study.png").stat().st_size > 10_000

    browser.get(server.url + "/")  # the chest-CT study: middle-slice preview and overlay, slice-level boxes
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#studies tbody tr a"))
    browser.find_elements(By.CSS_SELECTOR, "#studies tbody tr a")[0].click()
    wait.until(lambda d: d.execute_script(
        "const i = document.querySelectorAll('.result-card img'); return i.length === 2 && "
        "Array.from(i).every(x => x.complete && x.naturalWidth > 0)"))
    assert "ct-covid" in browser.find_element(By.ID, "meta").text
    boxes = browser.find_element(By.CSS_SELECTOR, ".result-card dl.kv").text
    assert "function" not in boxes and "[" in boxes  # boxes rendered as coordinates
    browser.save_screenshot(str(ARTIFACTS / "service-study-ct.png"))


def test_junk_upload_shows_the_reason(browser, live_server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = live_server().start()
    junk = tmp_path / "notes.dcm"
    junk.write_text("not an image")
    browser.get(server.url + "/")
    _upload(browser, [junk])
    WebDriverWait(browser, 20).until(lambda d: "notes.dcm" in d.find_element(By.ID, "uploadmsg").text)
    assert "not a DICOM" in browser.find_element(By.ID, "uploadmsg").text


def test_reader_session_in_the_browser(browser, live_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from service_helpers import file_field, wait_study

    server = live_server().start()
    with server.client() as http:
        ids = [wait_study(http, http.post("/api/studies", files=[file_field(p)]).json()["id"])["id"] for p in US_IMAGES[:2]]
        cases = [{"case_id": f"c{i}", "study_id": sid, "truth": t} for i, (sid, t) in enumerate(zip(ids, ["benign", "malignant"]))]
        assert http.post("/api/reader/cases", json={"cases": cases}).status_code == 200
    browser.get(server.url + "/reader")
    browser.find_element(By.ID, "reader").send_keys("rad1")
    Select(browser.find_element(By.ID, "mode")).select_by_value("1")
    browser.find_element(By.ID, "start").click()
    wait = WebDriverWait(browser, 20, poll_frequency=0.2)
    for n in range(2):
        wait.until(lambda d: d.find_element(By.ID, "progress").text == f"({n + 1} of 2)")
        wait.until(lambda d: d.execute_script(
            "const i = document.querySelectorAll('#caseimages img'); return i.length === 2 && "
            "Array.from(i).every(x => x.complete && x.naturalWidth > 0)"))
        assert "AI second opinion" in browser.find_element(By.ID, "ai").text
        if n == 0:
            browser.save_screenshot(str(ARTIFACTS / "service-reader.png"))
        browser.find_element(By.CSS_SELECTOR, "input[name=answer][value=malignant]").click()
        browser.find_element(By.ID, "submit").click()
    wait.until(lambda d: d.find_element(By.ID, "finished").is_displayed())
    with server.client() as http:
        lines = http.get("/api/reader/export.csv").text.strip().splitlines()
    assert lines[0] == "reader,case_id,truth,answer,confidence,seconds,with_ai"
    assert sorted(line.split(",")[1] for line in lines[1:]) == ["c0", "c1"]
    assert all(line.startswith("rad1,") and line.endswith(",1") and ",malignant,3," in line for line in lines[1:])


def _csp_violations(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]


def test_api_docs_render_offline_under_the_csp(offline_browser, live_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = live_server().start()
    driver = offline_browser
    driver.get(server.url + "/docs")
    wait = WebDriverWait(driver, 30, poll_frequency=0.2)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= 5)  # the operations list
    paths = {e.text for e in driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/api/studies", "/api/studies/{study_id}", "/api/health"} <= paths
    assert "lesiondx second-opinion service" in driver.find_element(By.CSS_SELECTOR, ".info .title").text
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
    assert resources and all(url.startswith(server.url + "/") for url in resources), resources
    assert _csp_violations(driver) == []
    driver.save_screenshot(str(ARTIFACTS / "service-docs.png"))

    driver.get(server.url + "/redoc")
    wait.until(lambda d: "/api/studies" in d.find_element(By.TAG_NAME, "body").text)
    # ReDoc's "by Redocly" logo points at its CDN: the CSP blocks that image, so nothing leaves the machine
    logo = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    assert [v for v in _csp_violations(driver) if logo not in v] == []
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
    assert resources and all(url.startswith(server.url + "/") for url in resources if url != logo), resources
    for page in ("/reader", "/"):  # the pages' inline scripts run under the CSP (allowed by their hashes)
        driver.get(server.url + page)
        wait.until(lambda d: d.execute_script("return typeof LX === 'object' && document.readyState === 'complete'"))
        assert _csp_violations(driver) == [], page
    wait.until(lambda d: d.find_element(By.ID, "live").text.startswith("updated"))  # index.html's script ran


def test_cross_site_page_cannot_create_studies_token_less(browser, live_server, tmp_path):
    """A page from another origin posts a multipart form (a "simple" request: no preflight, the way a hostile
    site would) to the token-less service: refused, nothing created."""
    import base64
    import http.server
    import threading
    from functools import partial

    from selenium.webdriver.support.ui import WebDriverWait

    from service_helpers import free_port

    server = live_server().start()
    site = tmp_path / "evil"
    site.mkdir()
    jpeg = base64.b64encode(US_IMAGES[0].read_bytes()).decode()  # a real ultrasound frame: it would be accepted
    (site / "index.html").write_text(
        f"<!doctype html><script>const b = Uint8Array.from(atob('{jpeg}'), c => c.charCodeAt(0));"
        "const f = new FormData(); f.append('files', new Blob([b]), 'a.jpg');"
        f"fetch('{server.url}/api/studies', {{method: 'POST', mode: 'no-cors', body: f}})"
        ".then(() => document.title = 'sent', () => document.title = 'blocked');</script>")
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()),
                                           partial(http.server.SimpleHTTPRequestHandler, directory=str(site)))
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{evil.server_address[1]}/index.html")
        WebDriverWait(browser, 20).until(lambda d: d.title in ("sent", "blocked"))
    finally:
        evil.shutdown()
    with server.client() as http_client:
        assert http_client.get("/api/studies").json() == []
        assert not any(e["action"].startswith("upload") for e in http_client.get("/api/audit").json())
