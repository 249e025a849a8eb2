"""Image positions in patient terms, from DICOM ImageOrientationPatient (IOP) and slice positions.

DICOM's patient coordinate system is LPS: +x towards the patient's **left**, +y **posterior**, +z
**superior** (head). IOP holds two unit vectors in it: the direction of increasing column index (along a
row) and the direction of increasing row index (down a column). An in-plane displacement of ``d_row`` rows
and ``d_col`` columns is therefore ``d_col · row_dir · col_mm + d_row · col_dir · row_mm`` in the patient.

When IOP is unknown (PNG/JPG slices, NIfTI as read here) the **assumed default** is the standard
axial display of a supine, head-first scan, IOP ``[1, 0, 0, 0, 1, 0]``: image left = patient right, image
top = anterior; results then say ``orientation_assumed``. Slices are assumed ordered superior → inferior
(index 0 = most superior, as :func:`lesiondx.io.read_study` orders DICOM series) unless slice positions
along the head-pointing normal (``MedicalImage.positions``, mm) say otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

STANDARD_AXIAL: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
ZONES = ("upper", "middle", "lower")


@dataclass(frozen=True)
class Orientation:
    """In-plane directions in LPS of one series; ``assumed`` when IOP was missing and the default was used."""

    row_dir: tuple[float, float, float]  # patient direction of increasing column index
    col_dir: tuple[float, float, float]  # patient direction of increasing row index
    assumed: bool

    @property
    def is_axial(self) -> bool:
        """True when the slice normal is within ~37° of the head–foot axis."""
        return abs(float(np.cross(self.row_dir, self.col_dir)[2])) >= 0.8


def orientation_of(iop: Sequence[float] | None) -> Orientation:
    """An :class:`Orientation` from IOP (6 direction cosines), or the standard axial default when missing/degenerate."""
    values = None
    if iop is not None and len(iop) == 6:
        values = np.asarray([float(v) for v in iop], float)
        if not np.all(np.isfinite(values)) or np.linalg.norm(np.cross(values[:3], values[3:])) < 0.5:
            values = None
    assumed = values is None
    if values is None:
        values = np.asarray(STANDARD_AXIAL, float)
    row = values[:3] / np.linalg.norm(values[:3])
    col = values[3:] / np.linalg.norm(values[3:])
    return Orientation(tuple(row.tolist()), tuple(col.tolist()), assumed)


def patient_vector(d_row: float, d_col: float, orientation: Orientation,
                   spacing: Sequence[float] | None = None) -> np.ndarray:
    """LPS displacement ``(x left, y posterior, z superior)`` of an in-plane step of ``d_row`` rows and ``d_col``
    columns; in mm with ``spacing`` = (row mm, col mm), else in pixels."""
    row_mm, col_mm = (float(spacing[-2]), float(spacing[-1])) if spacing is not None else (1.0, 1.0)
    return d_col * col_mm * np.asarray(orientation.row_dir) + d_row * row_mm * np.asarray(orientation.col_dir)


def patient_side(d_row: float, d_col: float, orientation: Orientation, spacing: Sequence[float] | None = None,
                 *, margin: float = 0.0) -> str | None:
    """``"left"`` / ``"right"`` (the patient's) of a point ``(d_row, d_col)`` away from the midline reference;
    ``None`` within ``margin`` (same unit as :func:`patient_vector`) of it."""
    x = float(patient_vector(d_row, d_col, orientation, spacing)[0])
    if abs(x) <= margin:
        return None
    return "left" if x > 0 else "right"


def longest_true_run(flags: Sequence[bool], around: int | None = None) -> tuple[int, int] | None:
    """``(first, last)`` of the run of consecutive True holding index ``around`` (default: the longest run)."""
    runs: list[tuple[int, int]] = []
    start = None
    for i, flag in enumerate(list(flags) + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i - 1))
            start = None
    if not runs:
        return None
    if around is not None:
        for run in runs:
            if run[0] <= around <= run[1]:
                return run
    return max(runs, key=lambda r: r[1] - r[0])


def cranio_caudal_zone(index: int, extent: tuple[int, int], positions: Sequence[float] | None = None) -> str:
    """``"upper"`` / ``"middle"`` / ``"lower"`` third of an organ spanning slices ``extent`` = (first, last) in slice
    order. With ``positions`` (mm along the head-pointing normal) the thirds are in mm and the superior end is
    the higher position; without, slice index 0 is taken as most superior."""
    first, last = extent
    if positions is not None:
        top, bottom = max(positions[first], positions[last]), min(positions[first], positions[last])
        span = top - bottom
        fraction = 0.5 if span <= 0 else (top - float(positions[index])) / span
    else:
        fraction = 0.5 if last == first else (index - first) / (last - first)
    fraction = min(max(fraction, 0.0), 1.0)
    return ZONES[min(2, int(fraction * 3))]


def zone_phrase(zones: Sequence[str]) -> str:
    """``["middle", "lower", "lower"]`` → ``"middle to lower zone"``; one zone → ``"lower zone"``."""
    present = [z for z in ZONES if z in set(zones)]
    if not present:
        return ""
    return f"{present[0]} zone" if len(present) == 1 else f"{present[0]} to {present[-1]} zone"


__all__ = ["Orientation", "STANDARD_AXIAL", "ZONES", "cranio_caudal_zone", "longest_true_run", "orientation_of",
           "patient_side", "patient_vector", "zone_phrase"]
