#!/usr/bin/env python3
"""Check lesiondx ↔ Orthanc both ways on this machine (loopback only), as tests/service/test_service_orthanc.py does.

Starts a throw-away Orthanc (Debian package ``orthanc``) and ``lesiondx serve`` with ``LESIONDX_PACS``
pointing at it, uploads a CT series into Orthanc (default: the bundled CT-MD P002 slices, given fresh
UIDs), asks Orthanc to C-STORE it to lesiondx, waits for the result, and prints the series Orthanc then
holds for that study (expected: CT + SEG + SR + OT, all in the same patient and study).

    PYTHONPATH=src python scripts/orthanc_roundtrip.py [--series DIR] [--stub] [--keep]

``--stub`` uses the test-double predictor (fast; its ct-covid output has no slice boxes, so no SEG);
``--keep`` leaves both running until Ctrl-C (Orthanc Explorer at the printed URL).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from lesiondx.service.pacs.orthanc import Orthanc, with_new_uids

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=Path, default=ROOT / "examples/covid_ct_md_mini/series/P002")
    parser.add_argument("--stub", action="store_true", help="test-double predictor instead of the shipped models")
    parser.add_argument("--keep", action="store_true", help="keep Orthanc and lesiondx running until Ctrl-C")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    files = sorted(p for p in args.series.iterdir() if p.is_file())
    if not files:
        print(f"{args.series}: no files", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="lesiondx-orthanc-"))
    http_port, lesiondx_port, orthanc_dicom = free_port(), free_port(), free_port()
    orthanc = Orthanc(work / "orthanc", http_port=free_port(), dicom_port=orthanc_dicom, lesiondx_aet="LESIONDX",
                      lesiondx_port=lesiondx_port)
    env = {**os.environ, "LESIONDX_PACS": f"ORTHANC@127.0.0.1:{orthanc_dicom}", "LESIONDX_EXPORT_RETRY_S": "5"}
    if args.stub:
        env["LESIONDX_PREDICTOR"] = "lesiondx.service.testing:stub_predictor"
    log = open(work / "lesiondx.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "lesiondx.cli", "serve", "--host", "127.0.0.1", "--port",
                               str(http_port), "--storage", str(work / "store"), "--dicom-port", str(lesiondx_port),
                               "--dicom-aet", "LESIONDX"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                print(f"lesiondx did not start; see {work / 'lesiondx.log'}", file=sys.stderr)
                return 1
            time.sleep(0.3)
        study = [orthanc.upload(b) for b in with_new_uids(files)][0]["ParentStudy"]
        print(f"Orthanc {orthanc.url} holds study {study}; sending it to lesiondx at 127.0.0.1:{lesiondx_port}")
        orthanc.send_to_lesiondx(study)
        deadline = time.monotonic() + args.timeout
        while True:
            studies = httpx.get(url + "/api/studies").json()
            detail = httpx.get(url + studies[0]["url"]).json() if studies else {}
            export = detail.get("export") or {}
            if detail.get("status") == "failed" or export.get("state") == "sent" or (
                    export.get("state") == "failed" and not export.get("next_try_at")):
                break
            if time.monotonic() > deadline:
                print(f"timed out: {detail.get('status')} / {export}", file=sys.stderr)
                return 1
            time.sleep(1)
        print(f"lesiondx study {detail['id']}: {detail['status']}, {detail.get('results', [{}])[0].get('label')}; "
              f"export {export}")
        for series in orthanc.series_of(study):
            print(f"  {series['modality']:4} {len(series['instances']):3} instance(s)  {series['description']}")
        ok = {"SEG", "SR", "OT"} <= {s["modality"] for s in orthanc.series_of(study)} or (
            args.stub and {"SR", "OT"} <= {s["modality"] for s in orthanc.series_of(study)})
        print("round trip OK" if ok else "round trip INCOMPLETE")
        if args.keep:
            print(f"Orthanc Explorer: {orthanc.url}/app/explorer.html · lesiondx: {url} · Ctrl-C to stop")
            while True:
                time.sleep(3600)
        return 0 if ok else 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.terminate()
        server.wait(15)
        orthanc.stop()
        print(f"logs in {work}")


if __name__ == "__main__":
    sys.exit(main())
