"""Results back to the PACS without a PACS: the identity map, the SEG / TID 1500 SR / SC built from a
study, deterministic UIDs, and the export queue's retry and back-off against a pynetdicom SCP.

The predictor here is a fixed fake with ct-covid's output shape (boxes on slices 4 and 5), so
every assertion about where the boxes land is exact. CT pixels: the bundled CT-MD slices.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import generate_uid

from lesiondx.service.core import ServiceCore
from lesiondx.service.db import IdentityRecord, Study, utcnow
from lesiondx.service.identity import Sealer, originals_for_study, purge_expired
from lesiondx.service.ingest import Triage, triage_file
from lesiondx.service.pacs import build_result_objects, export_detail, export_once, queue_export
from lesiondx.service.pacs.sc import patient_orientation
from lesiondx.io.dicom import series_order
from lesiondx.service.settings import PacsTarget, Settings
from service_helpers import CT_SERIES, free_port

NAME, PID, ACCESSION, BIRTH = "MARKERDOE^JANE", "MRN-MARKER-77", "ACC-MARKER-5", "19710203"
BOXES = {4: [100, 120, 180, 200], 5: [100, 120, 170, 190]}


def fake_ct_covid(task: str, inputs: list[Path], out: Path, model: str, **_: Any) -> dict[str, Any]:
    """ct-covid's output shape with fixed boxes on slices 4 and 5 and one overlay of slice 4."""
    out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(out / "slice_0004.png")
    slices = [{"slice": i, "probability": 0.9 if i in BOXES else 0.1,
               "boxes": [{"box": BOXES[i], "quadrant": "lower-right", "score": 0.9, "location": "left lung, lower zone"}]
               if i in BOXES else []} for i in range(len(list(inputs[0].iterdir())))]
    return {"patient": {"decision": 1, "score": 0.8, "rule": {"quadrant": "lower-right"}}, "model_version": "fake-1",
            "slices": slices, "overlays": [str(out / "slice_0004.png")]}


def _identified_series(**attributes: str) -> tuple[list[bytes], str]:
    """The CT-MD slices as one identified study (valid UIDs, markers in the patient attributes, ``attributes`` set)."""
    study_uid, series_uid = generate_uid(), generate_uid()
    blobs = []
    for path in CT_SERIES:
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study_uid, series_uid, generate_uid()
        ds.PatientName, ds.PatientID, ds.AccessionNumber, ds.PatientBirthDate = NAME, PID, ACCESSION, BIRTH
        for keyword, value in attributes.items():
            setattr(ds, keyword, value)
        buffer = io.BytesIO()
        ds.save_as(buffer)
        blobs.append(buffer.getvalue())
    return blobs, study_uid


@pytest.fixture
def done_study(tmp_path):
    """A ServiceCore (not started) with one finished ct-covid study from DICOM; yields (core, study_id, originals)."""
    yield from _done(tmp_path, fake_ct_covid)


def _triage(core: ServiceCore, blobs: list[bytes]) -> Triage:
    triage = Triage()
    for i, data in enumerate(blobs):
        triage.extend(triage_file(f"slice{i}.dcm", data, core.salt, max_file_bytes=10**8))
    assert not triage.errors
    return triage


def _done(tmp_path: Path, predictor: Any, **attributes: str):
    core = ServiceCore(Settings(storage=tmp_path / "store", pacs=PacsTarget("NOBODY", "127.0.0.1", free_port()),
                                export_retry_seconds=(0.0,), export_max_attempts=2), predictor=predictor)
    blobs, study_uid = _identified_series(**attributes)
    study = core.submit(_triage(core, blobs), requested_task=None, uploader="test")
    core.worker.run_job(core.db.claim_next())
    core.sent_headers = [pydicom.dcmread(io.BytesIO(b), stop_before_pixels=True) for b in blobs]
    yield core, study.id, study_uid, {str(ds.SOPInstanceUID) for ds in core.sent_headers}
    core.db.dispose()


