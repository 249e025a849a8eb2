"""REST API: upload → queue → worker → results, routing by modality, predictor hook and failures."""

from __future__ import annotations

import io
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from service_helpers import CT_SERIES, IRCADB, US_IMAGES, file_field, wait_study


def test_health_and_openapi_document_the_endpoints(client):
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["worker_alive"] is True
    assert "not a diagnosis" in health["disclaimer"]
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/health", "/api/studies", "/api/studies/{study_id}", "/api/studies/{study_id}/files/{name}",
                 "/api/reader/next", "/api/reader/export.csv"):
        assert path in paths, path


def test_ultrasound_batch_gives_results_with_overlays(client):
    response = client.post("/api/studies", files=[file_field(p) for p in US_IMAGES[:3]])
    assert response.status_code == 201, response.text
    study = wait_study(client, response.json()["id"])
    assert study["status"] == "done" and study["task"] == "us-liver" and study["errors"] == []
    assert [r["image"] for r in study["results"]] == ["file-001.png", "file-002.png", "file-003.png"]  # pseudonyms
    for result, source in zip(study["results"], US_IMAGES[:3]):
        assert 0.0 <= result["probability"] <= 1.0
        assert result["label"] == ("malignant" if result["probability"] >= 0.5 else "benign")
        assert result["model_version"] == "test-double"
        assert len(result["boxes"]) == 1 and len(result["boxes"][0]) == 4
        overlay = client.get(result["overlays"][0]["url"])
        assert overlay.status_code == 200 and overlay.content[:8] == b"\x89PNG\r\n\x1a\n"
        image = Image.open(io.BytesIO(client.get(result["image_url"]).content))
        assert image.size == Image.open(source).size  # the preview shows the uploaded image itself
    listed = client.get("/api/studies").json()
    assert listed[0]["id"] == study["id"] and listed[0]["status"] == "done"


