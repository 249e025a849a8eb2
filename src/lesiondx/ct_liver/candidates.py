"""Classical lesion-candidate detector (no learned weights): regions clearly hypo- or hyperdense
relative to the liver parenchyma's median HU, linked across slices, with size limits and a
contrast-based confidence. Its rules come from general radiology knowledge, not from any dataset."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lesiondx.data import Box, boxes_from_mask

WORK_MM = 1.2  # candidate search runs on pixels of about this size (mm)


@dataclass(frozen=True)
class Detection:
    """One box on one slice (0-based index in slice order), pixel coordinates of the original slice."""

    slice: int
    box: Box
    score: float
    component: int = -1  # 3D candidate id (−1 for per-slice detectors)
    contrast_hu: float = float("nan")  # mean HU of the region minus the parenchyma median


def _disk(radius: int) -> np.ndarray:
    r = max(1, int(radius))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (xx * xx + yy * yy) <= r * r


def detect_candidates(
    hu: np.ndarray, liver: np.ndarray, spacing_mm: float | None, *, min_contrast_hu: float = 15.0,
    min_mm: float = 5.0, max_mm: float = 150.0, search_margin_mm: float = 15.0, hyper_factor: float = 3.0,
) -> list[Detection]:
    """Candidates in ``hu`` ``(S, H, W)`` near the ``liver`` mask.

    Search region = liver dilated by ``search_margin_mm`` (hypodense lesions at the edge often fall
    outside a liver mask; the liver filter decides later). A voxel is a candidate when its smoothed
    HU is ≥ ``min_contrast_hu`` below the parenchyma median, or ≥ ``hyper_factor`` × that above it.
    3D components whose largest cross-section has an equivalent diameter in ``[min_mm, max_mm]`` are
    kept; each slice's cross-sections (≥ ``min_mm`` across) become boxes with score =
    min(1, |mean contrast| / (4·min_contrast)), halved when most of the 3D region hugs the liver edge
    (partial-volume rim); hyperdense cross-sections must be compact (vessels are not).
    """
    hu = np.asarray(hu, dtype=np.float32)
    liver = np.asarray(liver, dtype=bool)
    if hu.shape != liver.shape or hu.ndim != 3:
        raise ValueError(f"hu {hu.shape} and liver {liver.shape} must be the same (S, H, W) volume")
    if not liver.any():
        return []
    full_mm = spacing_mm or 0.75
    factor = max(1, int(round(WORK_MM / full_mm)))  # work on ~WORK_MM pixels, boxes scaled back
    small_hu = hu[:, ::factor, ::factor]
    small_liver = liver[:, ::factor, ::factor]
    mm = full_mm * factor
    level = float(np.median(hu[liver]))
    search = ndimage.distance_transform_edt(~small_liver, sampling=(1e6, mm, mm)) <= search_margin_mm
    tissue = (search & (small_hu > -30)).astype(np.float32)  # no fat or gas in the averages
    size = (1, max(3, round(3 / mm) | 1), max(3, round(3 / mm) | 1))
    smooth = ndimage.uniform_filter(small_hu * tissue, size=size) / np.maximum(ndimage.uniform_filter(tissue, size=size), 1e-3)
    hypo = smooth < level - min_contrast_hu
    hyper = smooth > level + hyper_factor * min_contrast_hu
    cand = (hypo | hyper) & (tissue > 0)
    cand = ndimage.binary_opening(cand, structure=_disk(round(1.5 / mm))[None])
    labels, n = ndimage.label(cand)
    edge = search & (ndimage.distance_transform_edt(small_liver, sampling=(1e6, mm, mm)) <= 3.0)
    out: list[Detection] = []
    min_px = np.pi * (min_mm / 2 / mm) ** 2
    max_px = np.pi * (max_mm / 2 / mm) ** 2
    for k, found in enumerate(ndimage.find_objects(labels), start=1):
        if found is None:
            continue
        region = labels[found] == k
        areas = region.sum(axis=(1, 2))
        if not (min_px <= areas.max() <= max_px):
            continue
        values = small_hu[found][region]
        contrast = float(values.mean() - level)
        rim = 0.5 if float(edge[found][region].mean()) > 0.5 else 1.0
        z0, y0, x0 = found[0].start, found[1].start, found[2].start
        for dz, plane in enumerate(region):
            sub, _ = ndimage.label(plane)
            for box in boxes_from_mask(plane, min_area=max(4, int(min_px))):
                fill = plane[box.y1:box.y2, box.x1:box.x2].mean()
                ids = sub[box.y1:box.y2, box.x1:box.x2]
                part = ids == np.bincount(ids[ids > 0]).argmax()
                local = float(smooth[z0 + dz, y0 + box.y1:y0 + box.y2, x0 + box.x1:x0 + box.x2][part].mean() - level)
                box_score = min(1.0, abs(local) / (4 * min_contrast_hu)) * rim
                if contrast > 0 and (fill < 0.5 or max(box.width, box.height) > 2 * min(box.width, box.height)):
                    continue  # hyperdense and not compact: a vessel, not a lesion
                full = Box((x0 + box.x1) * factor, (y0 + box.y1) * factor,
                           min(hu.shape[2], (x0 + box.x2) * factor), min(hu.shape[1], (y0 + box.y2) * factor))
                out.append(Detection(z0 + dz, full, box_score, k, local))
    return out
