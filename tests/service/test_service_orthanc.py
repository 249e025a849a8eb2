"""A real PACS round trip: Orthanc (Debian package) on loopback ports sends a CT study to lesiondx's
DICOM node; lesiondx's results (SEG + TID 1500 SR + SC) must come back inside the SAME patient and
study in Orthanc, the SR must parse with highdicom and reference the SEG and the images, and a
partial-then-complete send must leave both result versions in Orthanc, started with its default
``"OverwriteInstances": false`` (it keeps the first copy of a re-sent SOP Instance UID, as most PACS do): v2 with
its own UIDs, its SR naming v1's SR as predecessor; an identical resend and a re-export of v2 add nothing (and, with
the reopen of closed studies, there is one lesiondx study).

Predictor: the real ct-covid model on the bundled CT-MD P002 slices (a COVID-19 patient), given
valid UIDs and identifying patient attributes first (the bundled files have an empty
SOPInstanceUID). Orthanc's REST port refuses remote clients and its DICOM port only accepts the
lesiondx modality from 127.0.0.1 (the DICOM port itself listens on all interfaces: Orthanc 1.10
has no bind-address setting).
"""

from __future__ import annotations

import io
import subprocess
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
                      lesiondx_port=lesiondx_port, overwrite_instances=False)
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


def _settled(client) -> list[dict]:
    """Every lesiondx study with its detail, or [] while any is unfinished or its export unsettled."""
    studies = [client.get(f"/api/studies/{s['id']}").json() for s in client.get("/api/studies").json()]
    for study in studies:
        export = study.get("export") or {}
        if study["status"] not in ("done", "failed") or not (
                export.get("state") == "sent" or (export.get("state") == "failed" and not export.get("next_try_at"))):
            return []
    return studies


def wait_exported(client, after: float, timeout: float = 240.0) -> list[dict]:
    """The lesiondx studies once all are settled and one export was sent after ``after`` (epoch s)."""
    deadline = time.monotonic() + timeout
    while True:
        studies = _settled(client)
        if any((s["export"] or {}).get("sent_at") and _epoch(s["export"]["sent_at"]) > after for s in studies):
            return studies
        if time.monotonic() > deadline:
            raise AssertionError(f"no export after the send: {client.get('/api/studies').json()}")
        time.sleep(0.5)


def wait_resend_handled(client, after: float, n_instances: int, timeout: float = 240.0) -> list[dict]:
    """After an identical resend: a new export (the resend became a re-run or a new study) or, where
    lesiondx drops instances it already holds (``duplicates_dropped``), all of them dropped."""
    deadline = time.monotonic() + timeout
    while True:
        studies = _settled(client)
        if studies and (sum(s.get("duplicates_dropped") or 0 for s in studies) >= n_instances or any(
                (s["export"] or {}).get("sent_at") and _epoch(s["export"]["sent_at"]) > after for s in studies)):
            return studies
        if time.monotonic() > deadline:
            raise AssertionError(f"resend not handled: {client.get('/api/studies').json()}")
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


def counts(orthanc: Orthanc, study: str) -> dict[str, list[int]]:
    return {m: [len(s["instances"]) for s in found] for m, found in result_series(orthanc, study).items()}


def latest(studies: list[dict]) -> dict:
    return max(studies, key=lambda s: _epoch(s["export"]["sent_at"]) if (s["export"] or {}).get("sent_at") else 0)


