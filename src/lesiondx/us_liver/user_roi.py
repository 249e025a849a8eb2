"""Checks on a lesion ROI the user gives (``--roi x,y,w,h`` or a mask file) before anything is scored: a box of
a pixel or two, one drawn in the black border outside the scan sector, or one that covers the whole sector
would otherwise get a confident benign/malignant answer about no lesion at all."""

from __future__ import annotations

import numpy as np

from lesiondx.data import mask_box

MIN_SIDE_PX = 8  # the smallest AUL lesion outline is 13 px on its shorter side (440-1388 px wide frames)
MIN_INSIDE_SECTOR = 0.5  # share of the ROI's pixels that must lie in the scan sector
MAX_SECTOR_COVER = 0.9  # share of the scan sector an ROI may cover (a liver background must remain)


def user_roi_problem(roi: np.ndarray, sector: np.ndarray | None) -> str | None:
    """Why a user lesion ROI (bool mask, frame-sized) cannot be scored, or ``None`` when it can. ``sector``:
    the segmenter's scan-sector mask (empty or ``None``: the sector checks are skipped)."""
    box = mask_box(roi)
    if box is None:
        return "the ROI is empty"
    if min(box.width, box.height) < MIN_SIDE_PX:
        return (f"the ROI is {box.width}×{box.height} px; a lesion ROI must be at least {MIN_SIDE_PX} px on each "
                "side (give x,y,w,h with w and h the lesion's width and height in pixels)")
    if sector is None or not sector.any():
        return None
    area = float(roi.sum())
    inside = float((roi & sector).sum())
    if inside >= MAX_SECTOR_COVER * float(sector.sum()):
        return (f"the ROI covers {inside / sector.sum():.0%} of the scan sector, leaving no liver background to "
                "compare the lesion with; draw it around the lesion only")
    if inside < MIN_INSIDE_SECTOR * area:
        return (f"only {inside / area:.0%} of the ROI lies inside the scan sector (the fan-shaped ultrasound "
                "image); draw it around the lesion inside the image")
    return None
