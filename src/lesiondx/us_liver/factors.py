"""Honest ultrasonic factors of one lesion, computed from the grey frame and the lesion / liver /
sector masks (drawn or proposed): size and depth relative to the scan sector, echogenicity and rim
contrast against the liver, heterogeneity, margin sharpness, posterior enhancement and shape.

All factors are unitless ratios, so the unknown pixel spacing and scanner gain cancel. Image size,
colour tint and scanner identity are never used.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lesiondx.data import Box, mask_box

from .rois import UsFrame, sector_box, ultrasonic_factors

FACTOR_NAMES = ("lesion_size_rel", "lesion_depth_rel", "echo_contrast", "rim_contrast", "heterogeneity",
                "margin_sharpness", "posterior_enhancement", "circularity", "solidity", "aspect_ratio")


def _ring(mask: np.ndarray, inner: int, outer: int) -> np.ndarray:
    """Pixels between ``inner`` and ``outer`` dilation steps outside ``mask``."""
    grown = ndimage.binary_dilation(mask, iterations=outer)
    return grown & ~(ndimage.binary_dilation(mask, iterations=inner) if inner > 0 else mask)


def _reference(frame: UsFrame, lesion: np.ndarray, margin: int) -> np.ndarray:
    """Liver parenchyma outside the dilated lesion; falls back to the sector, then a wide ring."""
    grown = ndimage.binary_dilation(lesion, iterations=margin)
    for region in (frame.liver, frame.sector):
        if region is not None and (region & ~grown).sum() >= 50:
            return region & ~grown
    return _ring(lesion, margin, 4 * margin)


def _mean(grey: np.ndarray, region: np.ndarray) -> float:
    return float(grey[region].mean()) if region.any() else float("nan")


def shape_factors(lesion: np.ndarray) -> dict[str, float]:
    """Circularity (4π·area/perimeter², 1 = disc), solidity (area / convex-hull area) and aspect
    ratio (minor / major axis of the second moments, ≤ 1)."""
    from scipy.spatial import ConvexHull, QhullError

    area = float(lesion.sum())
    perimeter = float((lesion & ~ndimage.binary_erosion(lesion)).sum())
    ys, xs = np.nonzero(lesion)
    points = np.column_stack([xs, ys]).astype(float)
    try:
        hull = ConvexHull(points).volume + perimeter / 2  # pixel centres → add half a boundary ring
    except (QhullError, ValueError):
        hull = area
    eig = np.linalg.eigvalsh(np.cov(points.T)) if len(points) > 2 else np.ones(2)
    return {"circularity": min(1.5, 4 * np.pi * area / max(1.0, perimeter) ** 2 / 1.27),  # 1.27: digital perimeter bias
            "solidity": min(1.0, area / max(1.0, hull)),
            "aspect_ratio": float(np.sqrt(max(eig[0], 0.0) / max(eig[1], 1e-6)))}


def lesion_factors(frame: UsFrame, lesion: np.ndarray | None = None) -> dict[str, float]:
    """The factors of :data:`FACTOR_NAMES` for the frame's lesion (or ``lesion``); grey 0..255."""
    lesion = frame.lesion if lesion is None else lesion
    if lesion is None or not lesion.any():
        raise ValueError("empty lesion mask")
    grey = ndimage.uniform_filter(frame.grey.astype(np.float32), 3)  # tame speckle
    sector = sector_box(frame)
    box = mask_box(lesion)
    assert box is not None
    size = float(np.sqrt(lesion.sum()))
    margin = max(3, int(round(0.1 * size)))
    ref = _reference(frame, lesion, margin)
    ref_mean = max(1.0, _mean(grey, ref))
    inside = _mean(grey, lesion)
    rim = _mean(grey, _ring(lesion, 0, margin))
    boundary = lesion & ~ndimage.binary_erosion(lesion)
    gradient = np.hypot(ndimage.sobel(grey, 0), ndimage.sobel(grey, 1)) / 8.0
    below = _posterior(grey, lesion, box, frame.grey.shape)
    return {**ultrasonic_factors(lesion, sector),
            "echo_contrast": (inside - ref_mean) / ref_mean,
            "rim_contrast": (rim - ref_mean) / ref_mean,
            "heterogeneity": float(grey[lesion].std()) / max(1.0, inside),
            "margin_sharpness": float(gradient[boundary].mean()) / ref_mean,
            "posterior_enhancement": below,
            **shape_factors(lesion)}


def _posterior(grey: np.ndarray, lesion: np.ndarray, box: Box, shape: tuple[int, int]) -> float:
    """Mean grey in a band below the lesion over the mean of same-depth bands beside it, minus 1."""
    h, w = shape
    band = max(4, box.height // 2)
    y0, y1 = min(h, box.y2), min(h, box.y2 + band)
    if y1 - y0 < 2:
        return 0.0
    below = grey[y0:y1, max(0, box.x1) : min(w, box.x2)]
    left = grey[y0:y1, max(0, box.x1 - box.width) : max(0, box.x1)]
    right = grey[y0:y1, min(w, box.x2) : min(w, box.x2 + box.width)]
    sides = np.concatenate([left.ravel(), right.ravel()])
    sides = sides[sides > 5]  # outside the fan is black
    if below.size == 0 or sides.size < 10:
        return 0.0
    return float(below.mean()) / max(1.0, float(sides.mean())) - 1.0
