"""The job: materialise a claimed study's files, run the predictor, store results (:meth:`Worker.run_job`).

The queue *is* the ``studies`` table (see :mod:`lesiondx.service.db`), so it survives restarts. Jobs
normally run in worker processes (:mod:`lesiondx.service.supervisor`), each of which calls
:meth:`Worker.run_job`; :class:`Worker` itself is the in-process thread used when a predictor object is
handed to the service (tests, embedding) or ``workers = 0``. A predictor exception marks only that study
``failed`` with the reason; the worker carries on.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image
from sqlalchemy import func, update

from lesiondx.io import ImageReadError, natural_key, read_image, shared_decodes, to_display
from lesiondx.progress import reporting

from .db import Database, Study, utcnow
from .leases import LeaseKeeper, new_owner
from .results import normalize
from .storage import Storage, log_failure, safe_name, storage_problem
from .viewer import ProgressFile, store_heatmaps, store_slices

log = logging.getLogger("lesiondx.service.worker")
RASTER_SERIES = " png/jpg slices"  # key of the PNG/JPG slice folder among series UIDs (no UID has a space)
SLICE_SERIES_TASKS = ("ct-liver", "ct-covid")  # tasks whose PNG/JPG uploads are the slices of one series
ONE_SERIES_TASKS = ("ct-covid",)  # tasks that read one series: a study's CT series share one folder and the task's
# reader picks among them as from a scanner export (lesiondx.io.series.pick_series; ct-liver reads each as a phase)


class Predictor(Protocol):
    """``predictor(task, inputs, out_dir, model, **options) -> dict`` — the shape of a task's ``predict`` output;
    ``options`` are the task options given at upload (e.g. ``window`` for ct-liver slices)."""

    def __call__(self, task: str, inputs: list[Path], out: Path, model: str, **options: Any) -> dict[str, Any]: ...


def default_predictor(task: str, inputs: list[Path], out: Path, model: str = "default", **options: Any) -> dict[str, Any]:
    """The real models: ``lesiondx.tasks.load_task(task).predict(inputs, model, out, **options)``."""
    from lesiondx.tasks import load_task

    return load_task(task).predict(list(inputs), model, out, **options)


def load_predictor(spec: str | None) -> Predictor:
    """``module:callable`` (e.g. the test double ``lesiondx.service.testing:stub_predictor``) or the default."""
    if not spec:
        return default_predictor
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"predictor {spec!r} is not module:callable")
    return getattr(importlib.import_module(module), attr)


def materialise(study: Study, storage: Storage, work: Path, task: str | None = None
                ) -> tuple[list[Path], list[dict[str, str]]]:
    """Copy a study's blobs into ``work`` as the task expects them: CT series as one folder per
    series (one folder for all of them for a task reading one series, ``ONE_SERIES_TASKS``), US DICOM and PNG/JPG as single files, except that for the CT tasks the PNG/JPG slices are one
    series too (one folder in natural order of the uploaded file names, like ``predict SLICES/``: upload
    order is often "1, 10, 11, 2", and ct-liver would read single files as one-slice phases). Returns the
    inputs and per-file problems."""
    inputs: list[Path] = []
    errors: list[dict[str, str]] = []
    series_dirs: dict[str, Path] = {}

    def series_dir(key: str, name: str) -> Path:
        """The folder of one series (made and listed as an input the first time it is asked for)."""
        if key not in series_dirs:
            series_dirs[key] = work / name
            series_dirs[key].mkdir()
            inputs.append(series_dirs[key])
        return series_dirs[key]

    files = list(study.files)
    if task in SLICE_SERIES_TASKS:
        files.sort(key=lambda f: (f.kind != "raster", natural_key(f.name), f.position))
    for rank, f in enumerate(files):
        if not storage.has(f.sha256):
            errors.append({"file": f.name, "reason": "stored file is missing from storage"})
            continue
        data = storage.blob_path(f.sha256).read_bytes()
        if f.kind == "dicom" and f.modality == "CT":
            key = "ct" if task in ONE_SERIES_TASKS else (f.series_uid or "series")
            folder = series_dir(key, f"series_{len(series_dirs) + 1:02d}")
            (folder / f"{f.position:05d}.dcm").write_bytes(data)
        elif f.kind == "raster" and task in SLICE_SERIES_TASKS:
            (series_dir(RASTER_SERIES, "slices") / f"{rank:05d}{f.suffix or '.png'}").write_bytes(data)
        else:
            stem = Path(safe_name(f.name)).stem[:60]
            path = work / f"{f.position:05d}_{stem}{f.suffix or '.dcm'}"
            path.write_bytes(data)
            inputs.append(path)
    return inputs, errors


def write_previews(inputs: list[Path], results_dir: Path, window: str = "abdomen", limit: int = 24) -> list[str]:
    """PNG previews of the inputs (middle slice for a series), named ``input_NNN.png``."""
    names: list[str] = []
    for index, path in enumerate(inputs[:limit]):
        try:
            image = read_image(path)
            if image.is_volume:
                image = image.slice(image.n_slices // 2)
            grey = np.clip(to_display(image, window), 0, 255).astype(np.uint8)
        except (ImageReadError, ValueError, OSError):
            continue
        name = f"input_{index:03d}.png"
        Image.fromarray(grey).save(results_dir / name)
        names.append(name)
    return names


def _input_names(study: Study, inputs: list[Path]) -> list[str]:
    """Display names of the materialised inputs (original file name, or the series' file count)."""
    by_prefix = {f"{f.position:05d}": f.name for f in study.files}
    series = {f.series_uid for f in study.files if f.kind == "dicom" and f.modality == "CT"}
    shared = len(series) > 1 and sum(1 for p in inputs if p.is_dir()) == 1  # ONE_SERIES_TASKS: the task picks one
    names = []
    for path in inputs:
        if path.is_dir():
            n = sum(1 for _ in path.iterdir())
            names.append(f"{n} CT files of {len(series)} series (the one read is named in the notes)" if shared
                         else f"series of {n} slices")
        else:
            names.append(by_prefix.get(path.name[:5], path.name))
    return names


class Worker:
    """A daemon thread processing the queue; call :meth:`wake` after queueing to skip the poll wait.

    ``worker_id`` names the lease holder (see :mod:`lesiondx.service.leases`); :meth:`start` makes one.
    Results are only stored while this worker still holds the study's claim."""

    def __init__(self, db: Database, storage: Storage, predictor: Predictor, *, model: str = "default",
                 poll_seconds: float = 0.5, on_done: Callable[[str], None] | None = None,
                 worker_id: str | None = None, lease_seconds: float = 30.0) -> None:
        self.db, self.storage, self.predictor, self.model = db, storage, predictor, model
        self.poll_seconds = poll_seconds
        self.on_done = on_done
        self.worker_id, self.lease_seconds = worker_id, lease_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.current: str | None = None

    def start(self) -> None:
        """Re-queue jobs whose worker is gone (see :class:`LeaseKeeper`) and start the thread."""
        owner = new_owner()
        self.worker_id = f"{owner}:thread"
        leases = LeaseKeeper(self.db, owner, self.lease_seconds)
        leases.sweep()
        self._thread = threading.Thread(target=self._loop, name="lesiondx-worker", daemon=True)
        self._thread.start()
        threading.Thread(target=self._keep_leases, args=(leases,), name="lesiondx-leases", daemon=True).start()

    def _keep_leases(self, leases: LeaseKeeper) -> None:
        while not self._stop.is_set():
            leases.tick()
            self._stop.wait(leases.period)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the thread to finish after its current job and wait up to ``timeout`` seconds."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Look at the queue now."""
        self._wake.set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                study_id = self.db.claim_next(self.worker_id)
            except Exception as exc:  # database briefly locked/unreachable: retry later
                log_failure(log, "cannot claim a job", exc)
                study_id = None
            if study_id is None:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()
                continue
            self.current = study_id
            try:
                self.process(study_id)
            except Exception as exc:  # its outcome could not be recorded (database full, read-only, stopped)
                log_failure(log, f"job {study_id}: its outcome cannot be recorded; it goes back in the queue", exc)
                self._requeue(study_id)
            finally:
                self.current = None

    def _requeue(self, study_id: str) -> None:
        """Put a job whose outcome the database refused back in the queue (uncharged), retrying every second."""
        while not self._stop.is_set():
            try:
                self.db.interrupt(study_id, self.worker_id)
                return
            except Exception as exc:
                log_failure(log, "cannot put a job back in the queue", exc)
                self._stop.wait(1.0)

    def process(self, study_id: str) -> None:
        """:meth:`run_job`, turning an unexpected error outside the predictor into the study's failure."""
        try:
            self.run_job(study_id)
        except Exception as exc:  # never let one job kill the worker
            full = storage_problem(exc)  # not the study's fault: say so in one line, no traceback
            if full is None:
                log.exception("job %s crashed outside the predictor", study_id)
            else:
                log.error("job %s failed: %s", study_id, full)
            self._finish(study_id, failure=f"{full}; then send the study again" if full else
                         "internal error while processing (see service log)")

    def run_job(self, study_id: str) -> None:
        """Process one claimed (``running``) study."""
        with self.db.session() as s:
            study = s.get(Study, study_id)
            if study is None:
                return
            task = study.task
            generation = study.reopened or 0  # late instances reopen the study: this run's result is then stale
            options = study.options if task == "ct-liver" else {}  # only ct-liver takes upload options so far
            work = self.storage.work_dir(study_id)
            inputs, problems = materialise(study, self.storage, work, task)
            input_names = _input_names(study, inputs)
        results_dir = self.storage.stage_results(study_id)  # published by _finish only while the claim holds
        try:
            if problems:
                self._add_errors(study_id, problems)
            if not task or not inputs:
                self._finish(study_id, failure="no usable image in this study" if not inputs else "no task chosen",
                             generation=generation, staged=results_dir)
                return
            with shared_decodes():  # previews, the viewer's slices and the predictor: one decode of each input
                previews = write_previews(inputs, results_dir, "lung" if task == "ct-covid" else "abdomen")
                try:
                    (work / "out").mkdir(exist_ok=True)
                    # stage / slices done, for the study page (which reads it from the published folder)
                    with reporting(ProgressFile(self.storage.results_dir(study_id))):
                        store_slices(inputs, results_dir)  # every slice kept for the stack viewer
                        output = store_heatmaps(self.predictor(task, inputs, work / "out", self.model, **options),
                                                results_dir)
                    shown = {}
                    for path, name in zip(inputs, input_names):
                        shown[str(path)] = shown[str(path.resolve())] = name
                    entries, raw = normalize(output, results_dir, task=task, inputs=shown)
                except Exception as exc:
                    reason = storage_problem(exc) or f"{type(exc).__name__}: {exc}".strip()[:2000]
                    # bad input: the reason only
                    plain = isinstance(exc, ImageReadError) or storage_problem(exc)
                    trace = "" if plain else "\n" + traceback.format_exc()
                    log.warning("prediction failed for %s: %s%s", study_id, reason, trace)
                    self._finish(study_id, failure=f"prediction failed: {reason}", previews=previews,
                                 generation=generation, staged=results_dir)
                    return
                finally:
                    self.storage.clear_work(work)
            originals = {p.name: name for p, name in zip(inputs, input_names)}
            for index, entry in enumerate(entries):
                if isinstance(entry.get("image"), str) and entry["image"] in originals:
                    entry["image"] = originals[entry["image"]]
                entry["input_preview"] = (previews[index] if index < len(previews) else
                                          previews[0] if previews else None)
            if not self._finish(study_id, results=entries, raw=raw, previews=previews, generation=generation,
                                staged=results_dir):
                return  # reopened by late instances while running: the re-run stores and exports the result
            if self.on_done is not None:
                try:
                    self.on_done(study_id)
                except Exception:
                    log.exception("post-processing (PACS export) failed for %s", study_id)
        finally:
            self.storage.discard_results(results_dir)  # a no-op once published (moved into place)

    def _add_errors(self, study_id: str, errors: list[dict[str, str]]) -> None:
        with self.db.session() as s, s.begin():
            study = s.get(Study, study_id)
            if study is not None:
                study.add_errors(errors)

    def _finish(self, study_id: str, *, results: list[dict[str, Any]] | None = None, raw: dict[str, Any] | None = None,
                failure: str | None = None, previews: list[str] | None = None, generation: int | None = None,
                staged: Path | None = None) -> bool:
        """Store the outcome, only if the study is still ``running`` (and, given ``generation``, was not
        reopened since the job started); True when stored. ``staged``, the run's result folder, is published in
        the same transaction, while the claim is held (the conditional UPDATE holds the row or, on SQLite, the
        database's write lock until commit, so no other run can take the study over in between)."""
        condition = [Study.id == study_id, Study.status == "running"]
        if generation is not None:
            condition.append(func.coalesce(Study.reopened, 0) == generation)
        with self.db.session() as s, s.begin():
            if self.worker_id is not None:
                condition.append(Study.claimed_by == self.worker_id)
            result = s.execute(update(Study).where(*condition).values(
                status="failed" if failure else "done", failure=failure, results_json=json.dumps(results or []),
                raw_json=json.dumps({"output": raw or {}, "previews": previews or []}), finished_at=utcnow(),
                claimed_by=None))
            if result.rowcount and staged is not None:
                self.storage.publish_results(study_id, staged)
        if not result.rowcount:
            log.warning("job %s: result dropped (study reopened, or this worker lost its claim)", study_id)
        return bool(result.rowcount)
