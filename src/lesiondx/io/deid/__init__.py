"""De-identification: DICOM by the PS3.15 Annex E Basic Application Level Confidentiality Profile,
PNG/JPG by re-encoding the pixels alone.

Which table, and why (compared against PS3.15 Table E.1-1, December 2026):

- ``dicom-anonymizer`` 2.1.0 (KitwareMedical) ships Table E.1-1 itself, generated from the
  standard's current edition (``dicomfields_2026c``: 655 attributes with their action codes D, Z,
  X, U, Z/D, X/Z, X/D, X/Z/D, X/Z/U*, repeating groups such as overlay comments as masks). Its own
  engine is not used: it replaces UIDs with random ones kept in a process-wide dict (one study would
  get a new UID per process), has no option columns and writes dummies we do not need. **Chosen for
  its table**, which :mod:`.table` reads; :mod:`.dataset` applies it with salted UIDs and options.
- ``dicognito`` 0.19 replaces values with realistic fakes (names, addresses, shifted dates) from its
  own hand-kept rules, not from the table, and has no per-option switches.
- ``deid`` (pydicom/deid) 0.4 is a recipe engine: its bundled ``deid.dicom`` recipe is mainly pixel
  filters for burned-in text of particular scanners; header rules are whatever a recipe lists, so
  the standard's table would have to be kept by hand anyway.

Options (settings): Retain Longitudinal Temporal Information (full dates, or dates shifted by a
salted per-patient offset) and Retain Patient Characteristics; the default removes both. UIDs are
remapped with :func:`remap_uid` (salted SHA-256 → ``2.25.<int>``), so one study keeps one new UID
across files, associations and restarts.
"""

from __future__ import annotations

from .dataset import PHASES, DeidOptions, date_shift_days, deidentify, pseudonym, remap_uid
from .raster import scrub_raster

__all__ = ["DeidOptions", "PHASES", "date_shift_days", "deidentify", "pseudonym", "remap_uid", "scrub_raster"]
