"""Lesion size in mm for the result JSON, from the detector's boxes (the region ≥ 15 HU darker or brighter
than the liver): a box's longest side, and a lesion's longest box side over its slices and its craniocaudal
extent (slices with a box × slice step). Not a calliper measurement: on IRCADb p01 these read 17–25 mm for
four tumours the reference masks measure 22–33 mm across (the lesion's edge blends into the liver)."""

from __future__ import annotations

from collections.abc import Sequence

from lesiondx.data import Box

PIXEL_SPACING = "pixel spacing from the file"
ESTIMATED_SPACING = "pixel size estimated from the body width (320 mm adult abdomen, ±20 % between adults)"
WHAT = "longest side of the detected region's box (≥ 15 HU from the liver; tends to be smaller than the lesion)"


def box_size_mm(box: Box, spacing_mm: float | None) -> float | None:
    """Longest side of ``box`` in mm; ``None`` when the pixel size is unknown."""
    if not spacing_mm:
        return None
    return round(max(box.x2 - box.x1, box.y2 - box.y1) * float(spacing_mm), 1)


def lesion_size_mm(boxes: Sequence[tuple[int, Box]], spacing_mm: float | None, slice_mm: float | None,
                   spacing_estimated: bool = False) -> dict:
    """``{"long_axis", "craniocaudal", "basis"}`` in mm of one lesion's ``(slice, box)`` detections: the
    longest box side and the span of its slices × ``slice_mm``; a value is ``None`` when its spacing is
    unknown or there is no box (``basis`` says what was measured and with which spacing)."""
    sides = [box_size_mm(b, spacing_mm) for _, b in boxes]
    zs = [z for z, _ in boxes]
    long_axis = max(sides) if sides and spacing_mm else None
    extent = round((max(zs) - min(zs) + 1) * float(slice_mm), 1) if zs and slice_mm else None
    basis = WHAT + "; " + ("pixel size unknown" if not spacing_mm else ESTIMATED_SPACING if spacing_estimated
                           else PIXEL_SPACING) + ("; slice step unknown" if not slice_mm else "")
    return {"long_axis": long_axis, "craniocaudal": extent, "basis": basis}
