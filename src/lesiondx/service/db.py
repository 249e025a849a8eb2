"""Database: studies (which are also the job queue), their files, audit log, reader study.

SQLite (a file in storage, WAL mode) is the embedded default; any SQLAlchemy URL works, e.g.
``postgresql+psycopg://user@host/lesiondx``. JSON is stored as text so every backend behaves alike.

Job states of a :class:`Study`: ``receiving`` (DICOM node still collecting instances) →
``queued`` → ``running`` → ``done`` | ``failed``. A worker claims a study with
``SELECT ... FOR UPDATE SKIP LOCKED`` (PostgreSQL) or a conditional ``UPDATE ... WHERE status = 'queued'``
(SQLite), so two workers never run the same job. A claim is a lease: ``claimed_by`` names the worker and
``heartbeat_at`` is renewed while it lives; :meth:`Database.release_interrupted` puts a study whose worker
stopped heartbeating (or died on this host) back in the queue *without* charging it an attempt.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import (Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint, case,
                        create_engine, event, func, select, text, update)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

from lesiondx import __version__

from .settings import SettingsError
from .upgrade import SchemaTooNew, record_version, refuse_newer

STATUSES = ("receiving", "queued", "running", "done", "failed")
SQLITE_BUSY_S = 30.0  # seconds a SQLite statement waits for another connection's write lock before giving up
MAX_INTERRUPTIONS = 10  # a job whose worker vanished this often is given up (a poison pill killing workers)


def utcnow() -> datetime:
    """Timezone-aware UTC now (stored naive-UTC by SQLite, aware by PostgreSQL)."""
    return datetime.now(timezone.utc)


def new_id() -> str:
    """A random 32-hex-digit identifier (no information about the patient)."""
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    """Declarative base of all tables."""


class Study(Base):
    """One submitted study: a batch of uploaded files or the instances of one DICOM study."""

    __tablename__ = "studies"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    # place in the queue: one more than the highest so far, whatever the wall clock says (a clock set back an hour
    # would put new studies ahead of older ones by created_at); ties (concurrent inserts) go by created_at
    queue_seq: Mapped[int] = mapped_column(Integer, index=True, server_default="0",
                                           default=text("(SELECT coalesce(max(queue_seq), 0) + 1 FROM studies)"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    task: Mapped[str | None] = mapped_column(String(32), nullable=True)
    task_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(16), default="upload")
    uploader: Mapped[str] = mapped_column(String(64), default="anonymous")
    modality: Mapped[str | None] = mapped_column(String(16), nullable=True)
    study_uid: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    calling_aet: Mapped[str | None] = mapped_column(String(16), nullable=True)
    results_json: Mapped[str] = mapped_column(Text, default="[]")
    raw_json: Mapped[str] = mapped_column(Text, default="{}")
    errors_json: Mapped[str] = mapped_column(Text, default="[]")
    failure: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # runs charged to the job (interruptions refunded)
    interruptions: Mapped[int] = mapped_column(Integer, default=0)  # runs lost because the worker/service stopped
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)  # worker id holding the lease
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_instance_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    export_status: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: see service/pacs/export.py
    export_state: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)  # pending|sending|sent|failed
    export_next_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    export_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    export_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # result version sent to the PACS (1, 2, ...)
    options_json: Mapped[str] = mapped_column(Text, default="{}")  # task options given at upload (e.g. window)
    # study integrity (DICOM): copies of an instance (same SOP Instance UID) dropped, times reopened by late
    # instances (also the generation a running job must still match to store its result), version of the
    # result (+1 each time the study is closed and queued), warnings such as gaps in a series
    duplicates_dropped: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reopened: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    result_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    warnings_json: Mapped[str | None] = mapped_column(Text, nullable=True, default="[]")  # [{"file", "reason"}]
    files: Mapped[list["StudyFile"]] = relationship(back_populates="study", order_by="StudyFile.position",
                                                    cascade="all, delete-orphan")

    @property
    def results(self) -> list[dict[str, Any]]:
        return json.loads(self.results_json or "[]")

    @property
    def options(self) -> dict[str, Any]:
        return json.loads(self.options_json or "{}")

    @property
    def errors(self) -> list[dict[str, Any]]:
        return json.loads(self.errors_json or "[]")

    def add_errors(self, errors: list[dict[str, Any]]) -> None:
        """Append per-file errors (``{"file", "reason"}``)."""
        self.errors_json = json.dumps(self.errors + list(errors))

    @property
    def warnings(self) -> list[dict[str, Any]]:
        return json.loads(self.warnings_json or "[]")

    def add_warnings(self, warnings: list[dict[str, Any]]) -> None:
        """Append warnings (``{"file", "reason"}``), one per reason: a reason already listed is not repeated."""
        present = self.warnings
        known = {w.get("reason") for w in present}
        fresh = []
        for warning in warnings:
            if warning.get("reason") not in known:
                known.add(warning.get("reason"))
                fresh.append(warning)
        if fresh:
            self.warnings_json = json.dumps(present + fresh)

    def replace_warnings(self, kind: str, warnings: list[dict[str, Any]]) -> None:
        """Replace the warnings of one ``kind`` (e.g. ``series_gap``), keeping the others."""
        kept = [w for w in self.warnings if w.get("kind") != kind]
        self.warnings_json = json.dumps(kept + list(warnings))


class StudyFile(Base):
    """One accepted file of a study, stored by content hash (de-identified first if DICOM)."""

    __tablename__ = "study_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))  # "dicom" | "raster"
    suffix: Mapped[str] = mapped_column(String(16), default="")
    modality: Mapped[str | None] = mapped_column(String(16), nullable=True)
    series_uid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    region: Mapped[str | None] = mapped_column(String(16), nullable=True)  # CT: "chest" | "abdomen"
    size: Mapped[int] = mapped_column(Integer, default=0)
    sop_uid: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)  # pseudonymous (remapped)
    instance_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    slice_position: Mapped[float | None] = mapped_column(Float, nullable=True)  # mm along the slice normal
    study: Mapped[Study] = relationship(back_populates="files")
    identity: Mapped["IdentityRecord | None"] = relationship(back_populates="file", cascade="all, delete-orphan",
                                                             uselist=False)


class IdentityRecord(Base):
    """The original identifiers of one stored DICOM instance, sealed (see :mod:`lesiondx.service.identity`).

    Needed only to file results under the original study in the PACS. Never returned by the API or
    logged; deleted with its file / study, and after ``LESIONDX_RETENTION_DAYS``.
    """

    __tablename__ = "identity_map"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("study_files.id", ondelete="CASCADE"), index=True, unique=True)
    study_key: Mapped[str] = mapped_column(String(64), index=True)  # keyed hash of the original StudyInstanceUID
    pseudo_sop_uid: Mapped[str] = mapped_column(String(64), index=True)  # the SOPInstanceUID of the stored file
    sealed: Mapped[str] = mapped_column(Text)  # encrypted JSON of the original identifiers
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    file: Mapped[StudyFile] = relationship(back_populates="identity")


class AuditEvent(Base):
    """Who did what to which study. Holds ids, actions and counts only: never PHI or file names."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    client: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    study_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    detail: Mapped[str | None] = mapped_column(String(255), nullable=True)


