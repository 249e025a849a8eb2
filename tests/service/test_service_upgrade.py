"""Upgrading in place: a database written by the release of 2026-12-04 (its schema below, as that release's
``create_all`` left it) opens with this release, keeps every study, result, reader answer and audit entry, and its
interrupted jobs run again; a database a newer release has used is refused in one line, unchanged (a downgrade).
The old database is built here from the old schema's facts, not from git."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, select, text

from lesiondx.service.db import AuditEvent, Database, ReaderRead, Study
from lesiondx.service.upgrade import SCHEMA_TABLE, SCHEMA_VERSION, SchemaTooNew, recorded_version

# The tables of the 2026-12-04 release (``sqlite3 lesiondx.sqlite3 .schema`` of a storage it ran on), trimmed to the
# columns and constraints this test fills; its studies had no job-lease columns (claimed_by, heartbeat_at,
# interruptions) and its work folders were work/<study>/ without run-* below.
SCHEMA_2026_12_04 = """
CREATE TABLE studies (id VARCHAR(32) NOT NULL, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL,
  status VARCHAR(16) NOT NULL, task VARCHAR(32), task_requested BOOLEAN NOT NULL, source VARCHAR(16) NOT NULL,
  uploader VARCHAR(64) NOT NULL, modality VARCHAR(16), study_uid VARCHAR(64), calling_aet VARCHAR(16),
  results_json TEXT NOT NULL, raw_json TEXT NOT NULL, errors_json TEXT NOT NULL, failure TEXT, attempts INTEGER NOT NULL,
  started_at DATETIME, finished_at DATETIME, last_instance_at DATETIME, export_status TEXT, export_state VARCHAR(16),
  export_next_at DATETIME, export_attempts INTEGER DEFAULT '0' NOT NULL, export_version INTEGER DEFAULT '0' NOT NULL,
  options_json TEXT NOT NULL, duplicates_dropped INTEGER DEFAULT '0' NOT NULL, reopened INTEGER DEFAULT '0' NOT NULL,
  result_version INTEGER DEFAULT '0' NOT NULL, warnings_json TEXT, PRIMARY KEY (id));
CREATE TABLE audit_log (id INTEGER NOT NULL, at DATETIME NOT NULL, actor VARCHAR(64) NOT NULL, client VARCHAR(64),
  action VARCHAR(32) NOT NULL, study_id VARCHAR(32), detail VARCHAR(255), PRIMARY KEY (id));
CREATE TABLE reader_cases (case_id VARCHAR(64) NOT NULL, study_id VARCHAR(32) NOT NULL, truth VARCHAR(64) NOT NULL,
  position INTEGER NOT NULL, PRIMARY KEY (case_id), FOREIGN KEY(study_id) REFERENCES studies (id));
CREATE TABLE reader_reads (id INTEGER NOT NULL, reader VARCHAR(64) NOT NULL, case_id VARCHAR(64) NOT NULL,
  with_ai BOOLEAN NOT NULL, started_at DATETIME NOT NULL, answered_at DATETIME, answer VARCHAR(64), confidence INTEGER,
  seconds FLOAT, PRIMARY KEY (id), CONSTRAINT uq_reader_case_mode UNIQUE (reader, case_id, with_ai),
  FOREIGN KEY(case_id) REFERENCES reader_cases (case_id));