def _objects(core: ServiceCore, study_id: str, version: int = 1) -> dict[str, list[pydicom.Dataset]]:
    originals = originals_for_study(core.db, study_id, core.sealer)
    built = build_result_objects(core, study_id, originals, core.sealer.study_key(originals.study["StudyInstanceUID"]),
                                 version)
    by_modality: dict[str, list[pydicom.Dataset]] = {}
    for ds in built.objects:  # round trip through bytes, as the PACS gets them
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            by_modality.setdefault(ds.Modality, []).append(pydicom.dcmread(io.BytesIO(buffer.getvalue())))
    return by_modality


def test_mapping_is_sealed_and_only_the_storage_salt_opens_it(done_study):
    core, study_id, study_uid, _ = done_study
    with core.db.session() as s:
        rows = s.query(IdentityRecord).all()
        study = s.get(Study, study_id)
        stored = [core.storage.blob_path(f.sha256).read_bytes() for f in study.files]
    assert len(rows) == len(CT_SERIES)
    for row in rows:
        for marker in (NAME, PID, ACCESSION, BIRTH, study_uid):
            assert marker not in row.sealed and marker not in row.study_key
    assert all(NAME.encode() not in blob and study_uid.encode() not in blob for blob in stored)
    originals = originals_for_study(core.db, study_id, core.sealer)
    assert originals.study["PatientName"] == NAME and originals.study["StudyInstanceUID"] == study_uid
    assert originals_for_study(core.db, study_id, Sealer("another salt " * 4)) is None


def test_result_objects_land_in_the_original_study_and_reference_the_original_images(done_study):
    core, study_id, study_uid, original_sops = done_study
    objects = _objects(core, study_id)
    assert sorted(objects) == ["OT", "SEG", "SR"]
    for ds in (objects["SEG"][0], objects["SR"][0], objects["OT"][0]):
        assert (ds.PatientName, ds.PatientID, ds.StudyInstanceUID, ds.AccessionNumber, ds.PatientBirthDate) == (
            NAME, PID, study_uid, ACCESSION, BIRTH)
        assert "not verified" in ds.SeriesDescription
    # the slice order the task saw (superior → inferior) decides which original instance slice 4 is
    headers = core.sent_headers
    ordered = [headers[i] for i in series_order(headers)[0]]
    seg = hd.seg.Segmentation.from_dataset(objects["SEG"][0])
    referenced = {str(item.ReferencedSOPInstanceUID) for series in seg.ReferencedSeriesSequence
                  for item in series.ReferencedInstanceSequence}
    assert referenced and referenced <= original_sops
    assert "box-filled" in seg.SegmentSequence[0].SegmentLabel
    frames = {str(f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID): i
              for i, f in enumerate(seg.PerFrameFunctionalGroupsSequence)}
    assert len(frames) == 2  # empty frames omitted: slices 4 and 5 only
    pixels = seg.pixel_array
    for index, (x1, y1, x2, y2) in BOXES.items():
        frame = pixels[frames[str(ordered[index].SOPInstanceUID)]]  # KeyError = box on the wrong instance
        assert frame[y1:y2, x1:x2].all() and frame.sum() == (x2 - x1) * (y2 - y1)
    sc = objects["OT"][0]
    assert [str(i.ReferencedSOPInstanceUID) for i in sc.SourceImageSequence] == [str(ordered[4].SOPInstanceUID)]
    assert list(sc.PatientOrientation) == ["L", "P"]  # from the source's ImageOrientationPatient [1,0,0,0,1,0]


