"""Where a chest-CT finding lies in patient terms: left / right lung and upper / middle / lower zone.

The side is the patient's (from ImageOrientationPatient, or the standard supine head-first axial display
when it is unknown: image left = patient right; see :mod:`lesiondx.io.anatomy`), measured from the centre
of the lung field (the box around both lungs over the series), so an off-centre patient does not move the
midline. The zone is the third of the lungs' cranio-caudal extent (first to last slice showing lung) the
slice lies in; when the lung apex or base is not inside the series the extent is unknown and no zone is
given. Image quadrants stay image-coordinate metadata (the consecutive-slice rule still uses them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lesiondx.data import Box, mask_box
from lesiondx.io.anatomy import (Orientation, cranio_caudal_zone, longest_true_run, orientation_of, patient_side,
                                 zone_phrase)

LUNG_SLICE_FRACTION = 0.10  # a slice shows lung when its lung field is ≥ 10 % of the largest one (not bowel gas)
MIDLINE_MARGIN_MM = 5.0  # closer to the lung-field centre than this: side not determined
MIDLINE_MARGIN_PX = 0.01  # the same without pixel spacing, as a fraction of the slice width


@dataclass(frozen=True)
class LungFrame:
    """The reference for locations in one series.

    ``centre``: (row, col) of the lung field's centre in original-slice pixels; ``extent``: (first, last) slice
    index showing lung, ``None`` when no slice does; ``complete``: apex and base both inside the series (zones
    can be told); ``positions``: slice positions along the head-pointing normal (mm) or ``None``."""

    centre: tuple[float, float]
    extent: tuple[int, int] | None
    complete: bool
    orientation: Orientation
    positions: tuple[float, ...] | None
    spacing: tuple[float, float] | None
    margin: float

    def side(self, row: float, col: float) -> str | None:
        """The patient's side (``"left"``/``"right"``) of the point, ``None`` on the midline."""
        return patient_side(row - self.centre[0], col - self.centre[1], self.orientation, self.spacing,
                            margin=self.margin)

    def zone(self, index: int) -> str | None:
        """The lung zone of slice ``index``; ``None`` when the lungs' extent is not wholly in the series."""
        if self.extent is None or not self.complete or not self.orientation.is_axial:
            return None
        return cranio_caudal_zone(index, self.extent, self.positions)

    def box_location(self, box: Box, index: int) -> str:
        """``"right lung, lower zone"`` for a box (original-slice pixels) on slice ``index``."""
        x, y = box.center
        return location_text([self.side(y, x)], [self.zone(index)])


def location_text(sides: Sequence[str | None], zones: Sequence[str | None]) -> str:
    """Majority side and the zones spanned, e.g. ``"left lung, middle to lower zone"``, ``"right lung"``, or
    ``"lung, side not determined"``."""
    told = [s for s in sides if s]
    side = Counter(told).most_common(1)[0][0] if told else None
    head = f"{side} lung" if side else "lung, side not determined"
    zone = zone_phrase([z for z in zones if z])
    return f"{head}, {zone}" if zone else head


def lung_frame(lungs: np.ndarray, shape: tuple[int, int], *, orientation: Sequence[float] | None = None,
               positions: Sequence[float] | None = None, spacing: Sequence[float] | None = None) -> LungFrame:
    """The :class:`LungFrame` of a series from its lung fields ``(S, h, w)`` (any resolution; ``shape`` is the
    original slice size they are scaled to), IOP, slice positions (mm) and pixel spacing (row, col mm)."""
    lungs = np.asarray(lungs, dtype=bool)
    areas = lungs.reshape(len(lungs), -1).sum(axis=1)
    extent = None
    if areas.size and areas.max() > 0:
        extent = longest_true_run(areas >= LUNG_SLICE_FRACTION * areas.max(), around=int(np.argmax(areas)))
    scale = (shape[0] / lungs.shape[1], shape[1] / lungs.shape[2])
    box = mask_box(lungs[extent[0] : extent[1] + 1].any(axis=0)) if extent else None
    if box is None:
        centre = (shape[0] / 2, shape[1] / 2)
    else:
        centre = ((box.y1 + box.y2) / 2 * scale[0], (box.x1 + box.x2) / 2 * scale[1])
    in_plane = (float(spacing[-2]), float(spacing[-1])) if spacing is not None and len(spacing) >= 2 else None
    complete = extent is not None and extent[0] > 0 and extent[1] < len(lungs) - 1
    pos = tuple(float(p) for p in positions) if positions is not None and len(positions) == len(lungs) else None
    margin = MIDLINE_MARGIN_MM if in_plane else MIDLINE_MARGIN_PX * shape[1]
    return LungFrame(centre, extent, complete, orientation_of(orientation), pos, in_plane, margin)


def frame_note(frame: LungFrame) -> str:
    """What the locations rest on, for the JSON output."""
    parts = ["sides are the patient's, from the centre of the lung field"]
    if frame.orientation.assumed:
        parts.append("ImageOrientationPatient unknown: assumed a supine head-first axial scan "
                     "(image left = patient right, top = anterior)")
    if not frame.orientation.is_axial:
        parts.append("not an axial series: no zones")
    elif not frame.complete:
        parts.append("lung apex or base outside the series: no zones")
    else:
        parts.append("zones are thirds of the lungs' cranio-caudal extent in this series")
    return "; ".join(parts)
