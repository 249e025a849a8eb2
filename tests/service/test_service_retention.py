"""Housekeeping: deleting a study, study retention, what a kill -9 mid-upload / mid-job leaves in storage, and
results a kill -9 right after a job left unqueued for the PACS."""

from __future__ import annotations

import os
import time
from datetime import timedelta

from lesiondx.service.db import Database, ReaderCase, Study, utcnow
from lesiondx.service.retention import housekeeping, purge_old_studies, sweep_orphans
from lesiondx.service.storage import Storage

from service_helpers import US_IMAGES, file_field, wait_study


def _upload(client, path, name=None) -> str:
    response = client.post("/api/studies", files=[file_field(path, name)])
    assert response.status_code == 201, response.text
    return wait_study(client, response.json()["id"])["id"]


def _blobs(storage: Storage) -> set[str]:
    return {p.name for p in (storage.root / "blobs").rglob("*") if p.is_file() and not p.name.startswith(".")}


def _age(db: Database, study_id: str, days: float) -> None:
    with db.session() as s, s.begin():
        s.get(Study, study_id).created_at = utcnow() - timedelta(days=days)


def test_delete_study_removes_its_rows_results_and_unshared_files_and_refuses_busy_ones(make_client):
    client = make_client()
    core = client.app.state.core
    one, twin, other = (_upload(client, US_IMAGES[0]), _upload(client, US_IMAGES[0], "copy.jpg"),
                        _upload(client, US_IMAGES[1]))
    shared = _blobs(core.storage)
    assert len(shared) == 2 and (core.storage.root / "results" / one).is_dir()
    assert client.delete(f"/api/studies/{one}").status_code == 204
    assert client.get(f"/api/studies/{one}").status_code == 404
    assert not (core.storage.root / "results" / one).exists()
    assert _blobs(core.storage) == shared  # the twin study still refers to the same content
    assert client.get(f"/api/studies/{twin}").json()["status"] == "done"
    assert client.delete(f"/api/studies/{twin}").status_code == 204
    assert len(_blobs(core.storage)) == 1  # now nobody refers to it
    with core.db.session() as s, s.begin():
        s.add(ReaderCase(case_id="c1", study_id=other, truth="benign"))
    refused = client.delete(f"/api/studies/{other}")
    assert refused.status_code == 409 and "reader-study case" in refused.json()["detail"]
    assert client.delete("/api/studies/" + "0" * 32).status_code == 404
    actions = [e["action"] for e in client.get("/api/audit").json()]
    assert actions.count("delete") == 2


def test_retention_deletes_old_finished_studies_only(make_client):
    client = make_client()
    core = client.app.state.core
    old, recent, waiting = (_upload(client, p) for p in US_IMAGES[:3])
    for study_id in (old, waiting):
        _age(core.db, study_id, 40)
    core.worker.stop()
    with core.db.session() as s, s.begin():
        s.get(Study, waiting).status = "queued"  # e.g. the workers were down for weeks
    assert purge_old_studies(core.db, core.storage, 0).studies == ()  # 0: keep for ever (the default)
    done = purge_old_studies(core.db, core.storage, 30, grace_s=0)
    assert done.studies == (old,) and done.kept == ((waiting, "it is queued"),)
    assert done.blobs == 1 and done.bytes_freed >= US_IMAGES[0].stat().st_size
    with core.db.session() as s:
        assert {st.id for st in s.query(Study)} == {recent, waiting}


def test_a_kill_mid_upload_or_mid_job_leaves_orphans_that_housekeeping_removes_and_reports(tmp_path, caplog):
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    storage = Storage(tmp_path / "store")
    kept = storage.put(b"referenced")
    with db.session() as s, s.begin():
        s.add(Study(id="a" * 32, status="done"))
        s.add(Study(id="b" * 32, status="running"))
    from lesiondx.service.db import StudyFile

    with db.session() as s, s.begin():
        s.add(StudyFile(study_id="a" * 32, sha256=kept, name="x.png", kind="raster"))
    lost = storage.put(b"written, then the service was killed before the study row was committed")
    (storage.root / "blobs" / lost[:2] / ".tmp-half").write_bytes(b"half a blob")
    for folder in ("results/" + "c" * 32, "work/" + "a" * 32, "work/" + "b" * 32):
        (storage.root / folder).mkdir(parents=True)
        (storage.root / folder / "f").write_bytes(b"x" * 10)
    fresh = sweep_orphans(db, storage)  # within the grace period: could be an upload or job in progress
    assert (fresh.blobs, fresh.folders, fresh.temp_files) == (0, 0, 0)
    past = time.time() - 7200
    for path in (storage.root).rglob("*"):
        os.utime(path, (past, past))
    caplog.set_level("INFO", logger="lesiondx.service")
    done = housekeeping(db, storage, 0)
    assert (done.blobs, done.folders, done.temp_files) == (1, 2, 1)
    assert storage.has(kept) and not storage.has(lost)
    assert (storage.root / "work" / ("b" * 32)).is_dir()  # its job is running
    assert "1 stored file(s), 2 folder(s), 1 partial file(s) removed" in caplog.text


