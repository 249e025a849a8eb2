"""The service's shared state (settings, database, storage, salt, worker) and study submission.

Both the REST API and the DICOM node create studies through :meth:`ServiceCore.submit` /
:meth:`ServiceCore.add_dicom_instance`, so routing, de-identification and storage are the same
whichever way images arrive.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from datetime import timedelta
from typing import Any, Callable

from sqlalchemy import func, or_, select

from .db import Database, Study, StudyFile, as_utc, utcnow
from .bounds import IngestPolicy
from .identity import Sealer, record_for
from .ingest import Accepted, FileError, Triage, choose_task
from .integrity import GAP_KIND, InstanceInfo, instance_info, series_gap_warnings
from .settings import Settings, load_salt
from .storage import Storage, log_failure, safe_name
from .supervisor import make_worker
from .worker import Predictor, load_predictor

log = logging.getLogger("lesiondx.service")
HOUSEKEEPING_S = 3600.0  # seconds between housekeeping passes
UNQUEUED_EXPORT_WINDOW = timedelta(days=1)  # at start, results done this recently but never queued go to the PACS
INTERRUPTED_KIND = "interrupted"
INTERRUPTED = ("the service stopped while this study was being received and nothing arrived after it restarted: "
               "the series may be incomplete")


class ServiceCore:
    """Everything one running service needs; :meth:`start` / :meth:`stop` the background parts."""

    def __init__(self, settings: Settings, predictor: Predictor | None = None) -> None:
        settings.check_safe()
        self.settings = settings
        self.storage = Storage(settings.storage)
        self.salt = load_salt(settings.storage)
        self.ingest_policy = IngestPolicy.from_settings(settings)
        self.sealer = Sealer(self.salt)
        self.db = Database(settings.database_url)
        self.predictor = predictor or load_predictor(settings.predictor_spec)
        self.worker = make_worker(settings, self.db, self.storage, predictor, on_done=self._after_job)
        self.dicom_node: Any = None
        self.exporter: Any = None
        self._started = False
        self._intake_lock = threading.Lock()  # one instance filed at a time: no twin studies or twin instances
        self._closer_stop = threading.Event()
        self._closer: threading.Thread | None = None
        self._housekeeper: threading.Thread | None = None
        self._release_timers: set[threading.Timer] = set()  # studies waiting out their release grace

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, *, dicom: bool = True) -> None:
        """Restart the quiet timer of DICOM studies left ``receiving`` (they may be incomplete: the sender
        may still be resending), start the worker, the quiet-period closer and (if configured) the DICOM node."""
        if self._started:
            return
        self._started = True
        self._closer_stop.clear()
        restarted = self.restart_quiet_timers()
        if restarted:
            log.info("%d DICOM study(ies) were receiving at the last shutdown: their quiet timer restarts", restarted)
        try:
            resent = self.resume_unqueued_exports()
        except Exception as exc:  # database briefly unavailable: the service still starts
            log_failure(log, "cannot look for results never queued for the PACS", exc)
            resent = []
        if resent:
            log.warning("%d finished study(ies) had not been queued for the PACS (the service stopped right after "
                        "their job): queued now", len(resent))
        self.worker.start()
        self._closer = threading.Thread(target=self._close_loop, name="lesiondx-study-closer", daemon=True)
        self._closer.start()
        self._housekeeper = threading.Thread(target=self._housekeeping_loop, name="lesiondx-housekeeping", daemon=True)
        self._housekeeper.start()
        from .pacs import Exporter

        self.exporter = Exporter(self)
        self.exporter.start()
        if dicom and self.settings.dicom_port is not None:
            from .dicom_node import DicomNode

            self.dicom_node = DicomNode(self)
            self.dicom_node.start()

    def stop(self) -> None:
        """Stop the DICOM node, the closer and the worker. Studies still ``receiving`` stay so (never closed as
        complete at shutdown); a running job finishes or is re-queued next start."""
        if self.dicom_node is not None:
            self.dicom_node.stop()
            self.dicom_node = None
        self._closer_stop.set()
        with self._intake_lock:
            timers, self._release_timers = self._release_timers, set()
        for timer in timers:  # studies in their release grace stay receiving (the quiet timer restarts next start)
            timer.cancel()
        for thread in (self._closer, self._housekeeper):
            if thread is not None:
                thread.join(5)
        self._closer = self._housekeeper = None
        self.worker.stop(self.settings.stop_grace_s)
        if self.exporter is not None:
            self.exporter.stop()
            self.exporter = None
        self.db.dispose()
        self._started = False

    def _close_loop(self) -> None:
        interval = max(0.2, min(2.0, self.settings.study_quiet_seconds / 4))
        while not self._closer_stop.wait(interval):
            try:
                self.close_quiet_studies()
            except Exception as exc:
                log_failure(log, "closing quiet studies failed", exc)

    def _housekeeping_loop(self) -> None:
        """Study retention and orphan cleanup at start and every :data:`HOUSEKEEPING_S` (see ``retention.py``)."""
        from .retention import housekeeping

        while True:
            try:
                housekeeping(self.db, self.storage, self.settings.study_retention_days)
            except Exception as exc:
                log_failure(log, "housekeeping (retention, orphan cleanup) failed", exc)
            if self._closer_stop.wait(HOUSEKEEPING_S):
                return

    # -- submission ----------------------------------------------------------------------------
    def submit(self, triage: Triage, *, requested_task: str | None, uploader: str, source: str = "upload",
               options: dict[str, Any] | None = None) -> Study:
        """Create a study from triaged files (stored by hash) and queue it.

        The study is created even when nothing was accepted mixed with errors: it is then
        ``failed`` with every per-file reason, so the user sees why. DICOM instances sent twice in one
        upload (same SOP Instance UID) are kept once and counted in ``duplicates_dropped``.
        """
        task, routing_errors, files = choose_task(triage.accepted, requested_task)
        errors = [e.to_dict() for e in triage.errors + routing_errors]
        with self.storage.holding(), self.db.session() as s, s.begin():  # housekeeping keeps its blobs till commit
            study = Study(task=task, task_requested=bool(requested_task), source=source, uploader=uploader[:64],
                          modality=_modality(files), study_uid=files[0].study_uid if files else None,
                          options_json=json.dumps(options or {}), duplicates_dropped=0)
            study.add_errors(errors)
            study.add_warnings(_warnings(files))
            seen: set[str] = set()
            for item in files:
                info = instance_info(item.data) if item.kind == "dicom" else None
                if info is not None and info.sop_uid is not None:
                    if info.sop_uid in seen:
                        study.duplicates_dropped += 1
                        continue
                    seen.add(info.sop_uid)
                study.files.append(self._file_row(item, len(study.files), info))
            if not files:
                study.status = "failed"
                study.failure = "no usable image in this upload" + ("" if errors else " (no files)")
                study.finished_at = utcnow()
            else:
                study.result_version = 1
                study.replace_warnings(GAP_KIND, _gap_warnings(study.files))
            s.add(study)
        self.worker.wake()
        return study

    def _file_row(self, item: Accepted, position: int, info: InstanceInfo | None = None) -> StudyFile:
        sha = self.storage.put(item.data)
        row = StudyFile(position=position, sha256=sha, name=safe_name(item.name)[:255], kind=item.kind,
                        suffix=item.suffix, modality=item.modality, series_uid=item.series_uid, region=item.region,
                        size=len(item.data))
        if item.original is not None:  # DICOM: keep the original identifiers, sealed (service/identity.py)
            row.identity = record_for(item.original, self.sealer)
        if info is not None:
            row.sop_uid, row.instance_number, row.slice_position = info.sop_uid, info.instance_number, info.position
        return row

    def add_dicom_instance(self, item: Accepted | FileError, *, calling_aet: str, study_id: str | None = None,
                           duplicates: Counter[str] | None = None) -> str | None:
        """File one received instance into the DICOM study with its (pseudonymous) StudyInstanceUID.

        * The study is the latest one received as DICOM with that StudyInstanceUID, whatever its state: a
          series re-sent in a new association joins it, never a second study.
        * An instance whose SOP Instance UID the study already holds is dropped and counted
          (``duplicates_dropped``, and in ``duplicates`` under the study's id when given): it changes neither the
          files nor the result.
        * A new instance for a study already closed (queued, running, done, failed) reopens it: back to
          ``receiving`` with its quiet timer restarted; when it closes again it is re-run, its results are
          replaced (``result_version`` + 1) and the export hook sends the new version.
        * A refused instance (:class:`FileError`) is listed on ``study_id`` (the study its association is
          sending) when given; returns None otherwise, so the caller can report it elsewhere.
        """
        if isinstance(item, FileError):
            if study_id is None:
                return None
            with self.db.session() as s, s.begin():
                study = s.get(Study, study_id)
                if study is None:
                    return None
                study.add_errors([item.to_dict()])
                return study.id
        info = instance_info(item.data)
        was: str | None = None  # the state a reopened study was in
        with self.storage.holding(), self._intake_lock, self.db.session() as s, s.begin():
            study = s.scalars(select(Study).where(Study.source == "dicom", Study.study_uid == item.study_uid)
                              .order_by(Study.created_at.desc()).limit(1)).first()
            if study is None:
                study = Study(status="receiving", source="dicom", uploader=f"dicom:{calling_aet}"[:64],
                              calling_aet=calling_aet[:16], study_uid=item.study_uid, modality=item.modality,
                              duplicates_dropped=0, reopened=0, result_version=0)
                s.add(study)
                s.flush()
            elif info.sop_uid is not None and s.scalar(
                    select(StudyFile.id).where(StudyFile.study_id == study.id, StudyFile.sop_uid == info.sop_uid)
                    .limit(1)) is not None:
                study.duplicates_dropped = (study.duplicates_dropped or 0) + 1
                if study.status == "receiving":
                    study.last_instance_at = utcnow()  # the sender is still sending
                if duplicates is not None:
                    duplicates[study.id] += 1
                return study.id
            elif study.status != "receiving":
                was = study.status
                self._reopen(study)
            if study.warnings_json and INTERRUPTED_KIND in study.warnings_json:
                study.replace_warnings(INTERRUPTED_KIND, [])  # the sender is sending again
            last = s.scalar(select(func.max(StudyFile.position)).where(StudyFile.study_id == study.id))
            row = self._file_row(item, 0 if last is None else int(last) + 1, info)
            row.study_id = study.id
            s.add(row)
            study.add_warnings(_warnings([item]))
            study.last_instance_at = utcnow()
            study_id = study.id
        if was is not None:
            self.db.audit(f"dicom:{calling_aet}", "dicom_reopen", study_id, f"late instance reopened a {was} study")
        return study_id

    def report_resend(self, study_id: str, calling_aet: str, dropped: int) -> None:
        """One ``dicom_resent`` audit entry (counts, no identifiers): an association sent ``study_id`` again with only
        instances it already held (``dropped`` copies, a PACS re-forwarding a study), so nothing is re-analysed."""
        with self.db.session() as s:
            status = s.scalar(select(Study.status).where(Study.id == study_id))
        if status is None:
            return
        detail = f"study re-sent: {dropped} instance(s) already held, dropped as duplicates; no new instance"
        detail += (": nothing re-analysed" if status != "receiving"
                   else " from this association (the study is still receiving from another)")
        log.info("study %s re-sent by %s: %d duplicate instance(s) dropped", study_id, calling_aet, dropped)
        self.db.audit(f"dicom:{calling_aet}", "dicom_resent", study_id, detail)

    def _reopen(self, study: Study) -> None:
        """A closed study received a new instance: back to ``receiving``. A job running on it stores nothing
        (the worker only finishes a study still ``running`` at the same ``reopened`` generation)."""
        log.info("study %s reopened by a late instance (was %s)", study.id, study.status)
        study.status = "receiving"
        study.reopened = (study.reopened or 0) + 1
        study.attempts = 0
        study.failure = None
        study.finished_at = None
        study.claimed_by = None  # a worker still running the old generation loses its claim: it stores nothing

    def restart_quiet_timers(self) -> int:
        """At start-up: give every ``receiving`` study a fresh quiet period from now and a warning that its
        reception was interrupted (cleared when further instances arrive); returns how many."""
        now = utcnow()
        with self.db.session() as s, s.begin():
            studies = list(s.scalars(select(Study).where(Study.status == "receiving")))
            for study in studies:
                study.last_instance_at = now
                study.replace_warnings(INTERRUPTED_KIND, [{"kind": INTERRUPTED_KIND, "file": "*", "reason": INTERRUPTED}])
            return len(studies)

    def close_quiet_studies(self, *, force: bool = False) -> list[str]:
        """Queue ``receiving`` studies quiet for ``study_quiet_seconds``, and at least ``study_release_grace_s`` (a
        grace set longer waits for a sender's next association minutes later; all of them with ``force``)."""
        closed: list[str] = []
        quiet = max(self.settings.study_quiet_seconds, self.settings.study_release_grace_s)
        now = utcnow()
        cutoff = now - timedelta(seconds=quiet)
        with self._intake_lock, self.db.session() as s, s.begin():
            for study in s.scalars(select(Study).where(Study.status == "receiving")):
                last = study.last_instance_at
                if not force and last is not None and as_utc(last) > now:  # received before the clock went back:
                    study.last_instance_at = last = now  # its quiet period runs from now, not from an hour ahead
                if force or last is None or as_utc(last) < cutoff:
                    self._queue_received(study)
                    closed.append(study.id)
        if closed:
            self.worker.wake()
        return closed

    def close_studies(self, study_ids: set[str]) -> list[str]:
        """Queue the given ``receiving`` studies now (their association was released); the others, sent again
        whole (every instance already held), get their PACS export queued again if it had given up."""
        closed: list[str] = []
        with self._intake_lock, self.db.session() as s, s.begin():
            for study in s.scalars(select(Study).where(Study.status == "receiving", Study.id.in_(list(study_ids)))):
                self._queue_received(study)
                closed.append(study.id)
        if closed:
            self.worker.wake()
        if self.settings.pacs is not None and set(study_ids) - set(closed):
            from .pacs.export import resume_given_up

            resume_given_up(self, set(study_ids) - set(closed))
        return closed

    def close_released(self, study_ids: set[str], *, calling_aet: str, held: Callable[[], set[str]] = set,
                       storing: Callable[[], bool] = bool) -> None:
        """The last association sending ``study_ids`` was released: close them after
        ``study_release_grace_s`` seconds (at once when 0), unless meanwhile another association sent one of
        them (an instance after the release) or holds it open (``held()``): its release closes it. While an
        association is still storing its first instance (``storing()``: its study is not known yet) the close
        waits on, at most ``study_quiet_seconds`` after the release. Orthanc opens a new association for each SOP
        class / transfer syntax it did not negotiate; without the grace, a study mixing them was analysed
        partially, then reopened."""
        grace = self.settings.study_release_grace_s
        if grace <= 0:
            self._close_now(set(study_ids), calling_aet)
            return
        released = utcnow()
        patience = timedelta(seconds=max(grace, self.settings.study_quiet_seconds))

        def fire() -> None:
            try:
                if storing() and utcnow() - released < patience:
                    self._arm(max(0.2, grace / 4), fire)  # its first instance may belong to these studies
                    return
                self._close_now(set(study_ids) - held() - self._sent_since(study_ids, released), calling_aet)
            except Exception as exc:  # the quiet-period closer queues them later
                log_failure(log, "closing released studies failed", exc)

        self._arm(grace, fire)

    def _arm(self, delay: float, action: Callable[[], None]) -> None:
        """Run ``action`` in ``delay`` seconds (cancelled by :meth:`stop`)."""
        def run() -> None:
            with self._intake_lock:
                self._release_timers.discard(timer)
            action()

        timer = threading.Timer(delay, run)
        timer.daemon = True
        with self._intake_lock:
            if self._closer_stop.is_set():  # stopping: the study stays receiving (quiet timer at the next start)
                return
            self._release_timers.add(timer)
        timer.start()

    def _sent_since(self, study_ids: set[str], when: Any) -> set[str]:
        """The studies among ``study_ids`` that received an instance after ``when`` (UTC)."""
        with self.db.session() as s:
            rows = s.execute(select(Study.id, Study.last_instance_at).where(Study.id.in_(list(study_ids)))).all()
        return {study_id for study_id, last in rows if last is not None and as_utc(last) > when}

    def _close_now(self, study_ids: set[str], calling_aet: str) -> None:
        if study_ids:
            for study_id in self.close_studies(study_ids):
                self.db.audit(f"dicom:{calling_aet}", "dicom_receive", study_id, "association released")

    def _queue_received(self, study: Study) -> None:
        """Close a received study: choose its task, warn about gaps in its series, queue the next result version."""
        items = [Accepted(name=f.name, data=b"", kind=f.kind, suffix=f.suffix, modality=f.modality or "OT",
                          series_uid=f.series_uid, region=f.region) for f in study.files]
        if not items:
            study.status, study.failure, study.finished_at = "failed", "no usable image received", utcnow()
            return
        task, errors, kept = choose_task(items, None)
        study.task = task
        study.status = "queued"
        study.result_version = (study.result_version or 0) + 1
        kept_ids = {id(k) for k in kept}
        dropped = [f for f, item in zip(study.files, items) if id(item) not in kept_ids]
        for f in dropped:
            study.files.remove(f)
        study.add_errors([e.to_dict() for e in errors])
        study.replace_warnings(GAP_KIND, _gap_warnings(study.files))

    def _after_job(self, study_id: str) -> None:
        """After a successful job: queue the results for the PACS when configured and the study came as DICOM."""
        self.queue_export(study_id)

    def resume_unqueued_exports(self, within: timedelta = UNQUEUED_EXPORT_WINDOW) -> list[str]:
        """Queue for the PACS the studies done within ``within`` whose current result version was never queued:
        the job ends in a worker process and the export is queued after it by the service (:meth:`_after_job`), so
        a service killed in between left the result unsent for good. Their ids (none without a PACS)."""
        if self.settings.pacs is None:
            return []
        with self.db.session() as s:
            ids = list(s.scalars(select(Study.id).where(
                Study.status == "done", Study.finished_at >= utcnow() - within,
                or_(Study.export_state.is_(None), Study.export_state == "sent"),
                func.coalesce(Study.export_version, 0) < func.coalesce(Study.result_version, 1))))
        return [study_id for study_id in ids if self.queue_export(study_id)]

    def queue_export(self, study_id: str) -> bool:
        """(Re-)send a study's results to the PACS as its current version (see :mod:`lesiondx.service.pacs`)."""
        from .pacs import queue_export

        return queue_export(self, study_id)


def _warnings(files: list[Accepted]) -> list[dict[str, str]]:
    """One warning entry per reason, naming the first file (by pseudonym) and how many share it."""
    by_reason: dict[str, list[str]] = {}
    for item in files:
        for reason in getattr(item, "warnings", ()):
            by_reason.setdefault(reason, []).append(item.name)
    return [{"file": names[0] + (f" and {len(names) - 1} more" if len(names) > 1 else ""), "reason": reason}
            for reason, names in by_reason.items()]


def _gap_warnings(files: list[StudyFile]) -> list[dict[str, str]]:
    return series_gap_warnings((f.series_uid, f.instance_number, f.slice_position) for f in files if f.kind == "dicom")


def _modality(files: list[Accepted]) -> str | None:
    kinds = {("OT" if f.kind == "raster" else f.modality) for f in files}
    return "/".join(sorted(kinds)) if kinds else None


__all__ = ["ServiceCore"]
