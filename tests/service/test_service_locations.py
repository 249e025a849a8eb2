"""The patient-term location a task reports reaches the service result (entry and boxes) and the study page."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service_helpers import CT_SERIES, file_field, wait_study
from browser_fixtures import CHROMEDRIVER, CHROMIUM


def _covid_like(task, inputs, out, model="default", **options):
    """TEST DOUBLE with the ct-covid output shape, positive run in the patient's left lung."""
    box = {"box": [300, 200, 340, 240], "location": "left lung, lower zone", "image_quadrant": "lower-right",
           "score": 0.9}
    return {"patient": {"decision": 1, "score": 0.9, "location": "left lung, lower zone"},
            "slices": [{"slice": i, "probability": 0.9, "boxes": [box]} for i in range(3)], "overlays": [],
            "model_version": "test-double"}


def test_location_reaches_the_api_and_the_page(make_client):
    client = make_client(predictor=_covid_like)
    body = client.post("/api/studies", files=[file_field(p) for p in CT_SERIES[:3]]).json()
    study = wait_study(client, body["id"])
    entry = study["results"][0]
    assert entry["location"] == "left lung, lower zone" and entry["label"] == "COVID-19"
    assert {b["location"] for b in entry["boxes"]} == {"left lung, lower zone"}
    page = client.get(f"/studies/{body['id']}").text
    script = client.get("/static/app.js").text
    assert "r.location" in page and "b.location" in script  # the page renders both (boxes in words: app.js)


@pytest.mark.browser
@pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()), reason="needs Debian chromium and chromium-driver")
def test_the_study_page_shows_the_location_in_chromium(browser, live_server):  # noqa: F811
    """Headless Chromium on a live server whose predictor is the TEST DOUBLE above."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    here = str(Path(__file__).resolve().parent)
    server = live_server(env={"LESIONDX_PREDICTOR": "test_service_locations:_covid_like",
                              "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), here]))}).start()
    with server.client() as http:
        study_id = http.post("/api/studies", files=[file_field(p) for p in CT_SERIES[:3]]).json()["id"]
        wait_study(http, study_id)
    browser.get(f"{server.url}/studies/{study_id}")
    shown = WebDriverWait(browser, 30, poll_frequency=0.2).until(lambda d: d.find_elements(By.CSS_SELECTOR, "dd.location"))
    assert shown[0].text == "left lung, lower zone"
    listed = WebDriverWait(browser, 30, poll_frequency=0.2).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".v-findings [data-finding]"))  # the stack viewer's finding list
    assert listed and all("left lung, lower zone" in item.text for item in listed)
