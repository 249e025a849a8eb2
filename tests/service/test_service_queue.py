"""Durable job queue: a hard kill mid-job loses nothing; restart finishes every job."""

from __future__ import annotations

import time

from lesiondx.service.db import Database, Study
from lesiondx.service.worker import MAX_ATTEMPTS, Worker

from service_helpers import US_IMAGES, file_field, wait_study


def test_kill_mid_job_and_restart_finishes_every_job(live_server, tmp_path):
    server = live_server(env={"LESIONDX_STUB_DELAY_S": "1.5"}).start()
    with server.client() as http:
        ids = [http.post("/api/studies", files=[file_field(p)]).json()["id"] for p in US_IMAGES[:3]]
        deadline = time.monotonic() + 20
        while not any(http.get(f"/api/studies/{i}").json()["status"] == "running" for i in ids):
            assert time.monotonic() < deadline, "no job started"
            time.sleep(0.05)
    server.kill()  # SIGKILL: no clean shutdown, a job is left 'running'
    db = Database(f"sqlite:///{tmp_path / 'store/lesiondx.sqlite3'}")
    with db.session() as s:
        states = {st.id: st.status for st in s.query(Study)}
    db.dispose()
    assert set(states) == set(ids) and "running" in states.values()
    restarted = live_server(env={"LESIONDX_STUB_DELAY_S": "0.2"}).start()
    with restarted.client() as http:
        finished = [wait_study(http, i, timeout=60) for i in ids]
    assert [f["status"] for f in finished] == ["done"] * 3
    assert [f["results"][0]["image"] for f in finished] == ["file-001.png"] * 3  # one-file uploads: pseudonyms
    interrupted = [f for f in finished if states[f["id"]] == "running"]
    assert interrupted and all(f["attempts"] == 2 for f in interrupted)


def test_jobs_that_keep_dying_are_given_up(tmp_path):
    from lesiondx.service.storage import Storage

    db = Database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with db.session() as s, s.begin():
        s.add(Study(id="a" * 32, status="running", task="us-liver", attempts=MAX_ATTEMPTS))
        s.add(Study(id="b" * 32, status="running", task="us-liver", attempts=1))
    worker = Worker(db, Storage(tmp_path / "store"), predictor=lambda *a: {"results": []}, poll_seconds=0.05)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while True:
            with db.session() as s:
                a, b = s.get(Study, "a" * 32), s.get(Study, "b" * 32)
            if b.status in ("done", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        worker.stop()
    assert a.status == "failed" and "gave up" in a.failure
    assert b.status == "failed" and b.failure == "no usable image in this study" and b.attempts == 2


def test_claim_is_exclusive(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with db.session() as s, s.begin():
        s.add(Study(id="c" * 32, status="queued"))
    assert db.claim_next() == "c" * 32
    assert db.claim_next() is None
    assert db.recover_jobs() == 1 and db.claim_next() == "c" * 32


def test_a_database_from_an_older_release_gains_new_columns_and_keeps_its_jobs(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite3"
    Database(f"sqlite:///{path}").dispose()
    with sqlite3.connect(path) as conn:  # make it look like the schema before options_json existed
        conn.execute("ALTER TABLE studies DROP COLUMN options_json")
        conn.execute("INSERT INTO studies (id, created_at, updated_at, status, task_requested, source, uploader, "
                     "results_json, raw_json, errors_json, attempts) VALUES (?, '2026-11-01 10:00:00.000000', "
                     "'2026-11-01 10:00:00.000000', 'queued', 0, 'upload', 'a', '[]', '{}', '[]', 0)", ("o" * 32,))
    db = Database(f"sqlite:///{path}")
    with db.session() as s:
        study = s.get(Study, "o" * 32)
        assert study is not None and study.options == {} and study.status == "queued"
    assert db.claim_next() == "o" * 32
