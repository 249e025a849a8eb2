"""Stack viewer back end: every slice kept with its InstanceNumber, raw and windowed slices, findings per
slice, magma heat maps, live progress (stage, slices done, queue position) and the progress hook."""

from __future__ import annotations

import json
import time

import numpy as np
import pydicom
from PIL import Image
import io

from lesiondx.progress import report, reporting, track
from lesiondx.service.testing import series_stub_predictor
from lesiondx.service.viewer import ProgressFile, heat_rgba, read_progress

from service_helpers import CT_SERIES, US_IMAGES, file_field, wait_study


def _ct_study(client, timeout: float = 30.0):
    response = client.post("/api/studies", files=[file_field(p) for p in CT_SERIES])
    assert response.status_code == 201, response.text
    return wait_study(client, response.json()["id"], timeout=timeout)


def test_every_slice_in_patient_order_with_instance_number(make_client):
    client = make_client(series_stub_predictor)
    study = _ct_study(client)
    assert study["status"] == "done" and study["progress"]["final"] is True
    listing = client.get(f"/api/studies/{study['id']}/slices").json()
    assert listing["n"] == len(CT_SERIES) and listing["is_hu"] is True
    # InstanceNumber from the files, ordered superior → inferior like lesiondx.io.read_study
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in CT_SERIES]
    by_z = sorted(headers, key=lambda d: -float(d.ImagePositionPatient[2]))
    assert listing["instance_numbers"] == [int(d.InstanceNumber) for d in by_z]
    assert listing["window"] == {"center": -600.0, "width": 1500.0}  # chest CT opens in the lung window
    assert set(listing["presets"]) >= {"lung", "abdomen", "liver"}
    # raw slice = the file's HU (rescale applied), little-endian int16
    raw = client.get(f"/api/studies/{study['id']}/slices/0.raw")
    assert raw.status_code == 200 and raw.headers["x-rows"] == str(by_z[0].Rows)
    hu = np.frombuffer(raw.content, dtype="<i2").reshape(by_z[0].Rows, by_z[0].Columns)
    ds = pydicom.dcmread(next(p for p in CT_SERIES if pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber == by_z[0].InstanceNumber))
    expected = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert np.abs(hu - expected).max() <= 0.5
    # windowed PNG: lung window maps -1350 HU → 0 and +150 HU → 255
    png = np.asarray(Image.open(io.BytesIO(client.get(f"/api/studies/{study['id']}/slices/0.png",
                                                        params={"wc": -600, "ww": 1500}).content)))
    assert png.shape == hu.shape and png[hu <= -1350].max(initial=0) == 0 and png[hu >= 150].min(initial=255) == 255
    assert client.get(f"/api/studies/{study['id']}/slices/{listing['n']}.raw").status_code == 404
    assert client.get(f"/api/studies/{study['id']}/slices/0.png", params={"ww": 0}).status_code == 422


def test_findings_carry_their_slice_and_heat_maps_are_magma_with_alpha(make_client):
    client = make_client(series_stub_predictor)
    study = _ct_study(client)
    listing = client.get(f"/api/studies/{study['id']}/slices").json()
    # the stub puts one box on every 5th slice starting at 2
    assert [f["slice"] for f in listing["findings"]] == list(range(2, listing["n"], 5))
    assert all(f["instance"] == listing["instance_numbers"][f["slice"]] for f in listing["findings"])
    assert listing["heatmaps"] == [f["slice"] for f in listing["findings"]]
    heat = np.asarray(Image.open(io.BytesIO(client.get(f"/api/studies/{study['id']}/heat/2.png").content)))
    assert heat.shape[2] == 4 and heat[..., 3].max() <= 0.6 * 255 + 1 and heat[0, 0, 3] == 0  # transparent far away
    assert client.get(f"/api/studies/{study['id']}/heat/3.png").status_code == 404
    raw = client.get(f"/api/studies/{study['id']}").json()["results"][0]
    assert "heatmaps" not in json.dumps(raw["details"])  # maps are files, not JSON


def test_single_images_have_no_stack(make_client):
    client = make_client(series_stub_predictor)
    study = wait_study(client, client.post("/api/studies", files=[file_field(US_IMAGES[0])]).json()["id"])
    assert study["status"] == "done"
    assert client.get(f"/api/studies/{study['id']}/slices").status_code == 404


def test_heat_rgba_is_perceptual_and_transparent_at_zero():
    rgba = heat_rgba(np.linspace(0, 1, 11, dtype=np.float32)[None])[0]
    assert rgba[0, 3] == 0 and rgba[-1, 3] == int(0.6 * 255)
    luminance = rgba[:, :3] @ np.array([0.2126, 0.7152, 0.0722])
    assert np.all(np.diff(luminance) > 0)  # magma: brightness rises monotonically (jet does not)


def test_progress_hook_reaches_the_file(tmp_path):
    sink = ProgressFile(tmp_path)
    with reporting(sink):
        for i in track(range(4), "analysing slices"):
            time.sleep(0.21)  # the file is rewritten at most every 0.2 s
            if i == 1:
                now = read_progress(tmp_path)
                assert now["stage"] == "analysing slices" and now["done"] == 1 and now["total"] == 4
    assert read_progress(tmp_path) == {"stage": "analysing slices", "done": 4, "total": 4, "eta_s": None}
    report("outside", 1, 2)  # no sink: nothing happens, nothing breaks
    assert read_progress(tmp_path)["stage"] == "analysing slices"


