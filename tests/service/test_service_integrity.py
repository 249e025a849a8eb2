"""Study integrity through the DICOM node (pynetdicom as the sending modality/PACS): instances keyed by SOP
Instance UID (copies dropped and counted), a resend joins the same study, late instances reopen and re-run
it (result version +1, stale runs never stored, each new version exported), a study receiving at shutdown is
not closed on restart, gaps in a series are warned about, refused instances are reported somewhere."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.uid import generate_uid

from lesiondx.service.api import create_app
from lesiondx.service.settings import PacsTarget, Settings
from lesiondx.service.testing import stub_predictor
from service_helpers import CT_SERIES, free_port, wait_study

JPEG_LOSSLESS = "1.2.840.10008.1.2.4.70"


def _series(tag: str) -> list[pydicom.Dataset]:
    """The 10 bundled CT-MD slices with stable SOP Instance UIDs (the files have none)."""
    out = []
    for path in CT_SERIES:
        ds = pydicom.dcmread(path)
        ds.SOPInstanceUID = generate_uid(entropy_srcs=["lesiondx-integrity", tag, path.name])
        out.append(ds)
    return out


def _send(port: int, datasets, *, release: bool = True, title: str = "MODALITY") -> list[int]:
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage, MRImageStorage

    ae = AE(ae_title=title)
    ae.add_requested_context(CTImageStorage, [JPEG_LOSSLESS])
    ae.add_requested_context(MRImageStorage, [JPEG_LOSSLESS])
    assoc = ae.associate("127.0.0.1", port, ae_title="LESIONDX")
    assert assoc.is_established
    statuses = [int(assoc.send_c_store(ds).Status) for ds in datasets]
    assoc.release() if release else assoc.abort()
    return statuses


class Recorder:
    """The stub predictor, recording how many slices each call was given; ``gate`` holds the first call."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.slices: list[int] = []
        self.gate = gate

    def __call__(self, task, inputs, out, model="default", **options):
        self.slices.append(sum(1 for _ in Path(inputs[0]).iterdir()) if Path(inputs[0]).is_dir() else len(inputs))
        if self.gate is not None and len(self.slices) == 1:
            assert self.gate.wait(20), "test never released the first job"
        return stub_predictor(task, inputs, out, model, **options)


def _reference_probability(datasets, folder: Path) -> float:
    """What the stub says about exactly these slices, each once."""
    folder.mkdir(parents=True)
    for i, ds in enumerate(datasets):
        ds.save_as(folder / f"{i:03d}.dcm", enforce_file_format=True)
    return stub_predictor("ct-covid", [folder], folder / "out")["patient"]["probability"]


def _studies(client) -> list[dict]:
    return client.get("/api/studies").json()


def _wait_for(client, study_id: str, check, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/api/studies/{study_id}").json()
        if check(body):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"study never reached the expected state: {body}")
        time.sleep(0.1)