def test_measurement_report_parses_with_highdicom_and_references_the_seg_and_images(done_study, tmp_path):
    core, study_id, _, original_sops = done_study
    objects = _objects(core, study_id)
    path = tmp_path / "sr.dcm"
    objects["SR"][0].save_as(path, enforce_file_format=True)
    sr = hd.sr.srread(path)
    assert isinstance(sr.content, hd.sr.MeasurementReport) and sr.VerificationFlag == "UNVERIFIED"
    (group,) = sr.content.get_volumetric_roi_measurement_groups()
    segment = group.referenced_segment
    assert segment.referenced_sop_instance_uid == objects["SEG"][0].SOPInstanceUID
    assert segment.referenced_segment_numbers == [1]
    assert [(m.name.meaning, m.value) for m in group.get_measurements()] == [("AI probability of the finding", 0.8)]
    assert [q.value.meaning for q in group.get_qualitative_evaluations()] == ["COVID-19"]
    text = json.dumps(objects["SR"][0].to_json_dict())
    assert "not verified" in text and "fake-1" in text and "lesiondx ct-covid" in text
    library = [str(ref.ReferencedSOPInstanceUID) for item in _walk(objects["SR"][0]) if item.get("ValueType") == "IMAGE"
               for ref in item.ReferencedSOPSequence]
    assert original_sops <= set(library)  # image library holds every source image
    evidence = {str(i.ReferencedSOPInstanceUID) for s in objects["SR"][0].CurrentRequestedProcedureEvidenceSequence
                for series in s.ReferencedSeriesSequence for i in series.ReferencedSOPSequence}
    assert objects["SEG"][0].SOPInstanceUID in evidence and original_sops <= evidence


def _finding_types(sr: pydicom.Dataset) -> list[str]:
    return [item.ConceptCodeSequence[0].CodeMeaning for item in _walk(sr)
            if item.get("ValueType") == "CODE" and item.ConceptNameCodeSequence[0].CodeValue == "121071"]


def fake_ct_covid_negative(task: str, inputs: list[Path], out: Path, model: str, **kw: Any) -> dict[str, Any]:
    """ct-covid's output shape for a negative study (a sub-threshold candidate box on slice 4 only)."""
    result = fake_ct_covid(task, inputs, out, model, **kw)
    result["patient"] |= {"decision": 0, "score": 0.1}
    result["slices"] = [s if s["slice"] == 4 else {**s, "boxes": []} for s in result["slices"]]
    return result


def test_a_negative_result_is_not_reported_as_a_lesion_finding(tmp_path, done_study):
    """Was: every measurement group said Finding = Lesion (SCT 52988006), so a 'normal' ct-covid study's SR
    read "Finding: Lesion / AI classification: normal" in the PACS. Now: only a positive result names a lesion."""
    core, study_id, _, _ = done_study
    assert _finding_types(_objects(core, study_id)["SR"][0]) == ["Lesion"]
    gen = _done(tmp_path / "negative", fake_ct_covid_negative)
    try:
        core, study_id, _, _ = next(gen)
        sr = _objects(core, study_id)["SR"][0]
    finally:
        gen.close()
    assert _finding_types(sr) == []
    classification = [item.ConceptCodeSequence[0].CodeMeaning for item in _walk(sr) if item.get("ValueType") == "CODE"
                      and item.ConceptNameCodeSequence[0].CodeMeaning == "AI classification"]
    assert classification == ["normal"]


def _device_uid(sr: pydicom.Dataset) -> str:
    (uid,) = [str(item.UID) for item in _walk(sr) if item.get("ValueType") == "UIDREF"
              and item.ConceptNameCodeSequence[0].CodeValue == "121012"]  # Device Observer UID
    return uid


def test_the_device_observer_uid_names_the_installation_not_the_study(tmp_path, done_study):
    """Was: the SR's Device Observer UID was derived from the study, so every report named a different 'device'
    and a PACS or registry grouping AI results by observer saw one device per study. Now it is one per
    installation (storage salt) and task: equal for two studies, different for another installation."""
    core, study_id, _, _ = done_study
    first = _device_uid(_objects(core, study_id)["SR"][0])
    study = core.submit(_triage(core, _identified_series()[0]), requested_task=None, uploader="test")
    core.worker.run_job(core.db.claim_next())
    assert _device_uid(_objects(core, study.id)["SR"][0]) == first
    gen = _done(tmp_path / "elsewhere", fake_ct_covid)
    try:
        other_core, other_id, _, _ = next(gen)
        assert _device_uid(_objects(other_core, other_id)["SR"][0]) != first
    finally:
        gen.close()


