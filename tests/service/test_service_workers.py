"""Worker processes: a killed worker loses nothing, a job over its time or memory limit fails alone, a crash
ends one job, restarts do not burn a job's attempts. Live servers with the TEST DOUBLE that misbehaves on
request (``lesiondx.service.testing:misbehaving_predictor``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lesiondx.service.db import Database, Study

from service_helpers import STUB, US_IMAGES, file_field, wait_study

MISBEHAVING = "lesiondx.service.testing:misbehaving_predictor"


def _upload(http, name: str) -> str:
    """Upload a real frame, or for ``hang*`` / ``hog*`` / ``crash*`` names the image that asks the test double to
    misbehave (the service replaces every file name by a pseudonym, so the name alone cannot say so)."""
    from lesiondx.service.testing import MISBEHAVIOUR_GREY, misbehaving_image

    kind = next((k for k in MISBEHAVIOUR_GREY if name.startswith(k)), None)
    field = file_field(US_IMAGES[0], name, content=misbehaving_image(kind) if kind else None)
    response = http.post("/api/studies", files=[field])
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _job_pid(storage: Path, study_id: str, timeout: float = 60.0) -> int:
    """The pid of the process running the study's predictor (the double writes it when it starts)."""
    deadline = time.monotonic() + timeout
    while True:
        for path in (storage / "work" / study_id).glob("run-*/out/worker.pid"):
            try:
                text = path.read_text()
                if text:
                    return int(text)
            except OSError:
                pass
        assert time.monotonic() < deadline, f"job {study_id} did not start"
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    """The process has ended (no /proc entry, or a zombie nobody reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _rows(storage: Path) -> dict[str, Study]:
    db = Database(f"sqlite:///{storage / 'lesiondx.sqlite3'}")
    with db.session() as s:
        rows = {study.id: study for study in s.query(Study)}
    db.dispose()
    return rows


def test_kill_9_of_a_worker_mid_job_loses_nothing(live_server, tmp_path):
    storage = tmp_path / "store"
    server = live_server(env={"LESIONDX_PREDICTOR": MISBEHAVING, "LESIONDX_WORKERS": "2",
                              "LESIONDX_STUB_DELAY_S": "1.5"}).start(timeout=120)
    with server.client() as http:
        ids = [_upload(http, f"liver{i}.jpg") for i in range(4)]
        victim = _job_pid(storage, ids[0])  # the oldest study is claimed first
        assert victim != server.proc.pid  # the job runs in a worker process, not in the service
        os.kill(victim, signal.SIGKILL)
        finished = [wait_study(http, i, timeout=90) for i in ids]
        assert http.get("/api/health").json()["worker_alive"] is True
        # the forkserver the workers come from killed too: their jobs are re-queued, not failed as crashes
        late = _upload(http, "late.jpg")
        orphan = _job_pid(storage, late)
        os.kill(int(Path(f"/proc/{orphan}/stat").read_text().rsplit(")", 1)[1].split()[1]), signal.SIGKILL)
        finished.append(wait_study(http, late, timeout=90))
    assert [f["status"] for f in finished] == ["done"] * 5
    assert _gone(orphan)  # no unsupervised worker left behind
    rows = _rows(storage)
    assert (rows[ids[0]].attempts, rows[ids[0]].interruptions) == (1, 1)  # re-run, the lost run not charged
    assert all((rows[i].attempts, rows[i].interruptions) == (1, 0) for i in ids[1:])
    assert (rows[late].attempts, rows[late].interruptions) == (1, 1)


def test_jobs_over_their_limits_or_crashing_fail_alone_while_the_queue_moves_on(live_server, tmp_path):
    storage = tmp_path / "store"
    server = live_server(env={"LESIONDX_PREDICTOR": MISBEHAVING, "LESIONDX_WORKERS": "2",
                              "LESIONDX_JOB_TIMEOUT_S": "15", "LESIONDX_JOB_MEMORY_MB": "700"}).start(timeout=120)
    with server.client() as http:
        hang = _upload(http, "hang.jpg")
        _job_pid(storage, hang)
        hog, crash = _upload(http, "hog.jpg"), _upload(http, "crash.jpg")
        normal = [_upload(http, f"liver{i}.jpg") for i in range(3)]
        results = {i: wait_study(http, i, timeout=90) for i in [hang, hog, crash, *normal]}
        assert http.get("/api/health").json()["status"] == "ok"
        later = wait_study(http, _upload(http, "after.jpg"), timeout=60)
    assert results[hang]["status"] == "failed" and "exceeded the wall-time limit of 15 s" in results[hang]["failure"]
    assert results[hog]["status"] == "failed" and "exceeded the memory limit of 700 MB" in results[hog]["failure"]
    assert results[crash]["status"] == "failed" and "crashed (signal SIGABRT)" in results[crash]["failure"]
    assert all(results[i]["status"] == "done" for i in normal) and later["status"] == "done"
    rows = _rows(storage)
    assert all((rows[i].attempts, rows[i].interruptions) == (1, 0) for i in (hang, hog, crash))
    # the hanging job held one worker; the other one went on with the queue before the hang hit its limit
    assert rows[hog].finished_at < rows[hang].finished_at and rows[crash].finished_at < rows[hang].finished_at
    assert rows[normal[0]].started_at < rows[hang].finished_at


def test_a_slow_job_does_not_hold_up_the_queue_even_with_one_worker(live_server, tmp_path):
    storage = tmp_path / "store"
    server = live_server(env={"LESIONDX_PREDICTOR": MISBEHAVING, "LESIONDX_WORKERS": "1",
                              "LESIONDX_SLOW_JOB_S": "2"}).start(timeout=120)
    with server.client() as http:
        hang = _upload(http, "hang.jpg")
        _job_pid(storage, hang)
        waiting = _upload(http, "liver.jpg")
        assert wait_study(http, waiting, timeout=60)["status"] == "done"  # an extra process took it
        assert http.get(f"/api/studies/{hang}").json()["status"] == "running"
    server.kill()  # SIGKILL: no 10 s grace for the hanging job at teardown


def test_service_restarted_three_times_during_a_job_does_not_give_it_up(live_server, tmp_path):
    storage = tmp_path / "store"
    env = {"LESIONDX_PREDICTOR": MISBEHAVING, "LESIONDX_WORKERS": "1", "LESIONDX_STUB_DELAY_S": "60"}
    server = live_server(env=env).start(timeout=120)
    with server.client() as http:
        study = _upload(http, "liver.jpg")
    pids = []
    for _ in range(3):
        pids.append(_job_pid(storage, study))
        server.kill()  # SIGKILL of the whole service mid-job; its worker process dies with it
        for path in (storage / "work" / study).glob("run-*/out/worker.pid"):
            path.unlink(missing_ok=True)
        server = live_server(env=env if len(pids) < 3 else {**env, "LESIONDX_STUB_DELAY_S": "0"}).start(timeout=120)
    with server.client() as http:
        finished = wait_study(http, study, timeout=90)
    assert finished["status"] == "done", finished["failure"]
    assert len(set(pids)) == 3
    row = _rows(storage)[study]
    assert (row.attempts, row.interruptions) == (1, 3)


def _queue_uploads(storage: Path, names: list[str], db_url: str | None = None) -> list[str]:
    """Studies queued through the REST API of an app whose workers are not started."""
    from fastapi.testclient import TestClient

    from lesiondx.service.api import create_app
    from lesiondx.service.settings import Settings

    app = create_app(Settings(storage=storage, db_url=db_url, workers=1), start_background=False)
    with TestClient(app, base_url="http://localhost") as http:
        return [_upload(http, name) for name in names]


def _run_worker_command(storage: Path, ids: list[str], db_url: str | None, concurrency: int) -> dict[str, Study]:
    """``lesiondx worker`` in a subprocess until the studies are settled, then SIGTERM; returns their rows."""
    args = [sys.executable, "-m", "lesiondx.cli", "worker", "--storage", str(storage), "--concurrency", str(concurrency)]
    env = {**os.environ, "LESIONDX_PREDICTOR": STUB, "LESIONDX_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(args + (["--db", db_url] if db_url else []), env=env, stderr=subprocess.PIPE, text=True)
    db = Database(db_url or f"sqlite:///{storage / 'lesiondx.sqlite3'}")
    try:
        deadline = time.monotonic() + 180  # generous: the CI machine may be shared
        while True:
            with db.session() as s:
                rows = {i: s.get(Study, i) for i in ids}
            if all(r.status in ("done", "failed") for r in rows.values()):
                break
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, {i: r.status for i, r in rows.items()}
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
        db.dispose()
    assert proc.returncode == 0 and "Traceback" not in stderr, stderr
    return rows


def test_worker_command_runs_jobs_without_the_web_server(tmp_path):
    storage = tmp_path / "store"
    ids = _queue_uploads(storage, ["a.jpg", "b.jpg"])
    rows = _run_worker_command(storage, ids, None, concurrency=1)
    assert [(r.status, r.attempts, r.claimed_by) for r in rows.values()] == [("done", 1, None)] * 2


def test_worker_command_refuses_a_folder_that_is_not_the_service_storage(tmp_path):
    result = subprocess.run([sys.executable, "-m", "lesiondx.cli", "worker", "--storage", str(tmp_path / "nothing")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "not a lesiondx storage folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_postgresql_claims_skip_locked_rows_and_two_worker_processes_share_the_queue(tmp_path, postgres_url):
    db = Database(postgres_url)
    with db.session() as s, s.begin():  # a clean queue (the URL may be a shared test database)
        s.query(Study).filter(Study.status.in_(["queued", "running"])).update({"status": "failed"})
    from concurrent.futures import ThreadPoolExecutor

    with db.session() as s, s.begin():
        s.add_all([Study(status="queued") for _ in range(40)])
    with ThreadPoolExecutor(8) as pool:  # eight claimers racing: every study claimed exactly once
        claims = list(pool.map(lambda n: [c for c in iter(lambda: db.claim_next(f"t:1:x:w{n}"), None)], range(8)))
    claimed = [c for per in claims for c in per]
    assert len(claimed) == 40 == len(set(claimed))
    k = next(n for n, per in enumerate(claims) if per)
    assert db.heartbeat("t:1:x") == 40 and db.release_interrupted(30) == []  # fresh leases stay
    assert db.interrupt(claims[k][0], f"t:1:x:w{k}") == "queued" and db.interrupt(claims[k][0], f"t:1:x:w{k}") is None
    with db.session() as s, s.begin():
        s.query(Study).filter(Study.id.in_(claimed)).update({"status": "failed"}, synchronize_session=False)
    db.dispose()
    storage = tmp_path / "store"
    ids = _queue_uploads(storage, [f"p{i}.jpg" for i in range(6)], postgres_url)
    rows = _run_worker_command(storage, ids, postgres_url, concurrency=2)
    assert [(r.status, r.attempts) for r in rows.values()] == [("done", 1)] * 6
    assert all(r.results and r.claimed_by is None for r in rows.values())


def test_after_job_hook_runs_in_the_service_process_for_successful_jobs_only(tmp_path):
    from lesiondx.service.supervisor import PoolConfig, Supervisor

    storage = tmp_path / "store"
    ok, crash = _queue_uploads(storage, ["liver.jpg", "crash.jpg"])
    db = Database(f"sqlite:///{storage / 'lesiondx.sqlite3'}")
    called: list[tuple[str, int]] = []
    supervisor = Supervisor(db, PoolConfig(db_url=db.url, storage=str(storage), predictor_spec=MISBEHAVING, workers=1,
                                           poll_seconds=0.1), on_done=lambda sid: called.append((sid, os.getpid())))
    supervisor.start()
    try:
        deadline = time.monotonic() + 90
        while not called or _rows(storage)[crash].status != "failed":
            assert time.monotonic() < deadline and supervisor.alive
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        supervisor.stop()
        db.dispose()
    assert called == [(ok, os.getpid())]  # e.g. the PACS export: here, not in the worker process


def test_the_supervisor_outlives_a_database_error_and_settles_the_job_when_the_database_is_back(tmp_path):
    """Seen with a full disk ('database or disk is full' while settling a crashed job): the supervising thread
    died, so no job ever ran again and no worker was restarted until the service was restarted."""
    from sqlalchemy.exc import OperationalError

    from lesiondx.service.supervisor import PoolConfig, Supervisor

    storage = tmp_path / "store"
    crash, ok = _queue_uploads(storage, ["crash.jpg", "liver.jpg"])
    db = Database(f"sqlite:///{storage / 'lesiondx.sqlite3'}")
    real_fail, failures = db.fail_claimed, []

    def fail_claimed(*args, **kwargs):
        if len(failures) < 2:  # the database refuses writes twice, then is back
            failures.append(args)
            raise OperationalError("UPDATE studies", {}, Exception("database or disk is full"))
        return real_fail(*args, **kwargs)

    db.fail_claimed = fail_claimed
    supervisor = Supervisor(db, PoolConfig(db_url=db.url, storage=str(storage), predictor_spec=MISBEHAVING, workers=1,
                                           poll_seconds=0.1))
    supervisor.start()
    try:
        deadline = time.monotonic() + 90
        while {_rows(storage)[crash].status, _rows(storage)[ok].status} != {"failed", "done"}:
            assert supervisor.alive, "the supervising thread died"
            assert time.monotonic() < deadline, {k: v.status for k, v in _rows(storage).items()}
            time.sleep(0.2)
    finally:
        supervisor.stop()
        db.dispose()
    assert len(failures) == 2 and "crashed" in _rows(storage)[crash].failure


def test_sigterm_to_the_whole_group_lets_the_running_job_finish_and_claims_nothing_new(live_server, tmp_path,
                                                                                      monkeypatch):
    """``systemctl stop`` / ``kill -TERM -PGID`` signal the workers and their forkserver with the service: the job
    must get its grace period, not die at once, be re-queued and be claimed again by a fresh worker mid-shutdown."""
    import functools

    import service_helpers

    monkeypatch.setattr(service_helpers.subprocess, "Popen",
                        functools.partial(subprocess.Popen, start_new_session=True))  # its own process group
    storage = tmp_path / "store"
    server = live_server(env={"LESIONDX_PREDICTOR": MISBEHAVING, "LESIONDX_WORKERS": "1",
                              "LESIONDX_STUB_DELAY_S": "3"}).start(timeout=120)
    with server.client() as http:
        running, waiting = _upload(http, "liver.jpg"), _upload(http, "next.jpg")
        worker = _job_pid(storage, running)
    proc = server.proc
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(60)
    rows = _rows(storage)
    assert rows[running].status == "done" and (rows[running].attempts, rows[running].interruptions) == (1, 0)
    assert rows[waiting].status == "queued" and (rows[waiting].attempts, rows[waiting].interruptions) == (0, 0)
    assert _gone(worker)
    log = next(tmp_path.glob("server-*.log")).read_text()
    assert "interrupted" not in log and "Traceback" not in log, log


def test_a_longer_stop_grace_lets_a_long_job_finish_at_sigterm(live_server, tmp_path):
    storage = tmp_path / "store"
    server = live_server(env={"LESIONDX_PREDICTOR": MISBEHAVING, "LESIONDX_WORKERS": "1", "LESIONDX_STUB_DELAY_S": "12",
                              "LESIONDX_STOP_GRACE_S": "40"}).start(timeout=120)
    with server.client() as http:
        study = _upload(http, "liver.jpg")
        _job_pid(storage, study)
    proc = server.proc
    proc.send_signal(signal.SIGTERM)
    proc.wait(90)
    row = _rows(storage)[study]
    assert row.status == "done" and (row.attempts, row.interruptions) == (1, 0)  # the default 10 s would cut it


class _EndedWorker:
    """Stand-in for a worker process whose end was reported with ``exitcode`` (LOST: its forkserver died)."""

    def __init__(self, pid: int, exitcode: int) -> None:
        self.pid, self.exitcode = pid, exitcode

    def join(self, timeout: float | None = None) -> None:
        pass


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "pid-and-start-time"])
def test_a_pid_handed_to_another_process_after_a_worker_ended_is_neither_signalled_nor_taken_for_it(
        tmp_path, monkeypatch, pidfd):
    """Issue: the supervisor knew its workers by pid only. A worker lost with its forkserver is killed by pid; had
    it ended already and the system given its pid to an unrelated process, that process was SIGKILLed."""
    import multiprocessing

    from lesiondx.service import leases
    from lesiondx.service.supervisor import LOST, PoolConfig, Supervisor, _Slot, rss_mb

    if not pidfd:  # no pidfd_open (older kernel, a container's seccomp filter): pid plus start time from /proc
        monkeypatch.setattr(leases.os, "pidfd_open", lambda pid: (_ for _ in ()).throw(PermissionError(1, "no")),
                            raising=False)
    worker = subprocess.Popen(["sleep", "60"])
    ref, started = leases.ProcessRef(worker.pid), leases.start_ticks(worker.pid)  # what the supervisor keeps
    worker.kill()
    worker.wait()
    unrelated = subprocess.Popen(["sleep", "60"])
    while leases.start_ticks(unrelated.pid) == started:  # a pid is handed on later than in the same 1/100 s tick
        unrelated.kill()
        unrelated.wait()
        unrelated = subprocess.Popen(["sleep", "60"])
    ref.pid = unrelated.pid  # what the system does when it hands the ended worker's number on
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    supervisor = Supervisor(db, PoolConfig(db_url=db.url, storage=str(tmp_path)))
    ours, _ = multiprocessing.Pipe()
    slot = _Slot(0, process=_EndedWorker(unrelated.pid, LOST), conn=ours, worker_id="h:1:abc:w0.1")
    slot.ref = ref
    try:
        supervisor._reap(slot)
        assert unrelated.poll() is None  # still running: nobody signalled it
        assert rss_mb(unrelated.pid, ref) is None and not ref.alive() and not ref.send(signal.SIGTERM)
    finally:
        unrelated.kill()
        unrelated.wait()
        db.dispose()
    own = leases.ProcessRef(os.getpid())
    assert own.alive() and rss_mb(os.getpid(), own) > 0


def database_full_once_when_the_job_ends(task, inputs, out, model="default", **options):
    """TEST DOUBLE (``test_service_workers:database_full_once_when_the_job_ends``): the stub predictor, but while the
    storage holds a ``database-full-once`` file (removed here) this worker process's database refuses the job's
    outcome from now on, as a full disk does ('database or disk is full')."""
    from sqlalchemy.exc import OperationalError

    from lesiondx.service.testing import stub_predictor
    from lesiondx.service.worker import Worker

    flag = Path(out).parents[3] / "database-full-once"  # out = STORAGE/work/<study>/run-*/out
    if flag.exists():
        flag.unlink()

        def full(*_args, **_kwargs):
            raise OperationalError("UPDATE studies", {}, Exception("database or disk is full"))

        Worker._finish = full
    return stub_predictor(task, inputs, out, model, **options)


def test_a_job_whose_outcome_the_full_database_refuses_goes_back_in_the_queue_instead_of_crashing(tmp_path):
    """Seen on a full tmpfs: the job failed on the full disk, recording that failed too, the worker process died with
    a traceback and the study was marked 'the worker process crashed (exit code 1)' once the disk had room again."""
    from lesiondx.service.supervisor import PoolConfig, Supervisor

    storage = tmp_path / "store"
    study = _queue_uploads(storage, ["liver.jpg"])[0]
    (storage / "database-full-once").touch()
    db = Database(f"sqlite:///{storage / 'lesiondx.sqlite3'}")
    supervisor = Supervisor(db, PoolConfig(db_url=db.url, storage=str(storage), workers=1, poll_seconds=0.1,
                                           predictor_spec="test_service_workers:database_full_once_when_the_job_ends"))
    supervisor.start()
    try:
        deadline = time.monotonic() + 90
        while _rows(storage)[study].status not in ("done", "failed"):
            assert time.monotonic() < deadline and supervisor.alive
            time.sleep(0.2)
    finally:
        supervisor.stop()
        db.dispose()
    row = _rows(storage)[study]
    assert (row.status, row.failure, row.attempts, row.interruptions) == ("done", None, 1, 1)
    assert not (storage / "database-full-once").exists()  # the double did refuse the first outcome


def test_a_service_killed_by_a_fatal_signal_leaves_its_stacks_in_the_log(live_server, tmp_path):
    """Seen with the storage turned immutable under a running service: SQLite's shared-memory file could not be
    written, the service died of SIGBUS and its log ended without a word. (Stacks name code, never data.)"""
    server = live_server().start(timeout=120)
    proc = server.proc
    os.kill(proc.pid, signal.SIGBUS)
    assert proc.wait(60) == -signal.SIGBUS
    log = next(tmp_path.glob("server-*.log")).read_text()
    assert "Fatal Python error: Bus error" in log and "lesiondx/service" in log, log[-2000:]


def _folder(path: Path) -> dict[str, bytes]:
    """The files of a result folder by name, with their bytes (empty when there is no folder)."""
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()} if path.is_dir() else {}


def test_a_run_that_lost_its_claim_publishes_nothing_and_readers_never_see_a_run_half_written(tmp_path):
    """Was: every run wrote straight into ``results/<study>``: a run that had lost its claim (its worker outlived a
    killed service, or paused past its lease) went on writing slices, heat maps and overlays there after the run that
    took the study over had finished, so the study showed a mix of two runs; and readers saw each run's folder while
    it was being written. Now a run writes a staging folder that is published whole, only while it holds the claim.
    Driven by threads and gates, no timing: the stale run is held in its predictor while the new one runs."""
    import threading

    from PIL import Image

    from lesiondx.service.storage import Storage
    from lesiondx.service.testing import stub_predictor
    from lesiondx.service.worker import Worker

    db, storage = Database(f"sqlite:///{tmp_path / 'db.sqlite3'}"), Storage(tmp_path / "store")
    study_id, published = "s" * 32, tmp_path / "store" / "results" / ("s" * 32)
    sha = storage.put(US_IMAGES[0].read_bytes())
    from lesiondx.service.db import StudyFile

    with db.session() as s, s.begin():
        s.add(Study(id=study_id, status="queued", task="us-liver"))
        s.add(StudyFile(study_id=study_id, position=0, sha256=sha, name="file-001.jpg", kind="raster", suffix=".jpg"))
    gates = {name: threading.Event() for name in ("stale_in", "stale_go", "new_in", "new_go")}

    def held(name: str):
        def predictor(task, inputs, out, model="default", **options):
            # computed before the pause, outside the work folder (which the new run's start clears)
            output = stub_predictor(task, inputs, tmp_path / f"{name}-out", model, **options)
            if name == "stale":  # SYNTHETIC white overlay: the stale run's files differ from the new run's
                for item in output["results"]:
                    Image.new("RGB", (64, 64), "white").save(item["overlay"])
            gates[f"{name}_in"].set()
            assert gates[f"{name}_go"].wait(60)
            return output
        return predictor

    stale_id, new_id = "elsewhere:1:aaaaaa:w0.1", "here:1:bbbbbb:w0.1"
    assert db.claim_next(stale_id) == study_id
    runs = [threading.Thread(target=Worker(db, storage, held("stale"), worker_id=stale_id).process, args=(study_id,))]
    runs[0].start()
    assert gates["stale_in"].wait(60)
    assert db.interrupt(study_id, stale_id) == "queued"  # its lease expired: another owner re-queued the study
    assert db.claim_next(new_id) == study_id
    runs.append(threading.Thread(target=Worker(db, storage, held("new"), worker_id=new_id).process, args=(study_id,)))
    runs[1].start()
    assert gates["new_in"].wait(60)
    assert set(_folder(published)) <= {"progress.json"}  # both runs mid-way: no slice or preview is published yet
    gates["new_go"].set()
    runs[1].join(60)
    with db.session() as s:
        assert s.get(Study, study_id).status == "done"
    finished = _folder(published)
    assert {"input_000.png", "overlay_000.png"} <= set(finished)
    gates["stale_go"].set()  # the stale run ends last: it must leave the published results alone
    runs[0].join(60)
    with db.session() as s:
        study = s.get(Study, study_id)
    db.dispose()
    assert (study.status, study.failure, study.claimed_by) == ("done", None, None)
    assert _folder(published) == finished
    assert sorted(p.name for p in (tmp_path / "store" / "results").iterdir()) == [study_id]  # no staging left


def test_publishing_moves_aside_a_progress_file_a_stale_run_wrote_in_between(tmp_path, monkeypatch):
    """Between moving the old results aside and moving the new ones in, a stale run's progress file can make the
    study's folder again; the publication moves that aside too instead of failing the study."""
    from lesiondx.service import storage as storage_module
    from lesiondx.service.storage import Storage

    storage, study_id = Storage(tmp_path / "store"), "p" * 32
    published = storage.results_dir(study_id)
    (published / "old.png").write_bytes(b"old run")
    staged = storage.stage_results(study_id)
    (staged / "new.png").write_bytes(b"new run")
    real_replace, moves = os.replace, []

    def replace_then_stale_write(source, target):
        real_replace(source, target)
        moves.append(Path(target).name)
        if len(moves) == 1:  # the old folder just went aside: the stale run writes its progress now
            published.mkdir()
            (published / "progress.json").write_text("{}")

    monkeypatch.setattr(storage_module.os, "replace", replace_then_stale_write)
    storage.publish_results(study_id, staged)
    monkeypatch.undo()
    assert _folder(published) == {"new.png": b"new run"}
    assert sorted(p.name for p in (tmp_path / "store" / "results").iterdir()) == [study_id]
