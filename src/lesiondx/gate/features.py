"""Image measurements the input gates decide on (pure functions, numpy in, floats out).

Grey images are display grey levels 0..255; CT volumes are in Hounsfield units (HU).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

WORK_SIDE = 256  # px: images are measured at this longer side (speed; thresholds are per this size)


def shrink(grey: np.ndarray, side: int = WORK_SIDE) -> np.ndarray:
    """``grey`` (2D) reduced by an integer stride so its longer side is about ``side`` px (no smoothing:
    the speckle measure must see the native texture)."""
    step = max(1, int(round(max(grey.shape) / side)))
    return np.asarray(grey, dtype=np.float32)[::step, ::step]


def body_mask_hu(hu: np.ndarray, *, body_above: float = -500.0) -> np.ndarray:
    """The patient's body on one axial HU slice: the largest region above ``body_above`` HU, holes
    (lungs, bowel gas) filled."""
    labels, n = ndimage.label(ndimage.binary_opening(hu > body_above, iterations=2))
    if n == 0:
        return np.zeros(hu.shape, bool)
    sizes = ndimage.sum(np.ones_like(labels), labels, index=np.arange(1, n + 1))
    body = labels == int(np.argmax(sizes)) + 1
    return ndimage.binary_fill_holes(body)


def lung_fraction_hu(hu: np.ndarray) -> float:
    """Share of the body's cross-section that is lung (< −400 HU inside the filled body outline) on
    one axial HU slice; about 0.2–0.6 through the chest, ~0 below the diaphragm."""
    hu = shrink(hu)
    body = body_mask_hu(hu)
    area = body.sum()
    if area < 0.02 * hu.size:
        return 0.0
    return float(((hu < -400) & body).sum() / area)


def lung_fraction_grey(grey: np.ndarray, threshold: float, *, remove_border_air: bool) -> float:
    """Share of a windowed 8-bit slice (at :data:`WORK_SIDE`) that the ct-covid lung field covers (air darker
    than ``threshold`` grey levels, closed, two largest components) — the same lung field the model uses."""
    from lesiondx.ct_covid.lung import lung_field

    g = shrink(grey)
    return float(lung_field(g, threshold, remove_border_air=remove_border_air).mean())


def hu_fractions(hu: np.ndarray) -> dict[str, float]:
    """Shares of all voxels that are air (−1100..−900 HU), soft tissue (−100..100 HU), liver-like
    parenchyma (40..200 HU), and below −1100 HU (padding outside the reconstruction circle)."""
    hu = np.asarray(hu, dtype=np.float32)
    n = max(1, hu.size)
    return {
        "air": float(((hu >= -1100) & (hu <= -900)).sum() / n),
        "soft_tissue": float(((hu >= -100) & (hu <= 100)).sum() / n),
        "liver_range": float(((hu >= 40) & (hu <= 200)).sum() / n),
        "padding": float((hu < -1100).sum() / n),
    }


def liver_tissue_fraction_hu(hu: np.ndarray) -> float:
    """Share of one axial slice's body cross-section in the right-anterior quarter (patient right =
    image left) that is liver-like parenchyma (40..200 HU) — high at liver level, low in the chest."""
    hu = shrink(hu)
    body = body_mask_hu(hu)
    if body.sum() < 0.02 * hu.size:
        return 0.0
    rows, cols = np.nonzero(body)
    r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
    quarter = np.zeros_like(body)
    quarter[r0 : (r0 + r1) // 2 + (r1 - r0) // 4, c0 : (c0 + c1) // 2] = True
    region = body & quarter
    if region.sum() == 0:
        return 0.0
    return float(((hu >= 40) & (hu <= 200) & region).sum() / region.sum())


def thin_bright_strokes(grey: np.ndarray, level: float = 200.0, contrast: float = 100.0, reach: int = 2) -> np.ndarray:
    """Pixels of thin bright lines (drawn text, graphics): at least ``level`` grey (0..255) and at least ``contrast``
    brighter than both pixels ``reach`` px away in one of four directions (across, down, both diagonals), so a
    stroke narrower than ``2 * reach - 1`` px on darker ground, not a broad bright echo."""
    grey = np.asarray(grey, np.float32)
    padded = np.pad(grey, reach, mode="edge")
    h, w = grey.shape
    found = np.zeros(grey.shape, bool)
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        ahead = padded[reach + dy * reach : reach + dy * reach + h, reach + dx * reach : reach + dx * reach + w]
        behind = padded[reach - dy * reach : reach - dy * reach + h, reach - dx * reach : reach - dx * reach + w]
        found |= grey - np.maximum(ahead, behind) >= contrast
    return found & (grey >= level)
