"""Done-when of issue 14 (de-identification): a PHI corpus pushed through the real service (REST upload, zip,
PNG/JPG, DICOM node) leaves no marker in the stored files, the database, the log or any API answer.

The markers of PatientID, PatientName, AccessionNumber and StudyInstanceUID (``IDMK...``) may sit in the
database's PACS mapping table (results go back under the original study), so for them the database is
not searched; every other marker (``PHIMK...``, other UIDs, dates) is searched everywhere.
"""

from __future__ import annotations

import io
import time
import zipfile
from datetime import date, timedelta

import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image
from pynetdicom import AE

from phi_corpus import MARK, PHI_FILE_NAMES, find_markers, phi_dataset, phi_jpeg, phi_png, to_bytes
from service_helpers import CT_SERIES, US_IMAGES, file_field, free_port, wait_study

DB_SUFFIXES = (".sqlite3", ".sqlite3-wal", ".sqlite3-shm", ".sqlite3-journal")


def _wait_all_finished(client: httpx.Client, n: int, timeout: float = 60.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        studies = client.get("/api/studies").json()
        if len(studies) >= n and all(s["status"] in ("done", "failed") for s in studies):
            return studies
        time.sleep(0.2)
    raise AssertionError(f"studies not finished: {client.get('/api/studies').json()}")


def _send_dicom(port: int, datasets: list[pydicom.Dataset]) -> list[int]:
    ae = AE(ae_title="MODALITY")
    for ds in datasets:
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="LESIONDX")
    assert assoc.is_established
    statuses = [int(assoc.send_c_store(ds).Status) for ds in datasets]
    assoc.release()
    return statuses


def _uploads() -> list[list[tuple[str, tuple]]]:
    """Three REST requests: CT slices with PHI names, a zip of PHI slices, PNG/JPG with metadata (+ a junk file)."""
    slices = [to_bytes(phi_dataset(path, i)[0]) for i, path in enumerate(CT_SERIES[:6])]
    loose = [("files", (PHI_FILE_NAMES[2].format(i), data, "application/dicom")) for i, data in enumerate(slices[:3])]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, data in enumerate(slices[3:]):
            archive.writestr(f"{MARK}_DOE_JANE/{MARK}_IM{i}.dcm", data)
        archive.writestr(f"{MARK}_DOE_JANE/{MARK}_notes.txt", f"{MARK} report text")
    zipped = [("files", (f"{MARK}_DOE_JANE_MRN.zip", buffer.getvalue(), "application/zip"))]
    pixels = [np.asarray(Image.open(p).convert("RGB")) for p in US_IMAGES[:2]]
    rasters = [("files", (PHI_FILE_NAMES[0].format(1), phi_jpeg(pixels[0]), "image/jpeg")),
               ("files", (PHI_FILE_NAMES[1].format(2), phi_png(pixels[1]), "image/png")),
               ("files", (f"{MARK}_broken.jpg", b"\xff\xd8\xff" + b"junk" * 10, "image/jpeg"))]
    return [loose, zipped, rasters]


def _api_answers(client: httpx.Client, studies: list[dict]) -> list[tuple[str, bytes]]:
    answers = [("list", client.get("/api/studies").content), ("audit", client.get("/api/audit").content),
               ("health", client.get("/api/health").content)]
    for summary in studies:
        detail = client.get(f"/api/studies/{summary['id']}")
        answers.append((f"study {summary['id']}", detail.content))
        for result in detail.json()["results"]:
            urls = [o["url"] for o in result["overlays"]] + ([result["image_url"]] if result["image_url"] else [])
            for url in urls:
                answers.append((url, client.get(url).content))
    answers.append(("audit after reads", client.get("/api/audit").content))
    return answers


def test_phi_corpus_leaves_no_marker_in_storage_database_log_or_api(live_server, tmp_path):
    dicom_port = free_port()
    server = live_server(dicom_port=dicom_port, env={"LESIONDX_LOG_LEVEL": "DEBUG", "LESIONDX_STUDY_QUIET_S": "30"})
    server.start()
    answers: list[tuple[str, bytes]] = []
    with server.client() as client:
        for files in _uploads():
            response = client.post("/api/studies", files=files)
            assert response.status_code == 201, response.text
            answers.append(("upload", response.content))
        received = [phi_dataset(path, 10 + i)[0] for i, path in enumerate(CT_SERIES[6:9])]
        assert _send_dicom(dicom_port, received) == [0, 0, 0]
        studies = _wait_all_finished(client, 4)
        assert sorted(s["status"] for s in studies) == ["done"] * 4, studies
        details = [client.get(f"/api/studies/{s['id']}").json() for s in studies]
        assert sum(d["n_files"] for d in details) == 3 + 3 + 2 + 3  # every image got through
        raster = next(d for d in details if d["task"] == "us-liver")
        assert {e["file"] for e in raster["errors"]} == {"file-001.jpg"}  # the junk file, by pseudonym
        assert sorted(r["image"] for r in raster["results"]) == ["file-002.png", "file-003.png"]
        assert raster["warnings"] and "burned-in" in raster["warnings"][0]["reason"]
        answers += _api_answers(client, studies)
    leaks = {what: find_markers(body) for what, body in answers}
    assert not any(leaks.values()), {k: v for k, v in leaks.items() if v}
    log = server.storage.parent / f"server-{server.port}.log"
    assert log.stat().st_size > 0 and find_markers(log.read_bytes()) == []
    files = [p for p in server.storage.rglob("*") if p.is_file()]
    blobs = [p for p in files if p.name.endswith(DB_SUFFIXES) is False]
    assert len([p for p in blobs if "blobs" in p.parts]) >= 11
    stored = {str(p.relative_to(server.storage)): find_markers(p.read_bytes()) for p in blobs}
    assert not any(stored.values()), {k: v for k, v in stored.items() if v}
    database = [p for p in files if p.name.endswith(DB_SUFFIXES)]
    assert database
    in_db = {p.name: find_markers(p.read_bytes(), ids=False) for p in database}
    assert not any(in_db.values()), in_db
    names = [p.name for p in files] + [str(p) for p in server.storage.rglob("*")]
    assert not any(MARK in n or "DOE" in n for n in names)


