"""Several inputs read as the phases of one patient: refuse a set that cannot be one (the same series given
twice, series of different patients or studies), and keep the names of its series and phases apart (two
folders both called ``series``; two series identified as the same phase)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .phases import SeriesTags


def check_phase_set(paths: Sequence[Path], tags: Sequence[SeriesTags]) -> None:
    """Raise ``ValueError`` (one line, naming the input) when two inputs are the same folder or file, carry the
    same SeriesInstanceUID, or belong to different patients (PatientID) or studies (StudyInstanceUID);
    headers without these tags (slice images) are not judged here (see :func:`same_pixels_as`)."""
    seen_path: dict[Path, Path] = {}
    seen_uid: dict[str, Path] = {}
    for path, tag in zip(paths, tags):
        key = Path(path).resolve()
        if key in seen_path:
            raise ValueError(f"{path}: given twice; give each phase's series once")
        seen_path[key] = Path(path)
        if tag.series_uid and tag.series_uid in seen_uid:
            raise ValueError(f"{path}: the same series as {seen_uid[tag.series_uid]} (same SeriesInstanceUID); "
                             "give each phase's series once")
        if tag.series_uid:
            seen_uid[tag.series_uid] = Path(path)
    for field, what in (("patient_id", "patient (PatientID)"), ("study_uid", "study (StudyInstanceUID)")):
        known = [(Path(p), getattr(t, field)) for p, t in zip(paths, tags) if getattr(t, field)]
        for path, value in known[1:]:
            if value != known[0][1]:
                raise ValueError(f"{path}: not the same {what} as {known[0][0]}; several inputs are read as the "
                                 "phases of one patient's study: run each study separately")


def same_pixels_as(hu: np.ndarray, earlier: Sequence[tuple[str, np.ndarray]]) -> str | None:
    """The name of an earlier series whose volume is pixel-for-pixel ``hu`` (the same series given twice
    under another name or as an export), else ``None``."""
    for name, other in earlier:
        if other.shape == hu.shape and np.array_equal(other, hu):
            return name
    return None


def admit_series(path: Path, name: str, hu: np.ndarray, earlier: Sequence[tuple[str, np.ndarray]]) -> str:
    """The name the series read from ``path`` goes by next to the ``earlier`` ``(name, HU volume)`` series of the
    set (:func:`unique_name`); ``ValueError`` when its pixels are an earlier series'."""
    twin = same_pixels_as(hu, earlier)
    if twin is not None:
        raise ValueError(f"{path}: the same pixels as series {twin}; give each phase's series once")
    return unique_name(name, [n for n, _ in earlier])


def unique_name(name: str, taken: Sequence[str]) -> str:
    """``name``, or ``name-2``, ``name-3``… when already taken (two series folders with the same name)."""
    if name not in taken:
        return name
    k = 2
    while f"{name}-{k}" in taken:
        k += 1
    return f"{name}-{k}"


def repeated_phases(phases: Sequence[tuple[str, str | None]]) -> list[str]:
    """Warnings for series identified as a phase an earlier series already has (``(series, phase)`` pairs in
    input order): only the first series of each phase is characterised."""
    first: dict[str, str] = {}
    out = []
    for name, phase in phases:
        if phase is None:
            continue
        if phase in first:
            out.append(f"{name}: a second {phase} series (the first is {first[phase]}); lesions are characterised "
                       f"with {first[phase]}'s {phase} HU only")
        else:
            first[phase] = name
    return out
