"""Durable job queue: a hard kill mid-job loses nothing; restart finishes every job; leases and interruptions."""

from __future__ import annotations

import time
from datetime import timedelta

from lesiondx.service.db import ADDED_COLUMNS, MAX_INTERRUPTIONS, Database, Study, StudyFile, as_utc, utcnow
from lesiondx.service.leases import HOST, claim_is_dead, new_owner
from lesiondx.service.worker import Worker

from service_helpers import US_IMAGES, file_field, wait_study


def test_kill_mid_job_and_restart_finishes_every_job(live_server, tmp_path):
    server = live_server(env={"LESIONDX_STUB_DELAY_S": "1.5"}).start(timeout=120)
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
    restarted = live_server(env={"LESIONDX_STUB_DELAY_S": "0.2"}).start(timeout=120)
    with restarted.client() as http:
        finished = [wait_study(http, i, timeout=60) for i in ids]
    logs = "\n".join(f"== {p.name}\n{p.read_text()[-3000:]}" for p in sorted(tmp_path.glob("server-*.log")))
    assert [f["status"] for f in finished] == ["done"] * 3, ([f["failure"] for f in finished], logs)
    assert [f["results"][0]["image"] for f in finished] == ["file-001.png"] * 3  # one-file uploads: pseudonyms
    interrupted = [f for f in finished if states[f["id"]] == "running"]
    assert interrupted and all(f["attempts"] == 1 for f in interrupted), logs  # the lost run is not charged


def test_jobs_whose_worker_keeps_vanishing_are_given_up_and_others_resume_uncharged(tmp_path):
    from lesiondx.service.storage import Storage

    db = Database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    gone = f"{HOST}:999999999:abcdef:w0.1"  # a pid that cannot exist on this host: the service died
    with db.session() as s, s.begin():
        s.add(Study(id="a" * 32, status="running", task="us-liver", attempts=1, interruptions=MAX_INTERRUPTIONS - 1,
                    claimed_by=gone, heartbeat_at=utcnow()))
        s.add(Study(id="b" * 32, status="running", task="us-liver", attempts=1, interruptions=1,
                    claimed_by=gone, heartbeat_at=utcnow()))
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
    assert a.status == "failed" and f"gave up after {MAX_INTERRUPTIONS} interruptions" in a.failure
    assert b.status == "failed" and b.failure == "no usable image in this study"
    assert (b.attempts, b.interruptions, b.claimed_by) == (1, 2, None)  # refunded, then charged once by this run


