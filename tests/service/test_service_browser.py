"""Web UI in headless Chromium (Selenium): upload, live status, study page with overlays; screenshots
go to test-artifacts/."""

from __future__ import annotations

import time

from browser_fixtures import pytestmark  # noqa: F401 (skip without Chromium)
from browser_fixtures import upload as _upload
from service_helpers import ARTIFACTS, CT_SERIES, US_IMAGES


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
    assert [r.find_elements(By.TAG_NAME, "td")[3].text for r in rows] == ["ct-covid", "us-liver", "us-liver"]
    assert rows[0].find_elements(By.TAG_NAME, "td")[1].text.startswith("ANON-")  # pseudonymous patient of the DICOM
    search = browser.find_element(By.ID, "search")
    search.send_keys("ct-covid")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#studies tbody tr[data-id]")) == 1)
    search.clear()
    search.send_keys("\b")  # clear() sends no input event
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#studies tbody tr[data-id]")) == 3)
    rows = browser.find_elements(By.CSS_SELECTOR, "#studies tbody tr")
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
    facts = card.find_element(By.CSS_SELECTOR, "dl.kv").text
    assert "px" in facts and "[" not in facts and "function" not in facts  # boxes in words, not JSON
    threshold = card.find_element(By.CSS_SELECTOR, ".threshold").text
    assert threshold.startswith("0.50")  # two decimals
    assert card.find_element(By.CSS_SELECTOR, ".pname").text == "P(malignant)"
    browser.save_screenshot(str(ARTIFACTS / "service-study.png"))
    assert (ARTIFACTS / "service-study.png").stat().st_size > 10_000

    browser.get(server.url + "/")  # the chest-CT study: middle-slice preview and overlay, slice-level boxes
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#studies tbody tr a"))
    browser.find_elements(By.CSS_SELECTOR, "#studies tbody tr a")[0].click()
    wait.until(lambda d: d.execute_script("const v = document.querySelector('.viewer'); return v && v.dataset.slice"))
    assert "ct-covid" in browser.find_element(By.ID, "meta").text
    assert browser.find_element(By.CSS_SELECTOR, ".pname").text == "P(COVID-19 pneumonia)"
    assert not browser.find_elements(By.CSS_SELECTOR, ".result-card img[src]")  # the stack replaces the previews; task overlays fold away
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
    for n in range(2):  # the with-AI session: own call first (no AI), then the AI result beside the locked call
        wait.until(lambda d: d.find_element(By.ID, "progress").text == f"({n + 1} of 2, read without AI)")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#caseimages img")) == 1)
        assert browser.find_element(By.ID, "ai").text == "" and "Step 1 of 2" in browser.find_element(By.ID, "step").text
        browser.find_element(By.CSS_SELECTOR, "input[name=answer][value=benign]").click()
        browser.find_element(By.ID, "submit").click()
        wait.until(lambda d: d.find_element(By.ID, "progress").text == f"({n + 1} of 2)")
        wait.until(lambda d: d.execute_script(
            "const i = document.querySelectorAll('#caseimages img'); return i.length === 2 && "
            "Array.from(i).every(x => x.complete && x.naturalWidth > 0)"))
        assert "AI second opinion" in browser.find_element(By.ID, "ai").text
        assert "cannot be changed: benign (confidence 3)" in browser.find_element(By.ID, "step").text
        if n == 0:
            browser.save_screenshot(str(ARTIFACTS / "service-reader.png"))
        browser.find_element(By.CSS_SELECTOR, "input[name=answer][value=malignant]").click()
        browser.find_element(By.ID, "submit").click()
    wait.until(lambda d: d.find_element(By.ID, "finished").is_displayed())
    with server.client() as http:
        lines = http.get("/api/reader/export.csv").text.strip().splitlines()
    assert lines[0] == "reader,case_id,truth,answer,confidence,seconds,with_ai"
    reads = sorted((line.split(",")[1], line.split(",")[3], line.split(",")[6]) for line in lines[1:])
    assert reads == [("c0", "benign", "0"), ("c0", "malignant", "1"), ("c1", "benign", "0"), ("c1", "malignant", "1")]
    assert all(line.startswith("rad1,") for line in lines[1:])


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


SERIES_STUB = "lesiondx.service.testing:series_stub_predictor"


def _canvas_sum(driver) -> int:
    """Sum of the viewer canvas's red channel over its centre (changes with the slice and the window)."""
    return driver.execute_script(
        "const c = document.querySelector('.vcanvas'), x = c.getContext('2d');"
        "const d = x.getImageData(c.width / 4, c.height / 4, c.width / 2, c.height / 2).data;"
        "let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; return s;")