def read_sr(orthanc: Orthanc, series: dict[str, list[dict]], tmp_path):
    path = tmp_path / "sr.dcm"
    path.write_bytes(orthanc.file(series["SR"][0]["instances"][0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hd.sr.srread(path)


def test_orthanc_round_trip_partial_then_complete_then_resend(roundtrip, tmp_path):
    orthanc, client, study, study_uid, source_sops = roundtrip
    (ct_series,) = orthanc.get(f"/studies/{study}/series")
    instances = sorted(ct_series["Instances"])
    sop_of = {i: orthanc.get(f"/instances/{i}/simplified-tags")["SOPInstanceUID"] for i in instances}

    # 1. part of the series (a transfer cut short): results come back into the same patient and study
    start = time.time()
    orthanc.send_to_lesiondx(*instances[:6])
    (first,) = wait_exported(client, start)
    assert first["task"] == "ct-covid" and first["export"]["state"] == "sent"
    assert PATIENT not in str(first) and NAME not in str(first)  # the API never shows the originals
    assert len(orthanc.get("/patients")) == 1 and orthanc.get("/studies") == [study]
    series = result_series(orthanc, study)
    assert sorted(series) == ["CT", "OT", "SEG", "SR"], series
    for modality in ("SEG", "SR", "OT"):
        (one,) = series[modality]
        assert "not verified" in one["description"]
        tags = orthanc.get(f"/instances/{one['instances'][0]}/simplified-tags")
        assert (tags["PatientID"], tags["PatientName"], tags["StudyInstanceUID"], tags["AccessionNumber"]) == (
            PATIENT, NAME, study_uid, ACCESSION)
    sent_sops = {sop_of[i] for i in instances[:6]}
    (seg_id,) = series["SEG"][0]["instances"]
    seg = hd.seg.Segmentation.from_dataset(pydicom.dcmread(io.BytesIO(orthanc.file(seg_id))))
    referenced = {str(i.ReferencedSOPInstanceUID) for s in seg.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence}
    assert referenced and referenced <= sent_sops
    sr = read_sr(orthanc, series, tmp_path)
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert groups and groups[0].referenced_segment.referenced_sop_instance_uid == seg.SOPInstanceUID
    probability = [m.value for m in groups[0].get_measurements()]
    assert probability and abs(probability[0] - first["results"][0]["probability"]) < 1e-6
    evidence = {str(i.ReferencedSOPInstanceUID) for s in sr.CurrentRequestedProcedureEvidenceSequence
                for r in s.ReferencedSeriesSequence for i in r.ReferencedSOPSequence}
    assert sent_sops <= evidence and seg.SOPInstanceUID in evidence
    for sc_id in series["OT"][0]["instances"]:
        sc = pydicom.dcmread(io.BytesIO(orthanc.file(sc_id)), stop_before_pixels=True)
        assert {str(i.ReferencedSOPInstanceUID) for i in sc.SourceImageSequence} <= sent_sops

    # 2. the complete series: a NEW version (v2) with new Series/SOP Instance UIDs. Orthanc keeps the first copy of a
    # re-sent UID ("OverwriteInstances": false, its default, like most PACS), so reusing v1's UIDs left v1 there
    # while lesiondx said "sent v2". Now Orthanc holds both versions; v2's SR names v1's SR as its predecessor.
    v1_sops = {m: {i for s in found for i in s["instances"]} for m, found in series.items() if m != "CT"}
    v1_sr = pydicom.dcmread(io.BytesIO(orthanc.file(series["SR"][0]["instances"][0])), stop_before_pixels=True)
    complete = time.time()
    orthanc.send_to_lesiondx(ct_series["ID"])
    studies = wait_exported(client, complete)
    now = latest(studies)
    assert now["export"]["version"] == 2 and now["export"]["state"] == "sent"
    after_complete = counts(orthanc, study)
    overlays = {o["name"] for r in now["results"] for o in r["overlays"]}
    assert orthanc.get("/studies") == [study] and len(orthanc.get("/patients")) == 1
    current = {m: [s for s in found if " v2 " in s["description"]] for m, found in result_series(orthanc, study).items()}
    old = {m: [s for s in found if " v1 " in s["description"]] for m, found in result_series(orthanc, study).items()}
    for modality in ("SEG", "SR", "OT"):
        assert len(current[modality]) == 1 and len(old[modality]) == 1, after_complete
        assert {i for s in old[modality] for i in s["instances"]} == v1_sops[modality]  # v1 kept as it was
        assert not v1_sops[modality] & set(current[modality][0]["instances"])
    assert len(current["OT"][0]["instances"]) == len(overlays)
    sr = read_sr(orthanc, current, tmp_path)
    (group,) = sr.content.get_volumetric_roi_measurement_groups()
    assert abs(group.get_measurements()[0].value - now["results"][0]["probability"]) < 1e-6
    evidence = {str(i.ReferencedSOPInstanceUID) for s in sr.CurrentRequestedProcedureEvidenceSequence
                for r in s.ReferencedSeriesSequence for i in r.ReferencedSOPSequence}
    assert set(sop_of.values()) <= evidence  # the current version is the complete series'
    (predecessor,) = sr.PredecessorDocumentsSequence
    (pre_series,) = predecessor.ReferencedSeriesSequence
    (pre_sop,) = pre_series.ReferencedSOPSequence
    assert (predecessor.StudyInstanceUID, pre_series.SeriesInstanceUID, pre_sop.ReferencedSOPInstanceUID,
            pre_sop.ReferencedSOPClassUID) == (study_uid, v1_sr.SeriesInstanceUID, v1_sr.SOPInstanceUID, v1_sr.SOPClassUID)

    # 3. the same series again: no new version; v2 sent again (e.g. queued again by hand): Orthanc keeps one copy
    resend = time.time()
    orthanc.send_to_lesiondx(ct_series["ID"])
    studies = wait_resend_handled(client, resend, len(instances))
    assert counts(orthanc, study) == after_complete and orthanc.get("/studies") == [study]
    if len(studies) != 1:
        pytest.xfail("lesiondx filed the later sends as new studies: needs the reopen of closed studies (integrity)")
    assert studies[0]["export"]["version"] == 2  # partial = v1, complete = v2, identical resend: no new version
    resent = lambda: [e for e in client.get("/api/audit").json() if e["action"] == "dicom_resent"]  # noqa: E731
    _until(resent, 10, resent)  # Orthanc's re-send is audited: who, how many copies dropped, nothing re-analysed
    assert resent()[0]["actor"] == "dicom:ORTHANC" and "nothing re-analysed" in resent()[0]["detail"], resent()
    again = time.time()
    assert client.app.state.core.queue_export(studies[0]["id"])
    studies = wait_exported(client, again)
    assert latest(studies)["export"]["version"] == 2 and counts(orthanc, study) == after_complete
    sr_again = read_sr(orthanc, current, tmp_path)
    assert sr_again.SOPInstanceUID == sr.SOPInstanceUID and sr_again.PredecessorDocumentsSequence == sr.PredecessorDocumentsSequence


def _until(check, timeout: float, what) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what()
        time.sleep(0.3)


def _patients(orthanc: Orthanc) -> list[str]:
    return sorted(orthanc.get(f"/patients/{p}")["MainDicomTags"]["PatientID"] for p in orthanc.get("/patients"))


@pytest.mark.parametrize("back_by", ["next study", "study sent again"])
def test_results_given_up_while_the_pacs_was_down_reach_it_once_it_is_back(make_client, tmp_path, back_by):
    """PACS (Orthanc) down for longer than the retries: the export gives up. Once Orthanc is back, the next
    study's export goes through and the given-up one follows; or the study is sent again (storescu) and its
    results go out. Filed under the study's own original patient and study. Was: given up for good (the study
    sent again was dropped as duplicates and nothing went out either)."""
    orthanc_dicom, orthanc_http, node = free_port(), free_port(), free_port()
    client = make_client(pacs=PacsTarget("ORTHANC", "127.0.0.1", orthanc_dicom), export_retry_seconds=(0.2,),
                         export_max_attempts=2, dicom_port=node, host="127.0.0.1", study_quiet_seconds=60)
    (tmp_path / "send").mkdir()
    first = with_new_uids(CT_SERIES[:4], PatientID="DOWN-1", PatientName="DOWN^ONE")
    for i, blob in enumerate(first):
        (tmp_path / "send" / f"a{i}.dcm").write_bytes(blob)

    def storescu() -> None:
        sent = subprocess.run(["storescu", "-xs", "-aet", "ORTHANC", "-aec", "LESIONDX", "127.0.0.1", str(node),
                               *map(str, sorted((tmp_path / "send").glob("*.dcm")))], capture_output=True, text=True)
        assert sent.returncode == 0, sent.stderr

    storescu()
    exported = lambda: [(s["export"] or {}) for s in (client.get(f"/api/studies/{x['id']}").json()  # noqa: E731
                                                      for x in client.get("/api/studies").json())]
    _until(lambda: any("gave up" in str(e.get("reason")) for e in exported()), 60, exported)
    orthanc = Orthanc(tmp_path / "orthanc", http_port=orthanc_http, dicom_port=orthanc_dicom, lesiondx_aet="LESIONDX",
                      lesiondx_port=node)
    try:
        if back_by == "next study":
            second = with_new_uids(CT_SERIES[:4], PatientID="UP-2", PatientName="UP^TWO")
            client.post("/api/studies", files=[("files", (f"b{i}.dcm", b, "application/dicom")) for i, b in enumerate(second)])
        else:
            storescu()
        _until(lambda: "DOWN-1" in _patients(orthanc) and all(e.get("state") == "sent" for e in exported()), 90,
               exported)
        uid_one = str(pydicom.dcmread(io.BytesIO(first[0]), stop_before_pixels=True).StudyInstanceUID)
        (study,) = [s for s in orthanc.get("/studies")
                    if orthanc.get(f"/studies/{s}")["MainDicomTags"]["StudyInstanceUID"] == uid_one]
        assert {"SR", "OT"} <= set(result_series(orthanc, study))
    finally:
        orthanc.stop()


def _vendor_objects(first: bytes) -> list[bytes]:
    """What else a PACS holds in a CT study: a dose SR, a localizer, a Siemens CSA Non-Image object (private SOP
    class 1.3.12.2.1107.5.9.1, no pixel data)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ct = pydicom.dcmread(io.BytesIO(first))
    out = []
    for sop_class, modality in (("1.2.840.10008.5.1.4.1.1.88.67", "SR"), ("1.3.12.2.1107.5.9.1", "CT")):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        for keyword in ("PatientID", "PatientName", "StudyInstanceUID"):
            setattr(ds, keyword, ct.get(keyword))
        ds.SeriesInstanceUID, ds.Modality, ds.SeriesNumber, ds.InstanceNumber = generate_uid(), modality, 99, 1
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        out.append(buffer.getvalue())
    ct.SOPInstanceUID = ct.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ct.SeriesInstanceUID, ct.ImageType = generate_uid(), ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    buffer = io.BytesIO()
    ct.save_as(buffer)
    return [*out, buffer.getvalue()]


def forwarded(make_client, tmp_path, objects: list[bytes]) -> tuple[dict, list[dict]]:
    """Upload ``objects`` (one study) to a fresh Orthanc, have Orthanc send the study to lesiondx (raises when its store
    job fails) and wait until lesiondx analysed it; (the only lesiondx study's detail, the audit log)."""
    lesiondx_port = free_port()
    orthanc = Orthanc(tmp_path / "orthanc", http_port=free_port(), dicom_port=free_port(), lesiondx_aet="LESIONDX",
                      lesiondx_port=lesiondx_port)
    try:
        client = make_client(dicom_port=lesiondx_port, host="127.0.0.1", study_quiet_seconds=60)
        answers = [orthanc.upload(b) for b in objects]
        orthanc.send_to_lesiondx(answers[0]["ParentStudy"])  # raises on a failed store job
        _until(lambda: [s for s in client.get("/api/studies").json() if s["status"] == "done"], 30,
               lambda: client.get("/api/studies").json())
        time.sleep(1.0)  # a late association reopening the study would show now
        (listed,) = client.get("/api/studies").json()
        return client.get(f"/api/studies/{listed['id']}").json(), client.get("/api/audit").json()
    finally:
        orthanc.stop()


def _ignored(audit: list[dict]) -> str:
    return " ".join(e["detail"] for e in audit if e["action"] == "dicom_ignored")


def test_orthanc_forwarding_a_whole_ct_study_succeeds_and_only_the_axial_series_is_analysed(make_client, tmp_path):
    """Was: Orthanc's store job of a CT study holding a Siemens CSA Non-Image object ended in 'Failure' with nothing
    received (lesiondx negotiated no presentation context for the private SOP class: 'Cannot transcode ... to one
    of []'); one holding a dose SR failed on its 0xC000; the localizer became a second CT series. Now the job
    succeeds and the lesiondx study holds the axial slices only."""
    blobs = with_new_uids(CT_SERIES[:4], PatientID="FWD-1", PatientName="FORWARD^ALL")
    study, audit = forwarded(make_client, tmp_path, [*_vendor_objects(blobs[0]), *blobs])
    assert study["n_files"] == 4 and study["task"] == "ct-covid" and study["errors"] == []
    for kind in ("private SOP class", "non-image object (SR)", "CT localizer"):  # Orthanc: one association each
        assert kind in _ignored(audit)


def _two_transfer_syntaxes(blobs: list[bytes]) -> list[bytes]:
    """The even slices as sent (JPEG lossless), the odd ones decompressed (explicit VR little endian): Orthanc then
    needs a presentation context it did not propose first and opens a second association for them."""
    out = []
    for i, blob in enumerate(blobs):
        if i % 2:
            ds = pydicom.dcmread(io.BytesIO(blob))
            ds.decompress()
            buffer = io.BytesIO()
            ds.save_as(buffer)
            blob = buffer.getvalue()
        out.append(blob)
    return out


def test_orthanc_sending_one_study_over_two_associations_gets_it_analysed_once_whole(make_client, tmp_path):
    """Orthanc opens a new association when a transfer syntax it has not negotiated appears. Was: the first
    association's release closed the study, a partial study (the JPEG slices) was analysed, then the second
    association reopened it (result_version 2, two exports). Now a short grace after the last release lets the
    next association join: one analysis of all 10 slices."""
    blobs = _two_transfer_syntaxes(with_new_uids(CT_SERIES, PatientID="MIX-1", PatientName="MIXED^TS"))
    study, audit = forwarded(make_client, tmp_path, blobs)
    assert study["n_files"] == 10 and study["result_version"] == 1 and study["status"] == "done", study
    assert not [e for e in audit if e["action"] == "dicom_reopen"]


def _other_modalities(first: bytes) -> list[bytes]:
    """Images of the same study from other modalities, as a PACS holds them: a PET (of a PET/CT), an MR and another
    vendor's SEG (pixel data, not lesiondx's AI mark). Built from a CT slice with the SOP class / modality changed."""
    from pydicom.uid import generate_uid

    out = []
    for sop_class, modality in (("1.2.840.10008.5.1.4.1.1.128", "PT"), ("1.2.840.10008.5.1.4.1.1.4", "MR"),
                                ("1.2.840.10008.5.1.4.1.1.66.4", "SEG")):
        ds = pydicom.dcmread(io.BytesIO(first))
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID, ds.Modality, ds.SeriesDescription = generate_uid(), modality, f"vendor {modality}"
        buffer = io.BytesIO()
        ds.save_as(buffer)
        out.append(buffer.getvalue())
    return out


def test_orthanc_forwarding_a_study_with_pet_mr_and_a_vendor_seg_succeeds(make_client, tmp_path):
    """Was: the PET, MR and SEG images were answered 0xC000 ('unsupported modality'), so Orthanc's store job of the
    whole study ended in failure (a hospital reads it as the AI node being down) and was retried. Now they are
    accepted, not stored, and counted in one ``dicom_ignored`` audit entry each association; the CT is analysed."""
    blobs = with_new_uids(CT_SERIES[:4], PatientID="PETCT-1", PatientName="PET^CT")
    study, audit = forwarded(make_client, tmp_path, [*_other_modalities(blobs[0]), *blobs])
    assert study["n_files"] == 4 and study["errors"] == [], study
    for modality in ("PT", "MR", "SEG"):
        assert f"image of another modality ({modality})" in _ignored(audit), _ignored(audit)
    assert "PET^CT" not in _ignored(audit)


def _dose_report(first: bytes, modality: str | None) -> bytes:
    """A SYNTHETIC X-Ray Radiation Dose SR of the same study, in its own series, tagged ``modality`` (None: no
    Modality at all), no pixel data."""
    from pydicom.uid import generate_uid

    ct = pydicom.dcmread(io.BytesIO(first))
    blob = _vendor_objects(first)[0]  # the dose SR (Modality SR)
    ds = pydicom.dcmread(io.BytesIO(blob))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID, ds.StudyInstanceUID = generate_uid(), ct.StudyInstanceUID
    del ds.Modality
    if modality:
        ds.Modality = modality
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_orthanc_forwarding_a_ct_series_and_a_dose_report_tagged_ct_analyses_the_ct(make_client, tmp_path):
    """A study of two series, the CT and a dose report tagged Modality CT (as some scanners do). Was: the dose report
    was answered 0xC000 ('holds no pixel data'), so Orthanc's store job of the study failed. Now the job succeeds,
    the dose report is counted as not analysed and the CT series analysed alone."""
    blobs = with_new_uids(CT_SERIES[:4], PatientID="DOSE-1", PatientName="DOSE^CT")
    study, audit = forwarded(make_client, tmp_path, [_dose_report(blobs[0], "CT"), *blobs])
    assert study["n_files"] == 4 and study["errors"] == [] and study["task"] == "ct-covid", study
    assert "non-image object (X-Ray Radiation Dose SR)" in _ignored(audit), _ignored(audit)
    assert not [e for e in audit if e["action"] == "dicom_refused"], audit