def _walk(ds: pydicom.Dataset):
    for item in ds.get("ContentSequence", []):
        yield item
        yield from _walk(item)


def _objects_of_one_study(tmp_path: Path, **attributes: str) -> tuple[dict[str, list[pydicom.Dataset]], str]:
    """The result objects of one finished study sent with ``attributes`` set, and its StudyInstanceUID."""
    gen = _done(tmp_path, fake_ct_covid, **attributes)
    try:
        core, study_id, study_uid, _ = next(gen)
        return _objects(core, study_id), study_uid
    finally:
        gen.close()


@pytest.mark.parametrize(("charset", "name"), [
    ("\\ISO 2022 IR 87", "Yamada^Tarou=山田^太郎=やまだ^たろう"),  # Japanese as sent: empty first value
    ("\\ISO 2022 IR 149", "Hong^Gildong=洪^吉洞"),  # Korean, the same form
    ("ISO_IR 6", "DOE^JOHN"),  # a common misspelling of the default repertoire
    ("ISO_IR 100", "Müller^Jürgen"),
])
def test_results_keep_the_patient_name_in_the_original_character_set(tmp_path, charset, name):
    """Was: highdicom refused SpecificCharacterSet '\\ISO 2022 IR 87' (the usual Japanese value, first value empty)
    and 'ISO_IR 6': building the SR raised, so no result of such a hospital ever reached the PACS (retried, then
    given up). Now the value is normalised (empty → ISO 2022 IR 6; unknown → ISO_IR 192) and the name survives."""
    objects, _ = _objects_of_one_study(tmp_path, SpecificCharacterSet=charset, PatientName=name,
                                       StudyDescription=name[:8])
    assert sorted(objects) == ["OT", "SEG", "SR"]
    for ds in (objects["SEG"][0], objects["SR"][0], objects["OT"][0]):
        assert str(ds.PatientName) == name and ds.PatientID == PID


@pytest.mark.parametrize(("keyword", "sent", "sent_back"), [
    ("PatientSex", "U", ""), ("PatientSex", "m", "M"), ("PatientSex", "FEMALE", "F"),
    ("StudyTime", "12:30:00", "123000"), ("StudyDate", "2020.01.31", "20200131"), ("PatientBirthDate", "19710230", ""),
])
def test_values_highdicom_refuses_are_mended_or_left_empty(tmp_path, keyword, sent, sent_back):
    """Was: PatientSex 'U' (HL7's unknown, common), lower-case or spelled out, a StudyTime with colons or an
    impossible birth date made highdicom raise: none of the study's results reached the PACS. Now the value is
    mended (case, separators, M/F) or, when it cannot be, left empty (all are type 2 in the result objects)."""
    objects, study_uid = _objects_of_one_study(tmp_path, **{keyword: sent})
    assert sorted(objects) == ["OT", "SEG", "SR"]
    for ds in (objects["SEG"][0], objects["SR"][0], objects["OT"][0]):
        assert str(ds.get(keyword, "")) == sent_back and ds.StudyInstanceUID == study_uid


def test_patient_orientation_follows_the_image_orientation():
    sagittal = pydicom.Dataset()
    sagittal.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    assert patient_orientation(sagittal) == ("P", "F")
    given = pydicom.Dataset()
    given.PatientOrientation = ["A", "F"]
    assert patient_orientation(given) == ("A", "F")
    assert patient_orientation(pydicom.Dataset()) is None


