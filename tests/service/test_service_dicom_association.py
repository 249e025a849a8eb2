"""DICOM node, per association: a study re-sent whole (audited, not re-analysed), dose reports of any Modality
(ignored), C-FIND / C-MOVE (refused: storage SCP only), calling AE titles (padding, case, impossible titles) and an
association that sends nothing. Instance-level tests: test_service_dicom.py."""

from __future__ import annotations

import time

import pytest
from pydicom.uid import ExplicitVRLittleEndian

from service_helpers import free_port
from test_service_dicom import JPEG_LOSSLESS, _accepted, _dicom_client, _non_image_objects, _one_study, _single_study


def test_a_study_re_sent_whole_leaves_one_audit_entry_with_the_copies_dropped(make_client):
    """A PACS re-forwards a study lesiondx already analysed (every instance already held). Was: no audit entry at
    all, only ``duplicates_dropped`` on the study, so an admin could not tell who re-sent it or that nothing was
    re-analysed. Now one ``dicom_resent`` entry per such association, on the study, with counts and no identifiers."""
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage

    client, port = _dicom_client(make_client, study_quiet_seconds=60)
    slices = _one_study(3)
    ae = AE(ae_title="PACS")
    ae.add_requested_context(CTImageStorage, [JPEG_LOSSLESS])
    for _ in range(2):  # the study, then the same study again once it is analysed
        assoc = ae.associate("127.0.0.1", port, ae_title="LESIONDX")
        assert [assoc.send_c_store(ds).Status for ds in slices] == [0] * 3
        assoc.release()
        study = _single_study(client)
    deadline = time.monotonic() + 10
    while not (resent := [e for e in client.get("/api/audit").json() if e["action"] == "dicom_resent"]):
        assert time.monotonic() < deadline, "no dicom_resent audit entry"
        time.sleep(0.1)
    assert len(resent) == 1 and resent[0]["actor"] == "dicom:PACS" and resent[0]["study_id"] == study["id"], resent
    assert "3 instance(s) already held" in resent[0]["detail"] and "nothing re-analysed" in resent[0]["detail"]
    assert str(slices[0].StudyInstanceUID) not in resent[0]["detail"]
    study = client.get(study["url"]).json()
    assert (study["result_version"], study["duplicates_dropped"], study["status"]) == (1, 3, "done"), study


def test_a_dose_report_tagged_modality_ct_or_with_no_modality_is_accepted_and_ignored(make_client):
    """SYNTHETIC dose reports (X-Ray Radiation Dose SR SOP class, no pixel data) in their own series beside the CT
    series of the same study, one with Modality CT (as some scanners tag them), one with no Modality. Was: both
    answered 0xC000 ('holds no pixel data', 'incomplete or truncated'), so a PACS forwarding the study marks the
    transfer failed and retries it. Now: success, not stored, counted by SOP class; the CT series is analysed."""
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage, XRayRadiationDoseSRStorage

    client, port = _dicom_client(make_client, study_quiet_seconds=60)
    slices = _one_study(3)
    dose_reports = []
    for modality in ("CT", None):
        sr = _non_image_objects(slices[0])[0]
        del sr.Modality
        if modality:
            sr.Modality = modality
        dose_reports.append(sr)
    ae = AE(ae_title="PACS")
    ae.add_requested_context(XRayRadiationDoseSRStorage, [ExplicitVRLittleEndian])
    ae.add_requested_context(CTImageStorage, [JPEG_LOSSLESS])
    assoc = ae.associate("127.0.0.1", port, ae_title="LESIONDX")
    statuses = [assoc.send_c_store(ds).Status for ds in [*dose_reports, *slices]]
    assoc.release()
    assert statuses == [0] * 5
    study = _single_study(client)
    assert study["status"] == "done" and study["n_files"] == 3 and study["errors"] == [], study
    audit = client.get("/api/audit").json()
    ignored = [e["detail"] for e in audit if e["action"] == "dicom_ignored"]
    assert len(ignored) == 1 and "non-image object (X-Ray Radiation Dose SR) ×2" in ignored[0], ignored
    assert not [e for e in audit if e["action"] == "dicom_refused"], audit


