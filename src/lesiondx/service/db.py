"""Database: studies (which are also the job queue), their files, audit log, reader study.

SQLite (a file in storage, WAL mode) is the embedded default; any SQLAlchemy URL works, e.g.
``postgresql+psycopg://user@host/lesiondx``. JSON is stored as text so every backend behaves alike.

Job states of a :class:`Study`: ``receiving`` (DICOM node still collecting instances) →
``queued`` → ``running`` → ``done`` | ``failed``. A worker claims a study with a conditional
``UPDATE ... WHERE status = 'queued'`` so two workers never run the same job; at start,
:func:`recover_jobs` puts studies left ``running`` (the service died mid-job) back in the queue.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint,
                        create_engine, event, select, update)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

STATUSES = ("receiving", "queued", "running", "done", "failed")


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
    attempts: Mapped[int] = mapped_column(Integer, default=0)
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
                             "reopened": "INTEGER DEFAULT 0", "result_version": "INTEGER DEFAULT 0"},
                 "study_files": {"sop_uid": "VARCHAR(64)", "instance_number": "INTEGER",
                                 "slice_position": "FLOAT"}}


def _add_missing_columns(engine: Engine) -> None:
    """Additive schema upgrade: a database made by an older lesiondx gets the newer columns (nothing is dropped)."""
    from sqlalchemy import inspect, text

    inspector = inspect(engine)
    for table, columns in ADDED_COLUMNS.items():
        present = {c["name"] for c in inspector.get_columns(table)}
        for name, ddl in columns.items():
            if name not in present:
                with engine.begin() as conn:
                    conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}"))


class Database:
    """Engine + session factory for one URL; creates the tables on first use."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = _make_engine(url)
        Base.metadata.create_all(self.engine)
        _add_missing_columns(self.engine)
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

    def recover_jobs(self) -> int:
        """Re-queue studies left ``running`` by a dead process; returns how many."""
        with self.session() as s, s.begin():
            result = s.execute(update(Study).where(Study.status == "running").values(status="queued"))
            return int(result.rowcount or 0)

    def claim_next(self) -> str | None:
        """Atomically move the oldest queued study to ``running``; its id, or None if the queue is empty."""
        with self.session() as s:
            candidates = s.scalars(select(Study.id).where(Study.status == "queued")
                                   .order_by(Study.created_at).limit(5)).all()
        for study_id in candidates:
            with self.session() as s, s.begin():
                result = s.execute(update(Study).where(Study.id == study_id, Study.status == "queued")
                                   .values(status="running", started_at=utcnow(), attempts=Study.attempts + 1))
            if result.rowcount:
                return study_id
        return None


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

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
