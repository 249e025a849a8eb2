"""A throw-away Orthanc (Debian package ``orthanc``) on loopback ports, for the round-trip test and
``scripts/orthanc_roundtrip.py``: starts it with a generated JSON configuration that knows lesiondx
as a DICOM modality, and wraps the few REST calls the round trip needs.

Configuration written (see README "For hospital IT" for a production snippet): ``RemoteAccessAllowed``
false (REST from localhost only), ``DicomAlwaysAllowStore`` / ``DicomAlwaysAllowEcho`` false and
``DicomCheckModalityHost`` true (only the lesiondx modality at 127.0.0.1 may talk DICOM), and
``OverwriteInstances`` false by default (Orthanc's default, like most PACS: a re-sent SOP Instance UID is answered
Success and the first copy kept); lesiondx gives every result version its own UIDs, so it needs no overwriting.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pydicom
from pydicom.uid import generate_uid


def with_new_uids(paths: list[Path], **attributes: str) -> list[bytes]:
    """The files as one new study (fresh Study/Series/SOP Instance UIDs, ``attributes`` set), as bytes.

    The bundled CT-MD slices have an empty SOPInstanceUID, which Orthanc and dcmtk refuse.
    """
    study_uid, series_uid = generate_uid(), generate_uid()
    out = []
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        for keyword, value in attributes.items():
            setattr(ds, keyword, value)
        buffer = io.BytesIO()
        ds.save_as(buffer)
        out.append(buffer.getvalue())
    return out


def find_orthanc() -> Path | None:
    """The Orthanc executable (``Orthanc`` on PATH or Debian's ``/usr/sbin/Orthanc``), or None."""
    found = shutil.which("Orthanc")
    if found:
        return Path(found)
    return Path("/usr/sbin/Orthanc") if Path("/usr/sbin/Orthanc").exists() else None


def orthanc_config(root: Path, *, http_port: int, dicom_port: int, lesiondx_aet: str, lesiondx_port: int,
                   overwrite_instances: bool = False) -> dict[str, Any]:
    """The JSON configuration of a local Orthanc that sends to and receives from lesiondx."""
    return {"Name": "lesiondx-roundtrip", "StorageDirectory": str(root / "db"), "IndexDirectory": str(root / "db"),
            "HttpPort": http_port, "DicomPort": dicom_port, "DicomAet": "ORTHANC", "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False, "Plugins": [], "DicomCheckCalledAet": True,
            "DicomAlwaysAllowStore": False, "DicomAlwaysAllowEcho": False, "DicomCheckModalityHost": True,
            "DicomModalities": {"lesiondx": [lesiondx_aet, "127.0.0.1", lesiondx_port]},
            "OverwriteInstances": overwrite_instances, "StableAge": 1, "ConcurrentJobs": 1, "HttpThreadsCount": 4}


class Orthanc:
    """A started Orthanc process (:meth:`stop` it) with REST helpers."""

    def __init__(self, root: Path, *, http_port: int, dicom_port: int, lesiondx_aet: str, lesiondx_port: int,
                 executable: Path | None = None, overwrite_instances: bool = False) -> None:
        exe = executable or find_orthanc()
        if exe is None:
            raise FileNotFoundError("Orthanc is not installed (Debian/Ubuntu: apt-get install orthanc)")
        (root / "db").mkdir(parents=True, exist_ok=True)
        config = root / "orthanc.json"
        config.write_text(json.dumps(orthanc_config(root, http_port=http_port, dicom_port=dicom_port,
                                                    lesiondx_aet=lesiondx_aet, lesiondx_port=lesiondx_port,
                                                    overwrite_instances=overwrite_instances), indent=1))
        self.root, self.dicom_port = root, dicom_port
        self.url = f"http://127.0.0.1:{http_port}"
        self._log = open(root / "orthanc.log", "wb")
        self.proc = subprocess.Popen([str(exe), str(config)], stdout=self._log, stderr=self._log, cwd=root)
        self.http = httpx.Client(base_url=self.url, timeout=60)
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.http.get("/system").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Orthanc did not start: {(root / 'orthanc.log').read_text()[-2000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()

    def upload(self, data: bytes) -> dict[str, Any]:
        """``POST /instances``: store one DICOM file; Orthanc's answer (``ParentStudy``...)."""
        response = self.http.post("/instances", content=data)
        response.raise_for_status()
        return response.json()

    def send_to_lesiondx(self, *resources: str) -> None:
        """``POST /modalities/lesiondx/store``: C-STORE studies / series to lesiondx (returns when sent)."""
        response = self.http.post("/modalities/lesiondx/store", json={"Resources": list(resources), "Synchronous": True})
        response.raise_for_status()

    def get(self, path: str) -> Any:
        response = self.http.get(path)
        response.raise_for_status()
        return response.json()

    def series_of(self, study_id: str) -> list[dict[str, Any]]:
        """Every series of a study with its modality, description and instance ids."""
        return [{"id": s["ID"], "modality": s["MainDicomTags"].get("Modality"),
                 "description": s["MainDicomTags"].get("SeriesDescription", ""), "instances": s["Instances"]}
                for s in self.get(f"/studies/{study_id}/series")]

    def file(self, instance_id: str) -> bytes:
        response = self.http.get(f"/instances/{instance_id}/file")
        response.raise_for_status()
        return response.content