def _query(port: int, kinds, *, on_storage_context: bool) -> tuple[list, object]:
    """C-FIND / C-MOVE requests (Study Root) to the node: proposed with their own presentation contexts (refused at
    negotiation), or, ``on_storage_context``, sent on the CT storage context (a misbehaving SCU). (The responses, the
    association.)"""
    from io import BytesIO

    from pydicom.dataset import Dataset
    from pynetdicom import AE
    from pynetdicom.dsutils import encode
    from pynetdicom.sop_class import (CTImageStorage, StudyRootQueryRetrieveInformationModelFind,
                                      StudyRootQueryRetrieveInformationModelMove)

    ae = AE(ae_title="PACS")
    ae.dimse_timeout = ae.network_timeout = ae.acse_timeout = 20
    if not on_storage_context:
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        return [], ae.associate("127.0.0.1", port, ae_title="LESIONDX")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", port, ae_title="LESIONDX")
    responses = []
    for kind in kinds:
        request = kind()
        request.MessageID, request.Priority = 7, 2
        request.AffectedSOPClassUID = StudyRootQueryRetrieveInformationModelFind
        if hasattr(request, "MoveDestination"):
            request.AffectedSOPClassUID = StudyRootQueryRetrieveInformationModelMove
            request.MoveDestination = "PACS"
        query = Dataset()
        query.QueryRetrieveLevel, query.StudyInstanceUID = "STUDY", ""
        request.Identifier = BytesIO(encode(query, True, True))
        assoc.dimse.send_msg(request, assoc.accepted_contexts[0].context_id)
        deadline = time.monotonic() + 20  # a response or the end of the association (get_msg waits out its timeout)
        while assoc.is_established and assoc.dimse.msg_queue.empty() and time.monotonic() < deadline:
            time.sleep(0.05)
        responses.append(assoc.dimse.get_msg(block=False)[0])
        if not assoc.is_established:
            break
    return responses, assoc


def test_c_find_and_c_move_get_a_refusal_not_a_traceback_and_leave_no_study(make_client, caplog):
    """lesiondx's node is a storage SCP only. Proposed with their own presentation contexts, C-FIND / C-MOVE are
    refused at negotiation ('abstract syntax not supported'; already so). Sent on a storage context (a misbehaving
    SCU) the association is aborted at once, as before, but was: pynetdicom logged a traceback ('The supplied abstract
    syntax is not valid for use with the Query/Retrieve Service Class') in the service log. Now one warning line
    saying the node serves C-STORE and C-ECHO only; no study, no audit entry; the node keeps answering."""
    import logging

    from pynetdicom import AE
    from pynetdicom.dimse_primitives import C_FIND, C_MOVE
    from pynetdicom.sop_class import Verification

    client, port = _dicom_client(make_client)
    caplog.set_level(logging.INFO)
    _, assoc = _query(port, (), on_storage_context=False)
    assert not assoc.is_established or not assoc.accepted_contexts
    if assoc.is_established:
        assoc.abort()
    responses, assoc = _query(port, (C_FIND, C_MOVE), on_storage_context=True)
    assert responses == [None] and assoc.is_aborted  # the first request ends the association: no hang
    assert not [r for r in caplog.records if r.name.startswith("pynetdicom") and r.exc_info], "traceback logged"
    lines = [r.getMessage() for r in caplog.records if "storage SCP only" in r.getMessage()]
    assert len(lines) == 1 and "abstract syntax" in lines[0], [r.getMessage() for r in caplog.records]
    ae = AE(ae_title="PACS")
    ae.add_requested_context(Verification)
    echo = ae.associate("127.0.0.1", port, ae_title="LESIONDX")
    assert echo.is_established and echo.send_c_echo().Status == 0
    echo.release()
    assert client.get("/api/studies").json() == []
    assert not [e for e in client.get("/api/audit").json() if e["action"].startswith("dicom")]


