"""The study page's layout in headless Chromium at a laptop's 1366×768 and under 1280 px: the CT image is on the first
screen, beside the call (≥ 1280 px) or right after the call and its flags (narrower), and a re-rendered result (a
new version, a poll) or a resize moves the viewer without resetting it. The real P002 slices (examples) with the stub
predictor's boxes (TEST DOUBLE, not a model)."""

from __future__ import annotations

from browser_fixtures import pytestmark  # noqa: F401 (skip without Chromium)
from service_helpers import CT_SERIES, file_field, wait_study

SERIES_STUB = "lesiondx.service.testing:series_stub_predictor"
RECT = "const r = document.querySelector(arguments[0]).getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom];"


def _viewport(browser, width: int, height: int) -> None:
    """The page's own size in CSS px (the window's frame left out), as on a laptop screen."""
    browser.set_window_size(width, height + 200)
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


def _study(browser, live_server, width: int, height: int):
    from selenium.webdriver.support.ui import WebDriverWait

    server = live_server(env={"LESIONDX_PREDICTOR": SERIES_STUB}).start()
    with server.client() as http:
        study = wait_study(http, http.post("/api/studies", files=[file_field(p) for p in CT_SERIES]).json()["id"])
    _viewport(browser, width, height)
    browser.get(f"{server.url}/studies/{study['id']}")
    wait = WebDriverWait(browser, 30, poll_frequency=0.1)
    wait.until(lambda d: d.execute_script("const v = document.querySelector('.viewer'); return v && v.dataset.slice"))
    return wait


def test_on_a_1366x768_laptop_the_image_is_beside_the_call(browser, live_server):
    _study(browser, live_server, 1366, 768)
    stage = browser.execute_script(RECT, ".vstage")
    label = browser.execute_script(RECT, ".result-card .verdict .label")
    assert stage[1] < 300 and stage[3] <= 768  # the whole image on the first screen, no scrolling
    assert stage[2] <= label[0] and label[1] < 768  # image left, the call right of it, also on the first screen
    assert stage[2] - stage[0] >= 700  # the image keeps most of the width


def test_under_1280_px_the_image_follows_the_call_and_its_flags(browser, live_server):
    _study(browser, live_server, 1100, 768)
    stage = browser.execute_script(RECT, ".vstage")
    label = browser.execute_script(RECT, ".result-card .verdict .label")
    facts = browser.execute_script(RECT, ".result-card .verdict dl.kv")
    assert label[3] <= stage[1] and stage[3] <= facts[1]  # call, then the image, then the rest of the result


def test_re_rendering_the_result_keeps_the_viewer_where_it_was(browser, live_server):
    """A new result version (rendered as a poll would) and a resize across 1280 px move the viewer, never rebuild it:
    slice, window, zoom and a measured line stay."""
    from selenium.webdriver.common.by import By

    wait = _study(browser, live_server, 1366, 768)
    viewer = browser.find_element(By.CSS_SELECTOR, ".viewer")
    browser.execute_script("const v = arguments[0].lxviewer; v.go(4); v.zoom = 2; v.lines.push({slice: 4, a: {x: 10, y: 10}, "
                           "b: {x: 50, y: 10}}); LXViewer.draw(v);", viewer)
    wait.until(lambda d: viewer.get_attribute("data-slice") == "4")
    viewer.find_element(By.CSS_SELECTOR, "button[data-preset=liver]").click()
    state = "const v = arguments[0].lxviewer; return [v.n, v.wc, v.ww, v.zoom, v.lines.length, arguments[0].isConnected, " \
            "document.querySelector('.viewer') === arguments[0], arguments[0].querySelectorAll('.vline').length];"
    before = browser.execute_script(state, viewer)
    assert before == [4, 60, 160, 2, 1, True, True, 1]
    browser.execute_script("LX.api(location.pathname.replace('/studies/', '/api/studies/')).then(s => { s.result_version = 99; "
                           "render(s); document.body.dataset.rerendered = document.getElementById('results').dataset.rendered; });")
    wait.until(lambda d: d.execute_script("return document.body.dataset.rerendered") == "done:99")
    assert browser.execute_script(state, viewer) == before
    _viewport(browser, 1100, 768)
    wait.until(lambda d: d.execute_script("return !!document.querySelector('#results .viewer-slot .viewer')"))
    assert browser.execute_script(state, viewer) == before
    _viewport(browser, 1366, 768)
    wait.until(lambda d: d.execute_script("return !!document.querySelector('#viewerhome .viewer')"))
    assert browser.execute_script(state, viewer) == before