def _wait_until(check, shown, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, shown
        time.sleep(0.1)


def _only_study(client, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while not _studies(client):
        assert time.monotonic() < deadline, "no study"
        time.sleep(0.1)
    studies = _studies(client)
    assert len(studies) == 1, studies
    return wait_study(client, studies[0]["id"], timeout)


def test_duplicates_are_dropped_counted_and_never_change_the_result(make_client, tmp_path):
    recorder = Recorder()
    port = free_port()
    client = make_client(predictor=recorder, dicom_port=port, host="127.0.0.1", study_quiet_seconds=60)
    series = _series("dup")
    assert _send(port, series + series) == [0] * 20  # every instance twice in one association
    study = _only_study(client)
    assert study["status"] == "done" and study["n_files"] == 10 and study["duplicates_dropped"] == 10
    assert recorder.slices == [10]  # the predictor saw each slice once
    expected = _reference_probability(series, tmp_path / "ref")
    assert study["results"][0]["probability"] == expected and study["result_version"] == 1

    assert _send(port, series) == [0] * 10  # the whole series again, new association
    time.sleep(1.0)  # a re-run, if one were (wrongly) queued, would start within this
    again = client.get(f"/api/studies/{study['id']}").json()
    assert len(_studies(client)) == 1
    assert again["status"] == "done" and again["duplicates_dropped"] == 20 and again["n_files"] == 10
    assert again["result_version"] == 1 and recorder.slices == [10]
    assert again["results"][0]["probability"] == expected


def test_late_instances_reopen_the_same_study_rerun_it_and_export_each_new_version(make_client, tmp_path):
    from pynetdicom import AE, AllStoragePresentationContexts, evt

    reports: list[str] = []  # SR objects stored at the fake PACS: one per exported result version

    def on_store(event):
        if str(event.dataset.get("Modality", "")) == "SR":
            reports.append(str(event.dataset.SOPInstanceUID))
        return 0x0000

    pacs_ae = AE(ae_title="PACS")
    for context in AllStoragePresentationContexts:
        pacs_ae.add_supported_context(context.abstract_syntax)
    pacs_port = free_port()
    pacs = pacs_ae.start_server(("127.0.0.1", pacs_port), block=False, evt_handlers=[
        (evt.EVT_C_STORE, on_store)])
    try:
        gate = threading.Event()
        recorder = Recorder(gate)
        port = free_port()
        client = make_client(predictor=recorder, dicom_port=port, host="127.0.0.1", study_quiet_seconds=60,
                             pacs=PacsTarget("PACS", "127.0.0.1", pacs_port))
        series = _series("late")
        assert _send(port, series[:6]) == [0] * 6
        deadline = time.monotonic() + 20
        while not recorder.slices:  # the first run has started (held by the gate)
            assert time.monotonic() < deadline
            time.sleep(0.05)
        study_id = _studies(client)[0]["id"]
        assert _send(port, series[6:8]) == [0, 0]  # arrive while the 6-slice job runs: the study reopens
        gate.set()
        study = _wait_for(client, study_id, lambda s: s["status"] == "done" and s["result_version"] == 2)
        assert recorder.slices == [6, 8] and study["n_files"] == 8 and study["reopened"] == 1
        assert study["results"][0]["details"]["n_slices"] == 8  # the stale 6-slice result was never stored
        _wait_until(lambda: len(reports) >= 1, reports)  # version 2 exported before the last instances come

        assert _send(port, series[8:]) == [0, 0]  # after it is done: reopened again
        study = _wait_for(client, study_id, lambda s: s["status"] == "done" and s["result_version"] == 3)
        assert len(_studies(client)) == 1 and study["n_files"] == 10 and recorder.slices == [6, 8, 10]
        assert study["results"][0]["probability"] == _reference_probability(series, tmp_path / "ref")
        actions = [e["action"] for e in client.get("/api/audit").json() if e.get("study_id") == study_id]
        assert actions.count("dicom_reopen") == 2
        _wait_until(lambda: len(reports) >= 2, reports)  # version 3 exported too; the stale run never was
        time.sleep(0.5)
        assert len(reports) == 2
    finally:
        pacs.shutdown()


def test_a_study_receiving_at_shutdown_is_not_closed_on_restart(tmp_path):
    port = free_port()
    store = tmp_path / "store"
    series = _series("restart")
    with TestClient(create_app(Settings(storage=store, dicom_port=port, host="127.0.0.1", study_quiet_seconds=60,
                                        worker_poll_seconds=0.05), predictor=stub_predictor),
                    base_url="http://localhost") as first:  # a host the web-safety allow-list accepts
        assert _send(port, series[:3], release=False) == [0, 0, 0]  # cut off: aborted, then the service stops
        sent_at = time.monotonic()
        assert _studies(first)[0]["stage"] == "receiving"
    quiet = 3.0
    time.sleep(max(0.0, sent_at + quiet + 0.2 - time.monotonic()))  # longer ago than the next quiet period
    port = free_port()
    with TestClient(create_app(Settings(storage=store, dicom_port=port, host="127.0.0.1",
                                        study_quiet_seconds=quiet, worker_poll_seconds=0.05),
                               predictor=stub_predictor), base_url="http://localhost") as second:
        started = time.monotonic()
        assert _studies(second)[0]["stage"] == "receiving"
        time.sleep(1.0)
        assert _studies(second)[0]["stage"] == "receiving"  # its quiet timer restarted at start-up
        study = _only_study(second)
        assert time.monotonic() - started >= quiet - 1.0
        assert study["status"] == "done" and study["n_files"] == 3
        assert [w["kind"] for w in study["warnings"]] == ["interrupted"]  # nothing came after the restart
        assert _send(port, series[3:]) == [0] * 7  # the sender resends the rest: same study, warning gone
        study = _wait_for(second, study["id"], lambda s: s["status"] == "done" and s["result_version"] == 2)
        assert study["n_files"] == 10 and study["warnings"] == [] and len(_studies(second)) == 1


def test_gaps_in_a_series_give_a_warning(make_client, tmp_path):
    port = free_port()
    client = make_client(dicom_port=port, host="127.0.0.1", study_quiet_seconds=60)
    series = _series("gap")
    numbers = [int(ds.InstanceNumber) for ds in series]
    kept = series[:3] + series[6:]  # instances 24–26 never arrive
    assert _send(port, kept) == [0] * len(kept)
    study = _only_study(client)
    reasons = [w["reason"] for w in study["warnings"]]
    assert len(reasons) == 1 and f"instances {numbers[3]}–{numbers[5]} missing" in reasons[0], reasons
    assert "series may be incomplete" in reasons[0] and "2.25." not in reasons[0]  # no UIDs
    stored = [pydicom.dcmread(p, stop_before_pixels=True) for p in (tmp_path / "store/blobs").rglob("*") if p.is_file()]
    assert stored and all("ImageOrientationPatient" in ds and "ImagePositionPatient" in ds for ds in stored)

    unnumbered = _series("gap-positions")  # no InstanceNumber: the slice positions (2 mm apart) tell the gap
    study_uid = generate_uid()
    for ds in unnumbered:
        del ds.InstanceNumber
        ds.StudyInstanceUID = study_uid
    assert _send(port, unnumbered[:4] + unnumbered[7:]) == [0] * 7
    deadline = time.monotonic() + 30
    while len(_studies(client)) < 2 or any(s["status"] not in ("done", "failed") for s in _studies(client)):
        assert time.monotonic() < deadline, _studies(client)
        time.sleep(0.1)
    other = [client.get(s["url"]).json() for s in _studies(client) if s["id"] != study["id"]][0]
    assert [w["reason"].split(" (")[0] for w in other["warnings"]] == [
        "about 3 slice(s) missing between -227.7 and -219.7 mm"]


def test_a_complete_series_and_a_duplicated_rest_upload(make_client):
    from service_helpers import file_field

    client = make_client()
    body = client.post("/api/studies", files=[file_field(p) for p in CT_SERIES] + [file_field(CT_SERIES[0])]).json()
    study = wait_study(client, body["id"])
    assert study["n_files"] == 10 and study["duplicates_dropped"] == 1 and study["warnings"] == []


def test_refused_instances_are_reported_on_the_study_or_in_the_audit_log(make_client):
    from pynetdicom.sop_class import MRImageStorage

    port = free_port()
    client = make_client(dicom_port=port, host="127.0.0.1", study_quiet_seconds=60)
    series = _series("refused")
    mr = pydicom.dcmread(CT_SERIES[0])  # an image without a Modality: refused (an MR is accepted and ignored)
    mr.SOPInstanceUID, mr.Modality, mr.SOPClassUID = generate_uid(), "", MRImageStorage
    mr.PatientName = "DOE^JANE"
    assert _send(port, [mr], title="SCANNER") == [0xC000]  # no study can be told
    deadline = time.monotonic() + 10
    while not [e for e in client.get("/api/audit").json() if e["action"] == "dicom_refused"]:
        assert time.monotonic() < deadline, client.get("/api/audit").json()
        time.sleep(0.1)
    entry = [e for e in client.get("/api/audit").json() if e["action"] == "dicom_refused"][0]
    assert entry["actor"] == "dicom:SCANNER" and "unsupported modality 'none'" in entry["detail"]
    assert "DOE" not in str(entry) and str(mr.SOPInstanceUID) not in str(entry)
    assert _studies(client) == []

    assert _send(port, [mr] + series[:3]) == [0xC000, 0, 0, 0]  # refused first, then a study opens
    study = _only_study(client)
    assert study["n_files"] == 3 and any("unsupported modality 'none'" in e["reason"] for e in study["errors"])


@pytest.mark.parametrize("numbers, expected", [([1, 2, 3], None), ([1, 2, 5, 9], "3–4, 6–8")])
def test_instance_gap_ranges(numbers, expected):
    from lesiondx.service.integrity import series_gap_warnings

    warnings = series_gap_warnings(("s", n, None) for n in numbers)
    assert (warnings[0]["reason"].split(" missing")[0] == f"instances {expected}") if expected else warnings == []


def test_position_gaps_and_repeats_without_instance_numbers():
    from lesiondx.service.integrity import series_gap_warnings

    regular = [("s", None, -2.0 * i) for i in range(8)]
    assert series_gap_warnings(regular) == []
    gap = [r for i, r in enumerate(regular) if i not in (3, 4)]
    assert "about 2 slice(s) missing between -10.0 and -4.0 mm" in series_gap_warnings(gap)[0]["reason"]
    twice = regular + [("s", None, p) for _, _, p in regular]
    assert "received more than once" in series_gap_warnings(twice)[0]["reason"]


def test_own_result_objects_sent_back_by_the_pacs_are_accepted_and_ignored(make_client):
    """A PACS forwarding a whole study after results exist sends lesiondx's own SC back: C-STORE success
    (so the PACS's forward does not fail), but no study, file or error is made from it."""
    from lesiondx.service.pacs.content import AI_MARK

    port = free_port()
    client = make_client(dicom_port=port, host="127.0.0.1", study_quiet_seconds=60)
    own = _series("own-result")[0]
    own.SeriesDescription = f"{AI_MARK} v1 (overlays)"
    assert _send(port, [own]) == [0]
    other = _series("own-result-control")[0]
    assert _send(port, [other]) == [0]
    studies = _studies(client)
    assert len(studies) == 1  # only the control instance made a study
    assert client.get(f"/api/studies/{studies[0]['id']}").json()["n_files"] == 1
