"""The study page in headless Chromium says in words what a reader needs besides the probability: whether the
input is what the model was made for (gate, OOD score), what the probability was compared to, and (ct-liver) each
finding's features, the ones that could not be judged included. Predictions from the SYNTHETIC test doubles in
``web_doubles.py``; the images are the bundled examples."""

from __future__ import annotations

import os
from pathlib import Path

from browser_fixtures import low_contrast
from browser_fixtures import pytestmark  # noqa: F401 (skip without Chromium)
from service_helpers import ARTIFACTS, CT_SERIES, US_IMAGES, file_field, wait_study

HERE = Path(__file__).resolve().parent
DOUBLES = {"LESIONDX_PREDICTOR": "web_doubles:flagged_predictor",
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}


def _open(driver, server, study_id):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{server.url}/studies/{study_id}")
    WebDriverWait(driver, 30, poll_frequency=0.2).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".result-card .verdict"))
    return driver.find_element(By.CSS_SELECTOR, ".result-card .verdict")


def test_out_of_scope_and_out_of_distribution_are_said_in_words(browser, live_server):
    from selenium.webdriver.common.by import By

    server = live_server(env=DOUBLES).start()
    with server.client() as http:
        study = wait_study(http, http.post("/api/studies", files=[file_field(US_IMAGES[0])]).json()["id"])
    assert study["results"][0]["details"]["validated_on_input"] is False
    browser.set_window_size(1366, 768)
    verdict = _open(browser, server, study["id"])
    banner = verdict.find_element(By.CSS_SELECTOR, ".scope.flag").text
    assert "OUTSIDE what the model was validated on" in banner and "colour fraction 0.31" in banner
    assert "Unlike the training data" in banner and "14.2" in banner and "10.1" in banner
    assert "Heat map: its peak lies outside the analysed region" in banner
    assert "OUTSIDE" in verdict.find_element(By.CSS_SELECTOR, "dd.scope-text").text
    assert verdict.find_element(By.CSS_SELECTOR, ".threshold").text.startswith("0.50 (positive at or above)")
    assert browser.execute_script("return document.querySelector('.scope.flag').getBoundingClientRect().bottom") < 768
    assert low_contrast(browser) == []  # the flag and warning texts too (WCAG AA)
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "service-study-flagged.png"))


def test_ct_liver_findings_and_features_not_judged(browser, live_server):
    from selenium.webdriver.common.by import By

    server = live_server(env=DOUBLES).start()
    with server.client() as http:
        upload = http.post("/api/studies", files=[file_field(p) for p in CT_SERIES], data={"task": "ct-liver"})
        study = wait_study(http, upload.json()["id"])
    assert study["status"] == "done" and study["results"][0]["label"] is None
    verdict = _open(browser, server, study["id"])
    label = verdict.find_element(By.CSS_SELECTOR, ".label").text
    assert label == "2 lesion finding(s): 1 benign pattern, 1 indeterminate"  # not "no label" in green
    assert "evidence" in verdict.find_element(By.CSS_SELECTOR, ".label").get_attribute("class")
    assert verdict.find_element(By.CSS_SELECTOR, ".threshold").text == "none: this result gives no probability"
    assert verdict.find_element(By.CSS_SELECTOR, "dd.scope-text").text == "passed: modality, image type, geometry and body region are what the model was made for."
    common = verdict.find_element(By.CSS_SELECTOR, ".not-judged-all").text
    assert "arterial phase hyperenhancement" in common and "washout" in common and "needs an arterial phase" in common
    rows = verdict.find_elements(By.CSS_SELECTOR, "table.findings tbody tr")
    assert [r.find_elements(By.TAG_NAME, "td")[2].text for r in rows] == ["indeterminate", "benign pattern (cyst)"]
    assert rows[0].find_elements(By.TAG_NAME, "td")[1].text == "slices 3–5 of 10"
    assert rows[1].find_element(By.CSS_SELECTOR, "td.present").text == "water density, non-enhancing"
    browser.save_screenshot(str(ARTIFACTS / "service-study-ct-liver-findings.png"))


