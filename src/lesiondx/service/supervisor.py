"""Worker processes: jobs run outside the service process, with per-job wall-time and memory limits.

:class:`Supervisor` (a thread in ``lesiondx serve`` or ``lesiondx worker``) keeps ``workers`` processes
alive. Each process claims studies from the database itself and runs them with :meth:`Worker.run_job`;
it tells the supervisor which job it started so the supervisor can enforce the limits:

* over ``job_timeout_s`` wall time or ``job_memory_mb`` resident memory, the supervisor kills the process
  and fails *that* study with the reason ("exceeded ..."): the job's own failure, charged to it;
* a process that crashes (segfault, abort) while running a job fails that job the same way;
* a process killed from outside (SIGKILL/SIGTERM: an operator, the OOM killer, a shutdown) only
  *interrupts* its job: it goes back in the queue without being charged an attempt
  (see :meth:`Database.interrupt`).

Every death is followed by a fresh process. The supervisor also renews the leases of its workers' jobs
and re-queues jobs of workers that vanished elsewhere (:class:`~lesiondx.service.leases.LeaseKeeper`),
so several services and ``lesiondx worker`` processes on several machines can share one PostgreSQL
database and one storage folder.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from sqlalchemy import select

from .db import Database, Study
from .logs import configure_logging
from .leases import LeaseKeeper, ProcessRef, new_owner
from .storage import Storage, log_failure, storage_problem
from .worker import Worker, load_predictor

log = logging.getLogger("lesiondx.service.worker")
OUTSIDE_SIGNALS = {signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}  # a stop, not the job's fault
RECYCLE_AT = 0.75  # a worker still this full after a job is replaced, so the next job gets the headroom
LOST = 255  # multiprocessing's exit code for a worker whose forkserver died (its real fate is unknown)
TERM_PAUSE_S = 15.0  # a worker that ended on SIGTERM is replaced after this long (the service stops within it)
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class PoolConfig:
    """What every worker process needs (picklable: it crosses the process boundary)."""

    db_url: str
    storage: str
    predictor_spec: str | None = None
    model: str = "default"
    workers: int = 1
    job_timeout_s: float = 600.0  # 0: no limit
    job_memory_mb: int = 3072  # resident memory of the worker process, models included; 0: no limit
    lease_seconds: float = 30.0
    poll_seconds: float = 0.5
    slow_job_s: float = 30.0  # every worker busy this long and studies waiting: one extra process (0: never)


def rss_mb(pid: int, ref: ProcessRef | None = None) -> float | None:
    """Resident memory of process ``pid`` in MB from ``/proc`` (None where unavailable, or when ``ref``, the
    process meant, has ended: the number may belong to another process by now)."""
    try:
        resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20
    except (OSError, ValueError, IndexError):
        return None
    return resident if ref is None or ref.alive() else None  # alive after the read: the read was of it


def _exit_with(pid: int) -> None:
    """Kill this process as soon as process ``pid`` (the supervisor) ends: no orphan goes on running a job
    that the next service start re-queues. (A worker's parent is the forkserver, which outlives the
    service while workers live, so PR_SET_PDEATHSIG would not do.)"""
    supervisor = ProcessRef(pid)  # not the bare pid: once the service ended, another process may get its number

    def watch() -> None:
        supervisor.wait()
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="lesiondx-lifeline", daemon=True).start()


def _release_free_memory() -> None:
    try:
        ctypes.CDLL(None).malloc_trim(0)  # glibc: hand freed heap back so the next job starts small
    except (OSError, AttributeError):
        pass


def worker_process_main(cfg: PoolConfig, worker_id: str, conn: Connection, threads: int, supervisor: int,
                        extra: bool = False) -> None:
    """Body of one worker process: claim, run, report; exits on "stop", at once when the supervisor's process
    is gone, to be recycled when a finished job left it holding over :data:`RECYCLE_AT` of the memory limit,
    and (an ``extra`` process) as soon as the queue is empty."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the supervisor decides
    busy, termed = [False], [False]

    def on_term(*_: Any) -> None:
        """SIGTERM (often sent to the whole group with the service's): finish the running job, then exit."""
        termed[0] = True
        if not busy[0]:
            raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    _exit_with(supervisor)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(name, str(threads))  # N processes share the cores instead of N x all of them
    configure_logging()
    db = Database(cfg.db_url)
    worker = Worker(db, Storage(Path(cfg.storage)), load_predictor(cfg.predictor_spec), model=cfg.model,
                    worker_id=worker_id)
    try:
        while not termed[0]:
            if conn.poll() and conn.recv() == "stop":
                break
            busy[0] = True  # from here to the end of a job SIGTERM only asks to stop afterwards
            try:
                study_id = db.claim_next(worker_id)
            except Exception as exc:  # database briefly locked/unreachable
                log_failure(log, "cannot claim a job", exc)
                study_id = None
            if study_id is None:
                busy[0] = False
                if extra or termed[0]:
                    break
                conn.poll(cfg.poll_seconds)  # a "wake" (or "stop") ends the wait early
                continue
            conn.send(("start", study_id))
            try:
                worker.process(study_id)
            except Exception as exc:  # its outcome could not be recorded: the database is full, read-only or gone
                reason = storage_problem(exc)
                if reason is None:
                    raise
                log.error("job %s: its outcome cannot be recorded (%s); it goes back in the queue", study_id, reason)
                conn.send(("unrecorded", study_id))
                break
            conn.send(("end", study_id))
            busy[0] = False
            _release_free_memory()
            resident = rss_mb(os.getpid())
            if cfg.job_memory_mb and resident is not None and resident > RECYCLE_AT * cfg.job_memory_mb:
                log.info("worker %s recycled (%.0f MB resident after a job)", worker_id, resident)
                break
    finally:
        busy[0] = True
        if termed[0]:
            try:
                conn.send(("term", None))  # the supervisor waits before replacing it: the service may be stopping
            except OSError:
                pass
        db.dispose()


