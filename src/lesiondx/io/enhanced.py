"""Enhanced (multi-frame) CT / MR files: rescale, pixel spacing, orientation and each frame's position live in the
functional groups (per-frame, else shared), not in the top-level tags a classic one-slice-per-file series carries."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydicom.dataset import Dataset


def group_value(ds: Dataset, sequence: str, keyword: str, frame: int = 0) -> Any:
    """``keyword`` of the functional group ``sequence`` for ``frame`` (0-based): the per-frame group first, then
    the shared one; ``None`` when neither has it."""
    for groups, index in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
        items = ds.get(groups) or []
        if index < len(items):
            inner = items[index].get(sequence) or []
            if inner and keyword in inner[0]:
                return inner[0].get(keyword)
    return None


def is_enhanced(ds: Dataset) -> bool:
    """A multi-frame file with functional groups (Enhanced CT / MR / XA and the like)."""
    return int(ds.get("NumberOfFrames") or 1) > 1 and (
        "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds)


def frame_rescale(ds: Dataset) -> np.ndarray | None:
    """``(frames, 2)`` slope and intercept of each frame from PixelValueTransformationSequence; ``None`` when the file
    has none (then no Hounsfield units are known)."""
    n = int(ds.get("NumberOfFrames") or 1)
    pairs = [(group_value(ds, "PixelValueTransformationSequence", "RescaleSlope", f),
              group_value(ds, "PixelValueTransformationSequence", "RescaleIntercept", f)) for f in range(n)]
    if any(slope is None and intercept is None for slope, intercept in pairs):
        return None
    return np.array([(float(1.0 if s is None else s), float(0.0 if i is None else i)) for s, i in pairs])


def frame_geometry(ds: Dataset) -> tuple[tuple[float, ...] | None, tuple[float, float] | None, list[list[float]] | None]:
    """ImageOrientationPatient, PixelSpacing (row, col mm) and every frame's ImagePositionPatient (``None`` where
    the functional groups lack it; positions only when every frame has one)."""
    iop = group_value(ds, "PlaneOrientationSequence", "ImageOrientationPatient")
    spacing = group_value(ds, "PixelMeasuresSequence", "PixelSpacing")
    n = int(ds.get("NumberOfFrames") or 1)
    positions = [group_value(ds, "PlanePositionSequence", "ImagePositionPatient", f) for f in range(n)]
    return (tuple(float(v) for v in iop) if iop is not None and len(iop) == 6 else None,
            (float(spacing[0]), float(spacing[1])) if spacing is not None and len(spacing) == 2 else None,
            [[float(v) for v in p] for p in positions] if all(p is not None and len(p) == 3 for p in positions) else None)