def _ct_with(**attributes: str) -> bytes:
    ds = pydicom.dcmread(CT_SERIES[0])
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    buffer = io.BytesIO()
    ds.save_as(buffer)  # as the example files are: no SOPInstanceUID, so no enforced file format
    return buffer.getvalue()


def test_burned_in_annotation_is_a_study_warning_by_default(client):
    files = [("files", ("a.dcm", _ct_with(BurnedInAnnotation="YES"), "application/dicom")),
             ("files", ("b.dcm", CT_SERIES[1].read_bytes(), "application/dicom"))]
    study = wait_study(client, client.post("/api/studies", files=files).json()["id"])
    assert study["status"] == "done" and study["n_files"] == 2 and study["errors"] == []
    assert study["warnings"] == [{"file": "file-001.dcm", "reason": "BurnedInAnnotation is YES: the pixels carry "
                                  "burned-in text that de-identification does not remove"}]
    jpeg = wait_study(client, client.post("/api/studies", files=[file_field(US_IMAGES[0]),
                                                                   file_field(US_IMAGES[1])]).json()["id"])
    assert [w["file"] for w in jpeg["warnings"]] == ["file-001.png and 1 more"]  # one entry per reason
    clean = wait_study(client, client.post("/api/studies", files=[file_field(CT_SERIES[2])]).json()["id"])
    assert clean["warnings"] == []  # CT without the flag: no text expected


def test_burned_in_images_are_refused_when_the_setting_says_so(make_client):
    client = make_client(refuse_burned_in=True)
    response = client.post("/api/studies", files=[
        ("files", ("a.dcm", _ct_with(BurnedInAnnotation="YES"), "application/dicom")), file_field(US_IMAGES[0])])
    assert response.status_code == 422
    reasons = {e["file"]: e["reason"] for e in response.json()["detail"]["errors"]}
    assert reasons["file-001.dcm"].startswith("refused: BurnedInAnnotation is YES")
    assert reasons["file-002.jpg"].startswith("refused: PNG/JPG")
    assert "LESIONDX_REFUSE_BURNED_IN" in reasons["file-002.jpg"]
    ok = client.post("/api/studies", files=[file_field(CT_SERIES[0])])
    assert ok.status_code == 201


def test_ultrasound_dicom_warns_unless_marked_free_of_burned_in_text():
    from lesiondx.service.bounds import IngestPolicy
    from lesiondx.service.ingest import triage_file

    unmarked = triage_file("file-001.dcm", _ct_with(Modality="US"), "s" * 40, policy=IngestPolicy())
    assert unmarked.accepted[0].warnings == ("US images usually carry burned-in text (BurnedInAnnotation not "
                                             "stated); lesiondx does not clean pixels",)
    marked = triage_file("file-001.dcm", _ct_with(Modality="US", BurnedInAnnotation="NO"), "s" * 40,
                         policy=IngestPolicy())
    assert marked.accepted[0].warnings == ()
    refused = triage_file("file-001.dcm", _ct_with(Modality="US"), "s" * 40, policy=IngestPolicy(refuse_burned_in=True))
    assert not refused.accepted and "refused: US images" in refused.errors[0].reason


def test_profile_options_reach_de_identification_from_the_settings(make_client, tmp_path, monkeypatch):
    from lesiondx.io.deid import date_shift_days, pseudonym
    from lesiondx.service.settings import Settings, SettingsError, load_salt

    monkeypatch.setenv("LESIONDX_DEID_DATES", "shift")
    monkeypatch.setenv("LESIONDX_DEID_PATIENT_CHARACTERISTICS", "1")
    settings = Settings.from_env(tmp_path / "store", worker_poll_seconds=0.05)
    assert (settings.deid_dates, settings.deid_patient_characteristics) == ("shift", True)
    client = make_client(**{k: getattr(settings, k) for k in ("storage", "deid_dates", "deid_patient_characteristics")})
    data = _ct_with(PatientID="IDMK001", StudyDate="19411207", PatientAge="097Y", Allergies=f"{MARK}001")
    study = wait_study(client, client.post("/api/studies", files=[("files", ("a.dcm", data, "x"))]).json()["id"])
    assert study["status"] == "done"
    stored = [pydicom.dcmread(p) for p in (tmp_path / "store/blobs").rglob("*") if p.is_file()]
    days = date_shift_days(pseudonym("IDMK001", load_salt(tmp_path / "store")), load_salt(tmp_path / "store"))
    assert [ds.StudyDate for ds in stored] == [(date(1941, 12, 7) - timedelta(days=days)).strftime("%Y%m%d")]
    assert stored[0].PatientAge == "097Y" and "Allergies" not in stored[0]
    assert [c.CodeValue for c in stored[0].DeidentificationMethodCodeSequence] == ["113100", "113107", "113108"]
    monkeypatch.setenv("LESIONDX_DEID_DATES", "keep-all")
    with pytest.raises(SettingsError, match="LESIONDX_DEID_DATES"):
        Settings.from_env(tmp_path / "other")
