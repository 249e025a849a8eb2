"""Does the image show the whole liver, in-plane and from top to bottom? A reconstruction field of view that cuts the
liver (a small FOV, a cropped export), or a series that starts or stops inside it (a chest CT's liver dome, a scan below
it), leaves part of it unanalysed; the gate cannot see this, the liver mask can.

Measured with :func:`field_of_view_check` and :func:`craniocaudal_check` on the HU-rule mask (2026-12-06): see the
figures in ``EDGE_SHARE_FLAG``'s and ``END_SHARE_FLAG``'s comments."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from lesiondx.gate.checks import GAP_FACTOR

from .phases import MIN_LIVER_SECTION_CM2, section_areas_cm2
from lesiondx.gate.verdict import Check, GateVerdict

EDGE_MM = 10.0  # liver-density tissue runs this far along an image edge beside the liver: the edge cuts the liver
NEAR_MM = 30.0  # ... and the liver mask comes this close to that edge (it stops short of a cut: erosion, body rim)
LIVER_BAND_HU = 30.0  # edge pixels within this of the slice's liver median count as liver tissue
# Share of the liver's slices cut at the edge above which the series is flagged. Measured (2026-12-06): 0 cut slices on
# IRCADb p01 / p07 and on the chest CTs A0001 / A0002 / normal001 (normal001's tight field of view cuts the body wall
# beside the liver on 41 of 63 slices, but not the liver: counting any body at the edge flagged it); 59 of 62 on
# p01 with image columns 0–229 (most of the right lobe) cut off.
EDGE_SHARE_FLAG = 0.10
# Liver area on the series' first or last slice, as a share of its largest cross-section, above which the liver runs on
# beyond that end. Measured (2026-12-06): 0.00 at both ends of IRCADb p01 / p07 and of normal001 (whole livers, also in
# an abdomen series that runs on below the liver); 0.47–0.69 at the last slice of A0001 / A0002 / P002 (chest CTs that
# stop in the upper abdomen) and 1.00 on p01's top 12 slices (the dome). p01's 27 slices below its liver (no liver in
# the reference mask) leave a 24 cm² "liver" of other organs: caught by ``MIN_LIVER_SECTION_CM2`` (whole livers
# 141–248 cm²). Replaces a flag on the share of slices at liver level, which would have flagged every abdomen–pelvis CT.
END_SHARE_FLAG = 0.25


def _cut_beside_liver(hu: np.ndarray, liver: np.ndarray, mm: float) -> bool:
    """One slice: tissue of the liver's density runs ≥ ``EDGE_MM`` along an image edge, within the liver's rows or
    columns, and the liver mask comes within ``NEAR_MM`` of that edge."""
    rows, cols = np.nonzero(liver)
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    like_liver = np.abs(hu - float(np.median(hu[liver]))) <= LIVER_BAND_HU
    near = int(NEAR_MM / mm)
    sides = ((like_liver[r0:r1, 0], c0), (like_liver[r0:r1, -1], liver.shape[1] - c1),
             (like_liver[0, c0:c1], r0), (like_liver[-1, c0:c1], liver.shape[0] - r1))
    return any(edge.sum() * mm >= EDGE_MM and gap <= near for edge, gap in sides)


def field_of_view_check(hu: np.ndarray, liver: np.ndarray, spacing_mm: float | None) -> Check:
    """Flags a series ``hu`` ``(S, H, W)`` whose liver mask comes within ``NEAR_MM`` of an image edge that cuts
    liver-density tissue (``EDGE_MM`` or more of it along the edge, beside the liver) on more than ``EDGE_SHARE_FLAG``
    of the liver's slices (``spacing_mm`` in-plane; 0.75 mm when unknown)."""
    mask = np.asarray(liver, bool)
    mm = spacing_mm or 0.75
    with_liver = [z for z in range(len(mask)) if mask[z].any()]
    cut = sum(_cut_beside_liver(np.asarray(hu[z]), mask[z], mm) for z in with_liver)
    value = {"slices_at_edge": int(cut), "slices_with_liver": len(with_liver)}
    if with_liver and cut > EDGE_SHARE_FLAG * len(with_liver):
        return Check("field_of_view", "flagged", value,
                     f"the image edge cuts liver-density tissue beside the liver on {cut} of its {len(with_liver)} "
                     "slices: the field of view cuts the liver, the part outside was not analysed and lesions at "
                     "the edge are measured too small")
    return Check("field_of_view", "ok", value)


def craniocaudal_check(liver: np.ndarray, spacing_mm: float | None) -> Check:
    """Flags a liver mask ``(S, H, W)`` that does not hold a whole liver from top to bottom: its largest cross-section is
    under ``MIN_LIVER_SECTION_CM2`` (only a sliver of liver, or other organs taken for it), or its area on the first or
    last slice is over ``END_SHARE_FLAG`` of that (the liver runs on beyond the series). ``spacing_mm`` in-plane; 0.75 mm
    when unknown."""
    areas = section_areas_cm2(liver, spacing_mm)
    largest = float(areas.max()) if len(areas) else 0.0
    ends = [name for name, area in (("first", areas[0] if len(areas) else 0.0), ("last", areas[-1] if len(areas) else 0.0))
            if largest > 0 and area > END_SHARE_FLAG * largest]
    value = {"largest_section_cm2": round(largest, 1), "cut_at": ends}
    if largest < MIN_LIVER_SECTION_CM2:
        return Check("liver_coverage", "flagged", value,
                     f"the liver's largest cross-section is {largest:.0f} cm² (whole livers ≥ {MIN_LIVER_SECTION_CM2:.0f} "
                     "cm²): the series shows little or none of the liver; boxes called 'in the liver' may lie in other "
                     "organs")
    if ends:
        return Check("liver_coverage", "flagged", value,
                     f"the liver runs on beyond the {' and '.join(ends)} slice of the series ({len(areas)} slices): the "
                     "part outside was not analysed and lesions there are missed or measured too short")
    return Check("liver_coverage", "ok", value)


def position_gaps(positions: Sequence[float] | None) -> tuple[int, ...]:
    """Indices ``i`` where slices are missing between slice ``i`` and ``i + 1``: a step over ``GAP_FACTOR`` × the
    median step (the gate's geometry flag); ``()`` without positions for 3+ slices."""
    if positions is None or len(positions) < 3:
        return ()
    steps = np.abs(np.diff(np.asarray(positions, float)))
    median = float(np.median(steps))
    return tuple(int(i) for i in np.nonzero(steps > GAP_FACTOR * median)[0]) if median > 0 else ()


def with_check(verdict: GateVerdict, check: Check) -> GateVerdict:
    """``verdict`` with one more check (measured after the gate, e.g. on the liver mask): its status worsens to the
    check's when that is worse, and its reason is added."""
    rank = {"ok": 0, "flagged": 1, "refused": 2}
    status = check.status if rank[check.status] > rank[verdict.status] else verdict.status
    entry = {"status": check.status, "value": check.value} | ({"note": check.reason} if check.reason else {})
    reasons = verdict.reasons + ((check.reason,) if check.status != "ok" and check.reason else ())
    return replace(verdict, status=status, reasons=reasons, checks={**verdict.checks, check.name: entry})