def test_progress_queue_position_and_slices_done_while_running(make_client, monkeypatch):
    monkeypatch.setenv("LESIONDX_STUB_SLICE_DELAY_S", "0.15")
    client = make_client(series_stub_predictor)
    ids = [client.post("/api/studies", files=[file_field(p) for p in CT_SERIES]).json()["id"] for _ in range(2)]
    seen_done, positions = set(), set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        first, second = (client.get(f"/api/studies/{i}").json() for i in ids)
        if first["status"] == "running" and first["progress"]["stage"] == "analysing slices":
            seen_done.add(first["progress"]["done"])
            assert first["progress"]["total"] == len(CT_SERIES)
            listed = {r["id"]: r for r in client.get("/api/studies").json()}[ids[0]]
            assert listed["status"] == "done" or listed["running"]["total"] == len(CT_SERIES)  # the list shows it too
        if second["status"] == "queued":
            positions.add(second["progress"]["queue_position"])
        if second["status"] == "done":
            break
        time.sleep(0.05)
    assert len([d for d in seen_done if 0 < d < len(CT_SERIES)]) >= 2  # counted up while it ran
    assert positions == {1}  # the only queued study while the first ran
    assert second["progress"]["final"] is True and second["progress"]["queue_position"] is None


def test_pages_keep_polling_until_the_pacs_export_is_final():
    from types import SimpleNamespace

    from lesiondx.service.viewer import progress_of

    core = SimpleNamespace(settings=SimpleNamespace(pacs="PACS@127.0.0.1:4242"))
    study = SimpleNamespace(status="done", export_status=None, source="dicom")
    waiting = progress_of(core, None, study)
    assert waiting["export"] == "pending" and waiting["final"] is False
    sending = progress_of(core, None, SimpleNamespace(**{**vars(study), "export_status": '{"state": "sending"}'}))
    assert sending["export"]["state"] == "sending" and sending["final"] is False
    retry = progress_of(core, None, SimpleNamespace(**{**vars(study), "export_status":
                                                        '{"state": "failed", "next_try_at": "2026-01-01T00:00:00"}'}))
    assert retry["final"] is False  # a failed export that will be retried is not final
    sent = progress_of(core, None, SimpleNamespace(**{**vars(study), "export_status": '{"state": "sent", "version": 1}'}))
    assert sent["export"] == {"state": "sent", "version": 1} and sent["final"] is True
    upload = progress_of(core, None, SimpleNamespace(**{**vars(study), "source": "upload"}))
    assert upload["final"] is True and upload["export"] is None  # uploads are never exported
    failed = progress_of(SimpleNamespace(settings=SimpleNamespace(pacs=None)), None, SimpleNamespace(**{**vars(study), "status": "failed"}))
    assert failed["final"] is True and failed["stage"] == "failed"


def test_real_ct_covid_boxes_and_heat_maps_reach_the_viewer(make_client):
    """The shipped ct-covid model on the 10 real CT-MD slices: its lesion slices carry boxes and heat maps."""
    from lesiondx.service.worker import default_predictor

    client = make_client(default_predictor)
    study = _ct_study(client, timeout=240)  # the real model on a shared, loaded machine
    assert study["status"] == "done", study.get("failure")
    listing = client.get(f"/api/studies/{study['id']}/slices").json()
    with_boxes = sorted({f["slice"] for f in listing["findings"]})
    assert with_boxes and listing["heatmaps"] == with_boxes
    heat = np.asarray(Image.open(io.BytesIO(client.get(f"/api/studies/{study['id']}/heat/{with_boxes[0]}.png").content)))
    f = next(f for f in listing["findings"] if f["slice"] == with_boxes[0])
    x1, y1, x2, y2 = (int(round(c)) for c in f["box"])
    assert heat[y1:y2, x1:x2, 3].max() > heat[:, :, 3].mean()  # the map is strongest inside its box
    assert "heatmaps" not in json.dumps(study["results"][0]["details"])


def test_findings_of_other_phases_are_not_drawn_on_the_stored_stack():
    from lesiondx.service.viewer import findings

    entry = {"details": {"studies": [{"study": "art"}, {"study": "pv"}]},
             "boxes": [{"box": [1, 2, 5, 6], "slice": 1, "study": "art", "score": 0.9, "inside_liver": True},
                       {"box": [1, 2, 5, 6], "slice": 1, "study": "pv", "score": 0.8},
                       {"box": [1, 2, 5, 6], "slice": 9, "study": "art"},  # beyond the stack
                       [0, 0, 3, 3]]}  # no slice: not a finding on a slice
    found = findings([entry], [11, 12, 13])
    assert found == [{"slice": 1, "instance": 12, "box": [1.0, 2.0, 5.0, 6.0], "score": 0.9, "location": None,
                      "size_mm": None, "inside_liver": True, "label": None}]
