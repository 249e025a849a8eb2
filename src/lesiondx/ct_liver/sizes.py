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


def extent_cut(first: int, last: int, n_slices: int, gaps: Sequence[int] = ()) -> str | None:
    """Why a lesion on slices ``first``…``last`` (of ``n_slices``) may be longer than measured: it reaches the series'
    first or last slice, or a gap of missing slices (``gaps``: ``i`` = the gap lies between slices ``i`` and
    ``i + 1``); ``None`` when it was seen whole."""
    where = [w for w, hit in (("the series' first slice", first == 0), ("the series' last slice", last == n_slices - 1))
             if hit]
    where += [f"a gap of missing slices (after slice {g})" for g in gaps if first <= g + 1 and last >= g]
    return "reaches " + " and ".join(where) if where else None


def lesion_size_mm(boxes: Sequence[tuple[int, Box]], spacing_mm: float | None, slice_mm: float | None,
                   spacing_estimated: bool = False, n_slices: int | None = None, gaps: Sequence[int] = ()) -> dict:
    """``{"long_axis", "craniocaudal", "basis"}`` in mm of one lesion's ``(slice, box)`` detections: the
    longest box side and the span of its slices × ``slice_mm``; a value is ``None`` when its spacing is
    unknown or there is no box (``basis`` says what was measured and with which spacing). With ``n_slices`` (and the
    series' ``gaps``, see :func:`extent_cut`), ``craniocaudal_note`` says when the extent is only a lower bound."""
    sides = [box_size_mm(b, spacing_mm) for _, b in boxes]
    zs = [z for z, _ in boxes]
    long_axis = max(sides) if sides and spacing_mm else None
    extent = round((max(zs) - min(zs) + 1) * float(slice_mm), 1) if zs and slice_mm else None
    basis = WHAT + "; " + ("pixel size unknown" if not spacing_mm else ESTIMATED_SPACING if spacing_estimated
                           else PIXEL_SPACING) + ("; slice step unknown" if not slice_mm else "")
    cut = extent_cut(min(zs), max(zs), n_slices, gaps) if zs and n_slices else None
    return {"long_axis": long_axis, "craniocaudal": extent, "basis": basis,
            **({"craniocaudal_note": f"at least this: the lesion {cut}, it may go on beyond"} if cut else {})}