def test_a_blob_stored_again_while_it_is_being_removed_survives(tmp_path):
    storage = Storage(tmp_path / "store")
    sha = storage.put(b"same content")
    past = time.time() - 7200
    os.utime(storage.blob_path(sha), (past, past))
    assert storage.put(b"same content") == sha  # an upload of the same content refreshes it ...
    assert storage.remove_blob(sha, grace_s=3600) is None and storage.has(sha)  # ... so a racing pass keeps it
    os.utime(storage.blob_path(sha), (past, past))
    assert storage.remove_blob(sha, grace_s=3600) == len(b"same content") and not storage.has(sha)
    assert storage.put(b"same content") == sha and storage.has(sha)  # and it can be stored again


def test_results_a_killed_service_never_queued_for_the_pacs_are_queued_at_the_next_start(make_client):
    """The job ends in a worker process; the service queues the export afterwards. A kill -9 in between left the
    result unsent for good (export_state never set, or still 'sent' for the previous version)."""
    from lesiondx.service.settings import PacsTarget

    from service_helpers import CT_SERIES, free_port

    client = make_client(pacs=PacsTarget("NOBODY", "127.0.0.1", free_port()), export_retry_seconds=(3600.0,))
    core = client.app.state.core
    core.exporter.stop()  # nothing is sent in this test: only what is queued matters
    dicom = wait_study(client, client.post("/api/studies", files=[file_field(p) for p in CT_SERIES]).json()["id"])["id"]
    png = _upload(client, US_IMAGES[0])
    with core.db.session() as s, s.begin():
        s.get(Study, dicom).export_state = None  # as if the service died right after the job
    assert core.resume_unqueued_exports() == [dicom]  # the PNG upload (done too, never queued) has nothing to send
    with core.db.session() as s, s.begin():
        assert s.get(Study, png).export_state is None
        study = s.get(Study, dicom)
        assert study.export_state == "pending"
        study.export_state, study.export_version, study.result_version = "sent", 1, 2  # re-run, never queued
    assert core.resume_unqueued_exports() == [dicom]
    with core.db.session() as s, s.begin():
        s.get(Study, dicom).export_state, s.get(Study, dicom).export_version = "sent", 2
    assert core.resume_unqueued_exports() == []  # the current version was sent: nothing to do


def test_housekeeping_after_the_clock_jumped_forward_keeps_the_files_of_an_upload_in_progress(make_client,
                                                                                               monkeypatch):
    """Was: a blob was kept from housekeeping only by its age (modified within the last hour); after the clock jumped
    forward by more than that, a pass running while an upload was being stored removed its files before the study
    was committed, and the study failed ('stored file is missing from storage'). Now an upload holds its blobs until
    its rows are committed."""
    client = make_client()
    core = client.app.state.core
    real_put, passes = core.storage.put, []

    def put_then_housekeeping(data: bytes) -> str:
        sha = real_put(data)
        past = time.time() - 2 * 3600  # the clock jumped forward two hours since the file was written
        os.utime(core.storage.blob_path(sha), (past, past))
        passes.append(sweep_orphans(core.db, core.storage))  # a pass runs before the upload's rows are committed
        return sha

    monkeypatch.setattr(core.storage, "put", put_then_housekeeping)
    study = wait_study(client, _upload(client, US_IMAGES[0]))
    assert passes and all(p.blobs == 0 for p in passes)
    assert (study["status"], study["failure"]) == ("done", None)
    monkeypatch.undo()
    assert sweep_orphans(core.db, core.storage).blobs == 0  # committed: now it is referenced


def test_a_running_jobs_staging_folder_is_kept_and_one_left_by_a_kill_is_removed(tmp_path):
    """A run writes its results into ``results/.run-<study>-*`` and publishes them at the end (worker.py): housekeeping
    must not take that folder while the study runs, whatever its age, and removes the one a killed run left."""
    db, storage = Database(f"sqlite:///{tmp_path / 'db.sqlite3'}"), Storage(tmp_path / "store")
    with db.session() as s, s.begin():
        s.add(Study(id="r" * 32, status="running"))
        s.add(Study(id="d" * 32, status="done"))
    running, left = storage.stage_results("r" * 32), storage.stage_results("d" * 32)
    past = time.time() - 2 * 3600
    for path in (running, left):
        os.utime(path, (past, past))
    assert sweep_orphans(db, storage).folders == 1
    db.dispose()
    assert running.is_dir() and not left.exists()