@pytest.mark.parametrize("entry", ["ABCDEFGHIJKLMNOPQ", "OR\\THANC"])
def test_an_allowed_ae_title_that_cannot_be_one_stops_the_service_with_one_line(tmp_path, monkeypatch, entry):
    """LESIONDX_DICOM_ALLOWED_AETS with a 17-character title or a backslash (DICOM AE titles are 1-16 characters, no
    backslash or control characters). Was: settings accepted it and the DICOM node's start failed with a pynetdicom
    traceback ('Application startup failed'). Now a SettingsError naming the variable and the title, before start."""
    from lesiondx.service.server import build_settings
    from lesiondx.service.settings import SettingsError

    monkeypatch.setenv("LESIONDX_DICOM_ALLOWED_AETS", f"ORTHANC, {entry}")
    with pytest.raises(SettingsError, match="LESIONDX_DICOM_ALLOWED_AETS") as raised:
        build_settings(host="127.0.0.1", port=free_port(), db=None, storage=tmp_path, dicom_port=free_port(),
                       dicom_aet="LESIONDX")
    assert repr(entry) in str(raised.value)


def test_calling_ae_titles_compare_without_padding_spaces_and_case_sensitively(make_client, caplog):
    """DICOM AE titles are space-padded (leading and trailing spaces are not significant) and case-sensitive. With
    LESIONDX_DICOM_ALLOWED_AETS=' orthanc , MODALITY ' (spaces around entries are dropped): 'MODALITY' padded either
    side is accepted (already so), 'modality' and 'ORTHANC' are rejected (already so). Was: the rejection said only
    'not in LESIONDX_DICOM_ALLOWED_AETS', leaving an admin who wrote 'orthanc' for Orthanc's 'ORTHANC' guessing. Now
    it says the list holds that title in another case and that AE titles are case-sensitive."""
    import logging

    monkey_env = {"dicom_allowed_aets": tuple(a.strip() for a in " orthanc , MODALITY ".split(","))}
    client, port = _dicom_client(make_client, **monkey_env)
    caplog.set_level(logging.WARNING, logger="lesiondx.service.dicom_node")
    outcome = {title: _accepted(port, title) for title in ("MODALITY", "MODALITY    ", "  MODALITY", "modality",
                                                             "ORTHANC")}
    assert outcome == {"MODALITY": True, "MODALITY    ": True, "  MODALITY": True, "modality": False, "ORTHANC": False}
    deadline = time.monotonic() + 10
    while len(rejected := [e for e in client.get("/api/audit").json() if e["action"] == "dicom_rejected"]) < 2:
        assert time.monotonic() < deadline, rejected
        time.sleep(0.1)
    why = {e["actor"]: e["detail"] for e in rejected}
    assert "lists 'orthanc'" in why["dicom:ORTHANC"] and "case-sensitive" in why["dicom:ORTHANC"], why
    assert "lists 'MODALITY'" in why["dicom:modality"], why


def test_an_association_that_sends_nothing_leaves_no_study_and_no_audit_entry(make_client, caplog):
    """An association released (or aborted) without a single C-STORE (a sender testing the link, an empty job):
    no study, no audit entry, no warning line (already so; guards the re-send and refusal reports)."""
    import logging

    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage

    client, port = _dicom_client(make_client, study_quiet_seconds=0.5, study_release_grace_s=0.2)
    caplog.set_level(logging.INFO, logger="lesiondx")
    ae = AE(ae_title="PACS")
    ae.add_requested_context(CTImageStorage, [JPEG_LOSSLESS])
    for end in ("release", "abort"):
        assoc = ae.associate("127.0.0.1", port, ae_title="LESIONDX")
        assert assoc.is_established
        getattr(assoc, end)()
    time.sleep(1.5)  # past the release grace and the quiet period
    assert client.get("/api/studies").json() == []
    assert not [e for e in client.get("/api/audit").json() if e["action"].startswith("dicom")]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [r.getMessage() for r in caplog.records]