"""
T0 = "2026-12-04 10:00:00.000000"
DONE, RUNNING, QUEUED = "d" * 32, "r" * 32, "q" * 32
RESULTS = '[{"file": "file-001", "probability": 0.81, "label": "malignant", "overlay": "00000_file-001_us_liver.png"}]'


def study_row(study_id: str, status: str, minute: int, attempts: int, results: str = "[]") -> tuple:
    created = T0.replace("10:00", f"10:{minute:02d}")
    return (study_id, created, created, status, "us-liver", 1, "upload", "alice", "US", results, "{}", "[]",
            attempts, created if status != "queued" else None, created if status == "done" else None, "{}",
            1 if status == "done" else 0)


def old_database(path: Path) -> str:
    """A SYNTHETIC database in the 2026-12-04 layout: a done study with a result, a reader answer and an audit entry,
    one study left running and one queued when that release was stopped."""
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA_2026_12_04)
    conn.executemany("INSERT INTO studies (id, created_at, updated_at, status, task, task_requested, source, uploader, "
                     "modality, results_json, raw_json, errors_json, attempts, started_at, finished_at, options_json, "
                     "result_version) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                     [study_row(DONE, "done", 0, 1, RESULTS), study_row(RUNNING, "running", 1, 1),
                      study_row(QUEUED, "queued", 2, 0)])
    conn.execute("INSERT INTO audit_log (id, at, actor, action, study_id) VALUES (1, ?, 'alice', 'upload', ?)", (T0, DONE))
    conn.execute("INSERT INTO reader_cases VALUES ('c1', ?, 'malignant', 0)", (DONE,))
    conn.execute("INSERT INTO reader_reads VALUES (1, 'r1', 'c1', 0, ?, ?, 'benign', 3, 12.5)", (T0, T0))
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def test_a_database_of_the_2026_12_04_release_opens_keeps_its_data_and_reruns_its_interrupted_jobs(tmp_path):
    db = Database(old_database(tmp_path / "lesiondx.sqlite3"))
    columns = {c["name"] for c in inspect(db.engine).get_columns("studies")}
    assert {"claimed_by", "heartbeat_at", "interruptions"} <= columns
    assert recorded_version(db.engine) == SCHEMA_VERSION
    with db.session() as s:
        done = s.get(Study, DONE)
        assert (done.status, done.result_version, done.results_json) == ("done", 1, RESULTS)
        assert s.scalars(select(AuditEvent.action).where(AuditEvent.study_id == DONE)).all() == ["upload"]
        read = s.scalars(select(ReaderRead)).one()
        assert (read.reader, read.case_id, read.answer, read.confidence, read.seconds) == ("r1", "c1", "benign", 3, 12.5)
    # the job the old release was running when stopped: no lease (it had none), so re-queued uncharged
    assert db.release_interrupted(30) == [RUNNING]
    with db.session() as s:
        assert (s.get(Study, RUNNING).status, s.get(Study, RUNNING).attempts) == ("queued", 0)
    assert db.claim_next("host:1:abcdef:w0.1") == RUNNING  # oldest first: both old jobs run again
    assert db.claim_next("host:1:abcdef:w0.1") == QUEUED
    db.dispose()
    Database(f"sqlite:///{tmp_path / 'lesiondx.sqlite3'}").dispose()  # a second start changes nothing


def test_a_database_a_newer_release_used_is_refused_in_one_line_and_left_unchanged(tmp_path):
    """Was: an older lesiondx started on a newer release's database ran its jobs, exports and clean-up on states it
    does not know. Releases from this one on record their schema version and refuse a higher one (a downgrade)."""
    path = tmp_path / "store" / "lesiondx.sqlite3"
    path.parent.mkdir()
    url = old_database(path)
    with sqlite3.connect(path) as conn:  # as a future release with schema SCHEMA_VERSION + 1 would leave it
        conn.execute(f"CREATE TABLE {SCHEMA_TABLE} (id INTEGER PRIMARY KEY, version INTEGER NOT NULL, "
                     "written_by VARCHAR(64) NOT NULL)")
        conn.execute(f"INSERT INTO {SCHEMA_TABLE} VALUES (1, ?, '9.9.9')", (SCHEMA_VERSION + 1,))
    with pytest.raises(SchemaTooNew, match=rf"^the database {path} was last used by a newer lesiondx \(schema version "
                                           rf"{SCHEMA_VERSION + 1}; this release knows up to {SCHEMA_VERSION}\): "
                                           "a downgrade is not supported, nothing was changed"):
        Database(url)
    with sqlite3.connect(path) as conn:  # nothing written: no column added, the newer version kept
        assert "claimed_by" not in {row[1] for row in conn.execute("PRAGMA table_info(studies)")}
        assert conn.execute(f"SELECT version FROM {SCHEMA_TABLE}").fetchall() == [(SCHEMA_VERSION + 1,)]
    result = subprocess.run([sys.executable, "-m", "lesiondx.cli", "serve", "--storage", str(path.parent),
                             "--port", "0"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: the database {path} was last used by a newer lesiondx")
    assert "restore the database and storage backup taken before the upgrade" in lines[0]


def test_the_recorded_version_is_never_lowered_and_an_equal_one_opens(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    Database(url).dispose()
    db = Database(url)  # the same release again
    with db.engine.connect() as conn:
        assert conn.execute(text(f"SELECT version FROM {SCHEMA_TABLE}")).all() == [(SCHEMA_VERSION,)]
    db.dispose()


def test_postgresql_records_the_schema_version_and_refuses_a_newer_one(postgres_url):
    db = Database(postgres_url)
    assert recorded_version(db.engine) == SCHEMA_VERSION
    with db.engine.begin() as conn:  # as a future release would leave it
        conn.execute(text(f"UPDATE {SCHEMA_TABLE} SET version = :v"), {"v": SCHEMA_VERSION + 1})
    db.dispose()
    try:
        with pytest.raises(SchemaTooNew, match=r"was last used by a newer lesiondx .*a downgrade is not supported"):
            Database(postgres_url)
    finally:  # put the shared server's database back for the other tests
        engine = create_engine(postgres_url)
        with engine.begin() as conn:
            conn.execute(text(f"UPDATE {SCHEMA_TABLE} SET version = :v"), {"v": SCHEMA_VERSION})
        engine.dispose()


def test_a_job_claimed_without_a_lease_after_start_names_an_old_release_still_running(tmp_path, caplog):
    """Was: a 2026-12-04 serve left running beside the upgraded one (same database) claimed jobs without a lease;
    the new lease sweep re-queued them at once and they ran twice, with nothing in the log to say why."""
    from datetime import timedelta

    from lesiondx.service.db import utcnow
    from lesiondx.service.leases import LeaseKeeper

    db = Database(old_database(tmp_path / "lesiondx.sqlite3"))  # RUNNING: left by the old release before this start
    keeper = LeaseKeeper(db, "host:1:abcdef", 30)
    with db.session() as s, s.begin():  # the old release, still running, claims QUEUED its way: no claimed_by, no beat
        s.get(Study, QUEUED).status, s.get(Study, QUEUED).started_at = "running", utcnow() + timedelta(seconds=1)
    with caplog.at_level("ERROR", logger="lesiondx.service.worker"):
        assert sorted(keeper.sweep()) == [QUEUED, RUNNING]
        keeper.sweep()
    told = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert told == [f"job {QUEUED} was claimed without a lease by another lesiondx of 2026-12-04 or earlier that is "
                    "still running on this database: stop it (every old serve and worker), or jobs run twice"]
    db.dispose()
