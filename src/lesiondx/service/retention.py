"""Housekeeping: delete a study, delete studies older than ``LESIONDX_STUDY_RETENTION_DAYS``, and remove what a
hard kill can leave behind in storage (blobs no study refers to, result folders of no study, work folders of finished
studies, half-written ``.tmp-*`` files).

A study is never deleted while it is receiving, queued or running, while its PACS export is pending or still
retrying, or while it is a reader-study case. Blobs are content-addressed and shared between studies: one is
removed only when no study refers to it any more and nobody stored it again during the grace period
(:meth:`~lesiondx.service.storage.Storage.remove_blob`). The audit log keeps its rows (ids and counts only).
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from .db import Database, ReaderCase, Study, StudyFile, utcnow
from .storage import Storage

log = logging.getLogger("lesiondx.service")
GRACE_S = 3600.0  # a blob or folder this recent may belong to an upload or job still in progress
BUSY = ("receiving", "queued", "running")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Cleanup:
    """What one housekeeping pass removed (``bytes_freed`` in bytes) and which old studies it kept, and why."""

    studies: tuple[str, ...] = ()
    blobs: int = 0
    folders: int = 0
    temp_files: int = 0
    bytes_freed: int = 0
    kept: tuple[tuple[str, str], ...] = ()

    def __add__(self, other: "Cleanup") -> "Cleanup":
        return Cleanup(self.studies + other.studies, self.blobs + other.blobs, self.folders + other.folders,
                       self.temp_files + other.temp_files, self.bytes_freed + other.bytes_freed, self.kept + other.kept)

    def summary(self) -> str:
        """One log line: counts only (no ids, no names)."""
        return (f"{len(self.studies)} study(ies), {self.blobs} stored file(s), {self.folders} folder(s), "
                f"{self.temp_files} partial file(s) removed, {self.bytes_freed / 2**20:.1f} MB freed; "
                f"{len(self.kept)} old study(ies) kept")


class StudyBusy(Exception):
    """The study cannot be deleted now (the message says why)."""


def _why_kept(study: Study, in_reader_study: bool) -> str | None:
    if study.status in BUSY:
        return f"it is {study.status}"
    if study.export_state in ("pending", "sending") or (study.export_state == "failed" and study.export_next_at):
        return "its results are still being sent to the PACS"
    if in_reader_study:
        return "it is a reader-study case"
    return None


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def _remove_folder(path: Path) -> int:
    """Remove a folder; its size in bytes (0 when it was not there)."""
    size = _folder_bytes(path)
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    return size


def _delete_rows(db: Database, study_ids: list[str]) -> set[str]:
    """Delete the studies' rows (files and identity mappings with them); the blob hashes they referred to."""
    hashes: set[str] = set()
    with db.session() as s, s.begin():
        for study_id in study_ids:
            study = s.get(Study, study_id)
            if study is not None:
                hashes.update(f.sha256 for f in study.files)
                s.delete(study)
    return hashes


def _remove_unreferenced(db: Database, storage: Storage, hashes: set[str], grace_s: float) -> tuple[int, int]:
    """Remove the blobs among ``hashes`` that no study refers to; (count, bytes)."""
    if not hashes:
        return 0, 0
    ordered, used = sorted(hashes), set()
    with db.session() as s:
        for start in range(0, len(ordered), 500):  # old SQLite builds allow 999 variables per statement
            chunk = ordered[start:start + 500]
            used.update(s.scalars(select(StudyFile.sha256).where(StudyFile.sha256.in_(chunk))))
    count = size = 0
    for sha in sorted(set(ordered) - used):
        freed = storage.remove_blob(sha, grace_s)
        if freed is not None:
            count, size = count + 1, size + freed
    return count, size