def test_same_image_gives_same_result_and_is_stored_once(client, tmp_path):
    ids = [client.post("/api/studies", files=[file_field(US_IMAGES[0])]).json()["id"] for _ in range(2)]
    first, second = (wait_study(client, i) for i in ids)
    assert first["results"][0]["probability"] == second["results"][0]["probability"]
    blobs = [p for p in (tmp_path / "store/blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 1  # content-addressed: identical uploads share one blob


def test_chest_ct_dicom_routes_to_ct_covid_with_a_series_input(make_client):
    seen = {}

    def recording(task, inputs, out, model):
        seen.update(task=task, inputs=[Path(p) for p in inputs],
                    n=[len(list(Path(p).iterdir())) for p in inputs if Path(p).is_dir()])
        return {"patient": {"probability": 0.9, "label": "COVID-19", "threshold": 0.5, "model_version": "rec-1"},
                "slices": [], "overlays": []}

    client = make_client(predictor=recording)
    study = wait_study(client, client.post("/api/studies", files=[file_field(p) for p in CT_SERIES]).json()["id"])
    assert study["status"] == "done", study
    assert seen["task"] == "ct-covid" and seen["n"] == [len(CT_SERIES)] and len(seen["inputs"]) == 1
    assert study["results"][0]["label"] == "COVID-19" and study["results"][0]["probability"] == 0.9
    assert study["results"][0]["model_version"] == "rec-1"


@pytest.mark.skipif(not IRCADB.is_dir(), reason="shared 3D-IRCADb data not present")
def test_abdominal_ct_without_body_part_routes_to_ct_liver(make_client):
    tasks = []
    client = make_client(predictor=lambda task, inputs, out, model: tasks.append(task) or {"lesions": [], "patient": {}})
    files = [file_field(IRCADB / f"image_{i}") for i in (40, 60, 80)]
    study = wait_study(client, client.post("/api/studies", files=files).json()["id"])
    assert study["status"] == "done" and tasks == ["ct-liver"]


def test_user_task_choice_wins_and_unknown_task_is_400(make_client):
    tasks = []
    client = make_client(predictor=lambda task, inputs, out, model: tasks.append(task) or {"results": []})
    wait_study(client, client.post("/api/studies", files=[file_field(US_IMAGES[0])], data={"task": "ct-liver"}).json()["id"])
    assert tasks == ["ct-liver"]
    bad = client.post("/api/studies", files=[file_field(US_IMAGES[0])], data={"task": "brain-mri"})
    assert bad.status_code == 400 and "unknown task" in bad.json()["detail"]


def test_ct_liver_upload_window_reaches_the_predictor_and_a_bad_window_is_400(make_client):
    if not (IRCADB / "image_40").is_file():
        pytest.skip(f"shared dataset liver_ircadb01_p01_p07 not found at {IRCADB.parent.parent} (set LESIONDX_SHARED_DATA)")
    calls = []
    client = make_client(predictor=lambda task, inputs, out, model, **options: calls.append((task, options))
                         or {"lesions": [], "patient": {}, "results": []})
    files = [file_field(IRCADB / f"image_{i}") for i in (40, 60)]
    study = wait_study(client, client.post("/api/studies", files=files, data={"window": " 40, 350 "}).json()["id"])
    assert study["status"] == "done" and study["options"] == {"window": "40,350"}
    assert calls == [("ct-liver", {"window": "40,350"})]
    wait_study(client, client.post("/api/studies", files=[file_field(US_IMAGES[0])], data={"window": "40,350"}).json()["id"])
    assert calls[-1] == ("us-liver", {})  # only ct-liver takes the window
    wait_study(client, client.post("/api/studies", files=files, data={"window": "Auto"}).json()["id"])
    assert calls[-1] == ("ct-liver", {"window": "auto"})  # estimated from the slices by the predictor
    bad = client.post("/api/studies", files=files, data={"window": "40,zero"})
    assert bad.status_code == 400 and "center,width" in bad.json()["detail"]


def _png(value: int) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64), value, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("task", ["ct-liver", "ct-covid"])
def test_ct_png_slices_reach_the_predictor_as_one_series_in_name_order(make_client, task):
    """Slices uploaded as separate PNG files (here out of order) are one study: one folder, natural file-name
    order (as ``predict SLICES/``), not one-slice phases or upload order. Ultrasound images stay single files."""
    from lesiondx.io import read_image

    seen = []

    def predictor(task, inputs, out, model, **options):  # records each input: a folder's slice values in order
        seen.append([[int(read_image(p).pixels.max()) for p in sorted(i.iterdir())] if i.is_dir() else i.name
                     for i in inputs])
        return {"lesions": [], "patient": {}}

    client = make_client(predictor=predictor)
    names = {"slice10.png": 100, "slice2.png": 20, "slice1.png": 10}
    files = [file_field(Path(n), n, _png(v)) for n, v in names.items()]
    study = wait_study(client, client.post("/api/studies", files=files, data={"task": task}).json()["id"])
    assert study["status"] == "done" and seen[-1] == [[10, 20, 100]]
    wait_study(client, client.post("/api/studies", files=[file_field(p) for p in US_IMAGES[:2]]).json()["id"])
    assert len(seen[-1]) == 2 and all(isinstance(name, str) for name in seen[-1])


def test_refused_input_fails_the_study_with_the_reason_and_logs_no_traceback(make_client, caplog):
    from lesiondx.io import ImageReadError

    def refusing(task, inputs, out, model="default", **options):
        if task == "ct-covid":
            raise ImageReadError(inputs[0], "refused for task ct-covid: the image looks like ultrasound")
        raise RuntimeError("model exploded on purpose")

    client = make_client(predictor=refusing)
    with caplog.at_level("WARNING", logger="lesiondx.service.worker"):
        refused = wait_study(client, client.post("/api/studies", files=[file_field(US_IMAGES[0])],
                                                 data={"task": "ct-covid"}).json()["id"])
        crashed = wait_study(client, client.post("/api/studies", files=[file_field(US_IMAGES[1])]).json()["id"])
    assert refused["status"] == "failed" and "looks like ultrasound" in refused["failure"]
    assert crashed["status"] == "failed"
    logged = {r.getMessage().split(":")[0]: r.getMessage() for r in caplog.records}
    refused_log = logged[f"prediction failed for {refused['id']}"]
    assert "looks like ultrasound" in refused_log and "Traceback" not in refused_log  # bad input: one line
    assert "Traceback" in logged[f"prediction failed for {crashed['id']}"]  # a real error keeps its traceback


def test_predictor_exception_fails_that_study_and_the_worker_lives_on(make_client):
    bad_pixels = np.asarray(Image.open(US_IMAGES[0]))  # names are pseudonyms: tell the inputs by their pixels

    def flaky(task, inputs, out, model):
        if any(np.array_equal(np.asarray(Image.open(p)), bad_pixels) for p in inputs):
            raise RuntimeError("model exploded on purpose")
        return {"results": [{"image": Path(inputs[0]).name, "probability": 0.1, "label": "benign"}]}

    client = make_client(predictor=flaky)
    bad = client.post("/api/studies", files=[file_field(US_IMAGES[0])]).json()["id"]
    good = client.post("/api/studies", files=[file_field(US_IMAGES[1])]).json()["id"]
    failed, done = wait_study(client, bad), wait_study(client, good)
    assert failed["status"] == "failed" and "model exploded on purpose" in failed["failure"]
    assert done["status"] == "done" and done["results"][0]["probability"] == 0.1
    assert client.get("/api/health").json()["worker_alive"] is True


def test_default_path_calls_the_task_modules_predict(make_client, monkeypatch):
    """Without an injected predictor the worker must call lesiondx.tasks.load_task(task).predict."""
    calls = []
    fake = types.ModuleType("fake_task")

    def predict(inputs, model, out, **options):  # the shape lesiondx.us_liver.task.predict returns
        calls.append((list(inputs), model, out))
        overlay = Path(out) / f"{Path(inputs[0]).stem}_us_liver.png"
        Image.new("RGB", (32, 32), "red").save(overlay)
        return {"task": "us-liver", "model_version": "fake-task-1",
                "results": [{"image": str(inputs[0]), "box": [1, 2, 30, 31], "probability": 0.77,
                             "label": "malignant", "threshold": 0.5, "overlay": str(overlay),
                             "model_version": "fake-task-1", "seconds": 0.1}]}

    fake.predict = predict
    import lesiondx.tasks

    monkeypatch.setattr(lesiondx.tasks, "load_task", lambda name: fake if name == "us-liver" else None)
    client = make_client(predictor=None)
    study = wait_study(client, client.post("/api/studies", files=[file_field(US_IMAGES[0])]).json()["id"])
    assert study["status"] == "done" and study["results"][0]["model_version"] == "fake-task-1"
    result = study["results"][0]
    assert result["image"] == "file-001.png"  # the echoed work path is shown as the upload's pseudonym
    assert [o["name"] for o in result["overlays"]] == [f"{Path(calls[0][0][0]).stem}_us_liver.png"]
    assert "/work/" not in str(study) and "/store/" not in str(study)  # no server paths leak
    (inputs, model, out), = calls
    assert model == "default" and inputs[0].suffix == ".png" and out is not None  # re-encoded from the pixels


def test_missing_task_module_fails_the_study_with_the_reason(make_client, monkeypatch):
    from lesiondx.tasks import TaskNotAvailable
    import lesiondx.tasks

    def unavailable(name):
        raise TaskNotAvailable(f"task {name!r} is not available in this build")

    monkeypatch.setattr(lesiondx.tasks, "load_task", unavailable)
    client = make_client(predictor=None)
    study = wait_study(client, client.post("/api/studies", files=[file_field(US_IMAGES[0])]).json()["id"])
    assert study["status"] == "failed" and "not available in this build" in study["failure"]


def test_unknown_study_and_path_traversal_are_404(client):
    assert client.get("/api/studies/doesnotexist").status_code == 404
    sid = client.post("/api/studies", files=[file_field(US_IMAGES[0])]).json()["id"]
    wait_study(client, sid)
    assert client.get(f"/api/studies/{sid}/files/..%2F..%2Fsecret.key").status_code == 404
    assert client.get(f"/api/studies/{sid}/files/.secret").status_code == 404


def test_web_pages_are_served_with_disclaimer(client):
    for path in ("/", "/studies/abc", "/reader"):
        page = client.get(path)
        assert page.status_code == 200 and "not a diagnosis" in page.text, path
    assert "async api(" in client.get("/static/app.js").text


def test_postgresql_backend(make_client, postgres_url):
    client = make_client(db_url=postgres_url)
    study = wait_study(client, client.post("/api/studies", files=[file_field(US_IMAGES[0])]).json()["id"])
    assert study["status"] == "done" and study["results"][0]["overlays"]


def test_readiness_says_503_with_the_reason_when_workers_are_down_or_storage_is_almost_full(client, monkeypatch):
    import shutil
    from collections import namedtuple

    assert client.get("/api/ready").json() == {"ready": True, "problems": []}
    health = client.get("/api/health").json()
    assert health["storage_free_mb"] > 0 and health["oldest_queued_s"] is None and health["problems"] == []
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 * 2**30, 10 * 2**30 - 50 * 2**20, 50 * 2**20))
    full = client.get("/api/ready")
    assert full.status_code == 503 and full.json()["problems"] == ["storage almost full: 50 MB free in the storage folder"]
    monkeypatch.undo()
    client.app.state.core.worker.stop()
    down = client.get("/api/ready")
    assert down.status_code == 503 and "job workers are not running" in down.json()["problems"][0]
    assert client.get("/api/health").status_code == 200  # liveness: the process answers


def test_a_study_still_receiving_dicom_reads_the_same_in_the_list_and_the_detail(client):
    """The documented contract (README, "Health, readiness, deleting a study"): ``status`` is queued / running / done
    / failed, a DICOM study still receiving is ``queued`` with ``stage`` "receiving" in both the list and the detail
    (the study page and clients polling ``status`` rely on it), and the detail's progress says "receiving DICOM"."""
    from lesiondx.service.db import Study, utcnow

    with client.app.state.core.db.session() as s, s.begin():  # its quiet period (10 s) just started
        s.add(Study(id="r" * 32, status="receiving", source="dicom", duplicates_dropped=0, reopened=0,
                    result_version=0, last_instance_at=utcnow()))
    (listed,) = client.get("/api/studies").json()
    detail = client.get(listed["url"]).json()
    assert (listed["status"], listed["stage"]) == (detail["status"], detail["stage"]) == ("queued", "receiving")
    assert detail["progress"]["stage"] == "receiving DICOM" and detail["progress"]["final"] is False
