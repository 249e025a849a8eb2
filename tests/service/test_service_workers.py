"""Worker processes: a killed worker loses nothing, a job over its time or memory limit fails alone, a crash
ends one job, restarts do not burn a job's attempts. Live servers with the TEST DOUBLE that misbehaves on
request (``lesiondx.service.testing:misbehaving_predictor``)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from lesiondx.service.db import Database, Study

from service_helpers import US_IMAGES, file_field, wait_study

MISBEHAVING = "lesiondx.service.testing:misbehaving_predictor"


def _upload(http, name: str) -> str:
    response = http.post("/api/studies", files=[file_field(US_IMAGES[0], name)])
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _job_pid(storage: Path, study_id: str, timeout: float = 60.0) -> int:
    """The pid of the process running the study's predictor (the double writes it when it starts)."""
    path = storage / "work" / study_id / "out" / "worker.pid"
    deadline = time.monotonic() + timeout
    while True:
        try:
            text = path.read_text()
            if text:
                return int(text)
        except OSError:
            pass
        assert time.monotonic() < deadline, f"job {study_id} did not start"
        time.sleep(0.05)


def _rows(storage: Path) -> dict[str, Study]:
    db = Database(f"sqlite:///{storage / 'lesiondx.sqlite3'}")
    with db.session() as s:
        rows = {study.id: study for study in s.query(Study)}
    db.dispose()
    return rows


def test_kill_9_of_a_worker_mid_job_loses_nothing(live_server, tmp_path):
    storage = tmp_path / "store"
    server = live_server(env={"LESIONDX_PREDICTOR": MISBEHAVING, "LESIONDX_WORKERS": "2",
                              "LESIONDX_STUB_DELAY_S": "1.5"}).start()
    with server.client() as http:
        ids = [_upload(http, f"liver{i}.jpg") for i in range(4)]
        victim = _job_pid(storage, ids[0])  # the oldest study is claimed first
        assert victim != server.proc.pid  # the job runs in a worker process, not in the service
        os.kill(victim, signal.SIGKILL)
        finished = [wait_study(http, i, timeout=90) for i in ids]
        assert http.get("/api/health").json()["worker_alive"] is True
    assert [f["status"] for f in finished] == ["done"] * 4
    rows = _rows(storage)
    assert (rows[ids[0]].attempts, rows[ids[0]].interruptions) == (1, 1)  # re-run, the lost run not charged
    assert all((rows[i].attempts, rows[i].interruptions) == (1, 0) for i in ids[1:])


def test_jobs_over_their_limits_or_crashing_fail_alone_while_the_queue_moves_on(live_server, tmp_path):
    storage = tmp_path / "store"
    server = live_server(env={"LESIONDX_PREDICTOR": MISBEHAVING, "LESIONDX_WORKERS": "2",
                              "LESIONDX_JOB_TIMEOUT_S": "10", "LESIONDX_JOB_MEMORY_MB": "700"}).start()
    with server.client() as http:
        hang = _upload(http, "hang.jpg")
        _job_pid(storage, hang)
        hog, crash = _upload(http, "hog.jpg"), _upload(http, "crash.jpg")
        normal = [_upload(http, f"liver{i}.jpg") for i in range(3)]
        results = {i: wait_study(http, i, timeout=90) for i in [hang, hog, crash, *normal]}
        assert http.get("/api/health").json()["status"] == "ok"
        later = wait_study(http, _upload(http, "after.jpg"), timeout=60)
    assert results[hang]["status"] == "failed" and "exceeded the wall-time limit of 10 s" in results[hang]["failure"]
    assert results[hog]["status"] == "failed" and "exceeded the memory limit of 700 MB" in results[hog]["failure"]
    assert results[crash]["status"] == "failed" and "crashed (signal SIGABRT)" in results[crash]["failure"]
    assert all(results[i]["status"] == "done" for i in normal) and later["status"] == "done"
    rows = _rows(storage)
    assert all((rows[i].attempts, rows[i].interruptions) == (1, 0) for i in (hang, hog, crash))
    # the hanging job held one worker; the other one went on with the queue before the hang hit its limit
    assert rows[hog].finished_at < rows[hang].finished_at and rows[crash].finished_at < rows[hang].finished_at
    assert rows[normal[0]].started_at < rows[hang].finished_at


def test_service_restarted_three_times_during_a_job_does_not_give_it_up(live_server, tmp_path):
    storage = tmp_path / "store"
    env = {"LESIONDX_PREDICTOR": MISBEHAVING, "LESIONDX_WORKERS": "1", "LESIONDX_STUB_DELAY_S": "60"}
    server = live_server(env=env).start()
    with server.client() as http:
        study = _upload(http, "liver.jpg")
    pids = []
    for _ in range(3):
        pids.append(_job_pid(storage, study))
        server.kill()  # SIGKILL of the whole service mid-job; its worker process dies with it
        (storage / "work" / study / "out" / "worker.pid").unlink(missing_ok=True)
        server = live_server(env=env if len(pids) < 3 else {**env, "LESIONDX_STUB_DELAY_S": "0"}).start()
    with server.client() as http:
        finished = wait_study(http, study, timeout=90)
    assert finished["status"] == "done", finished["failure"]
    assert len(set(pids)) == 3
    row = _rows(storage)[study]
    assert (row.attempts, row.interruptions) == (1, 3)