def delete_studies(db: Database, storage: Storage, study_ids: list[str], *, grace_s: float = GRACE_S) -> Cleanup:
    """Delete finished studies with their files, results and (unshared) blobs; busy ones are kept (see module)."""
    with db.session() as s:
        studies = [st for st in (s.get(Study, i) for i in study_ids) if st is not None]
        cases = set(s.scalars(select(ReaderCase.study_id).where(ReaderCase.study_id.in_([st.id for st in studies]))))
        kept = tuple((st.id, why) for st in studies if (why := _why_kept(st, st.id in cases)))
    doomed = [st.id for st in studies if st.id not in dict(kept)]
    hashes = _delete_rows(db, doomed)
    folders = freed = 0
    for study_id in doomed:
        for where in ("results", "work"):
            path = storage.root / where / study_id
            if path.is_dir():
                folders, freed = folders + 1, freed + _remove_folder(path)
    blobs, blob_bytes = _remove_unreferenced(db, storage, hashes, grace_s)
    return Cleanup(tuple(doomed), blobs, folders, 0, freed + blob_bytes, kept)


def delete_study(db: Database, storage: Storage, study_id: str) -> Cleanup:
    """Delete one study now; :class:`StudyBusy` when it cannot be (``KeyError`` when unknown)."""
    with db.session() as s:
        if s.get(Study, study_id) is None:
            raise KeyError(study_id)
    done = delete_studies(db, storage, [study_id], grace_s=0.0)
    if done.kept:
        raise StudyBusy(f"study {study_id} is not deleted: {done.kept[0][1]}")
    return done


def purge_old_studies(db: Database, storage: Storage, retention_days: float, *, now: datetime | None = None,
                      grace_s: float = GRACE_S) -> Cleanup:
    """Delete the finished studies created more than ``retention_days`` days ago (0 or less: none)."""
    if retention_days <= 0:
        return Cleanup()
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    with db.session() as s:
        old = list(s.scalars(select(Study.id).where(Study.created_at < cutoff)))
    return delete_studies(db, storage, old, grace_s=grace_s)


def sweep_orphans(db: Database, storage: Storage, *, grace_s: float = GRACE_S) -> Cleanup:
    """Remove what no study accounts for (a kill mid-upload or mid-job leaves these): blobs no study refers to,
    result folders of no study, work folders of finished studies, ``.tmp-*`` files; all older than ``grace_s``."""
    old = time.time() - grace_s
    with db.session() as s:
        studies = dict(s.execute(select(Study.id, Study.status)).all())
    folders = freed = temp = 0
    for where in ("results", "work"):
        for path in (storage.root / where).iterdir():
            status = studies.get(path.name)  # a queued study's work folder is left: a worker may claim it now
            orphan = status is None or (where == "work" and status in ("done", "failed"))
            if path.name.startswith(".run-"):  # a run's staging folder (Storage.stage_results): kept while it runs
                orphan = studies.get(path.name[5:].rpartition("-")[0]) != "running"
            if orphan and path.is_dir() and path.stat().st_mtime < old:
                folders, freed = folders + 1, freed + _remove_folder(path)
    blobs = blob_bytes = 0
    for bucket in (storage.root / "blobs").iterdir():
        if not bucket.is_dir():
            continue
        for path in bucket.iterdir():
            if path.name.startswith(".del-"):  # killed while removing a blob: put it back, decide again below
                target = bucket / path.name[5:]
                if target.exists():
                    path.unlink(missing_ok=True)
                else:
                    path.replace(target)
            elif path.name.startswith(".tmp-") and path.stat().st_mtime < old:
                size = path.stat().st_size
                path.unlink(missing_ok=True)
                temp, freed = temp + 1, freed + size
        names = {p.name for p in bucket.iterdir() if _HEX64.match(p.name)}
        if names:
            n, size = _remove_unreferenced(db, storage, names, grace_s)
            blobs, blob_bytes = blobs + n, blob_bytes + size
    return Cleanup((), blobs, folders, temp, freed + blob_bytes, ())


def housekeeping(db: Database, storage: Storage, retention_days: float) -> Cleanup:
    """One pass: old studies (when a retention is set), then orphans; logs one line when it removed anything."""
    done = purge_old_studies(db, storage, retention_days) + sweep_orphans(db, storage)
    if done.studies or done.blobs or done.folders or done.temp_files:
        log.info("housekeeping: %s", done.summary())
    return done


__all__ = ["Cleanup", "GRACE_S", "StudyBusy", "delete_studies", "delete_study", "housekeeping", "purge_old_studies",
           "sweep_orphans"]
