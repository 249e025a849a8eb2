"""Reader study by keyboard alone in headless Chromium: after each case appears the focus is on its answer, so a
reader answers with arrows, Tab and Enter, also on a CT case whose viewer has many controls before the answer."""

from __future__ import annotations

import os
from pathlib import Path

from browser_fixtures import pytestmark  # noqa: F401 (skip without Chromium)
from service_helpers import CT_SERIES, US_IMAGES, file_field, wait_study

SERIES_STUB = "lesiondx.service.testing:series_stub_predictor"
DOUBLES = {"LESIONDX_PREDICTOR": "web_doubles:flagged_predictor",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH", "")])}


def test_a_reader_answers_every_case_by_keyboard(browser, live_server):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    server = live_server(env={"LESIONDX_PREDICTOR": SERIES_STUB}).start()
    with server.client() as http:
        us = wait_study(http, http.post("/api/studies", files=[file_field(US_IMAGES[0])]).json()["id"])["id"]
        ct = wait_study(http, http.post("/api/studies", files=[file_field(p) for p in CT_SERIES]).json()["id"])["id"]
        cases = [{"case_id": "us", "study_id": us, "truth": "benign"}, {"case_id": "ct", "study_id": ct, "truth": "normal"}]
        assert http.post("/api/reader/cases", json={"cases": cases}).status_code == 200
    browser.set_window_size(1366, 768)
    browser.get(server.url + "/reader")
    browser.find_element(By.ID, "reader").click()
    ActionChains(browser).send_keys("kb1", Keys.TAB, Keys.ARROW_DOWN, Keys.TAB, Keys.ENTER).perform()  # with AI, start
    wait = WebDriverWait(browser, 30, poll_frequency=0.2)
    for step in range(4):  # two cases, each: own call, then with AI
        wait.until(lambda d: d.switch_to.active_element.get_attribute("name") == "answer")
        assert browser.execute_script(  # the answer choices and the confidence are named for a screen reader
            "return [document.getElementById('choices-list').getAttribute('role'), "
            "document.getElementById('confidence').labels[0].textContent]") == ["radiogroup", "Confidence"]
        assert ("Step 2 of 2" if step % 2 else "Step 1 of 2") in browser.find_element(By.ID, "step").text
        assert ("TEST DOUBLE" in browser.find_element(By.ID, "ai").text) == bool(step % 2)  # the stub says what it is
        ActionChains(browser).send_keys(Keys.SPACE, Keys.TAB, Keys.TAB, Keys.ENTER).perform()  # pick, confidence, submit
        if step < 3:
            wait.until(lambda d: d.find_element(By.ID, "step").text.startswith("Step 1" if step % 2 else "Step 2"))
    wait.until(lambda d: d.find_element(By.ID, "finished").is_displayed())
    with server.client() as http:
        lines = http.get("/api/reader/export.csv").text.strip().splitlines()[1:]
    assert sorted((x.split(",")[1], x.split(",")[6]) for x in lines) == [("ct", "0"), ("ct", "1"), ("us", "0"), ("us", "1")]


def _own_call_then_ai(browser, live_server, study_files, truth: str, reader: str, check_step_1=None) -> None:
    """One case (SYNTHETIC flagged double) read in the with-AI session: the own call, then the page with the AI."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    server = live_server(env=DOUBLES).start()
    with server.client() as http:
        study = wait_study(http, http.post("/api/studies", files=[file_field(p) for p in study_files]).json()["id"])["id"]
        cases = [{"case_id": "c1", "study_id": study, "truth": truth}]
        assert http.post("/api/reader/cases", json={"cases": cases}).status_code == 200
    browser.get(server.url + "/reader")
    browser.find_element(By.ID, "reader").send_keys(reader)
    Select(browser.find_element(By.ID, "mode")).select_by_value("1")
    browser.find_element(By.ID, "start").click()
    wait = WebDriverWait(browser, 30, poll_frequency=0.2)
    wait.until(lambda d: d.find_element(By.ID, "step").text.startswith("Step 1") and d.find_elements(By.NAME, "answer"))
    if check_step_1:
        check_step_1()
    browser.find_element(By.CSS_SELECTOR, "input[name=answer]").click()
    browser.find_element(By.ID, "submit").click()
    wait.until(lambda d: d.find_element(By.ID, "step").text.startswith("Step 2"))


def test_with_ai_the_ai_call_comes_with_its_input_check(browser, live_server):
    """A flagged AI result (SYNTHETIC, web_doubles: out of scope, out of distribution) carries its banner into the
    with-AI arm as on the study page; the own-call step shows no AI at all."""
    from selenium.webdriver.common.by import By

    def no_ai_yet():
        assert browser.find_element(By.ID, "ai").text == ""
        assert "(1 of 1, read without AI)" in browser.find_element(By.ID, "progress").text

    _own_call_then_ai(browser, live_server, [US_IMAGES[0]], "benign", "flag1", no_ai_yet)
    banner = browser.find_element(By.CSS_SELECTOR, "#ai .scope.flag").text
    assert "OUTSIDE what the model was validated on" in banner and "Unlike the training data" in banner
    assert browser.find_element(By.CSS_SELECTOR, "#ai .threshold").text == "0.50 (positive at or above)"
    top = browser.execute_script("return document.querySelector('#ai .scope.flag').getBoundingClientRect().top")
    assert top < browser.execute_script("return document.querySelector('#ai .label').getBoundingClientRect().top")


def test_with_ai_a_rule_decided_call_says_its_rule_in_the_reader_arm(browser, live_server):
    """ct-covid's call in the with-AI arm: its threshold names the rule itself (the reader page has no rule row
    "below" to point to) and its number is said to be a rule score, not a probability (SYNTHETIC, web_doubles)."""
    from selenium.webdriver.common.by import By

    _own_call_then_ai(browser, live_server, CT_SERIES, "normal", "rule1")
    assert browser.find_element(By.CSS_SELECTOR, "#ai .threshold").text == (
        "positive when the rule score is 0.70 or more, i.e. when ≥ 5 consecutive slices show a lesion in the same quadrant")
    assert "not a calibrated probability" in browser.find_element(By.CSS_SELECTOR, "#ai .pmeans").text