def test_leases_expire_only_without_heartbeats_and_claims_are_fenced(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with db.session() as s, s.begin():
        s.add_all([Study(id=c * 32, status="queued") for c in "def"])
    me, other = new_owner(), "elsewhere:1:000000"
    assert db.claim_next(f"{me}:w0.1") == "d" * 32 and db.claim_next(f"{other}:w0.1") == "e" * 32
    assert db.claim_next(f"{me}:w1.1") == "f" * 32
    with db.session() as s, s.begin():  # the other machine's worker stopped heartbeating a minute ago
        s.get(Study, "e" * 32).heartbeat_at = utcnow() - timedelta(seconds=60)
    assert db.heartbeat(me) == 2
    assert db.release_interrupted(30) == ["e" * 32]
    assert db.interrupt("e" * 32, f"{other}:w0.1") is None  # already released: a second sweep changes nothing
    assert db.fail_claimed("d" * 32, f"{other}:w0.1", "exceeded") is False  # not its claim
    assert db.fail_claimed("d" * 32, f"{me}:w0.1", "exceeded the wall-time limit of 1 s")
    with db.session() as s:
        d, e, f = (s.get(Study, c * 32) for c in "def")
    assert (d.status, d.failure, d.attempts) == ("failed", "exceeded the wall-time limit of 1 s", 1)
    assert (e.status, e.attempts, e.interruptions, e.claimed_by) == ("queued", 0, 1, None)
    assert f.status == "running" and f.claimed_by == f"{me}:w1.1"
    assert not claim_is_dead(f"{me}:w1.1", me) and not claim_is_dead(f"{other}:w0.1", me)
    assert claim_is_dead(f"{HOST}:999999999:000000:w0.1", me)


def test_claim_is_exclusive(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with db.session() as s, s.begin():
        s.add(Study(id="c" * 32, status="queued"))
    assert db.claim_next("x:1:a:w0") == "c" * 32
    assert db.claim_next("x:1:a:w1") is None
    assert db.interrupt("c" * 32, "x:1:a:w0") == "queued" and db.claim_next("x:1:a:w1") == "c" * 32


def test_a_database_from_an_older_release_gains_new_columns_and_keeps_its_jobs(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite3"
    Database(f"sqlite:///{path}").dispose()
    with sqlite3.connect(path) as conn:  # make it look like the schema before the added columns existed
        for column in ADDED_COLUMNS["studies"]:
            conn.execute(f"DROP INDEX IF EXISTS ix_studies_{column}")  # an index of a newer column goes with it
            conn.execute(f"ALTER TABLE studies DROP COLUMN {column}")
        conn.execute("INSERT INTO studies (id, created_at, updated_at, status, task_requested, source, uploader, "
                     "results_json, raw_json, errors_json, attempts) VALUES (?, '2026-11-01 10:00:00.000000', "
                     "'2026-11-01 10:00:00.000000', 'queued', 0, 'upload', 'a', '[]', '{}', '[]', 0)", ("o" * 32,))
    db = Database(f"sqlite:///{path}")
    with db.session() as s:
        study = s.get(Study, "o" * 32)
        assert study is not None and study.options == {} and study.status == "queued"
    assert db.claim_next("x:1:a:w0") == "o" * 32
    with db.session() as s:
        study = s.get(Study, "o" * 32)
    assert (study.interruptions, study.claimed_by, study.heartbeat_at is not None) == (0, "x:1:a:w0", True)


def test_a_run_that_lost_its_claim_cannot_break_the_run_that_took_the_study_over(tmp_path):
    """Race behind the kill-mid-job test's one failure under load: a run goes on after its claim is gone (its worker
    outlived the killed service for a moment, or paused past the lease on another machine) while another worker
    has claimed the study again. Its result is fenced off, but both runs used ``work/<study>``: the stale run's
    clean-up deleted the new run's inputs and the study failed ('prediction failed: ...')."""
    import threading

    from lesiondx.service.storage import Storage
    from lesiondx.service.testing import stub_predictor

    db, storage = Database(f"sqlite:///{tmp_path / 'db.sqlite3'}"), Storage(tmp_path / "store")
    sha = storage.put(US_IMAGES[0].read_bytes())
    with db.session() as s, s.begin():
        s.add(Study(id="s" * 32, status="queued", task="us-liver"))
        s.add(StudyFile(study_id="s" * 32, position=0, sha256=sha, name="file-001.jpg", kind="raster", suffix=".jpg"))
    gates = {name: threading.Event() for name in ("stale_in", "stale_go", "new_in", "new_go")}

    def held(name: str):
        def predictor(*args, **kwargs):
            gates[f"{name}_in"].set()
            assert gates[f"{name}_go"].wait(60)
            return stub_predictor(*args, **kwargs)
        return predictor

    stale_id, new_id = "elsewhere:1:aaaaaa:w0.1", "here:1:bbbbbb:w0.1"
    stale = Worker(db, storage, held("stale"), worker_id=stale_id)
    new = Worker(db, storage, held("new"), worker_id=new_id)
    assert db.claim_next(stale_id) == "s" * 32
    runs = [threading.Thread(target=stale.process, args=("s" * 32,))]
    runs[0].start()
    assert gates["stale_in"].wait(60)
    assert db.interrupt("s" * 32, stale_id) == "queued"  # its lease expired: another owner re-queued the study
    assert db.claim_next(new_id) == "s" * 32
    runs.append(threading.Thread(target=new.process, args=("s" * 32,)))
    runs[1].start()
    assert gates["new_in"].wait(60)
    gates["stale_go"].set()  # the stale run ends first: its result is dropped and it cleans up after itself
    runs[0].join(60)
    gates["new_go"].set()
    runs[1].join(60)
    with db.session() as s:
        study = s.get(Study, "s" * 32)
    db.dispose()
    assert (study.status, study.failure, study.attempts) == ("done", None, 1)
    assert study.results and not any((tmp_path / "store" / "work").iterdir())  # both runs' folders cleared


HOLD_LOCK = """import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(120)
"""


def test_a_database_locked_by_another_process_or_damaged_stops_the_start_with_one_line(tmp_path, monkeypatch):
    """Was: a locked SQLite file passed the start (reads work in WAL mode) and the service died 30 s later in its
    start-up with a 70-line traceback; a damaged file gave 'internal error (DatabaseError ...)'."""
    import subprocess
    import sys

    import pytest

    from lesiondx.service import db as db_module
    from lesiondx.service.db import DatabaseUnusable

    monkeypatch.setattr(db_module, "SQLITE_BUSY_S", 0.5)
    path = tmp_path / "store" / "lesiondx.sqlite3"
    path.parent.mkdir()
    Database(f"sqlite:///{path}").dispose()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"locked\n"
        with pytest.raises(DatabaseUnusable, match=rf"^cannot use the database {path} \(database is locked\): "
                                                   "another process holds it"):
            Database(f"sqlite:///{path}")
    finally:
        holder.kill()
        holder.wait()
    Database(f"sqlite:///{path}").dispose()  # the lock is gone: it opens again
    path.write_bytes(b"SYNTHETIC damaged database " * 400)
    result = subprocess.run([sys.executable, "-m", "lesiondx.cli", "serve", "--storage", str(path.parent),
                             "--port", "0"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: cannot use the database {path} (file is not a database): the file is damaged or not a database: "
        "restore it from a backup, or move it aside"]


def test_a_lease_renewed_just_before_the_clock_went_back_an_hour_still_expires(tmp_path):
    """Was: a heartbeat written before the system clock was set back an hour lay an hour in the future, so the job of
    a worker that vanished right after (on another machine: no pid to look at) stayed 'running' for that hour."""
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with db.session() as s, s.begin():
        s.add(Study(id="g" * 32, status="running", attempts=1, claimed_by="elsewhere:7:abcdef:w0.1",
                    heartbeat_at=utcnow() + timedelta(hours=1)))  # the clock has just gone back an hour
        s.add(Study(id="h" * 32, status="running", attempts=1, claimed_by="elsewhere:7:abcdef:w1.1",
                    heartbeat_at=utcnow() + timedelta(seconds=5)))  # clocks a few seconds apart: a live lease
    assert db.release_interrupted(30) == ["g" * 32]
    db.dispose()


def test_a_database_locked_by_another_process_is_told_as_locked_not_as_stopped():
    """Was: an upload while another process held the SQLite file got 503 'the service's database is unavailable
    (stopped, restarting or unreachable)', sending the operator to look for a stopped database."""
    from sqlalchemy.exc import OperationalError

    from lesiondx.service.storage import storage_problem

    locked = OperationalError("INSERT INTO studies", {}, Exception("database is locked"))
    assert storage_problem(locked).startswith("the service's database is locked by another process")
    stopped = OperationalError("SELECT 1", {}, Exception("connection refused"))
    assert storage_problem(stopped).startswith("the service's database is unavailable (stopped")


def test_the_in_process_worker_outlives_a_database_that_refuses_a_job_outcome(make_client, monkeypatch):
    """The in-process worker (``workers = 0``, tests and embedding): was, its thread died when the full database
    refused a job's outcome, the study stayed 'running' and no job ran again until a restart."""
    from sqlalchemy.exc import OperationalError

    from service_helpers import US_IMAGES, file_field

    real_finish, refused = Worker._finish, []

    def finish(self, *args, **kwargs):
        if len(refused) < 2:  # the job's outcome, then the failure saying so: the database is full
            refused.append(args)
            raise OperationalError("UPDATE studies", {}, Exception("database or disk is full"))
        return real_finish(self, *args, **kwargs)

    monkeypatch.setattr(Worker, "_finish", finish)
    client = make_client()
    study = wait_study(client, client.post("/api/studies", files=[file_field(US_IMAGES[0])]).json()["id"])
    assert (study["status"], study["attempts"]) == ("done", 1) and len(refused) == 2  # run twice, charged once
    assert client.get("/api/health").json()["worker_alive"] is True


def _claim_order_after_the_clock_went_back(url: str) -> list[str]:
    """Queue three studies while the wall clock steps back an hour after the first; the order workers claim them."""
    db = Database(url)
    now = utcnow()
    for study_id, created in (("1" * 32, now), ("2" * 32, now - timedelta(minutes=59)),
                              ("3" * 32, now - timedelta(minutes=58))):  # uploaded after the step back
        with db.session() as s, s.begin():
            s.add(Study(id=study_id, status="queued", created_at=created))
    try:
        return [db.claim_next("x:1:a:w0") for _ in range(3)]
    finally:
        db.dispose()


def test_uploads_after_the_clock_went_back_an_hour_do_not_jump_the_queue(tmp_path):
    """Was: the queue went by ``created_at``, so for an hour after the clock was set back (NTP correction, a host
    restored from a snapshot) every new upload was claimed before the studies already waiting."""
    assert _claim_order_after_the_clock_went_back(f"sqlite:///{tmp_path / 'db.sqlite3'}") == ["1" * 32, "2" * 32,
                                                                                               "3" * 32]


def test_the_queue_order_survives_a_clock_step_on_postgresql(postgres_url):
    from sqlalchemy import text

    db = Database(postgres_url)
    with db.engine.begin() as conn:  # the cluster is shared by the session's tests: only these studies queued
        conn.execute(text("UPDATE studies SET status = 'done' WHERE status = 'queued'"))
        conn.execute(text("DELETE FROM studies WHERE id IN (:a, :b, :c)"), {"a": "1" * 32, "b": "2" * 32, "c": "3" * 32})
    db.dispose()
    assert _claim_order_after_the_clock_went_back(postgres_url) == ["1" * 32, "2" * 32, "3" * 32]


def test_the_queue_position_shown_follows_the_claim_order_after_the_clock_went_back(tmp_path):
    """Was: the study page counted the studies ahead by ``created_at``, so after the clock went back an hour the study
    claimed first was shown third in the queue."""
    from types import SimpleNamespace

    from lesiondx.service.viewer import progress_of

    db = Database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    now = utcnow()
    for study_id, created in (("1" * 32, now), ("2" * 32, now - timedelta(minutes=59)), ("3" * 32, now - timedelta(minutes=58))):
        with db.session() as s, s.begin():
            s.add(Study(id=study_id, status="queued", created_at=created))
    core = SimpleNamespace(settings=SimpleNamespace(pacs=None))
    try:
        with db.session() as s:
            shown = [progress_of(core, s, s.get(Study, k * 32))["queue_position"] for k in "123"]
    finally:
        db.dispose()
    assert shown == [1, 2, 3]


def test_a_study_still_receiving_dicom_has_no_queue_position(tmp_path):
    """Was: a study whose instances were still arriving was shown as 'position N' in the queue, which it is not in."""
    from types import SimpleNamespace

    from lesiondx.service.viewer import progress_of

    db = Database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with db.session() as s, s.begin():
        s.add(Study(id="r" * 32, status="receiving", created_at=utcnow()))
    try:
        with db.session() as s:
            progress = progress_of(SimpleNamespace(settings=SimpleNamespace(pacs=None)), s, s.get(Study, "r" * 32))
    finally:
        db.dispose()
    assert progress["queue_position"] is None and progress["stage"] == "receiving DICOM"


def test_health_never_reports_a_negative_queue_age_after_the_clock_went_back(make_client):
    """Was: a study queued just before the clock was set back an hour showed ``oldest_queued_s`` of about -3600."""
    client = make_client()
    core = client.app.state.core
    core.worker.stop()  # the study stays queued
    with core.db.session() as s, s.begin():
        s.add(Study(id="q" * 32, status="queued", created_at=utcnow() + timedelta(hours=1)))
    age = client.get("/api/health").json()["oldest_queued_s"]
    assert age is not None and age >= 0


def test_a_study_received_just_before_the_clock_went_back_an_hour_is_not_held_open_for_that_hour(make_client):
    """Was: the quiet period counted from ``last_instance_at``, a wall-clock time an hour ahead after the clock was set
    back, so the study stayed 'receiving' (no analysis) for an hour more. Now its quiet period restarts from now."""
    client = make_client()
    core = client.app.state.core
    with core.db.session() as s, s.begin():
        s.add(Study(id="r" * 32, status="receiving", source="dicom", last_instance_at=utcnow() + timedelta(hours=1)))
    assert core.close_quiet_studies() == []  # its sender may still be sending: quiet from now on
    with core.db.session() as s:
        last = s.get(Study, "r" * 32).last_instance_at
    assert as_utc(last) <= utcnow()