def test_export_retries_with_back_off_then_gives_up(done_study):
    core, study_id, _, _ = done_study
    assert queue_export(core, study_id)
    from lesiondx.service.pacs.export import _claim

    assert _claim(core) == study_id and export_once(core, study_id) == "failed"
    with core.db.session() as s:
        detail = export_detail(s.get(Study, study_id))
    assert detail["state"] == "failed" and detail["attempts"] == 1 and detail["next_try_at"]
    assert "unreachable" in detail["reason"]
    assert _claim(core) == study_id and export_once(core, study_id) == "failed"
    with core.db.session() as s:
        detail = export_detail(s.get(Study, study_id))
    assert detail["next_try_at"] is None and "gave up after 2 attempts" in detail["reason"]
    assert _claim(core) is None


def test_a_retry_set_before_the_clock_went_back_an_hour_waits_no_longer_than_the_configured_wait(done_study):
    """Was: ``next_try_at`` is wall-clock time, so after the clock was set back an hour a failed export waited an hour
    more than its back-off before it was tried again."""
    import dataclasses

    from lesiondx.service.pacs.export import _claim

    core, study_id, _, _ = done_study
    core.settings = dataclasses.replace(core.settings, export_retry_seconds=(60.0,))
    assert queue_export(core, study_id) and _claim(core) == study_id and export_once(core, study_id) == "failed"
    for ahead, due in ((timedelta(seconds=30), False), (timedelta(hours=1, seconds=30), True)):
        with core.db.session() as s, s.begin():  # a 60 s wait, written before / after the clock went back
            s.get(Study, study_id).export_next_at = utcnow() + ahead
        assert _claim(core) == (study_id if due else None)


def test_a_rerun_queued_during_a_send_is_not_overwritten_by_its_outcome(done_study):
    from lesiondx.service.pacs.export import _claim

    core, study_id, _, _ = done_study
    assert queue_export(core, study_id) and _claim(core) == study_id
    assert queue_export(core, study_id)  # the study was re-run while version 1 was being sent
    export_once(core, study_id)  # version 1 fails (no PACS listening)...
    with core.db.session() as s:
        assert export_detail(s.get(Study, study_id))["state"] == "pending"  # ...the re-run's export still goes