class ReaderCase(Base):
    """A case of the reader study: a finished study plus the reference answer (never shown to readers)."""

    __tablename__ = "reader_cases"

    case_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id"))
    truth: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer, default=0)


class ReaderRead(Base):
    """One reading of a case by a reader in one mode; ``seconds`` measured by the server."""

    __tablename__ = "reader_reads"
    __table_args__ = (UniqueConstraint("reader", "case_id", "with_ai", name="uq_reader_case_mode"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reader: Mapped[str] = mapped_column(String(64), index=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("reader_cases.case_id"))
    with_ai: Mapped[bool] = mapped_column(Boolean)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    answer: Mapped[str | None] = mapped_column(String(64), nullable=True)
    confidence: Mapped[int | None] = mapped_column(Integer, nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)


# Columns added after the first release, with the SQL default that fills existing rows.
ADDED_COLUMNS = {"studies": {"options_json": "TEXT DEFAULT '{}'", "warnings_json": "TEXT DEFAULT '[]'",
                             "export_state": "VARCHAR(16)",
                             "export_next_at": "TIMESTAMP", "export_attempts": "INTEGER DEFAULT 0",
                             "export_version": "INTEGER DEFAULT 0", "duplicates_dropped": "INTEGER DEFAULT 0",
                             "reopened": "INTEGER DEFAULT 0", "result_version": "INTEGER DEFAULT 0",
                             "interruptions": "INTEGER DEFAULT 0", "claimed_by": "VARCHAR(64)",
                             "heartbeat_at": "TIMESTAMP WITH TIME ZONE", "queue_seq": "INTEGER DEFAULT 0"},
                 "study_files": {"sop_uid": "VARCHAR(64)", "instance_number": "INTEGER",
                                 "slice_position": "FLOAT"}}


def _add_missing_columns(engine: Engine) -> None:
    """Additive schema upgrade: a database made by an older lesiondx gets the newer columns (nothing is dropped)."""
    from sqlalchemy import inspect

    inspector = inspect(engine)
    for table, columns in ADDED_COLUMNS.items():
        present = {c["name"] for c in inspector.get_columns(table)}
        for name, ddl in columns.items():
            if name not in present:
                with engine.begin() as conn:
                    conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}"))


class DatabaseUnusable(SettingsError):
    """The database cannot be used at start (locked by another process, damaged, read-only, unreachable): one line
    saying which database and what to do, instead of a traceback (or a start-up that fails 30 s later)."""


_UNUSABLE_HINTS = (
    ("locked", "another process holds it (a second lesiondx on the same storage, a backup, an sqlite3 shell?)"),
    ("not a database", "the file is damaged or not a database: restore it from a backup, or move it aside"),
    ("malformed", "the file is damaged: restore it from a backup, or move it aside"),
    ("readonly", "it is read-only: check the owner and mode of the file and its folder"),
    ("unable to open", "check that its folder exists and that the service may write there"),
    ("full", "no space left: free space there"),
)


def unusable_reason(url: str, exc: BaseException) -> str:
    """``cannot use the database WHERE (error): hint`` (WHERE: the SQLite file, or the URL without its password)."""
    parsed = make_url(url)
    where = parsed.database if parsed.get_backend_name() == "sqlite" else parsed.render_as_string(hide_password=True)
    text = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
    hint = next((h for marker, h in _UNUSABLE_HINTS if marker in text.lower()), "check that it runs and is reachable")
    return f"cannot use the database {where} ({text}): {hint}"


class Database:
    """Engine + session factory for one URL; creates the tables on first use (:class:`DatabaseUnusable` when it
    cannot: a SQLite file must also take a write now, so a lock held elsewhere is told at start)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = _make_engine(url)
        try:
            refuse_newer(self.engine)  # a downgrade: refused before anything is written (upgrade.py)
            Base.metadata.create_all(self.engine)
            _add_missing_columns(self.engine)
            record_version(self.engine, __version__)
            if self.engine.dialect.name == "sqlite":
                with self.engine.connect() as conn:  # waits the busy timeout (30 s) for another writer's lock
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                    conn.exec_driver_sql("ROLLBACK")
        except SchemaTooNew:
            self.engine.dispose()
            raise
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise DatabaseUnusable(unusable_reason(url, exc)) from None
        self.session = sessionmaker(self.engine, expire_on_commit=False)

    def dispose(self) -> None:
        """Close all pooled connections."""
        self.engine.dispose()

    def audit(self, actor: str, action: str, study_id: str | None = None, detail: str | None = None,
              client: str | None = None) -> None:
        """Append one audit event in its own transaction."""
        with self.session() as s, s.begin():
            s.add(AuditEvent(actor=actor[:64], action=action[:32], study_id=study_id,
                             detail=(detail or None) and detail[:255], client=client and client[:64]))

    # -- the job queue: claims are leases ---------------------------------------------------------
    def claim_next(self, worker_id: str | None = None) -> str | None:
        """Atomically move the first queued study (lowest ``queue_seq``) to ``running`` under ``worker_id``'s lease;
        its id or None."""
        now = utcnow()
        values = {"status": "running", "started_at": now, "heartbeat_at": now, "claimed_by": worker_id,
                  "attempts": Study.attempts + 1}
        oldest = select(Study.id).where(Study.status == "queued").order_by(Study.queue_seq, Study.created_at)
        if self.engine.dialect.name == "postgresql":  # row lock: concurrent workers skip each other's pick
            with self.session() as s, s.begin():
                study_id = s.scalar(oldest.limit(1).with_for_update(skip_locked=True))
                if study_id is not None:
                    s.execute(update(Study).where(Study.id == study_id).values(**values))
                return study_id
        with self.session() as s:  # SQLite: one writer at a time; the conditional UPDATE decides
            candidates = s.scalars(oldest.limit(5)).all()
        for study_id in candidates:
            with self.session() as s, s.begin():
                result = s.execute(update(Study).where(Study.id == study_id, Study.status == "queued")
                                   .values(**values))
            if result.rowcount:
                return study_id
        return None

    def heartbeat(self, owner: str) -> int:
        """Renew the leases of every running study claimed by a worker of ``owner`` (id prefix); how many."""
        with self.session() as s, s.begin():
            result = s.execute(update(Study).where(Study.status == "running",
                                                   Study.claimed_by.startswith(f"{owner}:", autoescape=True))
                               .values(heartbeat_at=utcnow()))
            return int(result.rowcount or 0)

    def claimed_by(self, worker_id: str) -> list[str]:
        """Ids of the running studies held by ``worker_id``."""
        with self.session() as s:
            return list(s.scalars(select(Study.id).where(Study.status == "running", Study.claimed_by == worker_id)))

    def fail_claimed(self, study_id: str, worker_id: str, reason: str) -> bool:
        """The job's own failure seen from outside its process (time/memory limit, crash): ``failed`` with
        ``reason``; only while ``worker_id`` still holds the claim. True if it was marked."""
        with self.session() as s, s.begin():
            result = s.execute(update(Study).where(Study.id == study_id, Study.status == "running",
                                                   Study.claimed_by == worker_id)
                               .values(status="failed", failure=reason[:2000], finished_at=utcnow(),
                                       claimed_by=None))
            return bool(result.rowcount)

    def interrupt(self, study_id: str, worker_id: str | None) -> str | None:
        """The run was lost for reasons outside the job (worker killed, service restarted, lease expired):
        back to ``queued`` with the attempt refunded, or ``failed`` after :data:`MAX_INTERRUPTIONS`.
        Only while ``worker_id`` still holds the claim (conditional UPDATEs: two sweepers never both count
        it); returns the new status or None."""
        holder = Study.claimed_by.is_(None) if worker_id is None else Study.claimed_by == worker_id
        with self.session() as s, s.begin():
            result = s.execute(update(Study).where(Study.id == study_id, Study.status == "running", holder)
                               .values(status="queued", claimed_by=None, heartbeat_at=None,
                                       interruptions=func.coalesce(Study.interruptions, 0) + 1,
                                       attempts=case((Study.attempts > 0, Study.attempts - 1), else_=0)))
            if not result.rowcount:
                return None
            given_up = s.execute(update(Study).where(Study.id == study_id, Study.status == "queued",
                                                     Study.interruptions >= MAX_INTERRUPTIONS)
                                 .values(status="failed", finished_at=utcnow(),
                                         failure=f"gave up after {MAX_INTERRUPTIONS} interruptions (its worker "
                                                 "stopped during each run; see the service log)"))
            return "failed" if given_up.rowcount else "queued"

    def release_interrupted(self, lease_seconds: float, dead: Callable[[str], bool] = lambda claim: False
                            ) -> list[str]:
        """Re-queue running studies whose lease expired (no heartbeat for ``lease_seconds``; also a heartbeat over
        ``lease_seconds`` in the future: written before the clock was set back, it says nothing of now) or whose
        claim ``dead(claimed_by)`` says belongs to a worker known to be gone. Returns their ids."""
        now, lease = utcnow(), timedelta(seconds=lease_seconds)
        with self.session() as s:
            rows = s.execute(select(Study.id, Study.claimed_by, Study.heartbeat_at)
                             .where(Study.status == "running")).all()
        stale = [(study_id, claim) for study_id, claim, beat in rows
                 if beat is None or abs(now - as_utc(beat)) > lease or (claim is not None and dead(claim))]
        return [study_id for study_id, claim in stale if self.interrupt(study_id, claim) is not None]


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes (stored as UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_S})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:  # pragma: no cover - trivial
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def get_study(session: Session, study_id: str) -> Study | None:
    """A study by id (None when unknown or malformed)."""
    if not study_id or len(study_id) > 32:
        return None
    return session.get(Study, study_id)