def _context() -> Any:
    """``forkserver``: every worker is forked from a small single-threaded server that imported the worker
    code once (a fresh worker in milliseconds, no locks inherited from the service's threads); ``spawn``
    where there is no forkserver."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["lesiondx.service.forkserver_preload", "lesiondx.service.supervisor"])
        return ctx
    return mp.get_context("spawn")


@dataclass
class _Slot:
    """One worker process place: the current process, its pipe and what it is doing."""

    index: int
    process: Any = None
    ref: ProcessRef | None = None  # the process itself, not its pid (which another process may get once it ended)
    conn: Connection | None = None
    worker_id: str = ""
    job: str | None = None
    job_started: float = 0.0
    kill_reason: str | None = None
    kill_job: str | None = None
    spawned_at: float = 0.0
    not_before: float = 0.0
    quick_deaths: int = 0
    extra: bool = False  # added while every worker was stuck on a slow job; removed when it exits
    termed: bool = False  # it got SIGTERM (e.g. with the whole service): replaced only after TERM_PAUSE_S
    unrecorded: bool = False  # it ended because the database refused its job's outcome: the job is re-queued
    done: list[str] = field(default_factory=list)


def describe_exit(exitcode: int | None) -> str:
    """``signal SIGSEGV`` / ``exit code 3``."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


