"""Regenerate the README's screenshots of the web pages (docs/screenshots/*.png).

Starts the service on a free loopback port with the shipped models (``--test-double``: the TEST DOUBLE
predictor, labelled as such in the pages), uploads the bundled examples (a liver ultrasound image, the 10 real CT-MD chest slices of P002), sets up a
two-case reader study and photographs the pages in headless Chromium (needs Debian chromium and
chromium-driver). Run from the repository root:

    PYTHONPATH=src python scripts/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
US = sorted((ROOT / "examples/aul_liver_us_mini/images").glob("*.jpg"))
CT = sorted((ROOT / "examples/covid_ct_md_mini/series/P002").glob("*.dcm"))
PREDICTOR = "lesiondx.service.testing:series_stub_predictor"
WIDTH = 1000  # px of the saved screenshots


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(storage: Path, port: int, real: bool) -> subprocess.Popen:
    code = ("from pathlib import Path; from lesiondx.service.server import run_server; "
            f"run_server(host='127.0.0.1', port={port}, db=None, storage=Path({str(storage)!r}), dicom_port=None, "
            "dicom_aet='LESIONDX')")
    env = {**os.environ, "LESIONDX_LOG_LEVEL": "WARNING"}
    env.pop("LESIONDX_PREDICTOR", None)
    if not real:
        env["LESIONDX_PREDICTOR"] = PREDICTOR
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    for _ in range(150):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the service did not start")


def _study(http: httpx.Client, paths: list[Path]) -> str:
    files = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in paths]
    study_id = http.post("/api/studies", files=files).raise_for_status().json()["id"]
    for _ in range(3000):
        if http.get(f"/api/studies/{study_id}").json()["status"] in ("done", "failed"):
            return study_id
        time.sleep(0.1)
    raise SystemExit(f"study {study_id} did not finish")


def _save(driver, out: Path, name: str) -> None:
    path = out / f"{name}.png"
    driver.save_screenshot(str(path))
    image = Image.open(path).convert("RGB")
    image = image.resize((WIDTH, round(image.height * WIDTH / image.width)), Image.LANCZOS)
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {path.stat().st_size // 1024} KB")


def _wait(driver, script: str, timeout: float = 30) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: d.execute_script(script))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--test-double", action="store_true", help="the TEST DOUBLE predictor instead of the shipped models")
    args = parser.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="lesiondx-shots-"))
    port = _port()
    proc = _serve(tmp / "store", port, real=not args.test_double)
    url = f"http://127.0.0.1:{port}"
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1560",
                 f"--user-data-dir={tmp / 'profile'}", "--hide-scrollbars"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            us = [_study(http, [p]) for p in US[:2]]
            ct = _study(http, CT)
            cases = [{"case_id": "case-1", "study_id": ct, "truth": "COVID-19"},
                     {"case_id": "case-2", "study_id": us[0], "truth": "benign"}]
            http.post("/api/reader/cases", json={"cases": cases}).raise_for_status()
        driver.get(url + "/")
        _wait(driver, "return document.querySelectorAll('#studies tr[data-status=done]').length === 3")
        _save(driver, args.out, "studies")
        driver.get(f"{url}/studies/{ct}")
        _wait(driver, "const v = document.querySelector('.viewer'); return v && v.dataset.slice !== undefined")
        _wait(driver, "return document.querySelector('.viewer').dataset.slice !== undefined")  # opens on the first finding
        time.sleep(0.3)
        _save(driver, args.out, "study-ct-viewer")
        driver.get(f"{url}/studies/{us[0]}")
        _wait(driver, "const i = document.querySelectorAll('.result-card img'); return i.length === 2 && "
                      "Array.from(i).every(x => x.complete && x.naturalWidth > 0)")
        _save(driver, args.out, "study-us")
        driver.get(url + "/reader")
        reader = next(f"reader-{i}" for i in range(100)  # one whose fixed case order starts with the CT case
                      if hashlib.sha256(f"reader-{i}|case-1".encode()).hexdigest() < hashlib.sha256(f"reader-{i}|case-2".encode()).hexdigest())
        driver.find_element("id", "reader").send_keys(reader)
        driver.execute_script("document.getElementById('mode').value = '1'")
        driver.find_element("id", "start").click()
        _wait(driver, "return document.getElementById('step').textContent.startsWith('Step 1')")  # own call first
        driver.execute_script("document.querySelector('input[name=answer]').checked = true")
        driver.find_element("id", "submit").click()
        _wait(driver, "return document.getElementById('step').textContent.startsWith('Step 2')")  # then the AI result
        _wait(driver, "const v = document.querySelector('#caseviewer .viewer'); return v && v.dataset.slice || "
                      "document.querySelector('#caseimages img')")
        time.sleep(1.0)
        _save(driver, args.out, "reader-with-ai")
    finally:
        driver.quit()
        proc.terminate()
        proc.wait(15)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
