"""Liver filter: where the liver is (HU fallback or a learned U-Net) and whether a box lies inside it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from lesiondx.data import Box
from lesiondx.io import resize

from .candidates import chain_ids, disk

WORK_PX = 128  # the HU rule works on slices resampled to this side (2-3 mm pixels; 256 px was tried, see benchmarks)
MEDIAN_MM = 6.0  # HU are median-filtered over ~this width first: noise and small enhanced vessel branches (≤ ~5 mm)
# blend into the parenchyma so the liver stays one piece in-plane; organs and large vessels keep their HU
ERODE_MM = 4.0  # erosion that cuts thin bridges to neighbouring organs before the largest component is taken
CLOSE_MM = 12.0  # per-slice closing radius of the HU liver mask (bridges vessels / lesions at its border)
GROW_MM = 4.0  # slice continuity: the liver outline moves outward at most this far between adjacent slices
# (portal-venous studies have ≤ 2.5 mm slices; a 4 mm step is a wall sloped ≥ ~30° from the axial plane, and
# shrinking towards the dome and the tip is not limited); organs that touch the liver appear *beside* it
MIN_OVERLAP = 0.5  # a region on the next slice joins the liver only when ≥ half of it lies over the liver of
# the slice before (the liver's cross-section changes smoothly; stomach, duodenum and spleen start beside it)


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
                  band: float = 30.0, continuity: bool = True) -> np.ndarray:
    """Liver mask ``(S, H, W)`` from HU by rule: voxels within ``band`` HU of the parenchyma level
    (:func:`parenchyma_level` inside ``[low, high]``, median-smoothed),
    erosion to cut bridges to neighbouring organs, the largest 3D component whose centre lies in the
    patient's right (image left) half of the body, with ``continuity`` rebuilt slice by slice outward
    from its largest right-half cross-section (:func:`slice_continuity`: drops neighbouring organs joined to it
    through other slices), dilation back, per-slice closing and hole filling (so hypodense lesions
    inside the liver stay inside). ``continuity=False`` gives the previous (leakier) rule. Works at
    ``WORK_PX`` px for speed.

    ``spacing_mm``: in-plane pixel size (0.75 mm assumed when unknown).
    """
    vol = np.asarray(hu, dtype=np.float32)
    if vol.ndim == 2:
        vol = vol[None]
    s, h, w = vol.shape
    scale = WORK_PX / max(h, w)
    small = np.stack([resize(sl, (max(8, round(h * scale)), max(8, round(w * scale)))) for sl in vol])
    mm = (spacing_mm or 0.75) / scale  # mm per small pixel
    med = max(3, round(MEDIAN_MM / mm) | 1)  # odd, ≥ 3 px
    small = ndimage.median_filter(small, size=(1, med, med))
    body = np.stack([ndimage.binary_fill_holes(sl > -300) for sl in small])
    body = ndimage.binary_erosion(body, structure=disk(round(8 / mm))[None])
    level = parenchyma_level(small[body & _right_anterior(body)], low, high)
    cand = (np.abs(small - level) <= band) & body
    radius = max(1, round(ERODE_MM / mm))
    eroded = ndimage.binary_erosion(cand, structure=disk(radius)[None])
    labels, n = ndimage.label(eroded)
    if n == 0:
        return np.zeros(vol.shape, dtype=bool)
    sizes = ndimage.sum_labels(eroded, labels, index=np.arange(1, n + 1))
    centres = ndimage.center_of_mass(eroded, labels, index=np.arange(1, n + 1))
    body_x = np.nonzero(body)[2].mean() if body.any() else small.shape[2] / 2
    right = [i for i in range(n) if centres[i][2] < body_x]
    main = labels == max(right or range(n), key=lambda i: sizes[i]) + 1
    if continuity:
        right_half = np.arange(small.shape[2])[None, None, :] < body_x  # the right lobe (leaks come from the left)
        main = slice_continuity(eroded, main, GROW_MM / mm, MIN_OVERLAP, seed_in=right_half)
    liver = ndimage.binary_dilation(main, structure=disk(radius)[None]) & cand
    close = disk(round(CLOSE_MM / mm))
    liver = np.stack([ndimage.binary_fill_holes(ndimage.binary_closing(sl, structure=close, iterations=1)) for sl in liver])
    return np.stack([resize(sl.astype(np.float32), (h, w), order=0) > 0.5 for sl in liver])


def slice_continuity(eroded: np.ndarray, main: np.ndarray, grow_px: float, min_overlap: float,
                     seed_in: np.ndarray | None = None) -> np.ndarray:
    """The liver rebuilt slice by slice from the slice where ``main`` (the chosen 3D component of the
    ``eroded`` parenchyma band, both ``(S, H, W)``) is largest inside ``seed_in`` (broadcastable mask,
    e.g. the patient's right half; everywhere when ``None``), towards both ends: on each next slice, the
    2D components of ``eroded`` of which ≥ ``min_overlap`` of the area lies over the previous slice's
    liver, clipped to that liver dilated by ``grow_px`` pixels. Parts joined to the liver only through
    other slices (spleen, stomach wall) or appearing beside it are dropped. An organ lying directly
    over or under the liver of the neighbouring slice (heart above the dome, bowel under the left lobe) is not."""
    out = np.zeros_like(main)
    inner = main if seed_in is None else main & seed_in
    areas = inner.sum(axis=(1, 2))
    if not areas.any():
        return out
    seed = int(areas.argmax())
    labels, n = ndimage.label(eroded[seed])
    overlap = np.bincount(labels[inner[seed]], minlength=n + 1)
    overlap[0] = 0
    out[seed] = labels == int(overlap.argmax())
    grow = disk(max(1, round(grow_px)))
    for step in (-1, 1):
        z = seed + step
        while 0 <= z < len(out) and out[z - step].any():
            labels, n = ndimage.label(eroded[z])
            over = np.bincount(labels[out[z - step]], minlength=n + 1)
            keep = (over > 0) & (over >= min_overlap * np.bincount(labels.ravel(), minlength=n + 1))
            keep[0] = False
            out[z] = keep[labels] & ndimage.binary_dilation(out[z - step], structure=grow)
            z += step
    return out


def inside_fraction(box: Box, liver_slice: np.ndarray) -> float:
    """Share of the ellipse inscribed in ``box`` (the object a box stands for, not its corners) that
    lies inside the liver mask (0 for an empty box)."""
    rows, cols = liver_slice.shape
    y1, y2, x1, x2 = max(0, box.y1), min(rows, box.y2), max(0, box.x1), min(cols, box.x2)
    if y2 <= y1 or x2 <= x1:
        return 0.0
    yy, xx = np.mgrid[box.y1:box.y2, box.x1:box.x2]
    cy, cx = (box.y1 + box.y2 - 1) / 2, (box.x1 + box.x2 - 1) / 2
    ry, rx = max(box.height / 2, 0.5), max(box.width / 2, 0.5)
    ellipse = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    valid = (yy >= 0) & (yy < rows) & (xx >= 0) & (xx < cols)
    inside = np.zeros_like(ellipse)
    inside[valid] = liver_slice[yy[valid], xx[valid]]
    return float((ellipse & inside).sum() / max(1, ellipse.sum()))


def inside_liver(box: Box, liver_slice: np.ndarray, min_fraction: float = 0.5) -> bool:
    """True when at least ``min_fraction`` of the box's inscribed ellipse lies in the liver."""
    return inside_fraction(box, liver_slice) >= min_fraction


def filter_boxes(boxes: Sequence[Box], liver_slice: np.ndarray, min_fraction: float = 0.5) -> list[bool]:
    """``inside_liver`` flag for each box on one slice."""
    return [inside_liver(b, liver_slice, min_fraction) for b in boxes]


def liver_flags(found: Sequence, liver: np.ndarray, min_fraction: float = 0.5, edge_claw: bool = False) -> list[bool]:
    """Liver filter for detections (objects with ``slice``, ``box``, ``inside_fraction``): a candidate
    is inside when ≥ ``min_fraction`` of its **own voxels** lie in the liver mask (rule-based
    candidates carry that fraction) or, with ``edge_claw``, when ≥ ``min_fraction`` of them lie in its
    liver envelope (``envelope_fraction``, the claw rule for lesions bulging out of the liver edge:
    :mod:`lesiondx.ct_liver.edge`); boxes without pixels (learned detector, NaN) use the ellipse
    inscribed in the box, voted over boxes chained across slices (one lesion, one decision)."""
    own = [float(d.inside_fraction) for d in found]
    envelope = [float(getattr(d, "envelope_fraction", float("nan"))) if edge_claw else float("nan") for d in found]
    boxed = [i for i, f in enumerate(own) if not np.isfinite(f)]
    flags = [np.isfinite(f) and (f >= min_fraction or (np.isfinite(e) and e >= min_fraction)) for f, e in zip(own, envelope)]
    if boxed:
        sub = [found[i] for i in boxed]
        voted = vote_by_component(chains([d.slice for d in sub], [d.box for d in sub]),
                                  [inside_liver(d.box, liver[d.slice], min_fraction) for d in sub])
        for i, f in zip(boxed, voted):
            flags[i] = f
    return [bool(f) for f in flags]


def chains(slices: Sequence[int], boxes: Sequence[Box], min_iou: float = 0.3) -> list[int]:
    """Chain id per box: boxes on adjacent slices overlapping by IoU ≥ ``min_iou`` belong to one lesion."""
    return chain_ids(slices, lambda i, j: boxes[i].iou(boxes[j]) >= min_iou)


def vote_by_component(components: Sequence[int], flags: Sequence[bool]) -> list[bool]:
    """Lesion-level liver filter: boxes of the same lesion (id ≥ 0, e.g. from :func:`chains`) all take
    the majority flag of that lesion's slices (ties count as inside); id < 0 keeps the box's own flag."""
    votes: dict[int, list[bool]] = {}
    for comp, flag in zip(components, flags):
        if comp >= 0:
            votes.setdefault(comp, []).append(bool(flag))
    return [bool(flag) if comp < 0 else 2 * sum(votes[comp]) >= len(votes[comp]) for comp, flag in zip(components, flags)]