def test_ct_stack_viewer_133_slices_progress_wl_overlay_findings(browser, live_server, tmp_path):
    """SYNTHETIC 133-slice series (the 10 real P002 slices cycled, InstanceNumber 1..133) with a slow test double:
    the page shows slices done during the run, then scrolls slice by slice with W/L and overlay toggle."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from lesiondx.service.testing import synthetic_ct_series
    from service_helpers import file_field

    series = synthetic_ct_series(CT_SERIES[0].parent, tmp_path / "synthetic", 133)
    server = live_server(env={"LESIONDX_PREDICTOR": SERIES_STUB, "LESIONDX_STUB_SLICE_DELAY_S": "0.06"}).start()
    with server.client() as http:
        study_id = http.post("/api/studies", files=[file_field(p) for p in series]).json()["id"]
    browser.get(f"{server.url}/studies/{study_id}")
    wait = WebDriverWait(browser, 60, poll_frequency=0.1)
    seen = set()

    def progressing(d):
        text = d.find_element(By.ID, "progress").text
        if "analysing slices:" in text:
            seen.add(int(text.split("analysing slices:")[1].split("/")[0]))
        return len([n for n in seen if 0 < n < 133]) >= 3

    wait.until(progressing)
    assert "/ 133 slices" in browser.find_element(By.ID, "progress").text
    wait.until(lambda d: d.execute_script("const v = document.querySelector('.viewer'); return v && v.dataset.slice"))
    assert browser.find_element(By.ID, "progress").text == ""  # final: no progress line left
    viewer = browser.find_element(By.CSS_SELECTOR, ".viewer")
    assert viewer.find_element(By.CSS_SELECTOR, ".v-slider").get_attribute("max") == "132"
    # the first finding (slice index 2 = InstanceNumber 3) opens with its box and label
    assert viewer.get_attribute("data-instance") == "3"
    assert len(viewer.find_elements(By.CSS_SELECTOR, ".vsvg rect")) == 1
    assert viewer.find_element(By.CSS_SELECTOR, ".vsvg text").text.startswith("Im 3")
    browser.execute_script("arguments[0].lxviewer.go(0)", viewer)
    wait.until(lambda d: viewer.get_attribute("data-slice") == "0")
    viewer.click()
    instances, quick = [], WebDriverWait(browser, 10, poll_frequency=0.005)
    started = time.monotonic()
    for n in range(1, 133):  # every slice, one key press each, in patient order
        viewer.send_keys(Keys.ARROW_DOWN)
        quick.until(lambda d: viewer.get_attribute("data-slice") == str(n))
        instances.append(int(viewer.get_attribute("data-instance")))
    print(f"132 slices by key: {time.monotonic() - started:.1f} s")
    assert instances == list(range(2, 134))
    assert viewer.find_element(By.CSS_SELECTOR, ".vcorner.tl").text.startswith("Im 133 (133 / 133) z -430.0 mm")
    # window presets and drag change the rendered pixels
    viewer.find_element(By.CSS_SELECTOR, "button[data-preset=lung]").click()
    lung = _canvas_sum(browser)
    viewer.find_element(By.CSS_SELECTOR, "button[data-preset=abdomen]").click()
    assert "W 400 L 40" in viewer.find_element(By.CSS_SELECTOR, ".vcorner.tr").text
    assert _canvas_sum(browser) != lung
    from selenium.webdriver.common.action_chains import ActionChains

    stage = viewer.find_element(By.CSS_SELECTOR, ".vstage")
    ActionChains(browser).move_to_element(stage).click_and_hold().move_by_offset(60, 0).release().perform()
    assert "W 640" in viewer.find_element(By.CSS_SELECTOR, ".vcorner.tr").text  # 4 HU per pixel of drag
    # a finding in the list jumps to its slice; the boxes and heat-map switches hide them
    findings = viewer.find_elements(By.CSS_SELECTOR, "[data-finding]")
    assert len(findings) == len(range(2, 133, 5))
    findings[3].click()
    wait.until(lambda d: viewer.get_attribute("data-slice") == "17")
    assert viewer.get_attribute("data-instance") == "18" and findings[3].text.startswith("Im 18")
    assert len(viewer.find_elements(By.CSS_SELECTOR, ".vsvg rect")) == 1
    with_heat = _canvas_sum(browser)
    viewer.find_element(By.CSS_SELECTOR, ".v-boxes").click()
    viewer.find_element(By.CSS_SELECTOR, ".v-heat").click()
    assert viewer.find_elements(By.CSS_SELECTOR, ".vsvg rect") == [] and _canvas_sum(browser) != with_heat
    assert _csp_violations(browser) == []
    browser.save_screenshot(str(ARTIFACTS / "service-viewer-133.png"))


def test_reader_study_same_images_in_both_arms(browser, live_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from service_helpers import file_field, wait_study

    server = live_server(env={"LESIONDX_PREDICTOR": SERIES_STUB}).start()
    with server.client() as http:
        ct = wait_study(http, http.post("/api/studies", files=[file_field(p) for p in CT_SERIES]).json()["id"])["id"]
    csv_file = ARTIFACTS / "reader-cases.csv"
    ARTIFACTS.mkdir(exist_ok=True)
    csv_file.write_text(f"case_id,study_id,truth\nct-case,{ct},COVID-19\n")
    browser.get(server.url + "/reader")
    wait = WebDriverWait(browser, 30, poll_frequency=0.2)
    browser.find_element(By.CSS_SELECTOR, "#organiser summary").click()
    browser.find_element(By.ID, "casefile").send_keys(str(csv_file))
    browser.find_element(By.ID, "upload").click()
    wait.until(lambda d: "1 case(s) stored" in d.find_element(By.ID, "orgmsg").text)
    views = {}
    for mode in ("0", "1"):
        browser.get(server.url + "/reader")
        browser.find_element(By.ID, "reader").clear()
        browser.find_element(By.ID, "reader").send_keys("rad1")
        Select(browser.find_element(By.ID, "mode")).select_by_value(mode)
        browser.find_element(By.ID, "start").click()
        wait.until(lambda d: d.execute_script("const v = document.querySelector('#caseviewer .viewer'); return v && v.dataset.slice"))
        viewer = browser.find_element(By.CSS_SELECTOR, "#caseviewer .viewer")
        views[mode] = {"slice": viewer.get_attribute("data-slice"), "max": viewer.find_element(By.CSS_SELECTOR, ".v-slider").get_attribute("max"),
                       "pixels": _canvas_sum(browser), "findings": len(viewer.find_elements(By.CSS_SELECTOR, "[data-finding]")),
                       "ai": browser.find_element(By.ID, "ai").text,
                       "choices": [e.get_attribute("value") for e in browser.find_elements(By.CSS_SELECTOR, "input[name=answer]")]}
        if mode == "1":
            browser.save_screenshot(str(ARTIFACTS / "service-reader-ct-ai.png"))
        browser.find_element(By.CSS_SELECTOR, "input[name=answer][value='COVID-19']").click()
        browser.find_element(By.ID, "submit").click()
        wait.until(lambda d: d.find_element(By.ID, "finished").is_displayed())
    plain, ai = views["0"], views["1"]
    assert plain["slice"] == ai["slice"] == "5" and plain["max"] == ai["max"] == "9"  # every slice, same start
    assert plain["pixels"] == ai["pixels"]  # the same image (slice 5 carries no AI mark)
    assert plain["findings"] == 0 and ai["findings"] == 2 and plain["ai"] == "" and "AI second opinion" in ai["ai"]
    assert plain["choices"] == ai["choices"] == ["normal", "COVID-19"]
    browser.get(server.url + "/reader")  # the organiser's results: per-reader table, model as rater, Mann–Whitney
    browser.find_element(By.CSS_SELECTOR, "#organiser summary").click()
    browser.find_element(By.ID, "summary").click()
    wait.until(lambda d: "Mann–Whitney U" in d.find_element(By.ID, "summaryout").text)
    out = browser.find_element(By.ID, "summaryout").text
    assert "rad1 without_ai 1 1 " in out and "rad1 with_ai 1 1 " in out and "AI model as an extra rater" in out
    assert "ct-case COVID-19 normal" in out  # discordance: the model said normal, the reader COVID-19
    assert "AUC: readers vs AI model on the same cases" in out and "needs at least 2 cases of each class" in out  # 1 case
    assert _csp_violations(browser) == []


def test_no_focal_lesion_is_said_in_words(browser, live_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from service_helpers import file_field, wait_study

    server = live_server().start()
    with server.client() as http:
        study = http.post("/api/studies", files=[file_field(p) for p in CT_SERIES], data={"task": "ct-liver"}).json()
        done = wait_study(http, study["id"])
    assert done["results"][0]["label"] == "none"  # the test double's "no lesion" label on this series
    browser.get(f"{server.url}/studies/{study['id']}")
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".result-card .label"))
    assert browser.find_element(By.CSS_SELECTOR, ".result-card .label").text == "no focal lesion found"
    assert browser.find_element(By.CSS_SELECTOR, ".pname").text == "P(liver lesion)"