def test_rule_decided_study_names_the_rule_and_its_score_not_a_probability(browser, live_server):
    """ct-covid's patient call is the consecutive-slice rule: the threshold row says so (a bare "–" before), and its
    number is the rule's score (positive at or above the rule's slice threshold), which the study page, the study
    list and the reader page called "P(COVID-19 pneumonia)", "probability of COVID-19 pneumonia for the patient"."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = live_server(env=DOUBLES).start()
    with server.client() as http:
        study = wait_study(http, http.post("/api/studies", files=[file_field(p) for p in CT_SERIES]).json()["id"])
    result = study["results"][0]
    assert study["task"] == "ct-covid" and result["threshold"] is None
    verdict = _open(browser, server, study["id"])
    assert verdict.find_element(By.CSS_SELECTOR, ".threshold").text == \
        "positive when the rule score is 0.70 or more, i.e. when ≥ 5 consecutive slices show a lesion in the same quadrant"
    assert "5 consecutive slices" in verdict.find_element(By.CSS_SELECTOR, ".rule").text
    assert verdict.find_element(By.CSS_SELECTOR, ".pname").text == "rule score"
    assert verdict.find_element(By.CSS_SELECTOR, ".probability").text == f"{result['probability']:.2f}"
    assert "not a calibrated probability" in verdict.find_element(By.CSS_SELECTOR, ".pmeans").text
    assert "P(" not in verdict.text and "probability of COVID-19" not in verdict.text
    browser.get(server.url + "/")
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#studies tbody tr[data-id]"))
    row = browser.find_element(By.CSS_SELECTOR, "#studies tbody tr[data-id]").text
    assert f"rule score {result['probability']:.2f}" in row and "P(COVID" not in row


def test_refused_input_is_said_without_the_exception_class(browser, live_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = live_server(env={**DOUBLES, "LESIONDX_PREDICTOR": "web_doubles:refusing_predictor"}).start()
    with server.client() as http:
        # an ultrasound image (a CT sent to us-liver is now refused at upload, 422): the double refuses it as a reader would
        study = wait_study(http, http.post("/api/studies", files=[file_field(US_IMAGES[0])], data={"task": "us-liver"}).json()["id"])
    assert study["status"] == "failed" and study["failure"].startswith("prediction failed: ImageReadError: ")
    browser.get(f"{server.url}/studies/{study['id']}")
    WebDriverWait(browser, 30, poll_frequency=0.2).until(lambda d: d.find_element(By.ID, "failure").text)
    text = browser.find_element(By.ID, "failure").text
    assert text.startswith("Not analysed — the input does not fit this task: series_01: us-liver reads single image files")
    assert "ImageReadError" not in text and "Traceback" not in browser.page_source


def test_running_job_shows_its_stage_and_time_so_far(browser, live_server):
    """A job that has not reported a stage yet reads "Running — starting · N s so far", not "Running — running"."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = live_server(env={"LESIONDX_STUB_DELAY_S": "6"}).start()
    with server.client() as http:
        study_id = http.post("/api/studies", files=[file_field(US_IMAGES[0])]).json()["id"]
    browser.get(f"{server.url}/studies/{study_id}")
    wait = WebDriverWait(browser, 20, poll_frequency=0.1)
    wait.until(lambda d: d.find_element(By.ID, "progress").text.startswith("Running"))
    wait.until(lambda d: "s so far" in d.find_element(By.ID, "progress").text)
    text = browser.find_element(By.ID, "progress").text
    assert text.startswith("Running — starting · ") and "running" not in text.lower().replace("running —", "")


def test_study_list_says_why_a_study_failed_and_counts_findings(browser, live_server):
    """The list's AI-result column: a failed study's reason, a ct-liver study's finding count (both were blank)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = live_server(env=DOUBLES).start()
    with server.client() as http:
        liver = wait_study(http, http.post("/api/studies", files=[file_field(p) for p in CT_SERIES], data={"task": "ct-liver"}).json()["id"])
    refusing = live_server(storage=server.storage, env={**DOUBLES, "LESIONDX_PREDICTOR": "web_doubles:refusing_predictor"})
    server.kill()  # the same storage, now served with a predictor that refuses every input
    refusing.start()
    with refusing.client() as http:
        failed = wait_study(http, http.post("/api/studies", files=[file_field(US_IMAGES[0])]).json()["id"])
        listed = {s["id"]: s for s in http.get("/api/studies").json()}
    assert listed[liver["id"]]["n_findings"] == 2 and listed[failed["id"]]["failed_because"].startswith("prediction failed")
    browser.get(refusing.url + "/")
    WebDriverWait(browser, 20, poll_frequency=0.2).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#studies tbody tr[data-id]")) == 2)
    cells = {r.get_attribute("data-id"): r.find_elements(By.TAG_NAME, "td")[5].text
             for r in browser.find_elements(By.CSS_SELECTOR, "#studies tbody tr[data-id]")}
    assert cells[liver["id"]] == "2 lesion finding(s) evidence, not a probability"
    assert cells[failed["id"]].startswith("Not analysed — the input does not fit this task: series_01")


def test_a_call_the_model_did_not_make_is_not_shown_as_a_reassuring_negative(browser, live_server):
    """us-liver "no focal lesion found" names the lesion threshold it fell under (not "no probability"); ct-covid's
    "not assessable" is not green like a normal result (SYNTHETIC results, web_doubles.no_call_predictor)."""
    from selenium.webdriver.common.by import By

    server = live_server(env={**DOUBLES, "LESIONDX_PREDICTOR": "web_doubles:no_call_predictor"}).start()
    with server.client() as http:
        us = wait_study(http, http.post("/api/studies", files=[file_field(US_IMAGES[0])]).json()["id"])
        ct = wait_study(http, http.post("/api/studies", files=[file_field(p) for p in CT_SERIES]).json()["id"])
    verdict = _open(browser, server, us["id"])
    assert verdict.find_element(By.CSS_SELECTOR, ".label").text == "no focal lesion found"
    assert verdict.find_element(By.CSS_SELECTOR, ".threshold").text == (
        "no focal lesion: lesion probability 0.01 is below the lesion threshold 0.94")
    verdict = _open(browser, server, ct["id"])
    label = verdict.find_element(By.CSS_SELECTOR, ".label")
    assert label.text == "not assessable (incomplete series)"
    assert "negative" not in label.get_attribute("class").split()
    green = browser.execute_script("return getComputedStyle(document.querySelector('.result-card .label.negative, "
                                   ".result-card .label')).color")
    assert green != "rgb(42, 122, 59)"  # var(--ok), the colour of a normal result
    assert "covers only part of the lungs" in verdict.find_element(By.CSS_SELECTOR, ".scope.flag").text


def test_the_result_says_what_the_model_was_not_validated_for(browser, live_server):
    """Beside the call: the shipped model card's "Not for" and "Never saw" (models/ct-covid/MODEL_CARD.md), not only a
    link to the card (SYNTHETIC result under a non-test-double model version, web_doubles.card_predictor)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = live_server(env={**DOUBLES, "LESIONDX_PREDICTOR": "web_doubles:card_predictor"}).start()
    with server.client() as http:
        ct = wait_study(http, http.post("/api/studies", files=[file_field(p) for p in CT_SERIES]).json()["id"])
    card = (HERE.parents[1] / "models" / "ct-covid" / "MODEL_CARD.md").read_text()
    assert "**Not for:** diagnosing COVID-19" in card
    browser.set_window_size(1366, 768)
    verdict = _open(browser, server, ct["id"])
    WebDriverWait(browser, 10).until(lambda d: verdict.find_element(By.CSS_SELECTOR, ".limits").text)
    limits = verdict.find_element(By.CSS_SELECTOR, ".limits").text
    assert limits.startswith("Not validated for: diagnosing COVID-19 (CT findings are not specific;")
    assert "CAP, was never tested" in limits and "Never saw: any chest series beyond" in limits
    assert "Data and licences" not in limits
    assert browser.execute_script("return document.querySelector('.limits').getBoundingClientRect().top") < 768


