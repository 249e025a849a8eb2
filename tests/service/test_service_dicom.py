"""DICOM node (C-STORE SCP): storescu with compressed transfer syntaxes, empty SOPInstanceUIDs,
refusals, quiet-period closing. Results back to a real Orthanc: test_service_orthanc.py."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from service_helpers import CT_SERIES, IRCADB, SHARED_DATA, free_port, wait_study

STORESCU = shutil.which("storescu")
needs_storescu = pytest.mark.skipif(STORESCU is None, reason="needs dcmtk's storescu (apt-get install dcmtk)")
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.70"


def _with_sop_uids(paths, folder: Path) -> list[Path]:
    """Copies with a SOPInstanceUID (dcmtk refuses to *send* instances without one)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(folder / path.name)
        out.append(folder / path.name)
    return out


def _storescu(port: int, files, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([STORESCU, "-aet", "MODALITY", "-aec", "LESIONDX", *extra, "127.0.0.1", str(port),
                           *map(str, files)], capture_output=True, text=True, timeout=60)


def _dicom_client(make_client, **kw):
    port = free_port()
    client = make_client(dicom_port=port, host="127.0.0.1", **kw)
    return client, port


def _single_study(client, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        studies = client.get("/api/studies").json()
        if studies and studies[0]["status"] in ("done", "failed"):
            return wait_study(client, studies[0]["id"])
        time.sleep(0.1)
    raise AssertionError(f"no finished study: {client.get('/api/studies').json()}")


@needs_storescu
def test_storescu_jpeg_lossless_series_becomes_one_deidentified_study(make_client, tmp_path):
    client, port = _dicom_client(make_client, study_quiet_seconds=60)  # closes on release, not by timer
    files = _with_sop_uids(CT_SERIES, tmp_path / "send")
    result = _storescu(port, files, "-xs")  # propose JPEG lossless: the SCP must accept it as is
    assert result.returncode == 0, result.stderr
    study = _single_study(client)
    assert study["status"] == "done" and study["source"] == "dicom" and study["task"] == "ct-covid"
    assert study["n_files"] == len(CT_SERIES) and study["errors"] == []
    stored = [pydicom.dcmread(p) for p in (tmp_path / "store/blobs").rglob("*") if p.is_file()]
    assert {str(ds.file_meta.TransferSyntaxUID) for ds in stored} == {JPEG_LOSSLESS}
    sent_uids = {str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in files}
    assert not sent_uids & {str(ds.SOPInstanceUID) for ds in stored}  # UIDs remapped
    assert all(ds.PatientIdentityRemoved == "YES" for ds in stored)
    audit = client.get("/api/audit").json()
    assert any(e["action"] == "dicom_receive" and e["actor"] == "dicom:MODALITY" for e in audit)


@needs_storescu
@pytest.mark.skipif(not IRCADB.is_dir(), reason="shared 3D-IRCADb data (JPEG 2000) not present")
def test_storescu_jpeg2000_abdominal_ct_goes_to_ct_liver(make_client):
    client, port = _dicom_client(make_client)
    result = _storescu(port, [IRCADB / f"image_{i}" for i in (50, 60, 70)], "-xv")
    assert result.returncode == 0, result.stderr
    study = _single_study(client)
    assert study["status"] == "done" and study["task"] == "ct-liver" and study["n_files"] == 3


def test_instances_with_empty_sop_instance_uid_get_one_assigned(make_client, tmp_path):
    """The real example files have an empty SOPInstanceUID in the dataset: ingest assigns UIDs."""
    from pynetdicom import AE, _config
    from pynetdicom.sop_class import CTImageStorage

    client, port = _dicom_client(make_client)
    folder = tmp_path / "meta-only"
    folder.mkdir()
    paths = []
    for path in CT_SERIES[:3]:
        ds = pydicom.dcmread(path)
        assert str(ds.get("SOPInstanceUID", "")) == ""
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()  # the command needs one; the dataset has none
        ds.save_as(folder / path.name, enforce_file_format=True)
        paths.append(folder / path.name)
    ae = AE(ae_title="SENDER")
    ae.add_requested_context(CTImageStorage, [JPEG_LOSSLESS])
    old = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True  # send the file's dataset byte for byte
    try:
        assoc = ae.associate("127.0.0.1", port, ae_title="LESIONDX")
        assert assoc.is_established
        statuses = [assoc.send_c_store(p).Status for p in paths]
        assoc.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = old
    assert statuses == [0, 0, 0]
    study = _single_study(client)
    assert study["status"] == "done" and study["n_files"] == 3
    stored = [pydicom.dcmread(p) for p in (tmp_path / "store/blobs").rglob("*") if p.is_file()]
    assert len({str(ds.SOPInstanceUID) for ds in stored}) == 3 and all(str(ds.SOPInstanceUID) for ds in stored)


def _send_files_as_they_are(port: int, paths, title: str = "MODALITY") -> list[int]:
    """C-STORE each file's bytes as they are (pynetdicom's chunked send: a file cut short goes cut short)."""
    from pynetdicom import AE, _config
    from pynetdicom.sop_class import CTImageStorage

    ae = AE(ae_title=title)
    ae.add_requested_context(CTImageStorage, [JPEG_LOSSLESS])
    old = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        assoc = ae.associate("127.0.0.1", port, ae_title="LESIONDX")
        assert assoc.is_established
        statuses = [int(assoc.send_c_store(p).Status) for p in paths]
        assoc.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = old
    return statuses


def test_a_truncated_instance_in_a_series_is_refused_with_its_reason_and_the_rest_analysed(make_client, tmp_path):
    """ALTERED input: the 3rd of 6 real CT-MD slices cut to two thirds of its bytes (a transfer cut short). Was:
    pydicom read it as an empty dataset, which counted as a 'private SOP class (vendor object)': answered success
    (the sender never resent it) and dropped without a word. Now it is refused (0xC000) as truncated, listed on the
    study by its place in the association (was 'MODALITY message 1', as was every instance pynetdicom sends), and
    the association's refusals are in the audit log (counts and reasons, no identifiers); 5 analysed."""
    client, port = _dicom_client(make_client, study_quiet_seconds=60)
    files = _with_sop_uids(CT_SERIES[:6], tmp_path / "altered-truncated")
    data = files[2].read_bytes()
    files[2].write_bytes(data[: len(data) * 2 // 3])
    assert _send_files_as_they_are(port, files) == [0, 0, 0xC000, 0, 0, 0]
    study = _single_study(client)
    assert study["status"] == "done" and study["n_files"] == 5, study
    assert [e["file"] for e in study["errors"]] == ["MODALITY instance 3 (message 1)"]  # pynetdicom: all message 1
    assert "truncated" in study["errors"][0]["reason"]
    audit = client.get("/api/audit").json()
    deadline = time.monotonic() + 10
    while not (refused := [e for e in audit if e["action"] == "dicom_refused"]) and time.monotonic() < deadline:
        time.sleep(0.1)
        audit = client.get("/api/audit").json()
    assert len(refused) == 1 and refused[0]["study_id"] == study["id"], audit
    assert refused[0]["detail"].startswith("1 instance(s) refused:") and "truncated" in refused[0]["detail"]
    assert not [e for e in audit if e["action"] == "dicom_ignored"], audit


def test_an_association_from_an_unknown_ae_title_is_rejected_and_said_so_once_a_minute(make_client, caplog):
    """C-ECHO from a calling AE title LESIONDX_DICOM_ALLOWED_AETS does not list. Was: rejected ('Calling AE Title Not
    Recognized') with no line in the service log or audit (pynetdicom logs it at INFO, which the service mutes), so an
    admin could not tell why a modality could not connect. Now one warning line and one ``dicom_rejected`` audit entry
    name the AE title, the address and the setting, at most once a minute per AE title and address."""
    import logging

    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    client, port = _dicom_client(make_client, dicom_allowed_aets=("MODALITY",))
    caplog.set_level(logging.WARNING, logger="lesiondx.service.dicom_node")
    for title, accepted in (("STRANGER", False), ("STRANGER", False), ("MODALITY", True)):
        ae = AE(ae_title=title)
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", port, ae_title="LESIONDX")
        assert assoc.is_established == accepted and assoc.is_rejected != accepted
        if accepted:
            assert assoc.send_c_echo().Status == 0
            assoc.release()
    deadline = time.monotonic() + 10
    while not (rejected := [e for e in client.get("/api/audit").json() if e["action"] == "dicom_rejected"]):
        assert time.monotonic() < deadline, "no dicom_rejected audit entry"
        time.sleep(0.1)
    assert len(rejected) == 1 and rejected[0]["actor"] == "dicom:STRANGER" and rejected[0]["client"] == "127.0.0.1"
    assert "LESIONDX_DICOM_ALLOWED_AETS" in rejected[0]["detail"]
    lines = [r.getMessage() for r in caplog.records if "rejected an association" in r.getMessage()]
    assert len(lines) == 1 and "'STRANGER'" in lines[0] and "127.0.0.1" in lines[0], lines


def test_unusable_instances_are_refused_and_the_node_keeps_running(make_client):
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage, MRImageStorage

    client, port = _dicom_client(make_client)
    ae = AE(ae_title="SENDER")
    ae.add_requested_context(MRImageStorage, [JPEG_LOSSLESS])
    ae.add_requested_context(CTImageStorage, [JPEG_LOSSLESS])
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
    good = pydicom.dcmread(CT_SERIES[0])
    good.SOPInstanceUID = generate_uid()
    mr = pydicom.dcmread(CT_SERIES[1])
    mr.SOPInstanceUID, mr.Modality, mr.SOPClassUID = generate_uid(), "MR", MRImageStorage
    broken = pydicom.dcmread(CT_SERIES[2])
    broken.SOPInstanceUID = generate_uid()
    broken.decompress()
    broken.PixelData = broken.PixelData[:2000]  # truncated pixel data
    assoc = ae.associate("127.0.0.1", port, ae_title="LESIONDX")
    statuses = [assoc.send_c_store(ds).Status for ds in (good, mr, broken)]
    assoc.release()
    assert statuses[0] == 0 and statuses[1] == 0 and statuses[2] == 0xC000  # MR: accepted, ignored (not analysed)
    study = _single_study(client)
    assert study["status"] == "done" and study["n_files"] == 1
    reasons = " ".join(e["reason"] for e in study["errors"])
    assert "corrupt DICOM pixel data" in reasons and "MR" not in reasons
    ignored = [e["detail"] for e in client.get("/api/audit").json() if e["action"] == "dicom_ignored"]
    assert len(ignored) == 1 and "image of another modality (MR) ×1" in ignored[0]
    assert client.get("/api/health").json()["dicom"]["port"] == port


def test_aborted_association_study_closes_after_the_quiet_period(make_client):
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage

    client, port = _dicom_client(make_client, study_quiet_seconds=1.0)
    ae = AE(ae_title="SENDER")
    ae.add_requested_context(CTImageStorage, [JPEG_LOSSLESS])
    assoc = ae.associate("127.0.0.1", port, ae_title="LESIONDX")
    for path in CT_SERIES[:2]:
        ds = pydicom.dcmread(path)
        ds.SOPInstanceUID = generate_uid()
        assert assoc.send_c_store(ds).Status == 0
    assoc.abort()
    assert client.get("/api/studies").json()[0]["stage"] == "receiving"
    study = _single_study(client, timeout=15)
    assert study["status"] == "done" and study["n_files"] == 2


def test_calling_ae_allowlist_rejects_unknown_senders(make_client):
    client, port = _dicom_client(make_client, dicom_allowed_aets=("MODALITY",))
    assert {title: _accepted(port, title) for title in ("STRANGER", "MODALITY")} == {"STRANGER": False,
                                                                                    "MODALITY": True}


def _accepted(port: int, title: str) -> bool:
    """Whether the node accepts an association (C-ECHO context) from calling AE title ``title`` (released at once)."""
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=title)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="LESIONDX")
    if assoc.is_established:
        assoc.release()
    return bool(assoc.is_established or assoc.is_released)


@needs_storescu
def test_a_full_storage_folder_refuses_instances_with_one_log_line_each(make_client, tmp_path, monkeypatch, caplog):
    """Was: a traceback in the log per refused instance (seen on a real full tmpfs: 30 for one series)."""
    import errno

    client, port = _dicom_client(make_client, study_quiet_seconds=60)

    def disk_full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(client.app.state.core.storage, "put", disk_full)
    files = _with_sop_uids(CT_SERIES[:3], tmp_path / "send")
    result = _storescu(port, files, "-xs", "-nh", "-v")
    assert result.stderr.count("Refused: OutOfResources") == 3, result.stderr
    lines = [r for r in caplog.records if r.name == "lesiondx.service.dicom_node" and r.levelname == "ERROR"]
    assert len(lines) == 3 and all("storage is full" in r.getMessage() and not r.exc_info for r in lines)
    assert "Traceback" not in caplog.text


def _one_study(n: int) -> list[pydicom.Dataset]:
    """The first ``n`` bundled CT-MD slices as one study with fresh Study and SOP Instance UIDs."""
    study_uid, slices = generate_uid(), []
    for path in CT_SERIES[:n]:
        ds = pydicom.dcmread(path)
        ds.SOPInstanceUID, ds.StudyInstanceUID = generate_uid(), study_uid
        slices.append(ds)
    return slices


def _non_image_objects(study: pydicom.Dataset) -> list[pydicom.Dataset]:
    """What a PACS forwarding a whole CT study also sends: a dose SR, a localizer, a dose screen (SC, Modality CT)."""
    from pydicom.dataset import Dataset
    from pynetdicom.sop_class import SecondaryCaptureImageStorage, XRayRadiationDoseSRStorage

    sr = Dataset()
    for keyword in ("PatientID", "PatientName", "StudyInstanceUID", "StudyDate", "StudyTime"):
        setattr(sr, keyword, study.get(keyword, ""))
    sr.SOPClassUID, sr.SOPInstanceUID, sr.SeriesInstanceUID = XRayRadiationDoseSRStorage, generate_uid(), generate_uid()
    sr.Modality, sr.ValueType, sr.ContinuityOfContent = "SR", "CONTAINER", "SEPARATE"
    sr.file_meta = pydicom.dataset.FileMetaDataset()
    sr.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    localizer = pydicom.dcmread(CT_SERIES[0])
    localizer.SOPInstanceUID, localizer.SeriesInstanceUID = generate_uid(), generate_uid()
    localizer.StudyInstanceUID = study.StudyInstanceUID
    localizer.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    screen = pydicom.dcmread(CT_SERIES[1])
    screen.SOPInstanceUID, screen.SeriesInstanceUID = generate_uid(), generate_uid()
    screen.StudyInstanceUID, screen.SOPClassUID = study.StudyInstanceUID, SecondaryCaptureImageStorage
    screen.ImageType = ["DERIVED", "SECONDARY", "SCREEN SAVE"]
    return [sr, localizer, screen]


def test_a_forwarded_study_s_dose_report_localizer_and_dose_screen_are_accepted_and_ignored(make_client):
    """Was: 0xC000 for the dose SR (a PACS forwarding the whole study marks the transfer failed and retries it,
    Orthanc's store job ends in 'Failure') and the localizer and dose screen (burned-in patient name) were stored
    as two more CT series, which ct-covid refuses ('give one series folder'). Now: success, not stored, counted."""
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage, SecondaryCaptureImageStorage, XRayRadiationDoseSRStorage

    client, port = _dicom_client(make_client)
    slices = _one_study(3)
    extras = _non_image_objects(slices[0])
    ae = AE(ae_title="PACS")
    ae.add_requested_context(XRayRadiationDoseSRStorage, [ExplicitVRLittleEndian])
    for sop_class in (CTImageStorage, SecondaryCaptureImageStorage):
        ae.add_requested_context(sop_class, [JPEG_LOSSLESS])
    assoc = ae.associate("127.0.0.1", port, ae_title="LESIONDX")
    statuses = [assoc.send_c_store(ds).Status for ds in [extras[0], extras[1], *slices, extras[2]]]
    assoc.release()
    assert statuses == [0] * 6
    study = _single_study(client)
    assert study["status"] == "done" and study["n_files"] == 3 and study["errors"] == []
    audit = [e for e in client.get("/api/audit").json() if e["action"] == "dicom_ignored"]
    assert len(audit) == 1 and "3 instance(s)" in audit[0]["detail"]
    for words in ("non-image object (SR)", "CT localizer", "secondary capture"):
        assert words in audit[0]["detail"]


def test_a_study_sent_over_two_parallel_associations_is_closed_when_the_last_one_ends(make_client):
    """PACS and routers send one study over several associations at once. Was: the first association to be
    released closed and queued the study while the other was still sending, so a partial study was analysed
    (and its result exported) before the late instances reopened it. Now it stays receiving until the last
    association that sent it is released, and is analysed once, whole."""
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage

    client, port = _dicom_client(make_client, study_quiet_seconds=60)
    slices = _one_study(6)
    ae = AE(ae_title="PACS")
    ae.add_requested_context(CTImageStorage, [JPEG_LOSSLESS])
    first, second = (ae.associate("127.0.0.1", port, ae_title="LESIONDX") for _ in range(2))
    assert [first.send_c_store(ds).Status for ds in slices[:3]] == [0] * 3
    assert second.send_c_store(slices[3]).Status == 0
    first.release()
    time.sleep(0.5)
    (study,) = client.get("/api/studies").json()
    assert study["stage"] == "receiving", study
    assert [second.send_c_store(ds).Status for ds in slices[4:]] == [0, 0]
    second.release()
    study = _single_study(client)
    assert study["status"] == "done" and study["n_files"] == 6 and study["result_version"] == 1


def _enhanced_ct(paths) -> pydicom.Dataset:
    """The bundled CT-MD chest slices as one highdicom Legacy Converted Enhanced CT (rescale only in its
    functional groups, no BodyPartExamined, series description '(enhanced conversion)')."""
    import warnings

    import highdicom as hd

    study_uid, series_uid, legacy = generate_uid(), generate_uid(), []
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.decompress()
        ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), study_uid, series_uid
        legacy.append(ds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(
            legacy, series_instance_uid=generate_uid(), series_number=9, sop_instance_uid=generate_uid(),
            instance_number=1)
    assert "RescaleIntercept" not in enhanced and int(enhanced.NumberOfFrames) == len(paths)
    return enhanced


def test_a_multiframe_enhanced_chest_ct_is_routed_to_ct_covid(make_client):
    """Was: the region was judged on one frame with the top-level rescale (absent in Enhanced CT: raw values,
    no air), so the chest scan was called 'abdomen' and queued for ct-liver. Now each judged frame uses its
    functional groups' rescale and the frames vote: ct-covid."""
    from pynetdicom import AE
    from pynetdicom.sop_class import LegacyConvertedEnhancedCTImageStorage

    client, port = _dicom_client(make_client, study_quiet_seconds=60, study_release_grace_s=0)
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(LegacyConvertedEnhancedCTImageStorage, [ExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", port, ae_title="LESIONDX")
    assert assoc.send_c_store(_enhanced_ct(CT_SERIES)).Status == 0
    assoc.release()
    study = _single_study(client)
    assert study["task"] == "ct-covid" and study["n_files"] == 1, study


@pytest.mark.skipif(not (SHARED_DATA / "covid_ct_md_sample/series/normal001").is_dir(),
                    reason="shared CT-MD sample (covid_ct_md_sample) not present")
def test_a_multiframe_chest_ct_s_region_is_voted_on_frames_off_its_ends():
    """The real CT-MD normal001 chest series (154 slices: neck on 0-23, upper abdomen on 109-153) stacked as the
    frames of one image: the 5 judged frames stay off both ends and vote chest. The gates' first-and-last spread
    would judge frames 0, 38, 76, 114, 153 and vote abdomen 3 to 2 (ct-liver)."""
    from lesiondx.io.series import spread_indices
    from lesiondx.service.ingest import REGION_FRAMES, _frame_region, _region_from_pixels

    paths = sorted((SHARED_DATA / "covid_ct_md_sample/series/normal001").glob("*.dcm"))
    slices = sorted((pydicom.dcmread(p) for p in paths), key=lambda ds: -float(ds.ImagePositionPatient[2]))
    volume = np.stack([ds.pixel_array for ds in slices])
    header = pydicom.Dataset()
    header.RescaleSlope, header.RescaleIntercept = slices[0].RescaleSlope, slices[0].RescaleIntercept
    assert _region_from_pixels(header, volume) == "chest"
    slope, intercept = float(header.RescaleSlope), float(header.RescaleIntercept)
    ends = [_frame_region(volume[i], slope, intercept) for i in spread_indices(len(volume), REGION_FRAMES)]
    assert ends.count("abdomen") > ends.count("chest")  # why ingest does not take the gates' spread


@needs_storescu
def test_an_oversized_instance_is_received_to_a_temporary_file_and_refused_from_its_header(make_client, tmp_path):
    """Was: pynetdicom gathered the whole instance (here 63 MB of pixels) in memory before the pixel limit was
    checked, so a few large instances at once could exhaust the service's memory. Now it is received to a temporary
    file, the header is read without the pixel data and the instance is refused: Python's peak allocation during
    the send stays far below its size (storescu, a separate process, sends it)."""
    import tracemalloc

    import numpy as np

    client, port = _dicom_client(make_client, study_quiet_seconds=60, max_pixels=1_000_000)
    ds = pydicom.dcmread(CT_SERIES[0])
    ds.decompress()
    frames = 120
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.NumberOfFrames, ds.PixelData = frames, np.zeros((frames, 512, 512), np.uint16).tobytes()
    path = tmp_path / "big.dcm"
    ds.save_as(path)
    size = path.stat().st_size
    del ds
    tracemalloc.start()
    try:
        result = _storescu(port, [path])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "0xc000" in (result.stdout + result.stderr).lower() or result.returncode != 0, result.stderr
    assert peak < size / 4, f"peak {peak / 1e6:.0f} MB while receiving a {size / 1e6:.0f} MB instance"
    deadline = time.monotonic() + 10
    while not (refused := [e["detail"] for e in client.get("/api/audit").json() if e["action"] == "dicom_refused"]):
        assert time.monotonic() < deadline, "no dicom_refused audit entry"
        time.sleep(0.1)
    assert "image too large to decode" in refused[0], refused


def test_a_study_waits_for_the_next_association_s_slow_first_instance(make_client, monkeypatch):
    """The next association's first instance may take longer to decode and de-identify than the release grace (a
    multi-frame ultrasound cine on a loaded server). Was: the grace ran out while it was being stored, the first
    association's part was analysed, then reopened. Now the close waits while an association is storing the instance
    that tells its study: one analysis of all 6 slices."""
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage

    import lesiondx.service.dicom_node as node

    slow = generate_uid()
    real_accept = node.accept_dataset

    def accept(name, ds, *args, **kwargs):
        if str(ds.SOPInstanceUID) == slow:
            time.sleep(1.5)
        return real_accept(name, ds, *args, **kwargs)

    monkeypatch.setattr(node, "accept_dataset", accept)
    client, port = _dicom_client(make_client, study_quiet_seconds=60, study_release_grace_s=0.5)
    slices = _one_study(6)
    slices[3].SOPInstanceUID = slow
    ae = AE(ae_title="PACS")
    ae.add_requested_context(CTImageStorage, [JPEG_LOSSLESS])
    first = ae.associate("127.0.0.1", port, ae_title="LESIONDX")
    assert [first.send_c_store(ds).Status for ds in slices[:3]] == [0] * 3
    first.release()
    second = ae.associate("127.0.0.1", port, ae_title="LESIONDX")
    assert [second.send_c_store(ds).Status for ds in slices[3:]] == [0] * 3
    second.release()
    study = _single_study(client)
    assert study["n_files"] == 6 and study["result_version"] == 1 and study["reopened"] == 0, study


def test_a_release_grace_longer_than_the_quiet_period_is_waited_out(make_client):
    """A PACS sending one study over associations minutes apart: the admin raises LESIONDX_STUDY_RELEASE_GRACE_S
    above LESIONDX_STUDY_QUIET_S (here 8 s over 0.5 s; the second association comes 3 s after the first is released).
    Was: the quiet-period closer queued the study 0.5 s after its last instance anyway, so the first association's 3
    slices were analysed, then reopened (result_version 2). Now a study is not closed as quiet before the grace has
    passed either: one analysis of all 6 slices."""
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage

    client, port = _dicom_client(make_client, study_quiet_seconds=0.5, study_release_grace_s=8)
    slices = _one_study(6)
    ae = AE(ae_title="PACS")
    ae.add_requested_context(CTImageStorage, [JPEG_LOSSLESS])
    for first in (True, False):
        assoc = ae.associate("127.0.0.1", port, ae_title="LESIONDX")
        assert [assoc.send_c_store(ds).Status for ds in (slices[:3] if first else slices[3:])] == [0] * 3
        assoc.release()
        if first:
            time.sleep(3)
            (waiting,) = client.get("/api/studies").json()
            assert waiting["stage"] == "receiving", waiting  # still waiting for the next association
    study = _single_study(client)
    assert study["n_files"] == 6 and study["result_version"] == 1 and study["reopened"] == 0, study


def test_each_instance_is_on_disk_when_its_c_store_is_answered(make_client, tmp_path):
    """Memory stays bounded whatever the study's size: each accepted instance is de-identified, written (fsync) to the
    storage folder and filed on its study before its C-STORE is answered, never gathered until the association is
    released (a 1,064-instance, 538 MB study kept the service under 175 MB resident, README "For hospital IT")."""
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage

    client, port = _dicom_client(make_client, study_quiet_seconds=60)
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(CTImageStorage, [JPEG_LOSSLESS])
    assoc = ae.associate("127.0.0.1", port, ae_title="LESIONDX")
    try:
        for n, ds in enumerate(_one_study(4), start=1):
            assert assoc.send_c_store(ds).Status == 0
            stored = [p for p in (tmp_path / "store/blobs").rglob("*") if p.is_file() and not p.name.startswith(".")]
            assert len(stored) == n  # on disk before the association ends
            (study,) = client.get("/api/studies").json()
            assert study["stage"] == "receiving" and client.get(study["url"]).json()["n_files"] == n
    finally:
        assoc.release()
    assert _single_study(client)["n_files"] == 4

