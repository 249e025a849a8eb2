"""Peak resident memory of ``lesiondx serve`` while dcmtk's storescu sends it one large CT study over DICOM.

The study is an ALTERED copy of the real CT-MD series P002, written ``--copies`` times with new UIDs and shifted slice
positions (one study, one series), uncompressed, into a scratch folder that is deleted afterwards. The service runs
with the stub predictor (no model), so the figure is the DICOM node's: receive, de-identify, store.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/dicom_node_memory.py --copies 8 [--parallel 3]

Prints the service's VmHWM (peak resident set) before and after the send.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pydicom
from pydicom.uid import generate_uid

SERIES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "covid_ct_md_sample" / "series" / "P002"


def build_study(source: Path, out: Path, copies: int) -> int:
    """Write ``copies`` shifted copies of ``source``'s slices as one uncompressed series; returns the instance count."""
    paths = sorted(source.glob("*.dcm"))
    zs = [float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]) for p in paths]
    span = max(zs) - min(zs) + 5.0
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    n = 0
    for k in range(copies):
        for path in paths:
            ds = pydicom.dcmread(path)
            ds.decompress()
            x, y, z = (float(v) for v in ds.ImagePositionPatient)
            ds.ImagePositionPatient = [x, y, z - span * k]
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.InstanceNumber = n + 1
            ds.PatientID, ds.PatientName = "BENCH-ALTERED-1", "ALTERED^BENCH"
            ds.save_as(out / f"IM{n:05d}.dcm", enforce_file_format=True)
            n += 1
    return n


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _peak_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=8, help="copies of the 133-slice series (8 → 1,064 instances)")
    parser.add_argument("--parallel", type=int, default=1, help="storescu associations sending at once")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="lesiondx-dicom-mem-"))
    try:
        study, store = scratch / "study", scratch / "storage"
        study.mkdir()
        n = build_study(SERIES, study, args.copies)
        size_mb = sum(p.stat().st_size for p in study.iterdir()) / 1e6
        http, dicom = _free_port(), _free_port()
        env = {**os.environ, "LESIONDX_PREDICTOR": "lesiondx.service.testing:stub_predictor",
               "LESIONDX_STUDY_QUIET_S": "600", "LESIONDX_MAX_SERIES_PIXELS": "1e9"}
        code = ("from pathlib import Path; from lesiondx.service.server import run_server; "
                f"run_server(host='127.0.0.1', port={http}, storage=Path({str(store)!r}), dicom_port={dicom})")
        with open(scratch / "serve.log", "w") as log:
            server = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=log, stderr=log)
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"http://127.0.0.1:{http}/api/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            idle = _peak_kb(server.pid)
            files = sorted(str(p) for p in study.glob("*.dcm"))
            started = time.time()
            senders = [subprocess.Popen(["storescu", "-aet", "MODALITY", "-aec", "LESIONDX", "127.0.0.1", str(dicom),
                                         *files[i::args.parallel]], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
                       for i in range(args.parallel)]
            codes = [s.wait() for s in senders]
            seconds = time.time() - started
            time.sleep(3)
            peak = _peak_kb(server.pid)
            studies = len(httpx.get(f"http://127.0.0.1:{http}/api/studies").json())
        finally:
            server.terminate()
            server.wait(30)
        print(f"{n} instances, {size_mb:.0f} MB uncompressed, {args.parallel} association(s), storescu exit {codes}, "
              f"{seconds:.0f} s, {studies} study; service peak resident {idle / 1024:.0f} MB idle → {peak / 1024:.0f} MB")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
