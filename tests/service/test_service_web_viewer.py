"""The CT stack viewer as a radiologist uses it, in headless Chromium: window presets that show their W/L in HU and
which one is on, number keys for them, the HU under the pointer, n / p to the slices with findings. The real P002
slices (examples) with the stub predictor's boxes on every 5th slice (TEST DOUBLE, not a model)."""

from __future__ import annotations

from browser_fixtures import pytestmark  # noqa: F401 (skip without Chromium)
from service_helpers import CT_SERIES, file_field, wait_study

SERIES_STUB = "lesiondx.service.testing:series_stub_predictor"


def _open_viewer(browser, live_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = live_server(env={"LESIONDX_PREDICTOR": SERIES_STUB}).start()
    with server.client() as http:
        study = wait_study(http, http.post("/api/studies", files=[file_field(p) for p in CT_SERIES]).json()["id"])
    browser.set_window_size(1366, 900)
    browser.get(f"{server.url}/studies/{study['id']}")
    wait = WebDriverWait(browser, 30, poll_frequency=0.1)
    wait.until(lambda d: d.execute_script("const v = document.querySelector('.viewer'); return v && v.dataset.slice"))
    return browser.find_element(By.CSS_SELECTOR, ".viewer"), wait


def test_presets_show_their_window_in_hu_and_keys_pick_them(browser, live_server):
    """Presets with their W/L, the one that is on, keys 1-5; the corner gives the slice spacing and pixel size in mm."""
    from selenium.webdriver.common.by import By

    viewer, wait = _open_viewer(browser, live_server)
    buttons = {b.get_attribute("data-preset"): b for b in viewer.find_elements(By.CSS_SELECTOR, "[data-preset]")}
    assert buttons["lung"].text == "lung W 1500 L −600" and buttons["liver"].text == "liver W 160 L 60"
    assert buttons["abdomen"].text == "soft tissue W 400 L 40" and "HU" in buttons["abdomen"].get_attribute("title")
    corner = viewer.find_element(By.CSS_SELECTOR, ".vcorner.tr")
    assert corner.text == "W 1500 L −600 HU lung" and buttons["lung"].get_attribute("aria-pressed") == "true"
    buttons["liver"].click()
    assert corner.text == "W 160 L 60 HU liver"
    assert [k for k, b in buttons.items() if b.get_attribute("aria-pressed") == "true"] == ["liver"]
    viewer.send_keys("2")  # the second preset, by keyboard
    assert corner.text == "W 400 L 40 HU soft tissue" and buttons["abdomen"].get_attribute("aria-pressed") == "true"
    assert "1–5: presets" in viewer.find_element(By.CSS_SELECTOR, ".vhelp").text
    spacing = browser.execute_script("return arguments[0].lxviewer.info.spacing_mm", viewer)  # [between slices, row, col] mm
    corner = viewer.find_element(By.CSS_SELECTOR, ".vcorner.tl").text.splitlines()
    assert corner[1] == f"spacing {spacing[0]:.1f} mm · pixel {spacing[2]:.2f} mm" and corner[0].startswith("Im ")


def test_the_value_under_the_pointer_is_read_in_hu(browser, live_server):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    viewer, wait = _open_viewer(browser, live_server)
    stage = viewer.find_element(By.CSS_SELECTOR, ".vstage")
    ActionChains(browser).move_to_element(stage).perform()  # the centre of the image (it is fitted and centred)
    probe = viewer.find_element(By.CSS_SELECTOR, ".vcorner.br").text
    value, where = probe.split(" HU ")
    x, y = (int(part.split()[1]) for part in where.strip("()").split(", "))
    assert abs(x - 256) <= 2 and abs(y - 256) <= 2
    stored = browser.execute_script("const v = arguments[0].lxviewer; return v.data[arguments[2] * v.info.cols + arguments[1]]",
                                    viewer, x, y)
    assert int(value.replace("−", "-")) == stored and -1024 <= stored <= 3071  # HU of the stored slice


def test_n_and_p_step_through_the_slices_with_findings(browser, live_server):
    from selenium.webdriver.common.by import By

    viewer, wait = _open_viewer(browser, live_server)
    marked = sorted({int(t) for t in browser.execute_script(
        "return arguments[0].lxviewer.info.findings.map(f => f.slice)", viewer)})
    assert len(marked) >= 2
    assert int(viewer.get_attribute("data-slice")) == marked[0]  # opens on the first finding
    viewer.send_keys("n")
    wait.until(lambda d: viewer.get_attribute("data-slice") == str(marked[1]))
    viewer.send_keys("p")
    wait.until(lambda d: viewer.get_attribute("data-slice") == str(marked[0]))
    viewer.send_keys("p")  # none before the first: stays
    assert viewer.get_attribute("data-slice") == str(marked[0])
    assert "n / p: next / previous finding" in viewer.find_element(By.CSS_SELECTOR, ".vhelp").text
    legend = viewer.find_element(By.CSS_SELECTOR, ".vlegend")  # what the heat map's colours mean
    assert " ".join(legend.text.split()) == "heat map: probability 0 1" and "transparent at 0" in legend.get_attribute("title")


def test_trackpad_scroll_does_not_fly_through_the_stack(browser, live_server):
    """A mouse notch (deltaY 100 px) is one slice; ten small trackpad deltas of 5 px (50 px in all) are one slice too,
    not ten. The slider tells assistive technology which image it is on."""
    viewer, wait = _open_viewer(browser, live_server)
    browser.execute_script("arguments[0].lxviewer.go(3)", viewer)
    wait.until(lambda d: viewer.get_attribute("data-slice") == "3")
    wheel = "const s = arguments[0].querySelector('.vstage'); for (let i = 0; i < arguments[2]; i++) " \
            "s.dispatchEvent(new WheelEvent('wheel', {deltaY: arguments[1], deltaMode: 0, bubbles: true, cancelable: true}));"
    browser.execute_script(wheel, viewer, 100, 1)
    wait.until(lambda d: viewer.get_attribute("data-slice") == "4")
    browser.execute_script(wheel, viewer, 5, 10)
    wait.until(lambda d: viewer.get_attribute("data-slice") == "5")
    browser.execute_script(wheel, viewer, 5, 4)  # 20 px: not yet a slice
    browser.execute_script(wheel, viewer, -100, 1)
    wait.until(lambda d: viewer.get_attribute("data-slice") == "4")
    slider = viewer.find_element("css selector", ".v-slider")
    assert slider.get_attribute("aria-valuetext").startswith("Im ") and ", slice 5 of 10, z " in slider.get_attribute("aria-valuetext")


def test_a_missing_slice_is_shown_as_a_gap_where_it_is(browser, live_server, tmp_path):
    """The P002 example without its instance 25 (an ALTERED copy in tmp): scrolling past the hole, the slices either
    side say how far their neighbour is, so a reader does not take 4 mm for the series' 2 mm."""
    import shutil

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    altered = tmp_path / "ALTERED_P002_without_IM0025"
    altered.mkdir()
    for path in CT_SERIES:
        if path.name != "IM0025.dcm":
            shutil.copy(path, altered / path.name)
    server = live_server(env={"LESIONDX_PREDICTOR": SERIES_STUB}).start()
    with server.client() as http:
        study = wait_study(http, http.post("/api/studies", files=[file_field(p) for p in sorted(altered.iterdir())]).json()["id"])
    browser.get(f"{server.url}/studies/{study['id']}")
    wait = WebDriverWait(browser, 30, poll_frequency=0.1)
    wait.until(lambda d: d.execute_script("const v = document.querySelector('.viewer'); return v && v.dataset.slice"))
    viewer = browser.find_element(By.CSS_SELECTOR, ".viewer")
    instances = browser.execute_script("return arguments[0].lxviewer.info.instance_numbers", viewer)
    corner = {}
    for n, instance in enumerate(instances):
        browser.execute_script("arguments[0].lxviewer.go(arguments[1])", viewer, n)
        wait.until(lambda d: viewer.get_attribute("data-slice") == str(n))
        corner[instance] = viewer.find_element(By.CSS_SELECTOR, ".vcorner.tl").text
    assert [i for i, text in corner.items() if "gap" in text] == [24, 26]
    assert "gap: 4.0 mm to the next slice" in corner[24] and "gap: 4.0 mm to the previous slice" in corner[26]


def _canvas_sum(browser, viewer) -> int:
    """Sum of the canvas's red channel (changes when the heat map is drawn or not)."""
    return browser.execute_script("const c = arguments[0].querySelector('.vcanvas'), d = c.getContext('2d')"
                                  ".getImageData(0, 0, c.width, c.height).data; let s = 0; for (let i = 0; i < d.length; i += 4) "
                                  "s += d[i]; return s;", viewer)


def test_heat_map_and_boxes_have_their_own_switches(browser, live_server):
    """h hides the heat map and leaves the boxes; b hides the boxes and leaves the heat map; each button says on / off."""
    from selenium.webdriver.common.by import By

    viewer, wait = _open_viewer(browser, live_server)
    heat, boxes = viewer.find_element(By.CSS_SELECTOR, ".v-heat"), viewer.find_element(By.CSS_SELECTOR, ".v-boxes")
    assert (heat.text, heat.get_attribute("aria-pressed")) == ("heat map on", "true")
    assert (boxes.text, boxes.get_attribute("aria-pressed")) == ("boxes on", "true")
    with_heat = _canvas_sum(browser, viewer)
    assert len(viewer.find_elements(By.CSS_SELECTOR, ".vsvg .vbox")) == 1
    viewer.send_keys("b")
    assert viewer.find_elements(By.CSS_SELECTOR, ".vsvg .vbox") == [] and _canvas_sum(browser, viewer) == with_heat
    assert (boxes.text, boxes.get_attribute("aria-pressed")) == ("boxes off", "false")
    viewer.send_keys("h")
    assert _canvas_sum(browser, viewer) != with_heat and (heat.text, heat.get_attribute("aria-pressed")) == ("heat map off", "false")
    boxes.click()  # the boxes back, the heat map still off
    assert len(viewer.find_elements(By.CSS_SELECTOR, ".vsvg .vbox")) == 1 and _canvas_sum(browser, viewer) != with_heat
    assert "h: heat map · b: boxes" in viewer.find_element(By.CSS_SELECTOR, ".vhelp").text


def test_a_distance_is_measured_in_mm_from_row_and_column_spacing(browser, live_server):
    """m turns the ruler on (keyboard); a dragged line reads its length in mm, x steps by the column spacing and y steps by
    the row spacing (a SYNTHETIC 0.5 mm row × 1.0 mm column spacing set in the page, so the two cannot be swapped unseen);
    Delete removes the last line, 'remove lines' the rest on the slice."""
    import math

    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    viewer, wait = _open_viewer(browser, live_server)
    ruler = viewer.find_element(By.CSS_SELECTOR, ".v-measure")
    assert ruler.get_attribute("aria-pressed") == "false" and viewer.find_elements(By.CSS_SELECTOR, ".v-nospacing") == []
    browser.execute_script("arguments[0].lxviewer.spacing = [2.0, 0.5, 1.0]", viewer)  # SYNTHETIC [slice, row, column] mm
    viewer.send_keys("m")
    assert (ruler.text, ruler.get_attribute("aria-pressed")) == ("measure on", "true")
    corner = viewer.find_element(By.CSS_SELECTOR, ".vcorner.tr").text
    stage = viewer.find_element(By.CSS_SELECTOR, ".vstage")
    ActionChains(browser).move_to_element(stage).click_and_hold().move_by_offset(90, 60).release().perform()
    assert viewer.find_element(By.CSS_SELECTOR, ".vcorner.tr").text == corner  # the drag measured; the window did not move
    line = browser.execute_script("return arguments[0].lxviewer.lines[0]", viewer)
    dx, dy = line["b"]["x"] - line["a"]["x"], line["b"]["y"] - line["a"]["y"]
    assert dx > 10 and dy > 10
    label = viewer.find_element(By.CSS_SELECTOR, ".vsvg .vline text").text
    assert label == f"{math.hypot(dx * 1.0, dy * 0.5):.1f} mm" and label != f"{math.hypot(dx * 0.5, dy * 1.0):.1f} mm"
    ActionChains(browser).move_to_element_with_offset(stage, -100, -50).click_and_hold().move_by_offset(40, 0).release().perform()
    assert len(viewer.find_elements(By.CSS_SELECTOR, ".vsvg .vline")) == 2
    viewer.send_keys("\ue017")  # Delete: the last line
    assert len(viewer.find_elements(By.CSS_SELECTOR, ".vsvg .vline")) == 1
    viewer.find_element(By.CSS_SELECTOR, ".v-clear").click()
    assert viewer.find_elements(By.CSS_SELECTOR, ".vsvg .vline") == []
    assert viewer.find_element(By.CSS_SELECTOR, ".v-clear").get_attribute("disabled") == "true"
    viewer.send_keys("m")
    ActionChains(browser).move_to_element(stage).click_and_hold().move_by_offset(60, 0).release().perform()
    assert viewer.find_elements(By.CSS_SELECTOR, ".vsvg .vline") == [] and "W 1740" in viewer.find_element(By.CSS_SELECTOR, ".vcorner.tr").text


def test_no_ruler_without_pixel_spacing(browser, live_server):
    """A stack whose images carry no pixel spacing (PNG/JPG slices: the service sends spacing_mm null) offers no ruler and
    says why; the P002 stack's own answer with its spacing taken out (SYNTHETIC) stands in for one."""
    from selenium.webdriver.common.by import By

    viewer, wait = _open_viewer(browser, live_server)
    browser.execute_script(
        "const real = LX.api; LX.api = async (...a) => { const info = await real(...a); info.spacing_mm = null; return info; };"
        "const div = document.createElement('div'); div.id = 'nospacing'; document.body.appendChild(div);"
        "LXViewer.mount(div, arguments[0].lxviewer.base).then(() => { div.dataset.ready = '1'; });", viewer)
    wait.until(lambda d: d.execute_script("return document.getElementById('nospacing').dataset.ready"))
    other = browser.find_element(By.ID, "nospacing")
    assert other.find_elements(By.CSS_SELECTOR, ".v-measure") == []
    assert other.find_element(By.CSS_SELECTOR, ".v-nospacing").text == "measure: no pixel spacing"
    other.send_keys("m")
    assert browser.execute_script("return arguments[0].lxviewer.measure", other) is False
    assert "m: measure" not in other.find_element(By.CSS_SELECTOR, ".vhelp").text
