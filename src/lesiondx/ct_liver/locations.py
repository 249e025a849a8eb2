"""Where a liver lesion lies in patient terms: right or left lobe of the liver (approximate).

The boundary between the functional right and left liver (Cantlie's line, from the gallbladder fossa to
the inferior vena cava) cannot be seen on the liver mask alone. It is approximated by the sagittal plane
that leaves ``RIGHT_LOBE_SHARE`` of the liver mask's volume on the patient's right (the right liver holds
about 60 % of liver volume in adults); lesions within ``BOUNDARY_MARGIN_MM`` of that plane are reported as
"near the boundary". Couinaud segments are not given: telling them needs the hepatic and portal veins,
which this pipeline does not segment. Sides come from ImageOrientationPatient (or the supine head-first
axial default, see :mod:`lesiondx.io.anatomy`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lesiondx.data import Box
from lesiondx.io.anatomy import Orientation, orientation_of

RIGHT_LOBE_SHARE = 0.60
BOUNDARY_MARGIN_MM = 10.0
BOUNDARY_MARGIN_SHARE = 0.04  # without pixel spacing: this share of the liver's left–right extent
METHOD = (f"right/left lobe split by the sagittal plane leaving {RIGHT_LOBE_SHARE:.0%} of the liver mask on the "
          "patient's right (approximates Cantlie's line); Couinaud segments not determined")


@dataclass(frozen=True)
class LiverFrame:
    """Approximate lobe boundary of one study: ``divide`` is its patient x (LPS: + = patient left) relative to
    the image centre, in mm (or pixels without spacing); ``None`` when the liver mask is empty."""

    divide: float | None
    margin: float
    centre: tuple[float, float]
    orientation: Orientation
    spacing_mm: float | None

    def x(self, rows: np.ndarray | float, cols: np.ndarray | float) -> np.ndarray:
        """Patient x (left positive) of pixels, relative to the image centre."""
        scale = self.spacing_mm or 1.0
        d_row = (np.asarray(rows, float) - self.centre[0]) * scale
        d_col = (np.asarray(cols, float) - self.centre[1]) * scale
        return d_col * self.orientation.row_dir[0] + d_row * self.orientation.col_dir[0]

    def lobe(self, row: float, col: float) -> str | None:
        """``"right lobe"`` / ``"left lobe"`` / ``"near the right/left lobe boundary"``; None without a liver."""
        if self.divide is None:
            return None
        offset = float(self.x(row, col)) - self.divide
        if abs(offset) <= self.margin:
            return "near the right/left lobe boundary"
        return "left lobe" if offset > 0 else "right lobe"

    def box_location(self, box: Box | Sequence[int], inside_liver: bool) -> str | None:
        """``"liver, right lobe"`` for a lesion box ``[x1, y1, x2, y2]``; ``"outside the liver mask"`` otherwise."""
        if not inside_liver:
            return "outside the liver mask"
        x1, y1, x2, y2 = (box.as_list() if isinstance(box, Box) else list(box))
        return self.point_location((y1 + y2) / 2, (x1 + x2) / 2)

    def point_location(self, row: float, col: float) -> str | None:
        """``"liver, right lobe"`` for an inside-liver lesion centred at pixel ``(row, col)``."""
        lobe = self.lobe(row, col)
        return f"liver, {lobe}" if lobe else None


def liver_frame(liver: np.ndarray, orientation: Sequence[float] | None = None,
                spacing_mm: float | None = None, *, step: int = 2) -> LiverFrame:
    """The :class:`LiverFrame` of a liver mask ``(S, H, W)`` (every ``step``-th pixel of each slice is used)."""
    liver = np.asarray(liver, dtype=bool)
    centre = (liver.shape[-2] / 2, liver.shape[-1] / 2)
    frame = LiverFrame(None, 0.0, centre, orientation_of(orientation), spacing_mm)
    _, rows, cols = np.nonzero(liver[:, ::step, ::step])
    if rows.size == 0:
        return frame
    xs = frame.x(rows * step, cols * step)
    divide = float(np.quantile(xs, RIGHT_LOBE_SHARE))  # right = low x: this share of the liver lies right of it
    margin = BOUNDARY_MARGIN_MM if spacing_mm else BOUNDARY_MARGIN_SHARE * float(xs.max() - xs.min())
    return LiverFrame(divide, margin, centre, frame.orientation, spacing_mm)