class Supervisor:
    """Keeps ``cfg.workers`` worker processes running and enforces the per-job limits (module docstring).
    Same interface as the in-process :class:`Worker`: :meth:`start`, :meth:`stop`, :meth:`wake`, ``alive``."""

    def __init__(self, db: Database, cfg: PoolConfig, on_done: Callable[[str], None] | None = None) -> None:
        self.db, self.cfg, self.on_done = db, cfg, on_done
        self.owner = new_owner()
        self.slots = [_Slot(i) for i in range(max(1, cfg.workers))]
        self._next_extra = 0.0
        self._spawned = 0
        self._ctx = _context()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._after: ThreadPoolExecutor | None = None
        self._grace = 10.0  # seconds running jobs get to finish at stop (stop()'s timeout)

    # -- interface shared with Worker ----------------------------------------------------------
    def start(self) -> None:
        """Start the supervising thread (it starts the processes: they die with it)."""
        self._stop.clear()
        self._after = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lesiondx-after-job")
        self._thread = threading.Thread(target=self._run, name="lesiondx-supervisor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Let running jobs finish for up to ``timeout`` s, then kill the processes; their jobs are re-queued
        (interrupted, not failed)."""
        self._grace = timeout
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout + 10)
        if self._after is not None:
            self._after.shutdown(wait=True)

    def wake(self) -> None:
        """Look at the queue now (idle workers are nudged within ~0.1 s)."""
        self._wake.set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def running(self) -> list[str]:
        """Ids of the jobs the processes said they are running."""
        return [slot.job for slot in self.slots if slot.job]

    # -- the supervising loop ------------------------------------------------------------------
    def _run(self) -> None:
        leases = LeaseKeeper(self.db, self.owner, self.cfg.lease_seconds)
        try:
            leases.sweep()
        except Exception:
            log.exception("cannot re-queue interrupted jobs")
        while not self._stop.is_set():
            try:
                self._step(leases)
            except Exception as exc:  # e.g. the database full or restarting: keep supervising, settle it next round
                log_failure(log, "supervising the worker processes failed (retrying every second)", exc)
                self._stop.wait(1.0)
        self._shutdown(timeout=self._grace)

    def _step(self, leases: LeaseKeeper) -> None:
        """One round: start, drain, reap and police the worker processes, renew leases, wait up to 0.1 s."""
        now = time.monotonic()
        for slot in self.slots:
            if slot.process is None:
                if now >= slot.not_before:
                    self._spawn(slot)
                continue
            self._drain(slot)
            if not slot.process.is_alive():
                self._reap(slot)
            else:
                self._enforce_limits(slot, now)
        self.slots = [s for s in self.slots if not (s.extra and s.process is None)]
        self._add_extra_if_stuck(now)
        if self._wake.is_set():
            self._wake.clear()
            self._send_all("wake", idle_only=True)
        leases.tick()
        handles = [h for s in self.slots if s.process is not None for h in (s.conn, s.process.sentinel)]
        if handles:
            wait(handles, timeout=0.1)
        else:
            self._stop.wait(0.1)

    def _add_extra_if_stuck(self, now: float) -> None:
        """No study waits behind slow jobs for long: when every worker has been on its job for over
        ``slow_job_s`` and studies are queued, start one extra process (one at a time: memory stays bounded);
        it quits when it finds the queue empty."""
        slow = self.cfg.slow_job_s
        if not slow or now < self._next_extra or len(self.slots) > max(1, self.cfg.workers):
            return
        if not all(s.job and now - s.job_started > slow for s in self.slots):
            return
        self._next_extra = now + slow / 6
        try:
            with self.db.session() as s:
                waiting = s.scalar(select(Study.id).where(Study.status == "queued").limit(1))
        except Exception:
            return
        if waiting is not None:
            log.warning("every worker busy for over %g s with studies waiting: one extra worker process", slow)
            self.slots.append(_Slot(max(s.index for s in self.slots) + 1, extra=True))

    def _spawn(self, slot: _Slot) -> None:
        """Start the slot's process (daemonic: it cannot start processes of its own; it dies with the service)."""
        self._spawned += 1
        slot.worker_id = f"{self.owner}:w{slot.index}.{self._spawned}"
        threads = 1 if slot.extra else max(1, (os.cpu_count() or 1) // max(1, self.cfg.workers))
        parent_end, child_end = self._ctx.Pipe()
        process = self._ctx.Process(target=worker_process_main, name=f"lesiondx-worker-{slot.index}", daemon=True,
                                    args=(self.cfg, slot.worker_id, child_end, threads, os.getpid(), slot.extra))
        try:
            process.start()
        except Exception:  # e.g. out of processes or file descriptors: try again later
            log.exception("cannot start worker process %s", slot.worker_id)
            parent_end.close()
            slot.not_before = time.monotonic() + 5.0
            return
        finally:
            child_end.close()
        slot.process, slot.conn, slot.job, slot.kill_reason = process, parent_end, None, None
        slot.ref = ProcessRef(process.pid)  # made while the process surely lives: it has not reported an end yet
        slot.spawned_at = time.monotonic()
        log.info("worker process %s started (pid %d)", slot.worker_id, process.pid)

    def _drain(self, slot: _Slot) -> None:
        """Read the process's messages: which job it started / finished."""
        assert slot.conn is not None
        try:
            while slot.conn.poll():
                kind, study_id = slot.conn.recv()
                if kind == "start":
                    slot.job, slot.job_started = study_id, time.monotonic()
                elif kind == "term":
                    slot.termed = True
                elif kind == "unrecorded":
                    slot.unrecorded = True
                elif kind == "end":
                    slot.job = None
                    slot.quick_deaths = 0
                    self._after_job(study_id)
        except (EOFError, OSError):
            pass  # the process is gone; _reap decides what that means for its job

    def _enforce_limits(self, slot: _Slot, now: float) -> None:
        if slot.job is None or slot.kill_reason is not None:
            return
        timeout, memory = self.cfg.job_timeout_s, self.cfg.job_memory_mb
        if timeout and now - slot.job_started > timeout:
            self._kill(slot, f"exceeded the wall-time limit of {timeout:g} s (LESIONDX_JOB_TIMEOUT_S)")
            return
        resident = rss_mb(slot.process.pid, slot.ref) if memory else None
        if resident is not None and resident > memory:
            self._kill(slot, f"exceeded the memory limit of {memory} MB ({resident:.0f} MB resident; "
                             "LESIONDX_JOB_MEMORY_MB)")

    def _kill(self, slot: _Slot, reason: str) -> None:
        log.warning("job %s: %s; stopping its worker process", slot.job, reason)
        slot.kill_reason, slot.kill_job = reason, slot.job
        self._signal(slot, signal.SIGKILL)
        slot.process.join(5)

    def _reap(self, slot: _Slot, *, stopping: bool = False) -> None:
        """A process ended: settle the job it held (failed if its own fault, else re-queued) and respawn."""
        process = slot.process
        process.join(1)
        self._drain(slot)
        code = process.exitcode
        outside = code is not None and code < 0 and -code in OUTSIDE_SIGNALS
        if code == LOST and not slot.kill_reason:  # the forkserver was killed: its workers may live on, unseen
            outside = True
            self._signal(slot, signal.SIGKILL)
        held = self._held(slot)
        for study_id in held:
            if slot.kill_reason and study_id == slot.kill_job:
                self._fail(study_id, slot, slot.kill_reason)
            elif stopping or outside or slot.unrecorded:  # raises while the database refuses: retried next round
                status = self.db.interrupt(study_id, slot.worker_id)
                log.warning("job %s interrupted (worker %s, %s): %s", study_id, slot.worker_id,
                            describe_exit(code), status)
            else:
                self._fail(study_id, slot, f"the worker process crashed ({describe_exit(code)}) while running "
                                           "this job")
        if slot.conn is not None:
            slot.conn.close()
        if slot.ref is not None:
            slot.ref.close()
        lived = time.monotonic() - slot.spawned_at
        startup_failure = code != 0 and not held and not slot.kill_reason and lived < 5  # e.g. cannot import
        slot.quick_deaths = slot.quick_deaths + 1 if startup_failure else 0
        slot.not_before = time.monotonic() + min(30.0, 0.5 * 2 ** slot.quick_deaths) if slot.quick_deaths else 0.0
        if slot.termed:  # a stop of the whole service reaches us soon: no fresh worker to claim a job meanwhile
            slot.not_before, slot.termed = time.monotonic() + TERM_PAUSE_S, False
            log.info("worker process %s stopped on SIGTERM after its job", slot.worker_id)
        if not stopping and (code != 0 or slot.quick_deaths):
            log.warning("worker process %s ended (%s)", slot.worker_id, describe_exit(code))
        slot.process, slot.conn, slot.job, slot.kill_reason, slot.ref = None, None, None, None, None
        slot.unrecorded = False

    @staticmethod
    def _signal(slot: _Slot, sig: int) -> None:
        """Signal the slot's process, never another one that got its pid after it ended."""
        if slot.ref is not None:
            slot.ref.send(sig)

    def _held(self, slot: _Slot) -> list[str]:
        try:
            return self.db.claimed_by(slot.worker_id)
        except Exception:  # the lease expires and another worker re-queues it
            log.exception("cannot look up the job of worker %s", slot.worker_id)
            return []

    def _fail(self, study_id: str, slot: _Slot, reason: str) -> None:
        if self.db.fail_claimed(study_id, slot.worker_id, reason):
            log.warning("job %s failed: %s", study_id, reason)

    def _after_job(self, study_id: str) -> None:
        """Post-processing of a successful job (PACS export) in the service process, off this thread."""
        if self.on_done is None or self._after is None:
            return
        self._after.submit(self._call_on_done, study_id)

    def _call_on_done(self, study_id: str) -> None:
        try:
            with self.db.session() as s:
                study = s.get(Study, study_id)
                if study is None or study.status != "done":
                    return
            self.on_done(study_id)  # type: ignore[misc]
        except Exception:
            log.exception("post-processing (PACS export) failed for %s", study_id)

    def _send_all(self, message: str, *, idle_only: bool = False) -> None:
        for slot in self.slots:
            if slot.conn is not None and not (idle_only and slot.job):
                try:
                    slot.conn.send(message)
                except (OSError, ValueError):
                    pass

    def _shutdown(self, timeout: float) -> None:
        self._send_all("stop")
        deadline = time.monotonic() + timeout
        for slot in self.slots:
            if slot.process is not None:
                slot.process.join(max(0.0, deadline - time.monotonic()))
                if slot.process.is_alive():
                    self._signal(slot, signal.SIGKILL)
                try:
                    self._reap(slot, stopping=True)
                except Exception as exc:  # database unavailable: the job's lease expires and it is re-queued
                    log_failure(log, "supervising the worker processes failed (retrying every second)", exc)


def pool_config(settings: Any) -> PoolConfig:
    """:class:`PoolConfig` from service :class:`~lesiondx.service.settings.Settings`."""
    return PoolConfig(db_url=settings.database_url, storage=str(Path(settings.storage).resolve()),
                      predictor_spec=settings.predictor_spec, model=settings.model, workers=settings.workers,
                      job_timeout_s=settings.job_timeout_s, job_memory_mb=settings.job_memory_mb,
                      lease_seconds=settings.lease_seconds, poll_seconds=settings.worker_poll_seconds,
                      slow_job_s=settings.slow_job_s)


def make_worker(settings: Any, db: Database, storage: Storage, predictor: Any = None,
                on_done: Callable[[str], None] | None = None) -> Worker | Supervisor:
    """Worker processes (the default), or the in-process thread when a predictor *object* is given (it
    cannot cross into another process: tests, embedding) or ``settings.workers == 0``."""
    if predictor is not None or settings.workers <= 0:
        return Worker(db, storage, predictor or load_predictor(settings.predictor_spec), model=settings.model,
                      poll_seconds=settings.worker_poll_seconds, on_done=on_done,
                      lease_seconds=settings.lease_seconds)
    return Supervisor(db, pool_config(settings), on_done=on_done)
