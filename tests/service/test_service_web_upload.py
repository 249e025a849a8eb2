"""The upload page in headless Chromium: it says what each task accepts, keeps CT slices together for the CT
tasks, and names the user's own files (not the server's pseudonyms) in every problem, accepted uploads included."""

from __future__ import annotations

from browser_fixtures import pytestmark, upload  # noqa: F401 (pytestmark: skip without Chromium)
from service_helpers import ARTIFACTS, CT_SERIES


def test_upload_page_says_what_each_task_accepts(browser, live_server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    server = live_server().start()
    browser.get(server.url + "/")
    help_text, split = browser.find_element(By.ID, "taskhelp"), browser.find_element(By.ID, "split")
    assert help_text.text.startswith("Automatic:") and split.is_selected()
    said = {}
    for task in ("us-liver", "ct-covid", "ct-liver"):
        Select(browser.find_element(By.ID, "task")).select_by_value(task)
        said[task] = (help_text.text, split.is_selected())
    assert "B-mode" in said["us-liver"][0] and "not CT" in said["us-liver"][0] and said["us-liver"][1]
    assert said["ct-covid"][0].startswith("Chest CT: one axial series") and "5 mm" in said["ct-covid"][0] and not said["ct-covid"][1]
    assert "PNG/JPG slices of one series" in said["ct-liver"][0] and not said["ct-liver"][1]  # one series, not 1 study a slice


def test_upload_problems_name_the_users_files(browser, live_server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = live_server().start()
    report = tmp_path / "referral letter.pdf"
    report.write_bytes(b"%PDF-1.4\n%%EOF\n")
    browser.get(server.url + "/")
    upload(browser, [*CT_SERIES, report])  # 10 real CT slices and a PDF: the study is made, the PDF is not used
    wait = WebDriverWait(browser, 40, poll_frequency=0.2)
    wait.until(lambda d: "queued as study" in d.find_element(By.ID, "uploadmsg").text)
    text = browser.find_element(By.ID, "uploadmsg").text
    assert "11 files (" in text and "1 file(s) not used" in text
    assert "referral letter.pdf: unsupported file type '.pdf'" in text and "file-0" not in text
    link = browser.find_element(By.CSS_SELECTOR, "#uploadmsg a").get_attribute("href")
    with server.client() as http:
        study = http.get("/api/studies").json()[0]
    assert link.endswith("/studies/" + study["id"]) and study["n_errors"] == 1
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "service-upload-problems.png"))
    upload(browser, [report])  # nothing usable: refused, named
    wait.until(lambda d: "not accepted" in d.find_element(By.ID, "uploadmsg").text)
    text = browser.find_element(By.ID, "uploadmsg").text
    assert text.startswith("referral letter.pdf: not accepted") and "file-0" not in text


def test_study_page_names_the_files_this_browser_sent(browser, live_server):
    """The server keeps file-001...; the study page opened from the upload shows the user's own names beside them."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from service_helpers import US_IMAGES

    server = live_server().start()
    browser.get(server.url + "/")
    upload(browser, [US_IMAGES[4]])
    wait = WebDriverWait(browser, 40, poll_frequency=0.2)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#uploadmsg a"))
    browser.find_element(By.CSS_SELECTOR, "#uploadmsg a").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".result-card .image-name"))
    shown = browser.find_element(By.CSS_SELECTOR, ".result-card .image-name").text
    assert shown.startswith(US_IMAGES[4].name + " (file-001") and shown.endswith(")")
