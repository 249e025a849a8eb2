"""The service's shared state (settings, database, storage, salt, worker) and study submission.

Both the REST API and the DICOM node create studies through :meth:`ServiceCore.submit` /
:meth:`ServiceCore.add_dicom_instance`, so routing, de-identification and storage are the same
whichever way images arrive.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from .db import Database, Study, StudyFile, utcnow
from .ingest import Accepted, FileError, Triage, choose_task
from .settings import Settings, load_salt
from .storage import Storage, safe_name
from .supervisor import make_worker
from .worker import Predictor, load_predictor

log = logging.getLogger("lesiondx.service")


class ServiceCore:
    """Everything one running service needs; :meth:`start` / :meth:`stop` the background parts."""

    def __init__(self, settings: Settings, predictor: Predictor | None = None) -> None:
        settings.check_safe()
        self.settings = settings
        self.storage = Storage(settings.storage)
        self.salt = load_salt(settings.storage)
        self.db = Database(settings.database_url)
        self.predictor = predictor or load_predictor(settings.predictor_spec)
        self.worker = make_worker(settings, self.db, self.storage, predictor, on_done=self._after_job)
        self.dicom_node: Any = None
        self._started = False

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, *, dicom: bool = True) -> None:
        """Close DICOM studies left open, start the worker and (if configured) the DICOM node."""
        if self._started:
            return
        self._started = True
        self.close_quiet_studies(force=True)
        self.worker.start()
        if dicom and self.settings.dicom_port is not None:
            from .dicom_node import DicomNode

            self.dicom_node = DicomNode(self)
            self.dicom_node.start()

    def stop(self) -> None:
        """Stop the DICOM node and the worker (a running job finishes or is re-queued next start)."""
        if self.dicom_node is not None:
            self.dicom_node.stop()
            self.dicom_node = None
        self.worker.stop()
        self.db.dispose()
        self._started = False

    # -- submission ----------------------------------------------------------------------------
    def submit(self, triage: Triage, *, requested_task: str | None, uploader: str, source: str = "upload",
               options: dict[str, Any] | None = None) -> Study:
        """Create a study from triaged files (stored by hash) and queue it.

        The study is created even when nothing was accepted mixed with errors: it is then
        ``failed`` with every per-file reason, so the user sees why.
        """
        task, routing_errors, files = choose_task(triage.accepted, requested_task)
        errors = [e.to_dict() for e in triage.errors + routing_errors]
        with self.db.session() as s, s.begin():
            study = Study(task=task, task_requested=bool(requested_task), source=source, uploader=uploader[:64],
                          modality=_modality(files), study_uid=files[0].study_uid if files else None,
                          options_json=json.dumps(options or {}))
            study.add_errors(errors)
            for position, item in enumerate(files):
                study.files.append(self._file_row(item, position))
            if not files:
                study.status = "failed"
                study.failure = "no usable image in this upload" + ("" if errors else " (no files)")
                study.finished_at = utcnow()
            s.add(study)
        self.worker.wake()
        return study

    def _file_row(self, item: Accepted, position: int) -> StudyFile:
        sha = self.storage.put(item.data)
        return StudyFile(position=position, sha256=sha, name=safe_name(item.name)[:255], kind=item.kind,
                         suffix=item.suffix, modality=item.modality, series_uid=item.series_uid, region=item.region,
                         size=len(item.data))

    def add_dicom_instance(self, item: Accepted | FileError, *, calling_aet: str) -> str | None:
        """File one received instance into the open ``receiving`` study with its StudyInstanceUID."""
        with self.db.session() as s, s.begin():
            if isinstance(item, FileError):
                study = s.scalars(select(Study).where(Study.status == "receiving", Study.calling_aet == calling_aet[:16])
                                  .order_by(Study.created_at.desc()).limit(1)).first()
                if study is not None:
                    study.add_errors([item.to_dict()])
                return study.id if study else None
            study = s.scalars(select(Study).where(Study.status == "receiving", Study.study_uid == item.study_uid)).first()
            if study is None:
                study = Study(status="receiving", source="dicom", uploader=f"dicom:{calling_aet}"[:64],
                              calling_aet=calling_aet[:16], study_uid=item.study_uid, modality=item.modality)
                s.add(study)
                s.flush()
            count = s.scalar(select(func.count()).select_from(StudyFile).where(StudyFile.study_id == study.id)) or 0
            row = self._file_row(item, int(count))
            row.study_id = study.id
            s.add(row)
            study.last_instance_at = utcnow()
            return study.id

    def close_quiet_studies(self, *, force: bool = False) -> list[str]:
        """Queue ``receiving`` studies quiet for ``study_quiet_seconds`` (all of them with ``force``)."""
        closed: list[str] = []
        cutoff = utcnow() - timedelta(seconds=self.settings.study_quiet_seconds)
        with self.db.session() as s, s.begin():
            for study in s.scalars(select(Study).where(Study.status == "receiving")):
                last = study.last_instance_at
                if last is not None and last.tzinfo is None:
                    last = last.replace(tzinfo=cutoff.tzinfo)
                if force or last is None or last < cutoff:
                    self._queue_received(study)
                    closed.append(study.id)
        if closed:
            self.worker.wake()
        return closed

    def close_studies(self, study_ids: set[str]) -> list[str]:
        """Queue the given ``receiving`` studies now (their association was released)."""
        closed: list[str] = []
        with self.db.session() as s, s.begin():
            for study in s.scalars(select(Study).where(Study.status == "receiving", Study.id.in_(list(study_ids)))):
                self._queue_received(study)
                closed.append(study.id)
        if closed:
            self.worker.wake()
        return closed

    def _queue_received(self, study: Study) -> None:
        items = [Accepted(name=f.name, data=b"", kind=f.kind, suffix=f.suffix, modality=f.modality or "OT",
                          series_uid=f.series_uid, region=f.region) for f in study.files]
        if not items:
            study.status, study.failure, study.finished_at = "failed", "no usable image received", utcnow()
            return
        task, errors, kept = choose_task(items, None)
        study.task = task
        study.status = "queued"
        kept_ids = {id(k) for k in kept}
        dropped = [f for f, item in zip(study.files, items) if id(item) not in kept_ids]
        for f in dropped:
            study.files.remove(f)
        study.add_errors([e.to_dict() for e in errors])

    def _after_job(self, study_id: str) -> None:
        """After a successful job: send results to the PACS when configured and the study came as DICOM."""
        if self.settings.pacs is None:
            return
        from .dicom_out import export_study

        export_study(self, study_id)


def _modality(files: list[Accepted]) -> str | None:
    kinds = {("OT" if f.kind == "raster" else f.modality) for f in files}
    return "/".join(sorted(kinds)) if kinds else None


__all__ = ["ServiceCore"]
