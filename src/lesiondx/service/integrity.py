"""Study integrity: what identifies an instance, and whether a received series looks complete.

Instances are keyed by their (pseudonymous, deterministically remapped) SOP Instance UID, as a PACS
such as Orthanc keys them: a second copy of an instance is dropped and counted, never stored twice.
At close, each series is checked for gaps in InstanceNumber or in the slice positions along the
slice normal; a gap becomes a warning on the study ("series may be incomplete"). Warnings carry
counts, instance numbers and positions in mm only (no UIDs, no names).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pydicom

GAP_KIND = "series_gap"
GAP_FACTOR = 1.5  # a step between neighbouring slices above 1.5 × the series' median step is a gap


@dataclass(frozen=True)
class InstanceInfo:
    """What integrity checks need from one stored DICOM instance.

    ``position``: ImagePositionPatient projected on the slice normal (mm, head-pointing), or ``None``."""

    sop_uid: str | None
    instance_number: int | None
    position: float | None


def instance_info(data: bytes) -> InstanceInfo:
    """Read SOPInstanceUID, InstanceNumber and slice position from stored (de-identified) DICOM bytes."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
    except Exception:  # unreadable header: nothing to key on (ingest has already accepted the pixels)
        return InstanceInfo(None, None, None)
    sop = str(ds.get("SOPInstanceUID", "") or "").strip() or None
    try:
        number = int(ds.get("InstanceNumber")) if ds.get("InstanceNumber") not in (None, "") else None
    except (TypeError, ValueError):
        number = None
    return InstanceInfo(sop[:64] if sop else None, number, _normal_position(ds))


def _normal_position(ds: pydicom.Dataset) -> float | None:
    try:
        iop = np.asarray([float(v) for v in ds.ImageOrientationPatient], float)
        ipp = np.asarray([float(v) for v in ds.ImagePositionPatient], float)
        normal = np.cross(iop[:3], iop[3:6])
        norm = float(np.linalg.norm(normal))
        if norm == 0 or ipp.shape != (3,):
            return None
        normal /= norm
        return float(np.dot(ipp, -normal if normal[2] < 0 else normal))
    except (AttributeError, TypeError, ValueError, IndexError):
        return None


def number_ranges(numbers: Sequence[int]) -> str:
    """``[4, 5, 6, 9]`` → ``"4–6, 9"`` (sorted, consecutive runs joined by an en dash)."""
    parts: list[str] = []
    values = sorted(set(int(n) for n in numbers))
    start = prev = None
    for n in values + [None]:  # type: ignore[list-item]
        if start is not None and (n is None or n != prev + 1):
            parts.append(f"{start}" if start == prev else f"{start}–{prev}")
            start = None
        if n is not None and start is None:
            start = n
        prev = n
    return ", ".join(parts)


def _instance_gap(numbers: list[int]) -> str | None:
    missing = sorted(set(range(min(numbers), max(numbers) + 1)) - set(numbers))
    if not missing:
        return None
    shown = number_ranges(missing)
    if len(shown) > 120:
        shown = shown[:117] + "…"
    return (f"instances {shown} missing ({len(numbers)} received, numbered {min(numbers)}–{max(numbers)}): "
            "series may be incomplete")


def _position_gap(positions: list[float]) -> str | None:
    values = np.sort(np.asarray(positions, float))
    steps = np.diff(values)
    repeated = int(np.sum(steps < 1e-3))
    moving = steps[steps >= 1e-3]
    if repeated:
        return (f"{repeated} slice position(s) received more than once under different instance UIDs "
                "(the series may have been sent twice)")
    if moving.size < 2:
        return None
    step = float(np.median(moving))
    gaps = [(float(values[i]), float(values[i + 1]), int(round(s / step)) - 1)
            for i, s in enumerate(steps) if s > GAP_FACTOR * step]
    if not gaps:
        return None
    lo, hi, k = gaps[0]
    more = f" and {len(gaps) - 1} more gap(s)" if len(gaps) > 1 else ""
    return (f"about {max(1, k)} slice(s) missing between {lo:.1f} and {hi:.1f} mm{more} (slice step {step:.2f} mm): "
            "series may be incomplete")


def series_gap_warnings(files: Iterable[tuple[str | None, int | None, float | None]]) -> list[dict[str, str]]:
    """Warnings for series with gaps, from ``(series key, InstanceNumber, position mm)`` per instance.

    Series are named by their order of appearance ("series 1"), never by UID. InstanceNumber gaps are
    reported when every instance has a number; otherwise (or when the numbers are complete) the slice
    positions are checked for gaps and repeats. A series of fewer than 3 instances is not judged.
    """
    by_series: dict[str | None, list[tuple[int | None, float | None]]] = {}
    for series, number, position in files:
        by_series.setdefault(series, []).append((number, position))
    out: list[dict[str, str]] = []
    for index, items in enumerate(by_series.values(), start=1):
        if len(items) < 3:
            continue
        numbers = [n for n, _ in items if n is not None]
        positions = [p for _, p in items if p is not None]
        reason = _instance_gap(numbers) if len(numbers) == len(items) and len(set(numbers)) == len(numbers) else None
        if reason is None and len(positions) == len(items):
            reason = _position_gap(positions)
        if reason:
            out.append({"kind": GAP_KIND, "file": f"series {index}", "reason": reason})
    return out


__all__ = ["GAP_KIND", "InstanceInfo", "instance_info", "number_ranges", "series_gap_warnings"]