def test_study_list_marks_a_result_whose_input_was_flagged(browser, live_server):
    """A worklist reader sees, before opening the study, that its input was outside what the model was validated on
    or unlike its training data (SYNTHETIC flagged us-liver result, web_doubles); an unflagged study shows none."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = live_server(env={**DOUBLES, "LESIONDX_PREDICTOR": "web_doubles:no_call_predictor"}).start()
    with server.client() as http:
        plain = wait_study(http, http.post("/api/studies", files=[file_field(US_IMAGES[0])]).json()["id"])["id"]
        partial = wait_study(http, http.post("/api/studies", files=[file_field(p) for p in CT_SERIES]).json()["id"])["id"]
    flagging = live_server(storage=server.storage, env=DOUBLES)
    server.kill()  # the same storage, now with the predictor that flags us-liver inputs
    flagging.start()
    with flagging.client() as http:
        flagged = wait_study(http, http.post("/api/studies", files=[file_field(US_IMAGES[1])]).json()["id"])["id"]
        listed = {s["id"]: s for s in http.get("/api/studies").json()}
    assert listed[flagged]["input_flags"] == ["outside what the model was validated on", "unlike the training data"]
    assert listed[partial]["input_flags"] == ["outside what the model was validated on", "caveat"]
    assert listed[plain]["input_flags"] == []
    browser.get(flagging.url + "/")
    WebDriverWait(browser, 20, poll_frequency=0.2).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#studies tbody tr[data-id]")) == 3)
    problems = {r.get_attribute("data-id"): r.find_elements(By.TAG_NAME, "td")[6].text
                for r in browser.find_elements(By.CSS_SELECTOR, "#studies tbody tr[data-id]")}
    assert problems[flagged] == "input: outside what the model was validated on; unlike the training data"
    assert problems[partial] == "input: outside what the model was validated on; caveat" and problems[plain] == ""


def test_the_study_list_colours_a_call_as_the_study_page_does(browser, live_server):
    """'not assessable' is in the warning colour on the study list as on the study page (SYNTHETIC result,
    web_doubles.no_call_predictor)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = live_server(env={**DOUBLES, "LESIONDX_PREDICTOR": "web_doubles:no_call_predictor"}).start()
    with server.client() as http:
        ct = wait_study(http, http.post("/api/studies", files=[file_field(p) for p in CT_SERIES]).json()["id"])["id"]
    colour = "return getComputedStyle(arguments[0]).color"
    _open(browser, server, ct)
    on_page = browser.execute_script(colour, browser.find_element(By.CSS_SELECTOR, ".result-card .label"))
    browser.get(server.url + "/")
    WebDriverWait(browser, 20, poll_frequency=0.2).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#studies tbody tr[data-id] .call"))
    call = browser.find_element(By.CSS_SELECTOR, "#studies tbody tr[data-id] td:nth-child(6) .call")
    assert call.text == "not assessable (incomplete series)"
    assert browser.execute_script(colour, call) == on_page == "rgb(143, 85, 0)"  # var(--warn)
    assert low_contrast(browser) == []
