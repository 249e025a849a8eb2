"""A real PACS round trip: Orthanc (Debian package) on loopback ports sends a CT study to lesiondx's
DICOM node; lesiondx's results (SEG + TID 1500 SR + SC) must come back inside the SAME patient and
study in Orthanc, the SR must parse with highdicom and reference the SEG and the images, and a
resend must leave one current result version in Orthanc.

Predictor: the real ct-covid model on the bundled CT-MD P002 slices (a COVID-19 patient), given
valid UIDs and identifying patient attributes first (the bundled files have an empty
SOPInstanceUID). Orthanc's REST port refuses remote clients and its DICOM port only accepts the
lesiondx modality from 127.0.0.1 (the DICOM port itself listens on all interfaces: Orthanc 1.10
has no bind-address setting).
"""

from __future__ import annotations

import io
import time
import warnings

import highdicom as hd
import pydicom
import pytest

from lesiondx.service.pacs.orthanc import Orthanc, find_orthanc, with_new_uids
from lesiondx.service.settings import PacsTarget
from service_helpers import CT_SERIES, free_port

pytestmark = pytest.mark.skipif(find_orthanc() is None, reason="needs Orthanc (apt-get install orthanc)")
PATIENT, NAME, ACCESSION = "RT-PATIENT-42", "ROUNDTRIP^ANNA", "RT-ACC-9"


@pytest.fixture
def roundtrip(make_client, tmp_path):
    """Orthanc + an in-process lesiondx (real ct-covid model) wired both ways; yields (orthanc, client, study ids)."""
    lesiondx_port, orthanc_dicom = free_port(), free_port()
    orthanc = Orthanc(tmp_path / "orthanc", http_port=free_port(), dicom_port=orthanc_dicom, lesiondx_aet="LESIONDX",
                      lesiondx_port=lesiondx_port)
    try:
        client = make_client(predictor=None, dicom_port=lesiondx_port, host="127.0.0.1",
                             pacs=PacsTarget("ORTHANC", "127.0.0.1", orthanc_dicom), export_retry_seconds=(1.0,),
                             study_quiet_seconds=30)
        blobs = with_new_uids(CT_SERIES, PatientID=PATIENT, PatientName=NAME, AccessionNumber=ACCESSION,
                              PatientBirthDate="19600101")
        answers = [orthanc.upload(b) for b in blobs]
        headers = [pydicom.dcmread(io.BytesIO(b), stop_before_pixels=True) for b in blobs]
        yield orthanc, client, answers[0]["ParentStudy"], str(headers[0].StudyInstanceUID), {
            str(ds.SOPInstanceUID) for ds in headers}
    finally:
        orthanc.stop()


def wait_exported(client, after: float, timeout: float = 180.0) -> list[dict]:
    """Every lesiondx study finished and its export settled, with one sent after ``after`` (epoch s)."""
    deadline = time.monotonic() + timeout
    while True:
        studies = [client.get(f"/api/studies/{s['id']}").json() for s in client.get("/api/studies").json()]
        exports = [s.get("export") or {} for s in studies]
        settled = studies and all(s["status"] in ("done", "failed") for s in studies) and all(
            e.get("state") == "sent" or (e.get("state") == "failed" and not e.get("next_try_at")) for e in exports)
        sent_after = any(e.get("state") == "sent" and e.get("sent_at") and
                         _epoch(e["sent_at"]) > after for e in exports)
        if settled and sent_after:
            return studies
        if time.monotonic() > deadline:
            raise AssertionError(f"exports did not settle: {[(s['status'], s.get('failure'), s.get('export')) for s in studies]}")
        time.sleep(0.5)


def _epoch(iso: str) -> float:
    from datetime import datetime, timezone

    value = datetime.fromisoformat(iso)
    return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()


def result_series(orthanc: Orthanc, study: str) -> dict[str, list[dict]]:
    by_modality: dict[str, list[dict]] = {}
    for series in orthanc.series_of(study):
        by_modality.setdefault(series["modality"], []).append(series)
    return by_modality


def test_orthanc_study_comes_back_with_seg_sr_sc_in_the_same_patient_and_study_and_a_resend_replaces_them(roundtrip, tmp_path):
    orthanc, client, study, study_uid, source_sops = roundtrip
    start = time.time()
    orthanc.send_to_lesiondx(study)
    (lesiondx_study,) = wait_exported(client, start)
    assert lesiondx_study["task"] == "ct-covid" and lesiondx_study["export"]["state"] == "sent"
    assert PATIENT not in str(lesiondx_study) and NAME not in str(lesiondx_study)  # the API never shows originals
    assert len(orthanc.get("/patients")) == 1 and orthanc.get("/studies") == [study]
    series = result_series(orthanc, study)
    assert sorted(series) == ["CT", "OT", "SEG", "SR"], series
    for modality in ("SEG", "SR", "OT"):
        (one,) = series[modality]
        assert "not verified" in one["description"]
        tags = orthanc.get(f"/instances/{one['instances'][0]}/simplified-tags")
        assert (tags["PatientID"], tags["PatientName"], tags["StudyInstanceUID"], tags["AccessionNumber"]) == (
            PATIENT, NAME, study_uid, ACCESSION)
    (seg_id,) = series["SEG"][0]["instances"]
    seg = hd.seg.Segmentation.from_dataset(pydicom.dcmread(io.BytesIO(orthanc.file(seg_id))))
    referenced = {str(i.ReferencedSOPInstanceUID) for s in seg.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence}
    assert referenced and referenced <= source_sops
    path = tmp_path / "sr.dcm"
    path.write_bytes(orthanc.file(series["SR"][0]["instances"][0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sr = hd.sr.srread(path)
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert groups and groups[0].referenced_segment.referenced_sop_instance_uid == seg.SOPInstanceUID
    probability = [m.value for m in groups[0].get_measurements()]
    assert probability and abs(probability[0] - lesiondx_study["results"][0]["probability"]) < 1e-6
    evidence = {str(i.ReferencedSOPInstanceUID) for s in sr.CurrentRequestedProcedureEvidenceSequence
                for r in s.ReferencedSeriesSequence for i in r.ReferencedSOPSequence}
    assert source_sops <= evidence and seg.SOPInstanceUID in evidence
    for sc_id in series["OT"][0]["instances"]:
        sc = pydicom.dcmread(io.BytesIO(orthanc.file(sc_id)), stop_before_pixels=True)
        assert {str(i.ReferencedSOPInstanceUID) for i in sc.SourceImageSequence} <= source_sops

    # a resend of the study (the CT series only: lesiondx's DICOM node refuses (0xC000) the SEG / SR / SC
    # now in the study) leaves one current result version in Orthanc: same UIDs, overwritten, not added
    before = {m: [len(s["instances"]) for s in found] for m, found in series.items()}
    resend = time.time()
    orthanc.send_to_lesiondx(*(s["id"] for s in series["CT"]))
    studies = wait_exported(client, resend)
    after = {m: [len(s["instances"]) for s in found] for m, found in result_series(orthanc, study).items()}
    assert orthanc.get("/studies") == [study] and len(orthanc.get("/patients")) == 1
    assert after == before
    if len(studies) != 1:
        pytest.xfail("lesiondx filed the resend as a second study: needs the reopen of closed studies (integrity)")
    assert studies[0]["export"]["version"] == 2
