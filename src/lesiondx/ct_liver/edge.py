"""Edge-lesion liver filter ("claw sign"): does a lesion at the liver edge belong to the liver?

A tumour growing inside the liver and bulging out of it is wrapped by parenchyma on more than half its
circumference: it leaves a cavity in the (hypodense-excluding) liver mask with a mouth narrower than the
tumour. Closing the mask with a disk as large as the lesion's own equivalent *diameter* bridges that
cavity (the disk fits neither into it nor through its mouth, only a shallow cap at the mouth stays open),
so most of the tumour counts as liver. A mass outside the liver that touches or indents it leaves at most a
shallow dent, which the closing fills only in part: most of the mass stays outside. The disk's size is
the lesion's own, so no size is tuned (benchmarks/ct_liver.md, section 2f).
"""

from __future__ import annotations

import numpy as np

from lesiondx.data import disk_closing


def liver_envelope(liver_slice: np.ndarray, radius_px: float) -> np.ndarray:
    """One slice's liver mask ``(H, W)`` closed with a disk of ``radius_px`` pixels, holes filled."""
    return disk_closing(liver_slice, radius_px, fill_holes=True)  # the closing contains the mask itself


def enveloped_fraction(region: np.ndarray, liver: np.ndarray, radius_px: float | None = None) -> float:
    """Share of the voxels of ``region`` (bool ``(S, H, W)``, one lesion) inside its liver envelope: the
    ``liver`` mask (same shape) of each of its slices closed with a disk of ``radius_px`` pixels (default:
    the region's own equivalent diameter, 2 sqrt(largest cross-section area / π), so the disk cannot fit
    into the lesion's own cavity), holes filled. Works on a crop around the region; 0 for an empty region."""
    region = np.asarray(region, dtype=bool)
    liver = np.asarray(liver, dtype=bool)
    if region.shape != liver.shape or region.ndim != 3:
        raise ValueError(f"region {region.shape} and liver {liver.shape} must be the same (S, H, W) volume")
    areas = region.sum(axis=(1, 2))
    if not areas.any():
        return 0.0
    radius = 2.0 * float(np.sqrt(areas.max() / np.pi)) if radius_px is None else float(radius_px)
    rows, cols = np.nonzero(region.any(axis=0))
    reach = int(np.ceil(2 * radius)) + 2  # the closing at a pixel depends on the mask within 2 radii of it
    r0, r1 = max(0, rows.min() - reach), min(region.shape[1], rows.max() + reach + 1)
    c0, c1 = max(0, cols.min() - reach), min(region.shape[2], cols.max() + reach + 1)
    inside = 0
    for z in np.nonzero(areas)[0]:
        env = liver_envelope(liver[z, r0:r1, c0:c1], radius)
        inside += int((env & region[z, r0:r1, c0:c1]).sum())
    return inside / int(areas.sum())