@contextlib.contextmanager
def fake_pacs(core: ServiceCore, contexts: tuple[str, ...] | None = None):
    """A pynetdicom storage SCP taking SEG / SR / SC (or only the SOP classes ``contexts``), made ``core``'s PACS;
    yields the datasets it receives."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import (ComprehensiveSRStorage, Comprehensive3DSRStorage,
                                      SecondaryCaptureImageStorage, SegmentationStorage)

    received: list[pydicom.Dataset] = []
    ae = AE(ae_title="FAKEPACS")
    for context in contexts or (ComprehensiveSRStorage, Comprehensive3DSRStorage, SecondaryCaptureImageStorage,
                                SegmentationStorage):
        ae.add_supported_context(context)

    def on_store(event):
        received.append(event.dataset)
        return 0x0000

    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        port = server.server_address[1]
        core.settings = Settings(**{**core.settings.__dict__, "pacs": PacsTarget("FAKEPACS", "127.0.0.1", port)})
        yield received
    finally:
        server.shutdown()


def test_export_sends_seg_sr_sc_to_a_storage_scp(done_study):
    from lesiondx.service.pacs.export import _claim

    core, study_id, study_uid, _ = done_study
    with fake_pacs(core) as received:
        assert queue_export(core, study_id)
        assert _claim(core) == study_id and export_once(core, study_id) == "sent"
    assert sorted(ds.Modality for ds in received) == ["OT", "SEG", "SR"]
    assert {str(ds.StudyInstanceUID) for ds in received} == {study_uid}
    with core.db.session() as s:
        detail = export_detail(s.get(Study, study_id))
    assert detail["state"] == "sent" and detail["version"] == 1 and detail["objects"] == {"SEG": 1, "SR": 1, "SC": 1}


def test_a_pacs_without_seg_and_3d_sr_gets_a_comprehensive_sr_and_the_sc(done_study):
    """Was: a PACS that does not negotiate Segmentation / Comprehensive 3D SR storage (common in older PACS) got
    nothing: the SEG went first, pynetdicom raised, the whole export failed and was retried until it gave up.
    Now: the SR goes as Comprehensive SR (it holds no 3D coordinates), the SC goes, the SEG is listed as skipped."""
    from pynetdicom.sop_class import ComprehensiveSRStorage, SecondaryCaptureImageStorage

    from lesiondx.service.pacs.export import _claim

    core, study_id, study_uid, _ = done_study
    with fake_pacs(core, (ComprehensiveSRStorage, SecondaryCaptureImageStorage)) as received:
        assert queue_export(core, study_id)
        assert _claim(core) == study_id and export_once(core, study_id) == "sent"
    assert sorted(ds.Modality for ds in received) == ["OT", "SR"]
    sr = next(ds for ds in received if ds.Modality == "SR")
    assert sr.SOPClassUID == ComprehensiveSRStorage and str(sr.StudyInstanceUID) == study_uid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sr.file_meta = pydicom.dataset.FileMetaDataset()
        sr.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        buffer = io.BytesIO()
        sr.save_as(buffer, enforce_file_format=True)
        path = Path(core.settings.storage) / "sr.dcm"
        path.write_bytes(buffer.getvalue())
        assert isinstance(hd.sr.srread(path).content, hd.sr.MeasurementReport)
    with core.db.session() as s:
        detail = export_detail(s.get(Study, study_id))
    assert detail["objects"] == {"SEG": 0, "SR": 1, "SC": 1}
    assert any("Segmentation Storage" in text and "not sent" in text for text in detail["skipped"])


def test_a_pacs_taking_none_of_the_objects_fails_with_the_reason(done_study):
    from pynetdicom.sop_class import CTImageStorage

    from lesiondx.service.pacs.export import _claim

    core, study_id, _, _ = done_study
    with fake_pacs(core, (CTImageStorage,)) as received:
        assert queue_export(core, study_id)
        assert _claim(core) == study_id and export_once(core, study_id) == "failed"
    assert received == []
    with core.db.session() as s:
        detail = export_detail(s.get(Study, study_id))
    assert "accepts none of" in detail["reason"] and "Segmentation Storage" in detail["reason"]


def test_an_export_given_up_on_an_unreachable_pacs_is_resent_at_the_next_start(done_study):
    from lesiondx.service.pacs import Exporter
    from lesiondx.service.pacs.export import _claim

    core, study_id, study_uid, _ = done_study
    assert queue_export(core, study_id)
    for _ in range(2):  # export_max_attempts=2, nobody listening
        assert _claim(core) == study_id and export_once(core, study_id) == "failed"
    with core.db.session() as s:
        assert "gave up after 2 attempts" in export_detail(s.get(Study, study_id))["reason"]
    with fake_pacs(core) as received:
        core.exporter = exporter = Exporter(core, poll_seconds=0.1)
        exporter.start()  # the service starts again, the PACS is back
        deadline = time.monotonic() + 30
        while len(received) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        exporter.stop()
    assert {str(ds.StudyInstanceUID) for ds in received} == {study_uid} and len(received) == 3
    with core.db.session() as s:
        assert export_detail(s.get(Study, study_id))["state"] == "sent"


def test_retention_deletes_the_mapping_and_export_then_fails_with_the_reason(done_study):
    core, study_id, _, _ = done_study
    assert purge_expired(core.db, 30) == 0
    with core.db.session() as s, s.begin():
        s.get(Study, study_id).created_at = s.get(Study, study_id).created_at - timedelta(days=31)
    assert purge_expired(core.db, 30) == len(CT_SERIES)
    assert originals_for_study(core.db, study_id, core.sealer) is None
    assert not queue_export(core, study_id)  # nothing left to file the results under


def test_png_uploads_are_not_sent_and_api_shows_no_identity(make_client, tmp_path):
    from service_helpers import US_IMAGES, file_field, wait_study

    client = make_client(pacs=PacsTarget("NOBODY", "127.0.0.1", free_port()))
    study = client.post("/api/studies", files=[file_field(US_IMAGES[0])]).json()
    body = wait_study(client, study["id"])
    assert body["status"] == "done" and body["export"] is None
    blobs, _ = _identified_series()
    study = client.post("/api/studies", files=[("files", (f"s{i}.dcm", b, "application/dicom"))
                                               for i, b in enumerate(blobs)]).json()
    body = wait_study(client, study["id"], timeout=60)
    deadline = time.monotonic() + 20
    while (body.get("export") or {}).get("state") in (None, "pending", "sending"):
        assert time.monotonic() < deadline, body["export"]
        time.sleep(0.2)
        body = client.get(f"/api/studies/{study['id']}").json()
    assert body["export"]["state"] == "failed" and body["export"]["next_try_at"]
    text = json.dumps(body)
    assert not any(marker in text for marker in (NAME, PID, ACCESSION, BIRTH))


def _us_dicom(pixels: np.ndarray) -> bytes:
    """SYNTHETIC DICOM wrapper (no geometry, like most ultrasound) around a bundled AUL image."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = generate_uid(), generate_uid(), "US"
    ds.PatientID, ds.PatientName = PID, NAME
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation, ds.PixelData = 7, 0, pixels.tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_ultrasound_without_geometry_gets_seg_sr_and_an_sc_with_empty_orientation(tmp_path):
    from lesiondx.service.testing import stub_predictor
    from service_helpers import US_IMAGES

    core = ServiceCore(Settings(storage=tmp_path / "store"), predictor=stub_predictor)
    pixels = np.asarray(Image.open(US_IMAGES[0]).convert("L"))
    triage = triage_file("us.dcm", _us_dicom(pixels), core.salt, max_file_bytes=10**8)
    study = core.submit(triage, requested_task=None, uploader="test")
    core.worker.run_job(core.db.claim_next())
    objects = _objects(core, study.id)
    core.db.dispose()
    assert sorted(objects) == ["OT", "SEG", "SR"] and objects["OT"][0].PatientOrientation == ""
    with core.db.session() as s:
        box = s.get(Study, study.id).results[0]["boxes"][0]
    x1, y1, x2, y2 = box
    mask = hd.seg.Segmentation.from_dataset(objects["SEG"][0]).pixel_array.reshape(pixels.shape)
    assert mask[y1:y2, x1:x2].all() and mask.sum() == (x2 - x1) * (y2 - y1)


def test_export_reasons_never_carry_original_identifiers(done_study):
    from lesiondx.service.pacs.export import scrub

    core, study_id, study_uid, sops = done_study
    originals = originals_for_study(core.db, study_id, core.sealer)
    sop = sorted(sops)[0]
    text = scrub(f"bad image {sop} of {NAME} in {study_uid} (other 1.2.3.4.5.6); PACS at 127.0.0.1:104", originals)
    assert NAME not in text and sop not in text and study_uid not in text and "1.2.3.4.5.6" not in text
    assert "127.0.0.1:104" in text


def test_building_the_results_logs_no_original_identifier_even_at_debug(done_study, caplog):
    """highdicom logs the SOP Instance UID of the images it copies the patient from (INFO) and of duplicate or
    missing references (WARNING): with the originals restored for the PACS, those are the patient's own UIDs."""
    import logging

    core, study_id, study_uid, sops = done_study
    caplog.set_level(logging.DEBUG)
    objects = _objects(core, study_id)
    assert objects["SEG"] and objects["SR"]
    for original in (*sops, study_uid, NAME, PID, ACCESSION):
        assert original not in caplog.text
