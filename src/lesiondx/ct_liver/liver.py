"""Liver filter: where the liver is (HU fallback or a learned U-Net) and whether a box lies inside it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from lesiondx.data import Box
from lesiondx.io import resize

WORK_PX = 128  # the HU fallback works on slices resampled to this side


def _disk(radius: int) -> np.ndarray:
    r = max(1, int(radius))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (xx * xx + yy * yy) <= r * r


def parenchyma_level(values: np.ndarray, low: float = 40.0, high: float = 200.0) -> float:
    """The most frequent HU in ``[low, high]`` (2-HU bins, smoothed): liver parenchyma in an abdominal
    CT, whose liver is the largest organ of that density (muscle is darker once contrast is given)."""
    vals = np.asarray(values, dtype=np.float32)
    vals = vals[(vals >= low) & (vals <= high)]
    if vals.size == 0:
        return (low + high) / 2
    counts, edges = np.histogram(vals, bins=np.arange(low, high + 2, 2))
    smooth = ndimage.uniform_filter1d(counts.astype(float), 5)
    return float(edges[int(smooth.argmax())] + 1)


def _right_anterior(body: np.ndarray) -> np.ndarray:
    """Per slice, the body's patient-right (image-left) half and its anterior 60 % (no paraspinal muscle)."""
    out = np.zeros_like(body)
    for z, sl in enumerate(body):
        rows, cols = np.nonzero(sl)
        if rows.size:
            y_cut = rows.min() + 0.6 * (rows.max() - rows.min())
            x_cut = (cols.min() + cols.max()) / 2
            out[z, : int(y_cut), : int(x_cut)] = True
    return out


def hu_liver_mask(hu: np.ndarray, spacing_mm: float | None, *, low: float = 40.0, high: float = 200.0,
                  band: float = 30.0) -> np.ndarray:
    """Liver mask ``(S, H, W)`` from HU by rule: voxels within ``band`` HU of the parenchyma level
    (:func:`parenchyma_level` inside ``[low, high]``, median-smoothed),
    erosion to cut bridges to neighbouring organs, the largest 3D component whose centre lies in the
    patient's right (image left) half of the body, dilation back, per-slice closing and hole filling
    (so hypodense lesions inside the liver stay inside). Works at ``WORK_PX`` px for speed.

    ``spacing_mm``: in-plane pixel size (0.75 mm assumed when unknown).
    """
    vol = np.asarray(hu, dtype=np.float32)
    if vol.ndim == 2:
        vol = vol[None]
    s, h, w = vol.shape
    scale = WORK_PX / max(h, w)
    small = np.stack([resize(sl, (max(8, round(h * scale)), max(8, round(w * scale)))) for sl in vol])
    mm = (spacing_mm or 0.75) / scale  # mm per small pixel
    small = ndimage.median_filter(small, size=(1, 3, 3))
    body = np.stack([ndimage.binary_fill_holes(sl > -300) for sl in small])
    body = ndimage.binary_erosion(body, structure=_disk(round(8 / mm))[None])
    level = parenchyma_level(small[body & _right_anterior(body)], low, high)
    cand = (np.abs(small - level) <= band) & body
    radius = max(1, round(4 / mm))
    eroded = ndimage.binary_erosion(cand, structure=_disk(radius)[None])
    labels, n = ndimage.label(eroded)
    if n == 0:
        return np.zeros(vol.shape, dtype=bool)
    sizes = ndimage.sum_labels(eroded, labels, index=np.arange(1, n + 1))
    centres = ndimage.center_of_mass(eroded, labels, index=np.arange(1, n + 1))
    body_x = np.nonzero(body)[2].mean() if body.any() else small.shape[2] / 2
    right = [i for i in range(n) if centres[i][2] < body_x]
    pick = max(right or range(n), key=lambda i: sizes[i]) + 1
    liver = ndimage.binary_dilation(labels == pick, structure=_disk(radius)[None]) & cand
    close = _disk(round(12 / mm))
    liver = np.stack([ndimage.binary_fill_holes(ndimage.binary_closing(sl, structure=close, iterations=1)) for sl in liver])
    return np.stack([resize(sl.astype(np.float32), (h, w), order=0) > 0.5 for sl in liver])


def inside_fraction(box: Box, liver_slice: np.ndarray) -> float:
    """Share of the box's pixels that lie inside the liver mask (0 for an empty box)."""
    region = liver_slice[max(0, box.y1):max(0, box.y2), max(0, box.x1):max(0, box.x2)]
    return float(region.mean()) if region.size else 0.0


def inside_liver(box: Box, liver_slice: np.ndarray, min_fraction: float = 0.3) -> bool:
    """True when the box centre is in the liver or at least ``min_fraction`` of the box overlaps it."""
    x, y = (int(round(v)) for v in box.center)
    rows, cols = liver_slice.shape
    centre_in = 0 <= y < rows and 0 <= x < cols and bool(liver_slice[y, x])
    return centre_in or inside_fraction(box, liver_slice) >= min_fraction


def filter_boxes(boxes: Sequence[Box], liver_slice: np.ndarray, min_fraction: float = 0.3) -> list[bool]:
    """``inside_liver`` flag for each box on one slice."""
    return [inside_liver(b, liver_slice, min_fraction) for b in boxes]


def chains(slices: Sequence[int], boxes: Sequence[Box], min_iou: float = 0.3) -> list[int]:
    """Chain id per box: boxes on adjacent slices overlapping by IoU ≥ ``min_iou`` belong to one lesion."""
    parent = list(range(len(boxes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_slice: dict[int, list[int]] = {}
    for i, z in enumerate(slices):
        by_slice.setdefault(int(z), []).append(i)
    for z, here in by_slice.items():
        for i in here:
            for j in by_slice.get(z + 1, []):
                if boxes[i].iou(boxes[j]) >= min_iou:
                    parent[root(i)] = root(j)
    return [root(i) for i in range(len(boxes))]


def vote_by_component(components: Sequence[int], flags: Sequence[bool]) -> list[bool]:
    """Lesion-level liver filter: boxes of the same lesion (id ≥ 0, e.g. from :func:`chains`) all take
    the majority flag of that lesion's slices (ties count as inside); id < 0 keeps the box's own flag."""
    votes: dict[int, list[bool]] = {}
    for comp, flag in zip(components, flags):
        if comp >= 0:
            votes.setdefault(comp, []).append(bool(flag))
    return [bool(flag) if comp < 0 else 2 * sum(votes[comp]) >= len(votes[comp]) for comp, flag in zip(components, flags)]
