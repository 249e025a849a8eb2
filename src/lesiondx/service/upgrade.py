"""Which schema a database was last used with, so that a downgrade is refused in one line instead of running.

Upgrades are additive (:data:`lesiondx.service.db.ADDED_COLUMNS`, new tables by ``create_all``): a release opens the
database of any earlier one. The reverse is not safe: an older release ignores columns and states it does not know
(job leases, export history, work-folder layout) and would run its jobs, exports and clean-up on them. So each
start records :data:`SCHEMA_VERSION` in the table ``lesiondx_schema`` (one row), and a database that a *newer*
release has recorded a higher number in is refused with :class:`SchemaTooNew` before anything is written.
Releases before this table existed (2026-12-05 and earlier) do not look at it; their databases have no row and are
upgraded in place.

Bump :data:`SCHEMA_VERSION` whenever a release adds a column, table or stored state an older release would misuse.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table, inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from .settings import SettingsError

SCHEMA_VERSION = 1  # 1: job leases (claimed_by, heartbeat_at, interruptions), work/<study>/run-* folders
SCHEMA_TABLE = "lesiondx_schema"
log = logging.getLogger("lesiondx.service.worker")

_metadata = MetaData()
schema_table = Table(SCHEMA_TABLE, _metadata, Column("id", Integer, primary_key=True),
                     Column("version", Integer, nullable=False), Column("written_by", String(64), nullable=False))


class SchemaTooNew(SettingsError):
    """The database was last used by a newer lesiondx than this one (a downgrade): refused, nothing written."""


def recorded_version(engine: Engine) -> int | None:
    """The schema version the database records, or None (a new database, or one of a release before 2026-12-06)."""
    if not inspect(engine).has_table(SCHEMA_TABLE):
        return None
    with engine.connect() as conn:
        return conn.execute(select(schema_table.c.version).where(schema_table.c.id == 1)).scalar()


def refuse_newer(engine: Engine) -> None:
    """Raise :class:`SchemaTooNew` when the database records a newer schema than this release's."""
    found = recorded_version(engine)
    url = engine.url
    where = url.database if engine.dialect.name == "sqlite" else url.render_as_string(hide_password=True)
    if found is not None and found > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"the database {where} was last used by a newer lesiondx (schema version {found}; this release knows "
            f"up to {SCHEMA_VERSION}): a downgrade is not supported, nothing was changed. Start the newer release "
            "again, or restore the database and storage backup taken before the upgrade")


def record_version(engine: Engine, written_by: str) -> None:
    """Record :data:`SCHEMA_VERSION` (never lowers a recorded version; ``written_by``: the package version)."""
    row = {"version": SCHEMA_VERSION, "written_by": written_by[:64]}
    try:
        _metadata.create_all(engine)
        with engine.begin() as conn:
            found = conn.execute(select(schema_table.c.version).where(schema_table.c.id == 1)).scalar()
            if found is None:
                conn.execute(schema_table.insert().values(id=1, **row))
            elif found < SCHEMA_VERSION:
                conn.execute(schema_table.update().where(schema_table.c.id == 1).values(**row))
    except IntegrityError:  # serve and a worker started at once: the other one made or filled the table first
        pass


class OldReleaseWatch:
    """Tells (one ERROR line per study) when a job is claimed without a lease after this process started: only a
    lesiondx of 2026-12-04 or earlier claims that way, so such a release is still running on this database (not
    stopped before the upgrade) and its jobs run twice, once there and once here after the lease sweep."""

    def __init__(self) -> None:
        from .db import utcnow

        self.since = utcnow()
        self.told: set[str] = set()

    def check(self, db: Any) -> list[str]:
        """Ids of the studies newly found claimed without a lease since start (each logged once)."""
        from .db import Study

        with db.session() as s:
            found = list(s.scalars(select(Study.id).where(Study.status == "running", Study.claimed_by.is_(None),
                                                          Study.heartbeat_at.is_(None), Study.started_at > self.since)))
        new = [study_id for study_id in found if study_id not in self.told]
        for study_id in new:
            self.told.add(study_id)
            log.error("job %s was claimed without a lease by another lesiondx of 2026-12-04 or earlier that is still "
                      "running on this database: stop it (every old serve and worker), or jobs run twice", study_id)
        return new
